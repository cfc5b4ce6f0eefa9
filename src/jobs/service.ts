// The job service: one object with the job area's lifecycle (start: load, recover, sweep; stop: checkpoint
// running jobs) and the operations the fronts use, composed from parts of one responsibility each, after
// BullMQ — admission (admission.ts) and the queue (queue.ts), the scheduler and the runs (scheduler.ts,
// execution.ts), the event bus (event-bus.ts), the sweeper (sweeper.ts), and JobStore for the files.
// It answers with records (plus queue positions); the HTTP layer turns them into views with links. Every
// operation a front makes on behalf of someone takes that `caller` explicitly: a job is seen and acted on only
// by its owner and by admins (others get the same 404 as for an unknown job), and quotas are the caller's.
import type { Config } from '../config.js';
import type { Logger } from '../util/logger.js';
import { ProblemError, notFound } from '../util/problem.js';
import { type SubmitImage, JobAdmission } from './admission.js';
import { type AnyJobEventListener, type JobEventBus, type JobEventListener, LocalEventBus } from './event-bus.js';
import type { JobEvent } from './events.js';
import { executeJob } from './execution.js';
import { type AnyJobKind, type JobServices, requireJobKind } from './kind.js';
import { type JobQueue, OwnerRoundRobinQueue } from './queue.js';
import { type JobCaller, type JobRecord, type JobStatus, canSee, isTerminal } from './record.js';
import { type JobDispatch, JobScheduler, type SchedulerDeps } from './scheduler.js';
import { JobStore } from './store.js';
import { JobSweeper } from './sweeper.js';
import { JobTable } from './table.js';
import { JobTransitions } from './transitions.js';

export type { SubmitImage } from './admission.js';

/** A job as the service reports it: its record, plus its place in the queue while it waits (1 = next). */
export interface JobSnapshot extends JobRecord {
  queuePosition?: number;
}

export interface ListQuery {
  status?: JobStatus[];
  kind?: string;
  limit?: number;
}

export interface JobServiceOptions {
  config: Config;
  logger: Logger;
  services?: JobServices;
  /** Another waiting line (default: one FIFO per owner, owners served in rotation, in memory). */
  queue?: JobQueue;
  /** Another event bus (default: logged in each job's folder, delivered in this process). */
  events?: JobEventBus;
  /** Another way of running the queued jobs (default: JobScheduler, in this process). */
  dispatch?: (deps: SchedulerDeps) => JobDispatch;
}

export class JobService {
  readonly store: JobStore;
  private readonly logger: Logger;
  private readonly table: JobTable;
  private readonly queue: JobQueue;
  private readonly bus: JobEventBus;
  private readonly transitions: JobTransitions;
  private readonly scheduler: JobDispatch;
  private readonly admission: JobAdmission;
  private readonly sweeper: JobSweeper;

  constructor(opts: JobServiceOptions) {
    const config = opts.config;
    const logger = opts.logger.child({ area: 'jobs' });
    this.logger = logger;
    this.store = new JobStore(config.dataDir);
    this.table = new JobTable(config);
    this.queue = opts.queue ?? new OwnerRoundRobinQueue();
    this.bus = opts.events ?? new LocalEventBus(this.store);
    const transitions = new JobTransitions(this.store, this.bus);
    this.transitions = transitions;
    const { store, table, queue } = this;
    const deps: SchedulerDeps = {
      config, logger, queue, table, store, transitions,
      execute: (rec, signal) => executeJob({ config, logger, store, transitions, services: opts.services }, rec, signal),
    };
    this.scheduler = opts.dispatch ? opts.dispatch(deps) : new JobScheduler(deps);
    this.sweeper = new JobSweeper({ config, logger, store, table, events: this.bus });
    this.admission = new JobAdmission({
      config, queue, services: opts.services, isStopping: () => this.scheduler.isStopping, retryAfterSeconds: () => this.scheduler.retryAfterSeconds(),
      makeRoom: (bytes) => this.sweeper.makeRoom(bytes),
    });
  }

  /** Loads the store, re-queues jobs that were running (from their checkpoint), sweeps, starts the timer and the queue. */
  async start(): Promise<void> {
    const { records, unreadable } = await this.store.loadAll();
    for (const u of unreadable) this.logger.warn({ job: u.id, problem: u.problem, quarantined_to: u.quarantinedTo }, 'job record is not valid; its folder was moved to the quarantine folder (not deleted)');
    for (const r of records) this.table.add(r);
    const { resumed, queued } = await this.scheduler.recover(records);
    if (resumed || queued) this.logger.info({ resumed, queued }, 'jobs recovered from the data directory');
    await this.sweeper.sweep();
    this.sweeper.start();
    this.scheduler.pump();
  }

  /** Stop taking jobs; running ones are checkpointed and stay `running` on disk, to resume at the next start. */
  async stop(): Promise<void> {
    const interrupted = this.scheduler.stop();
    await this.sweeper.stop();
    await interrupted;
  }

  // ---- admission -------------------------------------------------------------------------------------------

  /** The registered kind `name`, or a 404 problem listing the known kinds. */
  kind(name: string): AnyJobKind {
    return requireJobKind(name);
  }

  /** Throws 429 (with Retry-After) when the queue or the caller's share of it is full, 503 when shutting down. */
  checkCapacity(caller: JobCaller): void {
    this.admission.checkCapacity(caller);
  }

  /** Seconds until a queue slot is likely to free (the Retry-After of a 429). */
  retryAfterSeconds(): number {
    return this.scheduler.retryAfterSeconds();
  }

  /** Validates everything (kind, capacity, parameters, images) and stores the job; then it is queued. */
  async submit(kindName: string, images: SubmitImage[], rawParams: Record<string, unknown>, caller: JobCaller): Promise<JobSnapshot> {
    try {
      return await this.admission.admit(kindName, images, rawParams, caller, ({ record, files }) => {
        this.transitions.created(record, files);
        this.table.add(record);
        this.scheduler.enqueue(record);
        this.logger.info({ job: record.id, kind: record.kind, owner: record.owner, total: record.progress.total }, 'job queued');
        // As accepted (queued, with its place), before the scheduler may start it.
        return this.snapshot(record);
      });
    } finally {
      queueMicrotask(() => this.scheduler.pump());
    }
  }

  // ---- queries -----------------------------------------------------------------------------------------------

  /** The record of job `id` if `caller` may see it, else the 404 problem of an unknown job. */
  record(id: string, caller: JobCaller): JobRecord {
    return this.table.get(id, (rec) => canSee(caller, rec));
  }

  get(id: string, caller: JobCaller): JobSnapshot {
    return this.snapshot(this.record(id, caller));
  }

  /** The jobs `caller` may see, newest first. */
  list(q: ListQuery, caller: JobCaller): JobSnapshot[] {
    const limit = Math.max(1, Math.min(q.limit ?? 50, 1000));
    return this.table.all()
      .filter((r) => canSee(caller, r) && (!q.status || q.status.includes(r.status)) && (!q.kind || r.kind === q.kind))
      .sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id))
      .slice(0, limit)
      .map((r) => this.snapshot(r));
  }

  snapshot(rec: JobRecord): JobSnapshot {
    const position = rec.status === 'queued' ? this.queue.position(rec.id) : undefined;
    return { ...rec, ...(position !== undefined ? { queuePosition: position } : {}) };
  }

  /** Path of the result image, or a 404/409 problem. */
  resultFile(id: string, caller: JobCaller): { path: string; content_type: string } {
    const rec = this.record(id, caller);
    if (!rec.result) {
      throw isTerminal(rec.status)
        ? new ProblemError(404, 'no-result', 'Not found', `Job ${id} ${rec.status} without a result.`, { job_status: rec.status })
        : new ProblemError(409, 'job-not-finished', 'Conflict', `Job ${id} is ${rec.status}; the result is available when it has succeeded.`, { job_status: rec.status });
    }
    return { path: this.store.path(id, rec.result.file), content_type: rec.result.content_type };
  }

  previewFile(id: string, n: number, caller: JobCaller): { path: string; content_type: string } {
    const rec = this.record(id, caller);
    const p = rec.previews.find((x) => x.n === n);
    if (!p) throw notFound('no-such-preview', `Job ${id} has ${rec.previews.length} preview(s) (0…${rec.previews.length - 1}); there is no preview ${n}.`);
    return { path: this.store.path(id, p.file), content_type: 'image/png' };
  }

  // ---- events ------------------------------------------------------------------------------------------------

  /** Events after `after` (exclusive), from the persisted log. */
  async events(id: string, after: number, caller: JobCaller): Promise<JobEvent[]> {
    this.record(id, caller);
    return this.bus.history(id, after);
  }

  /** Live events of every job (metrics); returns the unsubscribe function. */
  onAnyEvent(listener: AnyJobEventListener): () => void {
    return this.bus.subscribeAll(listener);
  }

  /** Live events of one job `caller` may see; returns the unsubscribe function. */
  subscribe(id: string, caller: JobCaller, listener: JobEventListener): () => void {
    this.record(id, caller);
    return this.bus.subscribe(id, listener);
  }

  /** Resolves with the record once the job has finished. */
  async waitFor(id: string): Promise<JobRecord> {
    const rec = this.table.get(id);
    if (isTerminal(rec.status)) return rec;
    return new Promise((resolve) => {
      const off = this.bus.subscribe(id, (ev) => { if (ev.event === 'done') { off(); resolve(this.table.get(id)); } });
    });
  }

  // ---- cancel and expiry -------------------------------------------------------------------------------------

  /** Cancels a queued job at once; a running one stops at its next step (awaited up to `waitMs`). */
  async cancel(id: string, caller: JobCaller, waitMs = 2000): Promise<JobSnapshot> {
    const rec = this.record(id, caller);
    await this.scheduler.cancel(rec, waitMs);
    return this.snapshot(rec);
  }

  /** Deletes finished jobs older than the TTL, then the oldest finished ones while over the disk budget. */
  sweep(now = Date.now()): Promise<void> {
    return this.sweeper.sweep(now);
  }
}
