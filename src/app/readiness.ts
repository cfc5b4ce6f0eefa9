// Readiness of a core: it is ready when every start-up task registered here has finished (or failed — then the
// reason is shown and it stays not-ready) and every health check passes. GET /readyz renders it.
export type TaskState = { state: 'pending' } | { state: 'done' } | { state: 'failed'; error: string };

export class Readiness {
  private readonly tasks = new Map<string, TaskState>();

  /** Registers a start-up task; /readyz answers 503 until it settles successfully. */
  track(name: string, work: Promise<unknown>): void {
    this.tasks.set(name, { state: 'pending' });
    work.then(
      () => this.tasks.set(name, { state: 'done' }),
      (e: unknown) => this.tasks.set(name, { state: 'failed', error: e instanceof Error ? e.message : String(e) }),
    );
  }

  /** A condition checked at every /readyz (e.g. "engine worker alive"). */
  private readonly checks = new Map<string, () => string | null>();
  check(name: string, fn: () => string | null): void {
    this.checks.set(name, fn);
  }

  status(): { ready: boolean; tasks: Record<string, TaskState>; checks: Record<string, string> } {
    const tasks = Object.fromEntries(this.tasks);
    const failedChecks: Record<string, string> = {};
    for (const [name, fn] of this.checks) {
      const problem = fn();
      if (problem) failedChecks[name] = problem;
    }
    const ready = [...this.tasks.values()].every((t) => t.state === 'done') && Object.keys(failedChecks).length === 0;
    return { ready, tasks, checks: failedChecks };
  }
}
