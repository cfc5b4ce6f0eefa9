// Runs a job kind in-process through the same step loop as the service (no queue, no store): the core of
// `convserve blur-sweep` and, later, `convserve dream|style`.
import type { Config } from '../config.js';
import { loadConfig } from '../config.js';
import type { RawImage } from '../image/io.js';
import { parseParams } from '../util/params.js';
import { type Logger, logger as rootLogger } from '../util/logger.js';
import { badRequest } from '../util/problem.js';
import { type AnyJobKind, type JobInputs, type JobServices, isJobDocument, loadBuiltinJobKinds, requireJobKind } from './kind.js';
import { wallClockLimit } from './execution.js';
import { type Progress, runStepLoop } from './runner.js';

export interface LocalRunOptions {
  onProgress?(p: Progress): void;
  onPreview?(image: RawImage, step: number): void | Promise<void>;
  signal?: AbortSignal;
  config?: Config;
  services?: JobServices;
  logger?: Logger;
}

export interface LocalRunResult {
  result: RawImage;
  params: unknown;
  steps: number;
  runMs: number;
}

/**
 * Validates `params` with the kind's schema (raw values as from a form or JSON), runs init + every step +
 * finish, and returns the result image. Throws a ProblemError for bad parameters or a missing input, an
 * AbortError-like Error when `signal` aborts, and the kind's wall-clock limit applies as in the service.
 */
export async function runJobLocally(kind: string | AnyJobKind, inputs: JobInputs, params: Record<string, unknown>, opts: LocalRunOptions = {}): Promise<LocalRunResult> {
  await loadBuiltinJobKinds();
  const k = typeof kind === 'string' ? requireJobKind(kind) : kind;
  const config = opts.config ?? loadConfig();
  const p = parseParams(k.params(config), params);
  for (const f of k.inputs) {
    const n = inputs[f.name]?.length ?? 0;
    if ((f.required ?? true) && n === 0) throw badRequest('missing-image', `Job kind '${k.name}' needs an input image '${f.name}'.`);
    if (n > (f.maxCount ?? 1)) throw badRequest('too-many-images', `Job kind '${k.name}' takes at most ${f.maxCount ?? 1} image(s) for '${f.name}'.`);
  }
  const signal = opts.signal ?? new AbortController().signal;
  const wallClockMs = wallClockLimit(config, k, p);
  const out = await runStepLoop({
    kind: k, params: p, inputs, wallClockMs,
    ctx: { jobId: 'local', config, signal, logger: opts.logger ?? rootLogger, services: opts.services },
    hooks: { onProgress: opts.onProgress, onPreview: opts.onPreview },
  });
  if (out.outcome === 'succeeded') {
    // In-process runs serve the image kinds (blur-sweep, dream, style); a document kind runs through the job service.
    if (isJobDocument(out.result)) throw new Error(`Job kind '${k.name}' produces a document, not an image: submit it to the job service.`);
    return { result: out.result, params: p, steps: out.step, runMs: out.runMs };
  }
  if (out.outcome === 'timed-out') throw new Error(`The job exceeded its wall-clock limit of ${out.limitMs} ms after ${out.step} steps.`);
  const err = new Error(`The job was aborted after ${out.step} steps (${String(out.reason)}).`);
  err.name = 'AbortError';
  throw err;
}
