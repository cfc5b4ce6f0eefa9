// Expiry of finished jobs: on a timer (and once at start), deletes the jobs finished more than
// CONVSERVE_JOB_TTL_HOURS ago, then the oldest finished ones while the job folders exceed
// CONVSERVE_JOB_MAX_DISK_MB. Queued and running jobs never expire, but they count against the budget: a new job
// is admitted only when its inputs fit beside every stored job (makeRoom), after evicting old finished ones.
import type { Config } from '../config.js';
import type { Logger } from '../util/logger.js';
import type { JobEventBus } from './event-bus.js';
import { isTerminal } from './record.js';
import type { JobStore } from './store.js';
import type { JobTable } from './table.js';

export interface SweeperDeps {
  /** Read at every sweep (limits may be changed on a running service). */
  config: Config;
  logger: Logger;
  store: JobStore;
  table: JobTable;
  events: JobEventBus;
}

export class JobSweeper {
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;
  /**
   * Folder sizes of finished jobs, which no longer change: every admission checks the disk budget, and walking
   * hundreds of stored job folders each time made submission slower with every job kept (0.25 s per walk at
   * ~700 jobs in the soak). Unfinished jobs are measured each time.
   */
  private readonly finishedSizes = new Map<string, number>();

  constructor(private readonly deps: SweeperDeps) {}

  /** Sweeps every CONVSERVE_JOB_SWEEP_MS (at least once per TTL, at most once a second). */
  start(): void {
    const { config } = this.deps;
    const every = Math.max(1000, Math.min(config.jobSweepMs, config.jobTtlHours * 3_600_000));
    this.timer = setInterval(() => { void this.sweep(); }, every);
    this.timer.unref();
  }

  /** Stops the timer and waits for a sweep in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.sweeping;
  }

  /** One sweep (joins the one in progress, if any); errors are logged, never thrown. */
  sweep(now = Date.now()): Promise<void> {
    this.sweeping ??= this.run(now).catch((e: unknown) => { this.deps.logger.error({ err: e }, 'job sweep failed'); }).finally(() => { this.sweeping = undefined; });
    return this.sweeping;
  }

  /**
   * Admission's disk check: true when `bytes` more fit in CONVSERVE_JOB_MAX_DISK_MB beside every stored job
   * (queued and running ones included), after expiring the oldest finished jobs if needed.
   */
  async makeRoom(bytes: number): Promise<boolean> {
    const budget = this.deps.config.jobMaxDiskMb * 1024 * 1024;
    const { used, evicted } = await this.evictDownTo(budget - bytes);
    if (evicted) this.deps.logger.info({ evicted, bytes_used: used }, 'finished jobs expired to make room for a new one');
    return used + bytes <= budget;
  }

  private async run(now: number): Promise<void> {
    const { config, logger, table } = this.deps;
    const ttlMs = config.jobTtlHours * 3_600_000;
    let expired = 0;
    for (const r of this.finishedOldestFirst()) {
      if (Date.parse(r.finishedAt) + ttlMs <= now) { await this.expire(r.id); expired++; }
    }
    const budget = config.jobMaxDiskMb * 1024 * 1024;
    const { used, evicted } = await this.evictDownTo(budget);
    if (expired || evicted) logger.info({ expired, evicted, bytes_used: used, jobs: table.all().length }, 'job sweep');
    if (used > budget) logger.warn({ bytes_used: used, budget }, 'job files exceed CONVSERVE_JOB_MAX_DISK_MB with only unfinished jobs left');
  }

  private finishedOldestFirst(): { id: string; finishedAt: string }[] {
    return this.deps.table.all().flatMap((r) => (isTerminal(r.status) && r.finished_at ? [{ id: r.id, finishedAt: r.finished_at }] : []))
      .sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  }

  /** Expires the oldest finished jobs while all job folders together hold more than `target` bytes. */
  private async evictDownTo(target: number): Promise<{ used: number; evicted: number }> {
    const { store, table } = this.deps;
    const sizes = new Map<string, number>();
    let used = 0;
    for (const r of table.all()) {
      const s = this.finishedSizes.get(r.id) ?? (await store.size(r.id));
      if (isTerminal(r.status)) this.finishedSizes.set(r.id, s);
      sizes.set(r.id, s);
      used += s;
    }
    let evicted = 0;
    for (const r of this.finishedOldestFirst()) {
      if (used <= target) break;
      if (!table.has(r.id)) continue;
      used -= sizes.get(r.id) ?? 0;
      await this.expire(r.id);
      evicted++;
    }
    return { used, evicted };
  }

  private async expire(id: string): Promise<void> {
    this.finishedSizes.delete(id);
    this.deps.table.delete(id);
    this.deps.events.forget(id);
    await this.deps.store.remove(id);
  }
}
