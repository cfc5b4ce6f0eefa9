// Fairness across owners in distributed mode: our own round-robin on Redis in front of BullMQ (whose groups are a
// Pro feature, and whose priorities would let one owner's backlog starve the others). Submitted jobs wait in
// their owner's list; whenever a worker slot is free, `feed` takes the next job of the rotation (the owner served
// least recently, skipping owners at CONVSERVE_OWNER_RUNNING_JOBS) and adds it to BullMQ, which then does what it
// is good at: locking, stalled-job recovery, handing a job back on SIGTERM. A fed job holds its slot (and counts
// against its owner's running limit) until a worker reports it finished, so BullMQ's own waiting list stays at
// most as long as the free slots, and the order is the same whichever replica accepted a job.
// Slots are announced by the workers (a key per worker with its concurrency, renewed by a heartbeat, expiring
// when a worker dies); feeding happens after a submission, when a job finishes, and at each heartbeat.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../../util/logger.js';
import { ANONYMOUS_OWNER, isTerminal } from '../record.js';
import type { JobStore } from '../store.js';
import type { BullJobData, FairNames } from './connection.js';
import { DONE, ENQUEUE, REMOVE, TAKE, VIEW, runScript } from './fair-scripts.js';
import { readRecord } from './records.js';

/** How often a worker renews its slots (and feeds); a worker not heard of for 5 of these is counted out. */
export const WORKER_HEARTBEAT_MS = 2000;
const WORKER_SLOTS_TTL_MS = 5 * WORKER_HEARTBEAT_MS;

/** The line as it is in Redis at one instant. */
export interface FairView {
  /** Owners in rotation order (next served first), each with its waiting job ids, oldest first. */
  owners: { owner: string; ids: string[] }[];
  /** Jobs fed to BullMQ and not finished (waiting there or running), in the order they were fed. */
  fed: { id: string; owner: string }[];
  /** Epoch ms the oldest job of the lists started waiting (undefined when none waits). */
  oldestSince?: number;
}

const Ids = z.array(z.string());
const ViewReply = z.tuple([z.array(z.array(z.string()).min(1)), Ids, Ids]);
const FedValue = /^(\d+):(.*)$/s;

export interface FairSchedulerOptions {
  redis: Redis;
  names: FairNames;
  /** Jobs of one owner fed at once (CONVSERVE_OWNER_RUNNING_JOBS); the anonymous owner has no limit. */
  ownerRunningJobs: number;
  store: JobStore;
  bull: Queue<BullJobData>;
  logger: Logger;
}

export class FairScheduler {
  constructor(private readonly opts: FairSchedulerOptions) {}

  /** Puts a job at the end of its owner's list (a no-op when it is listed or fed already). */
  async enqueue(id: string, owner: string): Promise<boolean> {
    const n = this.opts.names;
    return (await runScript(this.opts.redis, ENQUEUE, [n.ring, n.served, n.seq, n.dispatched, n.since], [n.owner, id, owner, n.changed, Date.now()])) === 1;
  }

  /** Takes a job out of its owner's list; false when it was not waiting there (fed already, or unknown). */
  async remove(id: string, owner: string): Promise<boolean> {
    const n = this.opts.names;
    return (await runScript(this.opts.redis, REMOVE, [n.ring, n.since], [n.owner + owner, id, owner, n.changed])) === 1;
  }

  /** A fed job finished, was dropped or cancelled: its slot is free (call feed() next). */
  async done(id: string): Promise<void> {
    const n = this.opts.names;
    await runScript(this.opts.redis, DONE, [n.dispatched], [id, n.changed]);
  }

  /**
   * Fills the free worker slots in rotation order: each job taken is added to BullMQ under its own id (a job
   * finished meanwhile, e.g. cancelled, is let go at once). Returns the ids added.
   */
  async feed(): Promise<string[]> {
    const { bull, store } = this.opts;
    const added: string[] = [];
    for (const id of await this.take()) {
      const rec = readRecord(store, id);
      if (!rec || isTerminal(rec.status)) { await this.done(id); continue; }
      await bull.add(rec.kind, { id }, { jobId: id });
      added.push(id);
    }
    return added;
  }

  /** Marks the next jobs of the rotation fed, one per free slot, and returns their ids (feed() adds them to BullMQ). */
  async take(): Promise<string[]> {
    const { redis, names: n } = this.opts;
    return Ids.parse(await runScript(redis, TAKE, [n.ring, n.served, n.seq, n.dispatched, n.since, n.workers], [n.owner, n.worker, this.opts.ownerRunningJobs, ANONYMOUS_OWNER, n.changed]));
  }

  /** A worker's slots, counted until it renews them no more (call every WORKER_HEARTBEAT_MS). */
  async announceSlots(workerId: string, slots: number): Promise<void> {
    const n = this.opts.names;
    await this.opts.redis.multi().set(n.worker + workerId, String(slots), 'PX', WORKER_SLOTS_TTL_MS).sadd(n.workers, workerId).exec();
  }

  async withdrawSlots(workerId: string): Promise<void> {
    const n = this.opts.names;
    await this.opts.redis.multi().del(n.worker + workerId).srem(n.workers, workerId).exec();
  }

  async view(): Promise<FairView> {
    const n = this.opts.names;
    const [rows, fedFlat, sinceFlat] = ViewReply.parse(await runScript(this.opts.redis, VIEW, [n.ring, n.dispatched, n.since], [n.owner]));
    const owners = rows.map(([owner, ...ids]) => ({ owner: owner!, ids }));
    const fed: (FairView['fed'][number] & { tick: number })[] = [];
    for (let i = 0; i + 1 < fedFlat.length; i += 2) {
      const m = FedValue.exec(fedFlat[i + 1]!);
      if (m) fed.push({ id: fedFlat[i]!, owner: m[2]!, tick: Number(m[1]) });
    }
    fed.sort((a, b) => a.tick - b.tick);
    let oldest = Number.POSITIVE_INFINITY;
    for (let i = 1; i < sinceFlat.length; i += 2) oldest = Math.min(oldest, Number(sinceFlat[i]));
    return { owners, fed: fed.map(({ id, owner }) => ({ id, owner })), ...(Number.isFinite(oldest) ? { oldestSince: oldest } : {}) };
  }

  /**
   * Repairs what a crash between two steps can leave: a fed job that BullMQ does not have (the process died
   * between taking it and adding it) is added again if it still waits, or its slot freed if it finished.
   */
  async repairFed(): Promise<void> {
    const { bull, store } = this.opts;
    for (const { id } of (await this.view()).fed) {
      if (await bull.getJob(id)) continue;
      const rec = readRecord(store, id);
      if (!rec || isTerminal(rec.status)) await this.done(id);
      else if (rec.status === 'queued') await bull.add(rec.kind, { id }, { jobId: id });
    }
  }

  /** Feeds, logging (not throwing) when Redis is away: the next heartbeat or submission feeds again. */
  feedSoon(): void {
    this.feed().catch((e: unknown) => this.opts.logger.debug({ err: e instanceof Error ? e.message : e }, 'could not feed the job queue now; retried at the next heartbeat'));
  }
}
