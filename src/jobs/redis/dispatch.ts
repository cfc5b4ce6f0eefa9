// The API side of the distributed mode (JobDispatch): a submitted job is put in its owner's list of the fair
// scheduler (fair-scheduler.ts), which feeds BullMQ as worker slots free up; cancel takes a waiting job out of
// its list (or out of BullMQ, if it was fed), or asks the worker running it (pub/sub message + a key the worker
// also checks when it picks a job up); the job table of this replica follows the workers through their events
// (job.json on the shared store is re-read, progress taken from the event). Queued jobs are put in their lists
// again at start, whenever Redis becomes reachable again and every minute — a no-op for the ones listed or fed,
// and a worker that picks up a job that has already finished just drops it — so a waiting job survives a Redis
// that lost its data.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ProblemError, unavailable } from '../../util/problem.js';
import type { JobEvent, JobRef } from '../events.js';
import { type JobRecord, isTerminal } from '../record.js';
import type { JobDispatch, SchedulerDeps } from '../scheduler.js';
import type { RedisNames } from './connection.js';
import type { RedisEventBus } from './event-bus.js';
import type { FairScheduler } from './fair-scheduler.js';
import { readRecord, refreshRecord } from './records.js';
import type { RedisWaitingLine } from './waiting-line.js';

const RECONCILE_EVERY_MS = 60_000;

export interface RedisDispatchOptions {
  bull: Queue;
  redis: Redis;
  names: RedisNames;
  bus: RedisEventBus;
  line: RedisWaitingLine;
  fair: FairScheduler;
  /** Why Redis cannot be used now, or null. */
  problem(): string | null;
}

export class RedisDispatch implements JobDispatch {
  private stopping = false;
  private readonly timer: NodeJS.Timeout;
  private readonly onReady = () => { void this.reconcile(); };

  constructor(private readonly deps: SchedulerDeps, private readonly opts: RedisDispatchOptions) {
    opts.bus.onRemoteEvent((job, ev) => this.follow(job, ev));
    opts.line.statusFrom((id) => deps.table.find(id)?.status === 'queued');
    opts.redis.on('ready', this.onReady);
    this.timer = setInterval(this.onReady, RECONCILE_EVERY_MS);
    this.timer.unref();
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  enqueue(rec: JobRecord): void {
    this.opts.line.add({ id: rec.id, owner: rec.owner });
    void this.putInLine(rec);
  }

  async recover(records: JobRecord[]): Promise<{ resumed: number; queued: number }> {
    const unfinished = records.filter((r) => !isTerminal(r.status));
    for (const r of unfinished) await this.deps.transitions.reopened(r);
    for (const r of unfinished.filter((x) => x.status === 'queued').sort(byCreation)) this.opts.line.add({ id: r.id, owner: r.owner });
    if (this.opts.problem() === null) void this.reconcile();
    return { resumed: unfinished.filter((r) => r.status === 'running').length, queued: unfinished.filter((r) => r.status === 'queued').length };
  }

  /** Workers pull their jobs from BullMQ: nothing starts in this process. */
  pump(): void {}

  async cancel(rec: JobRecord, waitMs: number): Promise<void> {
    const { store, transitions, config } = this.deps;
    const { bull, redis, names, bus, line, fair } = this.opts;
    const fresh = readRecord(store, rec.id);
    if (fresh) refreshRecord(rec, fresh);
    if (rec.status === 'cancelled') return;
    if (isTerminal(rec.status)) throw new ProblemError(409, 'job-finished', 'Conflict', `Job ${rec.id} has already ${rec.status}; only queued or running jobs can be cancelled.`, { job_status: rec.status });
    const problem = this.opts.problem();
    if (problem) throw unavailable('job-queue-unavailable', `The job cannot be cancelled now: ${problem}.`, {}, 5);

    // A job waiting in its owner's list is taken out; one fed to BullMQ is removed there (0 = locked: a worker
    // has it). A queued job in neither was taken by a feeder that has not added it yet: its worker drops it.
    let removed = rec.status === 'queued' && await fair.remove(rec.id, rec.owner);
    if (!removed) {
      const inBull = await bull.getJob(rec.id);
      removed = inBull ? (await bull.remove(rec.id)) === 1 : rec.status === 'queued';
      if (removed) {
        await fair.done(rec.id);
        fair.feedSoon();
      }
    }
    if (removed) {
      line.remove(rec.id);
      await bus.resume(rec.id);
      await store.deleteCheckpoint(rec.id);
      transitions.finished(rec, 'cancelled');
      return;
    }
    // Running on a worker: it stops at its next step. The key covers a worker that picks it up later.
    const done = new Promise<void>((resolve) => {
      const off = bus.subscribe(rec.id, (ev) => { if (ev.event === 'done') { off(); resolve(); } });
      setTimeout(() => { off(); resolve(); }, waitMs).unref();
    });
    await redis.set(names.cancelKey(rec.id), '1', 'EX', Math.ceil(config.jobTtlHours * 3600));
    await redis.publish(names.cancel, rec.id);
    await done;
  }

  retryAfterSeconds(): number {
    let best = Number.POSITIVE_INFINITY;
    for (const r of this.deps.table.all()) {
      const p = r.progress;
      if (r.status === 'running' && p.step_ms !== undefined) best = Math.min(best, ((p.total - p.step) * p.step_ms) / 1000);
    }
    if (!Number.isFinite(best)) best = 5;
    return Math.max(1, Math.min(3600, Math.ceil(best)));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    this.opts.redis.off('ready', this.onReady);
    this.opts.line.close();
  }

  /** Keeps this replica's record and waiting line in step with what another process announced. */
  private follow(job: JobRef, ev: JobEvent): void {
    const { table, store } = this.deps;
    const rec = table.find(job.id);
    if (rec && ev.event === 'progress') {
      // Progress reaches job.json only at the next save: the event is the newer news.
      rec.progress = ev.data;
    } else {
      const fresh = readRecord(store, job.id);
      if (fresh && rec) refreshRecord(rec, fresh);
      else if (fresh) table.add(fresh);
    }
    if (ev.event === 'done' || (ev.event === 'status' && ev.data.status === 'running')) this.opts.line.remove(job.id);
    if (ev.event === 'status' || ev.event === 'done') void this.opts.line.refresh();
  }

  /** Into its owner's list, then feeds the free slots (Redis away: reconcile() does it once it is back). */
  private async putInLine(rec: JobRecord): Promise<void> {
    const { fair, line } = this.opts;
    try {
      await fair.enqueue(rec.id, rec.owner);
      await fair.feed();
    } catch (e) {
      this.deps.logger.warn({ err: e, job: rec.id }, 'could not put the job in the Redis queue; it is put there once Redis is reachable');
    }
    await line.refresh();
  }

  /**
   * Puts every job still queued on disk in its owner's list again (a no-op for the ones listed or fed), in order
   * of submission; repairs fed jobs BullMQ lacks; feeds. Running ones are left to their worker and to BullMQ's
   * stalled-job check: re-adding one whose BullMQ entry a Redis without AOF lost could start it a second time
   * while its worker still runs it.
   */
  private async reconcile(): Promise<void> {
    if (this.stopping || this.opts.problem() !== null) return;
    const { fair, line } = this.opts;
    try {
      for (const r of this.deps.table.all().filter((x) => x.status === 'queued').sort(byCreation)) {
        const fresh = readRecord(this.deps.store, r.id);
        if (fresh?.status === 'queued') await fair.enqueue(fresh.id, fresh.owner);
      }
      await fair.repairFed();
      await fair.feed();
    } catch (e) {
      this.deps.logger.warn({ err: e instanceof Error ? e.message : e }, 'could not reconcile the job queue with Redis; retried when Redis is reachable and every minute');
    }
    await line.refresh();
  }
}

const byCreation = (a: JobRecord, b: JobRecord) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id);
