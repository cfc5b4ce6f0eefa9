// The waiting line of jobs (BullMQ's Queue, without the admission rules: see admission.ts). JobQueue is the
// seam for other policies and backends (per-owner round-robin, Redis); FifoQueue serves in arrival order.

export interface JobQueue {
  /** Jobs waiting. */
  readonly length: number;
  /** Appends a job (a new submission, or a recovered one at start-up in its original order). */
  add(id: string): void;
  /** Takes the job to start next, or undefined when none waits. */
  next(): string | undefined;
  /** Takes a waiting job out (cancelled); false when it was not waiting. */
  remove(id: string): boolean;
  /** 1-based place of a waiting job (1 = starts next), or undefined when it is not waiting. */
  position(id: string): number | undefined;
  /** Throws a 503 problem while the line cannot take jobs (e.g. its Redis is unreachable). */
  checkAvailable?(): void;
}

export class FifoQueue implements JobQueue {
  private readonly ids: string[] = [];

  get length(): number {
    return this.ids.length;
  }

  add(id: string): void {
    this.ids.push(id);
  }

  next(): string | undefined {
    return this.ids.shift();
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
}
