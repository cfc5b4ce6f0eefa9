// The waiting line of jobs (BullMQ's Queue, without the admission rules: see admission.ts). JobQueue is the
// seam for other policies and backends (Redis); FifoQueue serves in arrival order, OwnerRoundRobinQueue (the
// service's default) keeps one FIFO per owner and serves the owners in rotation, so one owner's twenty jobs
// cannot make everybody else wait behind them.

/** A job as the queue sees it. */
export interface QueuedJob {
  id: string;
  owner: string;
}

export interface JobQueue {
  /** Jobs waiting. */
  readonly length: number;
  /** Jobs of `owner` waiting. */
  lengthOf(owner: string): number;
  /** Appends a job (a new submission, or a recovered one at start-up in its original order). */
  add(job: QueuedJob): void;
  /**
   * Takes the job to start next, or undefined when none waits. With `canStart`, owners for whom it answers false
   * (at their running-jobs cap) are passed over and keep their place.
   */
  next(canStart?: (owner: string) => boolean): string | undefined;
  /** Takes a waiting job out (cancelled); false when it was not waiting. */
  remove(id: string): boolean;
  /** 1-based place of a waiting job (1 = starts next, assuming every owner may start), or undefined when it is not waiting. */
  position(id: string): number | undefined;
  /** Throws a 503 problem while the line cannot take jobs (e.g. its Redis is unreachable). */
  checkAvailable?(): void;
  /** Brings a line kept elsewhere (Redis) up to date before admission counts it. */
  refresh?(): Promise<void>;
}

export class FifoQueue implements JobQueue {
  private readonly jobs: QueuedJob[] = [];

  get length(): number {
    return this.jobs.length;
  }

  lengthOf(owner: string): number {
    return this.jobs.filter((j) => j.owner === owner).length;
  }

  add(job: QueuedJob): void {
    this.jobs.push({ ...job });
  }

  next(canStart: (owner: string) => boolean = () => true): string | undefined {
    const i = this.jobs.findIndex((j) => canStart(j.owner));
    return i < 0 ? undefined : this.jobs.splice(i, 1)[0]!.id;
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
}

/**
 * One FIFO per owner. The next job comes from the waiting owner served least recently (never served first; ties in
 * the order the owners started waiting): a rotation in which an owner whose job just started goes last, so two
 * owners with twenty queued jobs each are served alternately, whoever submitted first.
 */
export class OwnerRoundRobinQueue implements JobQueue {
  /** Waiting jobs by owner; Map order = the order the owners started waiting. */
  private readonly byOwner = new Map<string, string[]>();
  private readonly ownerOf = new Map<string, string>();
  /** When each owner was last served (a counter); kept after its queue empties, so its turn is remembered. */
  private readonly lastServed = new Map<string, number>();
  private tick = 0;

  get length(): number {
    return this.ownerOf.size;
  }

  lengthOf(owner: string): number {
    return this.byOwner.get(owner)?.length ?? 0;
  }

  add(job: QueuedJob): void {
    if (this.ownerOf.has(job.id)) return;
    let fifo = this.byOwner.get(job.owner);
    if (!fifo) this.byOwner.set(job.owner, (fifo = []));
    fifo.push(job.id);
    this.ownerOf.set(job.id, job.owner);
  }

  next(canStart: (owner: string) => boolean = () => true): string | undefined {
    const owner = this.rotation().find(canStart);
    if (owner === undefined) return undefined;
    const fifo = this.byOwner.get(owner)!;
    const id = fifo.shift()!;
    if (!fifo.length) this.byOwner.delete(owner);
    this.ownerOf.delete(id);
    this.lastServed.set(owner, ++this.tick);
    return id;
  }

  remove(id: string): boolean {
    const owner = this.ownerOf.get(id);
    if (owner === undefined) return false;
    const fifo = this.byOwner.get(owner)!;
    fifo.splice(fifo.indexOf(id), 1);
    if (!fifo.length) this.byOwner.delete(owner);
    this.ownerOf.delete(id);
    return true;
  }

  /**
   * The place in the order the rotation would serve the jobs if every owner could start: round r serves the r-th
   * job of each owner that has more than r, owners in rotation order. A job at index k of its owner's FIFO thus
   * comes after min(len, k) jobs of every owner, plus one job of each owner ahead of its own with more than k.
   */
  position(id: string): number | undefined {
    const owner = this.ownerOf.get(id);
    if (owner === undefined) return undefined;
    const k = this.byOwner.get(owner)!.indexOf(id);
    const order = this.rotation();
    const mine = order.indexOf(owner);
    let before = 0;
    for (const [j, o] of order.entries()) {
      const len = this.byOwner.get(o)!.length;
      before += Math.min(len, k) + (j < mine && len > k ? 1 : 0);
    }
    return before + 1;
  }

  /** Waiting owners, least recently served first (a stable sort keeps the order they started waiting in). */
  private rotation(): string[] {
    return [...this.byOwner.keys()].sort((a, b) => (this.lastServed.get(a) ?? 0) - (this.lastServed.get(b) ?? 0));
  }
}
