// A promise's resolve/reject that take effect once, whichever comes first (a result, a failure, a deadline,
// the caller's abort), and run their clean-ups (timers, abort listeners) when they do.
export class Settlement<T> {
  private settled = false;
  private readonly cleanups: (() => void)[] = [];

  constructor(private readonly onResolve: (value: T) => void, private readonly onReject: (error: unknown) => void) {}

  get isSettled(): boolean {
    return this.settled;
  }

  /** Runs `fn` when this settles (at once if it already has). */
  onSettle(fn: () => void): void {
    if (this.settled) fn();
    else this.cleanups.push(fn);
  }

  resolve(value: T): void {
    if (this.finish()) this.onResolve(value);
  }

  reject(error: unknown): void {
    if (this.finish()) this.onReject(error);
  }

  private finish(): boolean {
    if (this.settled) return false;
    this.settled = true;
    for (const fn of this.cleanups.splice(0)) fn();
    return true;
  }
}
