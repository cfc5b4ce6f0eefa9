// The engine's public vocabulary (options, run options, results, events), in a module of its own so the
// engine's parts (task queue, session cache, worker handle) can share it without importing engine.ts.
import type { Logger } from '../util/logger.js';
import type { WireTensor } from './protocol.js';

export type { WireTensor, SessionSource } from './protocol.js';
export type Priority = 'interactive' | 'job';

/** What happens to a loaded session nobody has run for `afterMs`. */
export interface IdlePolicy {
  afterMs: number;
  /**
   * 'release': unloaded from every worker (weights and ORT's arena go back to the OS); it stays registered and
   * is loaded again by the next run. 'recycle': reloaded in place, only if it ran since it was loaded — it
   * stays warm, and the arena it grew for its largest batch is given back.
   */
  action: 'release' | 'recycle';
}

export interface SessionLoadOptions {
  /** ORT's CPU memory arena: faster runs, but it keeps the peak activation memory until the session goes. */
  memArena?: boolean;
  /** ORT's weight pre-packing (see SessionOptionsSpec.prepack). Default: the engine's `prepack`. */
  prepack?: boolean;
  /** Default: recycle after the engine's `recycleIdleMs` (when set). */
  idle?: IdlePolicy;
  /**
   * Let the session's intra-op threads spin between the parallel parts of a run (stopped at the end of each run).
   * Only for a session that has the cores to itself while it runs (a trainer's engine). Default false.
   */
  spinning?: boolean;
}

export interface SessionCacheLimits {
  /** Most cached sessions; beyond it the least recently used one that is not in use is unloaded. */
  maxEntries: number;
  /** A cached session unused this long is released from the workers (0 = never). */
  idleReleaseMs: number;
  /** A session used more recently than this counts as in use and is never evicted (a job between two steps). */
  inUseGraceMs: number;
  /** ORT's arena for cached (gradient) sessions. */
  memArena: boolean;
}

export interface EngineOptions {
  workers: number;
  /** ORT intra-op threads per session; 0 = all cores. */
  threads: number;
  /** A run longer than this kills its worker and fails with 503. */
  taskTimeoutMs: number;
  executionProviders?: string[];
  logger: Logger;
  /** Most interactive runs waiting for a worker; one more is refused with 429 + Retry-After. Default 64. */
  interactiveQueue?: number;
  /** Deadline (queue + compute) of an interactive run that brings none; 0 = none. Default 0. */
  interactiveDeadlineMs?: number;
  /** ORT arena for sessions loaded without `memArena`. Default true. */
  memArena?: boolean;
  /**
   * ORT's weight pre-packing for sessions loaded without `prepack`. Default true (ORT's default). Off, a model
   * with external data keeps its weights mapped from the file, so a recycle's reload copies nothing.
   */
  prepack?: boolean;
  /** Sessions loaded without an idle policy are recycled after this long idle; 0 = never. Default 0. */
  recycleIdleMs?: number;
  /** How often idle sessions are looked for. Default 1000 ms. */
  idleSweepMs?: number;
  /** Limits of `engine.cache` (sessions built on demand: the gradient graphs). */
  cache?: Partial<SessionCacheLimits>;
}

export interface SessionInfo {
  key: string;
  inputNames: string[];
  outputNames: string[];
  loadMs: number;
  provider: string;
}

export interface RunOptions {
  priority?: Priority;
  /** Only these outputs are fetched (fetching big intermediates costs time). */
  fetches?: string[];
  /** Aborting drops the run if it has not started (a client that went away); a started run completes. */
  signal?: AbortSignal;
  /**
   * Epoch milliseconds (Date.now()) by which the result is needed, queue + compute: past it the run fails with
   * 503 `deadline-exceeded` (dropped if still queued; a started run completes and its result is discarded).
   */
  deadline?: number;
  /**
   * A load-time warm-up run (one example, to pay ORT's first-run planning before the first request): it does not
   * count as use, so it does not make the session due for an idle recycle — its arena grew by one example only.
   */
  warmUp?: boolean;
}

export interface RunResult {
  outputs: Record<string, WireTensor>;
  /** Time inside ORT's run(). */
  computeMs: number;
  /** Time spent waiting for a free worker. */
  queueMs: number;
  /** The run's input tensors, handed back by the worker (their buffers were moved there and back). */
  inputs?: Record<string, WireTensor>;
}

/** Emitted as 'run' after every successful run (metrics). */
export interface EngineRunEvent {
  key: string;
  /** Index of the worker that ran it. */
  worker: number;
  priority: Priority;
  queueMs: number;
  computeMs: number;
  /** First dimension of the first feed (the batch size for classification). */
  batch?: number;
}

/**
 * Emitted as 'recycle' for each step of an idle recycle (IdlePolicy 'recycle') on one worker: 'start', then
 * 'released' (the old session is gone from the worker), then 'loaded' (the new one serves) or 'failed'.
 * Recycles are staggered: the next one starts only after the previous one's 'loaded' or 'failed'.
 */
export interface EngineRecycleEvent {
  key: string;
  worker: number;
  phase: 'start' | 'released' | 'loaded' | 'failed';
  /** Since 'start'. */
  ms: number;
  /** Resident set of the process at this moment, MB. */
  rssMb: number;
}

/**
 * Feeds, or a function producing them at dispatch time (lets a batcher take whatever is pending then); the
 * function returns null when nothing is left to run (everything it would have batched was cancelled): the
 * run then fails with an AbortError without reaching a worker.
 */
export type Feeds = Record<string, WireTensor> | (() => Record<string, WireTensor> | null);
