// The engine's waiting line. Interactive tasks go before every queued job step (after earlier interactive
// ones), so a request waits at most for the step already running. A task settles exactly once, whichever
// comes first: its result, its failure, its deadline or its caller's abort; settling runs its clean-ups
// (abort listener, deadline timer), so a long-lived signal does not collect one listener per run.
import { Settlement } from '../util/settlement.js';
import type { Feeds, Priority, RunResult } from './types.js';

export class Task extends Settlement<RunResult> {
  readonly enqueuedAt = performance.now();

  constructor(
    readonly key: string,
    readonly feeds: Feeds,
    readonly fetches: string[] | undefined,
    readonly priority: Priority,
    readonly signal: AbortSignal | undefined,
    onResult: (r: RunResult) => void,
    onError: (e: unknown) => void,
    /** A warm-up run (see RunOptions.warmUp): not counted as use by the idle recycle. */
    readonly warmUp = false,
  ) {
    super(onResult, onError);
  }
}

export class TaskQueue {
  private readonly tasks: Task[] = [];

  get length(): number {
    return this.tasks.length;
  }

  count(priority: Priority): number {
    let n = 0;
    for (const t of this.tasks) if (t.priority === priority) n++;
    return n;
  }

  hasKey(key: string): boolean {
    return this.tasks.some((t) => t.key === key);
  }

  add(task: Task): void {
    if (task.priority === 'interactive') {
      const firstJob = this.tasks.findIndex((t) => t.priority === 'job');
      this.tasks.splice(firstJob < 0 ? this.tasks.length : firstJob, 0, task);
    } else {
      this.tasks.push(task);
    }
  }

  /** True when the task was still waiting (and is now gone). */
  remove(task: Task): boolean {
    const i = this.tasks.indexOf(task);
    if (i < 0) return false;
    this.tasks.splice(i, 1);
    return true;
  }

  next(): Task | undefined {
    return this.tasks.shift();
  }

  drain(): Task[] {
    return this.tasks.splice(0);
  }
}
