// Runs one job to its end (BullMQ's processor): decodes its inputs, restores its checkpoint, drives the kind
// through the step loop (runner.ts) with persistence hooks, and records the outcome — succeeded, failed
// (error or wall-clock limit), cancelled, or checkpointed and left `running` on disk when the service stops.
import { readFile } from 'node:fs/promises';
import { type Config, kindWallClockLimits } from '../config.js';
import { decodeImage } from '../image/io.js';
import type { Logger } from '../util/logger.js';
import { ProblemError } from '../util/problem.js';
import { type AnyJobKind, type JobContext, type JobInputs, type JobServices, getJobKind } from './kind.js';
import type { JobRecord } from './record.js';
import { type LoopOutcome, runStepLoop } from './runner.js';
import type { JobStore } from './store.js';
import type { JobTransitions } from './transitions.js';

/** Why a running job's signal is aborted. */
export type AbortReason = 'cancel' | 'shutdown';

export interface ExecutionDeps {
  config: Config;
  logger: Logger;
  store: JobStore;
  transitions: JobTransitions;
  services: JobServices | undefined;
}

export async function executeJob(deps: ExecutionDeps, rec: JobRecord, signal: AbortSignal): Promise<void> {
  const { config, store, transitions } = deps;
  const log = deps.logger.child({ job: rec.id, kind: rec.kind });
  const kind = getJobKind(rec.kind);
  if (!kind) {
    transitions.finished(rec, 'failed', { type: 'unknown-job-kind', detail: `Job kind '${rec.kind}' is not registered in this process.` });
    return;
  }
  transitions.started(rec);
  const ctx: JobContext = { jobId: rec.id, config, signal, logger: log, services: deps.services, files: inputFiles(deps, rec, kind), workDir: store.path(rec.id, 'work') };

  let outcome: LoopOutcome;
  try {
    const inputs = await decodeInputs(deps, rec, kind);
    const ckpt = rec.checkpoint ? await store.readCheckpoint(rec.id) : undefined;
    if (ckpt?.fellBack) log.warn({ problem: ckpt.fellBack, step: ckpt.meta.step }, 'the last checkpoint is damaged; resuming from the one before it');
    const resume = ckpt ? { state: await kind.deserialize(ckpt.state, rec.params, inputs, ctx), step: ckpt.meta.step, runMs: ckpt.meta.run_ms } : undefined;
    const from = resume?.step ?? 0;
    if (rec.progress.step > 0 || rec.previews.length > 0 || rec.checkpoint) {
      transitions.resumed(rec, from);
      log.info({ from_step: from }, 'job resumed from checkpoint');
    }
    outcome = await runStepLoop({
      kind, params: rec.params, ctx, inputs, resume,
      wallClockMs: wallClockLimit(config, kind, rec.params),
      previewBudget: Math.max(0, config.jobMaxPreviews - rec.previews.length),
      checkpointEverySteps: config.checkpointEverySteps,
      checkpointEveryMs: config.checkpointEveryMs,
      hooks: {
        onProgress: (p) => transitions.progressed(rec, p),
        onPreview: (img, step) => transitions.previewed(rec, img, step),
        onCheckpoint: (state, step, runMs) => transitions.checkpointed(rec, kind, state, step, runMs),
      },
    });
  } catch (e) {
    if (signal.aborted && signal.reason === 'shutdown') {
      log.info('job interrupted by shutdown before its first step; it restarts from its checkpoint at the next start');
      return;
    }
    await store.deleteCheckpoint(rec.id);
    if (signal.aborted && signal.reason === 'cancel') { transitions.finished(rec, 'cancelled'); return; }
    log.error({ err: e }, 'job failed');
    transitions.finished(rec, 'failed', { type: e instanceof ProblemError ? e.slug : 'job-error', detail: e instanceof Error ? e.message : String(e) });
    return;
  }

  switch (outcome.outcome) {
    case 'succeeded':
      await transitions.succeeded(rec, outcome.result);
      log.info({ steps: outcome.step, run_ms: outcome.runMs }, 'job succeeded');
      return;
    case 'timed-out':
      await store.deleteCheckpoint(rec.id);
      transitions.finished(rec, 'failed', { type: 'job-time-limit', detail: `The job ran for ${Math.round(outcome.runMs)} ms, over its wall-clock limit of ${outcome.limitMs} ms (CONVSERVE_JOB_MAX_MS, CONVSERVE_JOB_KIND_MAX_MS or the kind's own limit), after ${outcome.step} of ${rec.progress.total} steps.` });
      return;
    case 'aborted':
      if (outcome.reason === 'shutdown') {
        // Keep it `running` on disk: the next start re-queues it from this checkpoint.
        if (outcome.state !== undefined && outcome.step > (rec.checkpoint?.step ?? 0)) await transitions.checkpointed(rec, kind, outcome.state, outcome.step, outcome.runMs);
        log.info({ step: outcome.step }, 'job checkpointed for shutdown; it resumes at the next start');
        return;
      }
      await store.deleteCheckpoint(rec.id);
      transitions.finished(rec, 'cancelled');
      log.info({ step: outcome.step }, 'job cancelled');
  }
}

/** The lowest of CONVSERVE_JOB_MAX_MS, the kind's entry in CONVSERVE_JOB_KIND_MAX_MS and the kind's own limit. */
export function wallClockLimit(config: Config, kind: AnyJobKind, params: unknown): number {
  return Math.min(
    config.jobWallClockMs,
    kindWallClockLimits(config.jobKindWallClockMs).get(kind.name) ?? Number.POSITIVE_INFINITY,
    kind.maxWallClockMs?.(config, params) ?? Number.POSITIVE_INFINITY,
  );
}

async function decodeInputs(deps: ExecutionDeps, rec: JobRecord, kind: AnyJobKind): Promise<JobInputs> {
  const { config, store } = deps;
  const inputs: JobInputs = {};
  const maxInputPixels = Math.min(config.maxInputPixels, kind.maxInputPixels?.(config) ?? Number.POSITIVE_INFINITY);
  for (const inp of rec.inputs) {
    if (isFileField(kind, inp.field)) continue;
    const img = await decodeImage(await readFile(store.path(rec.id, inp.file)), { maxInputPixels, decodeTimeoutMs: config.decodeTimeoutMs });
    (inputs[inp.field] ??= []).push(img);
  }
  return inputs;
}

const isFileField = (kind: AnyJobKind, field: string) => kind.inputs.some((f) => f.name === field && f.file);

/** Paths of the non-image inputs (JobInputField.file), by field. */
function inputFiles(deps: ExecutionDeps, rec: JobRecord, kind: AnyJobKind): Record<string, string[]> {
  const files: Record<string, string[]> = {};
  for (const inp of rec.inputs) if (isFileField(kind, inp.field)) (files[inp.field] ??= []).push(deps.store.path(rec.id, inp.file));
  return files;
}
