// The distributed mode in one call (CONVSERVE_REDIS_URL set): what the job service of an API process plugs
// into its seams — the waiting line (queue), the event bus (events) and the dispatch — plus, for
// `serve --worker`, a worker in the same process; a readiness check and the queue signals for /metrics.
// `startRedisWorker` is the same for a `convserve worker` process (no HTTP, no job table).
import { Queue } from 'bullmq';
import type { Registry } from 'prom-client';
import type { Config } from '../../config.js';
import type { Logger } from '../../util/logger.js';
import type { JobServices } from '../kind.js';
import type { JobDispatch, SchedulerDeps } from '../scheduler.js';
import { JobStore } from '../store.js';
import { type BullJobData, QUEUE_NAME, closeRedis, openRedis, redactedUrl, redisNames, watchConnection } from './connection.js';
import { RedisDispatch } from './dispatch.js';
import { RedisEventBus } from './event-bus.js';
import { FairScheduler } from './fair-scheduler.js';
import { type QueueSignals, readQueueSignals, registerQueueMetrics } from './signals.js';
import { RedisWaitingLine } from './waiting-line.js';
import { RedisJobWorker } from './worker.js';

export interface RedisBackendOptions {
  config: Config;
  logger: Logger;
  /** Engine, models… for the job kinds run by an in-process worker. */
  services?: JobServices;
  /** Also run job steps in this process (`convserve serve --worker`). */
  runWorker?: boolean;
}

export interface RedisJobBackend {
  /** For JobService's options. */
  queue: RedisWaitingLine;
  events: RedisEventBus;
  dispatch: (deps: SchedulerDeps) => JobDispatch;
  /** The in-process worker (`serve --worker`), started by start(). */
  worker?: RedisJobWorker;
  /** For /readyz: why jobs cannot be queued now, or null. */
  readiness(): string | null;
  /** Queue depth, oldest wait, active jobs per kind. */
  signals(): Promise<QueueSignals>;
  /** The same as Prometheus gauges. */
  registerMetrics(registry: Registry): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createRedisJobBackend(opts: RedisBackendOptions): RedisJobBackend {
  const { config } = opts;
  if (!config.redisUrl) throw new Error('CONVSERVE_REDIS_URL is not set: the distributed mode needs a Redis');
  const logger = opts.logger.child({ area: 'jobs' });
  const names = redisNames(config.redisPrefix);
  const redis = openRedis(config.redisUrl, logger, 'api');
  const readiness = () => (redis.status === 'ready' ? null : `Redis at ${redactedUrl(config.redisUrl)} is unreachable (${redis.status})`);
  const bull = new Queue<BullJobData>(QUEUE_NAME, {
    connection: redis,
    prefix: names.prefix,
    // Our records hold the outcome; BullMQ keeps a failed entry only so that re-adding the id is a no-op.
    defaultJobOptions: { attempts: 1, removeOnComplete: true, removeOnFail: { count: 1000 } },
  });
  bull.on('error', (e) => logger.debug({ err: e.message }, 'BullMQ queue error'));
  const store = new JobStore(config.dataDir);
  const events = new RedisEventBus({ store, redis, names, logger, url: config.redisUrl, listen: true });
  const fair = new FairScheduler({ redis, names: names.fair, ownerRunningJobs: config.ownerRunningJobs, store, bull, logger });
  const lineSub = redis.duplicate({ connectionName: 'convserve-line' });
  watchConnection(lineSub, logger, 'line', config.redisUrl);
  const queue = new RedisWaitingLine({ problem: readiness, fair, subscriber: lineSub, changedChannel: names.fair.changed, logger });
  const worker = opts.runWorker ? new RedisJobWorker({ config, logger: opts.logger, services: opts.services, redis, names }) : undefined;
  const signals = () => readQueueSignals(bull, fair);
  return {
    queue,
    events,
    dispatch: (deps) => new RedisDispatch(deps, { bull, redis, names, bus: events, line: queue, fair, problem: readiness }),
    worker,
    readiness,
    signals,
    registerMetrics: (registry) => registerQueueMetrics(registry, async () => (readiness() === null ? signals() : undefined)),
    async start() {
      logger.info({ redis: redactedUrl(config.redisUrl), prefix: names.prefix, worker: worker ? worker.ref.id : false }, 'jobs are queued in Redis (distributed mode)');
      // The worker connects in the background: an API must come up (and say not-ready) without Redis.
      if (worker) void worker.start().catch((e: unknown) => logger.error({ err: e }, 'the in-process worker could not start'));
    },
    async stop() {
      await worker?.stop();
      queue.close();
      lineSub.disconnect();
      await events.close();
      await bull.close().catch(() => {});
      await closeRedis(redis);
    },
  };
}

export interface StartedWorker {
  worker: RedisJobWorker;
  stop(): Promise<void>;
}

/** A worker process's job side (`convserve worker`): resolves once connected to Redis and taking jobs. */
export async function startRedisWorker(opts: { config: Config; logger: Logger; services?: JobServices; concurrency?: number }): Promise<StartedWorker> {
  const { config } = opts;
  if (!config.redisUrl) throw new Error('CONVSERVE_REDIS_URL is not set: a worker takes its jobs from Redis');
  const redis = openRedis(config.redisUrl, opts.logger, 'worker');
  const worker = new RedisJobWorker({ ...opts, redis, names: redisNames(config.redisPrefix) });
  await worker.start();
  return {
    worker,
    async stop() {
      await worker.stop();
      await closeRedis(redis);
    },
  };
}
