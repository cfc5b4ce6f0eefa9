// This replica's view of the jobs waiting in BullMQ, for queue positions and the capacity check of admission
// (JobQueue). BullMQ holds the real line and workers take from it, so next() never gives a job to this
// process; the view is kept by the dispatcher from this replica's submissions and every replica's events
// (queued → added, running or done → removed), so it is the same on every replica up to pub/sub delay.
import { unavailable } from '../../util/problem.js';
import type { JobQueue, QueuedJob } from '../queue.js';

export class RedisWaitingLine implements JobQueue {
  private readonly jobs: QueuedJob[] = [];

  /** `problem()` says why Redis cannot take jobs now (null when it can). */
  constructor(private readonly problem: () => string | null) {}

  get length(): number {
    return this.jobs.length;
  }

  lengthOf(owner: string): number {
    return this.jobs.filter((j) => j.owner === owner).length;
  }

  add(job: QueuedJob): void {
    if (!this.jobs.some((j) => j.id === job.id)) this.jobs.push(job);
  }

  /** Workers take jobs from BullMQ; nothing is started from this line. */
  next(): string | undefined {
    return undefined;
  }

  remove(id: string): boolean {
    const i = this.jobs.findIndex((j) => j.id === id);
    if (i < 0) return false;
    this.jobs.splice(i, 1);
    return true;
  }

  position(id: string): number | undefined {
    const i = this.jobs.findIndex((j) => j.id === id);
    return i < 0 ? undefined : i + 1;
  }

  checkAvailable(): void {
    const problem = this.problem();
    if (problem) throw unavailable('job-queue-unavailable', `Jobs cannot be queued now: ${problem}. Classification and filters still work.`, {}, 5);
  }
}
