// A worker process's side of the distributed mode: a BullMQ Worker takes jobs (up to `concurrency` at once)
// and runs each through the same executeJob as embedded mode — inputs and checkpoints from the shared data
// directory, events persisted to the job's log and published on Redis for the API replicas.
//  - slots: the worker announces its concurrency to the fair scheduler (a key renewed every heartbeat, which also
//    feeds the queue) and frees a job's slot when the job finishes, feeding the next one (fair-scheduler.ts);
//  - cancel: a message on the cancel channel aborts the job's signal (it stops within one step); a pending
//    cancel key is checked when a job is picked up;
//  - stop (SIGTERM): no new jobs; running ones stop at their step, are checkpointed, marked queued again and
//    moved back to BullMQ's waiting list for another worker (moveToWait + WaitingError);
//  - a worker that dies (SIGKILL) stops renewing its locks: after lockDuration, BullMQ's stalled-job check
//    (every stalledInterval, in the other workers) puts the job back to wait, and the worker that takes it
//    resumes it from its last checkpoint. A worker that loses a lock (Redis away too long) stops that job the
//    same way, for the stalled check to hand it on.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { type Job, Queue, WaitingError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../../config.js';
import type { Logger } from '../../util/logger.js';
import { executeJob } from '../execution.js';
import type { JobServices } from '../kind.js';
import { type JobRecord, type JobStatus, type JobWorkerRef, isTerminal } from '../record.js';
import { JobStore } from '../store.js';
import { JobTransitions } from '../transitions.js';
import { type BullJobData, QUEUE_NAME, type RedisNames, watchConnection } from './connection.js';
import { RedisEventBus } from './event-bus.js';
import { FairScheduler, WORKER_HEARTBEAT_MS } from './fair-scheduler.js';
import { readRecord } from './records.js';

/** Times a job may be recovered from a dead worker before BullMQ fails it (the record then says so). */
export const MAX_STALLED_RECOVERIES = 5;

export interface RedisJobWorkerOptions {
  config: Config;
  logger: Logger;
  services?: JobServices;
  redis: Redis;
  names: RedisNames;
  /** Jobs run at once (default CONVSERVE_WORKER_CONCURRENCY). */
  concurrency?: number;
}

export class RedisJobWorker {
  /** Shown as the job's `worker` while it runs here. */
  readonly ref: JobWorkerRef = { id: `worker-${randomUUID().slice(0, 8)}`, host: hostname(), pid: process.pid };
  readonly concurrency: number;
  private readonly logger: Logger;
  private readonly store: JobStore;
  private readonly bus: RedisEventBus;
  private readonly transitions: JobTransitions;
  private readonly running = new Map<string, AbortController>();
  /** Jobs whose lock this worker lost: stopped like at shutdown, but not moved back (BullMQ does that). */
  private readonly lockLost = new Set<string>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private cancelSub?: Redis;
  private worker?: Worker<BullJobData>;
  private readonly bull: Queue<BullJobData>;
  private readonly fair: FairScheduler;
  private heartbeat?: NodeJS.Timeout;
  private stopping = false;

  constructor(private readonly opts: RedisJobWorkerOptions) {
    this.concurrency = opts.concurrency ?? opts.config.workerConcurrency;
    this.logger = opts.logger.child({ area: 'jobs', worker: this.ref.id });
    this.store = new JobStore(opts.config.dataDir);
    this.bus = new RedisEventBus({ store: this.store, redis: opts.redis, names: opts.names, logger: this.logger, url: opts.config.redisUrl, listen: false });
    this.transitions = new JobTransitions(this.store, this.bus);
    this.bull = new Queue<BullJobData>(QUEUE_NAME, { connection: opts.redis, prefix: opts.names.prefix });
    this.bull.on('error', (e) => this.logger.debug({ err: e.message }, 'BullMQ queue error'));
    this.fair = new FairScheduler({ redis: opts.redis, names: opts.names.fair, ownerRunningJobs: opts.config.ownerRunningJobs, store: this.store, bull: this.bull, logger: this.logger });
  }

  /** Subscribes to cancel requests and starts taking jobs; resolves once connected to Redis. */
  async start(): Promise<void> {
    const { config, redis, names } = this.opts;
    const sub = redis.duplicate({ connectionName: 'convserve-worker-cancel' });
    watchConnection(sub, this.logger, 'worker-cancel', config.redisUrl);
    sub.on('message', (channel: string, id: string) => {
      if (channel !== names.cancel) return;
      const ac = this.running.get(id);
      if (ac) { this.logger.info({ job: id }, 'cancel requested'); ac.abort('cancel'); }
    });
    await sub.subscribe(names.cancel);
    this.cancelSub = sub;

    const worker = new Worker<BullJobData>(QUEUE_NAME, (job, token) => this.track(this.process(job, token)), {
      connection: redis,
      prefix: names.prefix,
      concurrency: this.concurrency,
      lockDuration: config.workerLockMs,
      stalledInterval: config.workerStalledCheckMs,
      maxStalledCount: MAX_STALLED_RECOVERIES,
    });
    // Once per outage (ioredis retries every ≤ 2 s and BullMQ reports each failure).
    let quiet = false;
    worker.on('error', (e) => { if (!quiet) this.logger.warn({ err: e.message }, 'BullMQ worker error'); quiet = true; });
    redis.on('ready', () => { quiet = false; });
    worker.on('stalled', (id) => this.logger.warn({ job: id }, 'job stalled (its worker stopped renewing the lock); back to the waiting list'));
    worker.on('lockRenewalFailed', (ids) => {
      for (const id of ids) {
        const ac = this.running.get(id);
        if (!ac) continue;
        this.logger.warn({ job: id }, 'lost the lock on a running job; stopping it at its step for another worker to resume');
        this.lockLost.add(id);
        ac.abort('shutdown');
      }
    });
    worker.on('failed', (job, err) => { if (job?.id) void this.failedInBull(job.id, err); });
    this.worker = worker;
    await worker.waitUntilReady();
    await this.fair.announceSlots(this.ref.id, this.concurrency);
    this.fair.feedSoon();
    this.heartbeat = setInterval(() => this.beat(), WORKER_HEARTBEAT_MS);
    this.heartbeat.unref();
    this.logger.info({ concurrency: this.concurrency, host: this.ref.host, pid: this.ref.pid }, 'worker ready');
  }

  /** Takes no more jobs; running ones are checkpointed and handed back to the queue. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.heartbeat);
    // Its slots are gone: the jobs it hands back wait in BullMQ for the other workers' slots.
    await this.fair.withdrawSlots(this.ref.id).catch(() => {});
    await this.worker?.pause(true);
    for (const ac of this.running.values()) ac.abort('shutdown');
    await Promise.allSettled([...this.inFlight]);
    await this.worker?.close();
    await this.bull.close().catch(() => {});
    this.cancelSub?.disconnect();
    await this.bus.close();
  }

  /** Renews this worker's slots and feeds the queue (a missed feed after a fault is caught up here). */
  private beat(): void {
    if (this.stopping) return;
    this.fair.announceSlots(this.ref.id, this.concurrency)
      .then(() => this.fair.feed())
      .catch((e: unknown) => this.logger.debug({ err: e instanceof Error ? e.message : e }, 'heartbeat to Redis failed; retried'));
  }

  /** The job is over for the queue: its slot goes to the next job of the rotation. */
  private async finished(id: string): Promise<void> {
    await this.fair.done(id);
    this.fair.feedSoon();
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p)).catch(() => {});
    return p;
  }

  /** BullMQ's processor for one job. */
  private async process(job: Job<BullJobData>, token: string | undefined): Promise<string> {
    const id = job.data.id;
    if (this.stopping) return this.release(job, token);
    const rec = readRecord(this.store, id);
    if (!rec || isTerminal(rec.status)) {
      await this.finished(id);
      return 'already finished or expired';
    }
    const ac = new AbortController();
    // Registered before the key is read: a cancel sent meanwhile is then caught by one or the other.
    this.running.set(id, ac);
    try {
      if (await this.opts.redis.exists(this.opts.names.cancelKey(id))) ac.abort('cancel');
      await this.bus.resume(id);
      if (rec.status === 'running') {
        this.requeue(rec, `the worker running it (${rec.worker?.id ?? 'unknown'}) stopped responding; the job resumes from its last checkpoint`);
      }
      rec.worker = this.ref;
      this.logger.info({ job: id, kind: rec.kind, from_step: rec.checkpoint?.step ?? 0 }, 'job taken');
      await executeJob({ config: this.opts.config, logger: this.logger, store: this.store, transitions: this.transitions, services: this.opts.services }, rec, ac.signal);
      // executeJob changed the record: its status is read afresh (not as narrowed above).
      const status = statusOf(rec);
      if (!isTerminal(status) && ac.signal.aborted && ac.signal.reason === 'shutdown') {
        if (this.lockLost.delete(id)) return 'lock lost';
        this.requeue(rec, `worker ${this.ref.id} stopped; the job resumes from step ${rec.checkpoint?.step ?? 0} on another worker`);
        return await this.release(job, token);
      }
      if (status === 'cancelled') await this.opts.redis.del(this.opts.names.cancelKey(id));
      if (isTerminal(status)) await this.finished(id);
      return status;
    } finally {
      this.running.delete(id);
    }
  }

  /** Back to BullMQ's waiting list (another worker takes it). */
  private async release(job: Job<BullJobData>, token: string | undefined): Promise<never> {
    await job.moveToWait(token);
    throw new WaitingError();
  }

  /** The job is queued again: announced, and its record no longer names a worker. */
  private requeue(rec: JobRecord, reason: string): void {
    rec.status = 'queued';
    delete rec.worker;
    this.store.save(rec);
    this.bus.publish(rec, { event: 'status', data: { status: 'queued', reason, checkpoint_step: rec.checkpoint?.step ?? 0 } });
  }

  /** BullMQ gave up on a job (its processor threw, or it stalled too often): the record says so. */
  private async failedInBull(id: string, err: Error): Promise<void> {
    const rec = readRecord(this.store, id);
    if (!rec || isTerminal(rec.status)) return this.finished(id);
    this.logger.error({ job: id, err: err.message }, 'job failed in the queue');
    await this.bus.resume(id);
    await this.store.deleteCheckpoint(id);
    this.transitions.finished(rec, 'failed', { type: 'job-worker-error', detail: `The job queue gave up on it: ${err.message}` });
    await this.finished(id);
  }
}

const statusOf = (rec: JobRecord): JobStatus => rec.status;
