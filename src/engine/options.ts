// The engine's options from the service configuration (one place, for the server and the CLI).
import type { Config } from '../config.js';
import type { Logger } from '../util/logger.js';
import type { EngineOptions } from './types.js';

export function engineOptions(config: Config, logger: Logger): EngineOptions {
  return {
    workers: config.engineWorkers,
    threads: config.engineThreads,
    taskTimeoutMs: config.inferTimeoutMs,
    logger,
    // Never below one request's worth of images: a request the upload limits admit must be able to queue.
    interactiveQueue: Math.max(config.engineQueue, config.maxFilesPerRequest),
    interactiveDeadlineMs: config.interactiveDeadlineMs,
    memArena: config.engineArena,
    prepack: config.enginePrepack,
    recycleIdleMs: config.sessionRecycleMs,
    cache: {
      maxEntries: config.gradSessions,
      idleReleaseMs: config.gradSessionIdleMs,
      memArena: config.gradSessionArena,
    },
  };
}
