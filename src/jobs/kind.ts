// What a job kind is: a step function plus everything the runner needs around it (parameter schema, image
// inputs, previews, checkpoints). The runner (src/jobs/runner.ts) owns the loop, so progress, cancellation,
// checkpoints, wall-clock limits and scheduling are written once; a kind only describes one iteration.
//
// Adding a kind = adding one file to src/jobs/kinds/ whose default export is `defineJobKind({...})`; every
// module in that folder is loaded by loadBuiltinJobKinds(). registerJobKind() registers one from anywhere else.
import { readdirSync } from 'node:fs';
import type { z } from 'zod';
import type { Config } from '../config.js';
import type { RawImage } from '../image/io.js';
import type { GradServices } from '../ops/grad-session.js';
import type { Logger } from '../util/logger.js';
import type { SerializedState } from '../util/serialized-state.js';

export type { SerializedState };
import { notFound } from '../util/problem.js';

/** The long-lived services job kinds may use. */
export type JobServices = GradServices;

/** Decoded input images by field name (`inputs.image[0]`, or `inputs.content[0]` + `inputs.style`). */
export type JobInputs = Record<string, RawImage[]>;

/** A non-image input file (a fine-tune's archive): its own size limit, and what it is, judged from its bytes. */
export interface JobFileInput {
  /** Largest accepted file (413 above). */
  maxBytes(config: Config): number;
  /** Its content type and file extension, or a 4xx ProblemError when the bytes are not what the field takes. */
  sniff(bytes: Buffer): { contentType: string; extension: string };
}

/** A kind's result that is a document rather than an image (served as application/json). */
export interface JobDocument {
  json: unknown;
}

export type JobResult = RawImage | JobDocument;

export const isJobDocument = (r: JobResult): r is JobDocument => !('data' in r);

export interface JobInputField {
  /** Multipart file field name, e.g. 'image', 'content', 'style'. A raw image/* body counts as the first field. */
  name: string;
  /** Default true. */
  required?: boolean;
  /** Most files in this field (default 1). */
  maxCount?: number;
  /** Present: the field takes a non-image file, handed to the kind as a path (JobContext.files), never decoded. */
  file?: JobFileInput;
}

/** Passed to init/step/preview/finish/deserialize. */
export interface JobContext {
  jobId: string;
  config: Config;
  /** Aborted when the job is cancelled, hits its wall-clock limit, or the service shuts down. Long steps should honour it. */
  signal: AbortSignal;
  logger: Logger;
  /** The inference engine and model registry, when the process runs them (absent for kinds that need none, e.g. blur-sweep run locally). */
  services?: JobServices;
  /** Paths of the job's non-image input files by field name (kinds with `file` inputs). */
  files?: Record<string, string[]>;
  /** A folder inside the job's own folder the kind may write to (unpacked inputs); absent when run in-process. */
  workDir?: string;
}

export interface StepContext<P = unknown> extends JobContext {
  params: P;
  /** Index of the step being computed (0-based): after it returns, `step + 1` steps are done. */
  step: number;
  total: number;
}

export interface JobKind<P = unknown, S = unknown> {
  /** URL segment and registry key: `POST /v1/jobs/{name}`. Lower-case, [a-z0-9-]. */
  name: string;
  description: string;
  /**
   * Parameter schema, validated before the job is accepted (400 naming the parameter otherwise). Values arrive as
   * strings from forms/query or typed from JSON, so use z.coerce. Every limit must be explicit. The parsed output
   * is stored with the job and must be JSON-serialisable.
   */
  params(config: Config): z.ZodType<P>;
  /** Image inputs (multipart file fields). */
  inputs: JobInputField[];
  /** Largest accepted input image (width × height), checked from the header before accepting; default config.maxInputPixels. */
  maxInputPixels?(config: Config): number;
  /** Wall-clock limit for this kind (the lower of this and CONVSERVE_JOB_MAX_MS applies). */
  maxWallClockMs?(config: Config, params: P): number;

  totalSteps(params: P): number;
  /**
   * Checks the parameters against the running services before the job is accepted (e.g. that the model has the
   * named layers); throws a ProblemError, which is the submission's answer. Optional; init must check again.
   */
  check?(params: P, services: JobServices | undefined): void;
  /**
   * Checks the input images' sizes (read from their headers; by file field) before the job is accepted, e.g.
   * that the image is large enough for the model; throws a ProblemError, the submission's answer. Optional;
   * init must check again.
   */
  checkInputs?(params: P, images: Record<string, { width: number; height: number }[]>, config: Config, services: JobServices | undefined): void;
  /**
   * Kinds with `file` inputs: checks the files before the job is accepted (a ProblemError is the submission's
   * answer) and returns the parameters to store, completed with what the files say (e.g. a dataset's size, which
   * sets totalSteps).
   */
  admitFiles?(files: { field: string; bytes: Buffer }[], params: P, config: Config): Promise<P> | P;
  init(inputs: JobInputs, params: P, ctx: JobContext): Promise<S> | S;
  /** One iteration. Must not mutate `state` in a way that breaks it if the step is abandoned (return a new state or finish mutation before resolving). */
  step(state: S, ctx: StepContext<P>): Promise<S> | S;
  /** Numbers shown with progress (loss, content/style loss…), read after each step. */
  metrics?(state: S, params: P): Record<string, number>;
  /**
   * Relative cost of step `step` (0-based; default 1), when steps differ in cost (a style job's coarse scales):
   * the ETA is the recent time per unit of cost times the cost of the steps left.
   */
  stepCost?(state: S, step: number): number;
  /** Progress message after each step (default `step k/N`). */
  message?(state: S, step: number, total: number): string;

  /** Emit a preview after step `step` (1-based count of completed steps)? Default: never. */
  previewAt?(step: number, params: P): boolean;
  /** Renders a preview; default finish(). */
  preview?(state: S, ctx: JobContext): Promise<RawImage> | RawImage;
  finish(state: S, ctx: JobContext): Promise<JobResult> | JobResult;
  /** Frees what the state holds outside the JS heap (sessions, worker threads) once the loop is over, however it ended. */
  release?(state: S): Promise<void> | void;

  serialize(state: S): Promise<SerializedState> | SerializedState;
  deserialize(data: SerializedState, params: P, inputs: JobInputs, ctx: JobContext): Promise<S> | S;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyJobKind = JobKind<any, any>;

/** Identity helper that infers P and S. */
export function defineJobKind<P, S>(kind: JobKind<P, S>): JobKind<P, S> {
  return kind;
}

const registry = new Map<string, AnyJobKind>();

export function registerJobKind(kind: AnyJobKind): void {
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(kind.name)) throw new Error(`invalid job kind name '${kind.name}'`);
  const existing = registry.get(kind.name);
  if (existing && existing !== kind) throw new Error(`job kind '${kind.name}' is already registered`);
  registry.set(kind.name, kind);
}

export function getJobKind(name: string): AnyJobKind | undefined {
  return registry.get(name);
}

/** The registered kind `name`, or a 404 problem listing the known kinds. */
export function requireJobKind(name: string): AnyJobKind {
  const kind = registry.get(name);
  if (!kind) throw notFound('unknown-job-kind', `Unknown job kind '${name}'. Known kinds: ${jobKindNames().join(', ') || '(none)'}.`, { known_kinds: jobKindNames() });
  return kind;
}

export function jobKindNames(): string[] {
  return [...registry.keys()].sort();
}

export function jobKinds(): AnyJobKind[] {
  return jobKindNames().map((n) => registry.get(n)!);
}

let builtinsLoaded: Promise<void> | undefined;

/** Imports every module in src/jobs/kinds/ (dist/jobs/kinds/ when built) and registers its default export. */
export function loadBuiltinJobKinds(): Promise<void> {
  builtinsLoaded ??= (async () => {
    const dir = new URL('./kinds/', import.meta.url);
    const files = readdirSync(dir).filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts')).sort();
    for (const f of files) {
      const mod = (await import(new URL(f, dir).href)) as { default?: AnyJobKind };
      if (mod.default && typeof mod.default.step === 'function') registerJobKind(mod.default);
    }
  })();
  return builtinsLoaded;
}
