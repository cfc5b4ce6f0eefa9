// This replica's view of the jobs waiting in BullMQ, for queue positions and the capacity check of admission
// (JobQueue). BullMQ holds the real line and workers take from it, so next() never gives a job to this
// process; the view is kept by the dispatcher from this replica's submissions and every replica's events
// (queued → added, running or done → removed), so it is the same on every replica up to pub/sub delay.
import { unavailable } from '../../util/problem.js';
import type { JobQueue } from '../queue.js';

export class RedisWaitingLine implements JobQueue {
  private readonly ids: string[] = [];

  /** `problem()` says why Redis cannot take jobs now (null when it can). */
  constructor(private readonly problem: () => string | null) {}

  get length(): number {
    return this.ids.length;
  }

  add(id: string): void {
    if (!this.ids.includes(id)) this.ids.push(id);
  }

  /** Workers take jobs from BullMQ; nothing is started from this line. */
  next(): string | undefined {
    return undefined;
  }

  remove(id: string): boolean {
    const i = this.ids.indexOf(id);
    if (i < 0) return false;
    this.ids.splice(i, 1);
    return true;
  }

  position(id: string): number | undefined {
    const i = this.ids.indexOf(id);
    return i < 0 ? undefined : i + 1;
  }

  checkAvailable(): void {
    const problem = this.problem();
    if (problem) throw unavailable('job-queue-unavailable', `Jobs cannot be queued now: ${problem}. Classification and filters still work.`, {}, 5);
  }
}
