// Redis connections and names for the distributed mode: one ioredis client per role (commands, pub/sub
// subscriber; BullMQ makes its own blocking ones from the command client), and the keys and channels, all
// under CONVSERVE_REDIS_PREFIX so several deployments can share one Redis.
import { Redis } from 'ioredis';
import type { Logger } from '../../util/logger.js';

/** BullMQ's queue name (its keys are `<prefix>:jobs:*`). */
export const QUEUE_NAME = 'jobs';

/** What BullMQ carries for a job: only its id (everything else is in the shared data directory). */
export interface BullJobData {
  id: string;
}

export interface RedisNames {
  /** BullMQ's key prefix. */
  prefix: string;
  /** Pub/sub channel of every job's events (JSON `{origin, job, ev}`). */
  events: string;
  /** Pub/sub channel of cancel requests (the job id). */
  cancel: string;
  /** Key set while a cancel request for job `id` is pending (a worker that picks the job up later sees it). */
  cancelKey(id: string): string;
  /** The fair scheduler's keys (fair-scheduler.ts). */
  fair: FairNames;
}

export interface FairNames {
  /** Sorted set of the owners with waiting jobs, scored by when each was last served (the rotation). */
  ring: string;
  /** Hash owner → tick of its last job fed to BullMQ (kept when its list empties: its turn is remembered). */
  served: string;
  /** Counter of ticks. */
  seq: string;
  /** Hash job id → `<tick>:<owner>` of the jobs fed to BullMQ and not finished (waiting there or running). */
  dispatched: string;
  /** Hash job id → epoch ms it started waiting in its owner's list (the oldest-wait signal). */
  since: string;
  /** Set of worker ids; each has a key `worker + id` = its slots, expiring unless the worker renews it. */
  workers: string;
  worker: string;
  /** Prefix of the per-owner lists of waiting job ids (oldest first): `owner + <owner>`. */
  owner: string;
  /** Channel told of every change, so that API replicas refresh their view of the line. */
  changed: string;
}

export function redisNames(prefix: string): RedisNames {
  return {
    prefix,
    events: `${prefix}:job-events`,
    cancel: `${prefix}:job-cancel`,
    cancelKey: (id) => `${prefix}:cancel:${id}`,
    fair: {
      ring: `${prefix}:fair:ring`,
      served: `${prefix}:fair:served`,
      seq: `${prefix}:fair:seq`,
      dispatched: `${prefix}:fair:dispatched`,
      since: `${prefix}:fair:since`,
      workers: `${prefix}:fair:workers`,
      worker: `${prefix}:fair:worker:`,
      owner: `${prefix}:fair:owner:`,
      changed: `${prefix}:fair-changed`,
    },
  };
}

/** The URL without its password, for logs and readiness messages. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://(unparseable URL)';
  }
}

/**
 * A client that reconnects forever (every ≤ 2 s) and queues commands while disconnected, as BullMQ requires
 * (`maxRetriesPerRequest: null`). Connection errors are logged once per outage, not once per retry.
 */
export function openRedis(url: string, logger: Logger, role: string): Redis {
  const client = new Redis(url, {
    maxRetriesPerRequest: null,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    connectionName: `convserve-${role}`,
  });
  watchConnection(client, logger, role, url);
  return client;
}

/** Logs the first error of an outage and the reconnection (a duplicate() client needs its own watcher). */
export function watchConnection(client: Redis, logger: Logger, role: string, url: string): void {
  let down = false;
  client.on('error', (e: Error) => {
    if (down) return;
    down = true;
    logger.warn({ redis: redactedUrl(url), role, err: e.message }, 'Redis unreachable; retrying');
  });
  client.on('ready', () => {
    if (down) logger.info({ redis: redactedUrl(url), role }, 'Redis reachable again');
    down = false;
  });
}

/** Closes a client after its pending commands were sent (at most `waitMs` while Redis is away). */
export async function closeRedis(client: Redis, waitMs = 1000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([client.quit().catch(() => undefined), new Promise((resolve) => { timer = setTimeout(resolve, waitMs); })]);
  clearTimeout(timer);
  client.disconnect();
}
