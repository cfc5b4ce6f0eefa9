// This replica's view of the jobs waiting in Redis, for queue positions and the capacity checks of admission
// (JobQueue, whose methods are synchronous). The line itself is the fair scheduler's (fair-scheduler.ts); this
// view is a copy of it read in one atomic script, refreshed whenever any process changes the line (a message on
// the `fair-changed` channel), when Redis comes back, every few seconds, and before each admission — so queue
// positions and the per-owner queued limit are the same on every replica. next() never gives a job to this
// process: workers take theirs from BullMQ.
import type { Redis } from 'ioredis';
import type { Logger } from '../../util/logger.js';
import { unavailable } from '../../util/problem.js';
import { OwnerRoundRobinQueue, type JobQueue, type QueuedJob } from '../queue.js';
import type { FairScheduler, FairView } from './fair-scheduler.js';

const REFRESH_EVERY_MS = 5000;
/** A refresh that takes longer (Redis going away) is not waited for by admission. */
const REFRESH_WAIT_MS = 1000;

export interface RedisWaitingLineOptions {
  /** Why Redis cannot take jobs now (null when it can). */
  problem(): string | null;
  fair: FairScheduler;
  /** A subscriber connection of its own (pub/sub), for the change notices. */
  subscriber: Redis;
  changedChannel: string;
  logger: Logger;
}

export class RedisWaitingLine implements JobQueue {
  /** Jobs fed to BullMQ that still wait there (not running yet), in the order they were fed: they start first. */
  private fedWaiting: QueuedJob[] = [];
  /** The owners' lists in rotation order, as a round-robin queue (its rotation = the ring's order). */
  private lists = new OwnerRoundRobinQueue();
  private refreshing?: Promise<void>;
  private again = false;
  private readonly timer: NodeJS.Timeout;
  /** Whether a job is still `queued` here (fed jobs that started are not waiting any more). */
  private isQueued: (id: string) => boolean = () => true;

  constructor(private readonly opts: RedisWaitingLineOptions) {
    const sub = opts.subscriber;
    sub.on('message', (channel: string) => { if (channel === opts.changedChannel) void this.refresh(); });
    sub.on('ready', () => { void this.refresh(); });
    void sub.subscribe(opts.changedChannel).catch((e: unknown) => opts.logger.error({ err: e }, 'could not subscribe to the fair scheduler channel'));
    this.timer = setInterval(() => { void this.refresh(); }, REFRESH_EVERY_MS);
    this.timer.unref();
  }

  /** Where to learn whether a fed job has started (the replica's job table). */
  statusFrom(isQueued: (id: string) => boolean): void {
    this.isQueued = isQueued;
  }

  get length(): number {
    return this.waitingFed().length + this.lists.length;
  }

  lengthOf(owner: string): number {
    return this.waitingFed().filter((j) => j.owner === owner).length + this.lists.lengthOf(owner);
  }

  /** This replica's own submission, shown at once (the refresh that follows its enqueue confirms it). */
  add(job: QueuedJob): void {
    if (this.position(job.id) === undefined) this.lists.add(job);
  }

  next(): string | undefined {
    return undefined;
  }

  remove(id: string): boolean {
    const i = this.fedWaiting.findIndex((j) => j.id === id);
    if (i >= 0) this.fedWaiting.splice(i, 1);
    return this.lists.remove(id) || i >= 0;
  }

  position(id: string): number | undefined {
    const fed = this.waitingFed();
    const i = fed.findIndex((j) => j.id === id);
    if (i >= 0) return i + 1;
    const p = this.lists.position(id);
    return p === undefined ? undefined : fed.length + p;
  }

  checkAvailable(): void {
    const problem = this.opts.problem();
    if (problem) throw unavailable('job-queue-unavailable', `Jobs cannot be queued now: ${problem}. Classification and filters still work.`, {}, 5);
  }

  /** Reads the line from Redis (bounded wait; calls while one runs coalesce into one more). */
  async refresh(): Promise<void> {
    if (this.opts.problem() !== null) return;
    if (this.refreshing) { this.again = true; return this.bounded(this.refreshing); }
    this.refreshing = (async () => {
      do {
        this.again = false;
        try { this.apply(await this.opts.fair.view()); } catch (e) { this.opts.logger.debug({ err: e instanceof Error ? e.message : e }, 'could not read the job line from Redis'); }
      } while (this.again);
    })().finally(() => { this.refreshing = undefined; });
    return this.bounded(this.refreshing);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private apply(view: FairView): void {
    const lists = new OwnerRoundRobinQueue();
    for (const { owner, ids } of view.owners) for (const id of ids) lists.add({ id, owner });
    this.lists = lists;
    this.fedWaiting = view.fed;
  }

  private waitingFed(): QueuedJob[] {
    return this.fedWaiting.filter((j) => this.isQueued(j.id));
  }

  private async bounded(p: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([p, new Promise<void>((resolve) => { timer = setTimeout(resolve, REFRESH_WAIT_MS); })]);
    clearTimeout(timer);
  }
}
