// The scheduler (BullMQ's Worker): starts queued jobs while fewer than CONVSERVE_JOB_CONCURRENCY run, cancels
// queued and running ones, re-queues the jobs found unfinished at start-up, and on stop interrupts the running
// ones, which checkpoint and stay `running` on disk to resume at the next start.
import type { Config } from '../config.js';
import type { Logger } from '../util/logger.js';
import { ProblemError } from '../util/problem.js';
import type { AbortReason } from './execution.js';
import type { JobQueue } from './queue.js';
import { type JobRecord, isTerminal } from './record.js';
import type { JobStore } from './store.js';
import type { JobTable } from './table.js';
import type { JobTransitions } from './transitions.js';

export interface SchedulerDeps {
  config: Config;
  logger: Logger;
  queue: JobQueue;
  table: JobTable;
  store: JobStore;
  transitions: JobTransitions;
  /** Runs one job to its end; `signal` aborts with an AbortReason. */
  execute(rec: JobRecord, signal: AbortSignal): Promise<void>;
}

/**
 * What the job service asks of whatever starts its jobs: JobScheduler runs them in this process; the Redis
 * backend (src/jobs/redis/) hands them to BullMQ workers in other processes.
 */
export interface JobDispatch {
  readonly isStopping: boolean;
  /** A new job (already stored and announced as queued) to be run when its turn comes. */
  enqueue(rec: JobRecord): void;
  /** The unfinished jobs found in the data directory at start-up. */
  recover(records: JobRecord[]): Promise<{ resumed: number; queued: number }>;
  /** Starts what can start now. */
  pump(): void;
  /** Cancels a queued job at once; a running one stops at its next step (awaited up to `waitMs`). */
  cancel(rec: JobRecord, waitMs: number): Promise<void>;
  /** Seconds until a queue place is likely to free (the Retry-After of a 429). */
  retryAfterSeconds(): number;
  /** Starts no more jobs; interrupted local ones are checkpointed before it resolves. */
  stop(): Promise<void>;
}

interface Running {
  ac: AbortController;
  done: Promise<void>;
}

export class JobScheduler implements JobDispatch {
  private readonly running = new Map<string, Running>();
  private stopping = false;

  constructor(private readonly deps: SchedulerDeps) {}

  get isStopping(): boolean {
    return this.stopping;
  }

  /** Puts a new job (already stored and announced) in the queue; the next pump() starts it when a slot is free. */
  enqueue(rec: JobRecord): void {
    this.deps.queue.add(rec.id);
  }

  /**
   * Re-queues the unfinished jobs found at start-up: the ones that were running first (in the order they
   * started; they resume from their checkpoints), then the queued ones in order of submission.
   */
  async recover(records: JobRecord[]): Promise<{ resumed: number; queued: number }> {
    const { queue, transitions } = this.deps;
    const byStart = (a: JobRecord, b: JobRecord) => (a.started_at ?? a.created_at).localeCompare(b.started_at ?? b.created_at) || a.created_at.localeCompare(b.created_at);
    const running = records.filter((r) => r.status === 'running').sort(byStart);
    const queued = records.filter((r) => r.status === 'queued').sort((a, b) => a.created_at.localeCompare(b.created_at));
    for (const r of [...running, ...queued]) await transitions.reopened(r);
    for (const r of running) transitions.requeuedAfterRestart(r);
    for (const r of [...running, ...queued]) queue.add(r.id);
    return { resumed: running.length, queued: queued.length };
  }

  /** Starts queued jobs while there are free slots. */
  pump(): void {
    const { config, queue, table } = this.deps;
    while (!this.stopping && this.running.size < config.jobConcurrency) {
      const id = queue.next();
      if (id === undefined) return;
      const rec = table.find(id);
      if (!rec || rec.status !== 'queued') continue;
      const ac = new AbortController();
      const entry: Running = { ac, done: Promise.resolve() };
      this.running.set(id, entry);
      entry.done = this.deps.execute(rec, ac.signal).catch((e: unknown) => {
        this.deps.logger.error({ err: e, job: id }, 'job runner crashed');
      }).finally(() => {
        this.running.delete(id);
        this.pump();
      });
    }
  }

  /** Cancels a queued job at once; a running one stops at its next step (awaited up to `waitMs`). */
  async cancel(rec: JobRecord, waitMs: number): Promise<void> {
    if (rec.status === 'cancelled') return;
    if (isTerminal(rec.status)) throw new ProblemError(409, 'job-finished', 'Conflict', `Job ${rec.id} has already ${rec.status}; only queued or running jobs can be cancelled.`, { job_status: rec.status });
    if (rec.status === 'queued') {
      this.deps.queue.remove(rec.id);
      await this.deps.store.deleteCheckpoint(rec.id);
      this.deps.transitions.finished(rec, 'cancelled');
      return;
    }
    const r = this.running.get(rec.id);
    if (r) {
      this.abort(r, 'cancel');
      let t: NodeJS.Timeout | undefined;
      await Promise.race([r.done, new Promise((resolve) => { t = setTimeout(resolve, waitMs); })]);
      clearTimeout(t);
    }
  }

  /** Seconds until a slot is likely to free: the soonest finishing running job at its recent step rate. */
  retryAfterSeconds(): number {
    let best = Number.POSITIVE_INFINITY;
    for (const id of this.running.keys()) {
      const p = this.deps.table.find(id)?.progress;
      if (p?.step_ms !== undefined) best = Math.min(best, ((p.total - p.step) * p.step_ms) / 1000);
    }
    if (!Number.isFinite(best)) best = 5;
    return Math.max(1, Math.min(3600, Math.ceil(best)));
  }

  /** Starts no more jobs; interrupts the running ones and waits until they have checkpointed. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const r of this.running.values()) this.abort(r, 'shutdown');
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  private abort(r: Running, reason: AbortReason): void {
    r.ac.abort(reason);
  }
}
