// The per-owner job quota on work submitted over time: input pixels (width × height of every input image) per
// sliding hour. The other per-owner limits are counts the queue and the scheduler already know (queued jobs:
// admission.ts; running jobs: scheduler.ts). The anonymous caller of a server without keys has none of them.
import type { Config } from '../config.js';
import { tooManyRequests } from '../util/problem.js';

const HOUR_MS = 3_600_000;

export class PixelQuota {
  /** Accepted submissions per owner within the last hour, oldest first. */
  private readonly log = new Map<string, { at: number; pixels: number }[]>();

  constructor(private readonly config: Pick<Config, 'ownerJobPixelsPerHour'>) {}

  /** Pixels `owner` submitted in the hour before `now`. */
  used(owner: string, now = Date.now()): number {
    return this.window(owner, now).reduce((n, e) => n + e.pixels, 0);
  }

  /** Throws 429 (before the upload is read) when `owner` has used its whole hour; Retry-After: when the oldest submission leaves the window. */
  checkNotExhausted(owner: string, now = Date.now()): void {
    const limit = this.config.ownerJobPixelsPerHour;
    const entries = this.window(owner, now);
    const used = entries.reduce((n, e) => n + e.pixels, 0);
    if (used < limit) return;
    const retry = Math.max(1, Math.ceil((entries[0]!.at + HOUR_MS - now) / 1000));
    throw tooManyRequests('owner-pixel-quota', `The key '${owner}' submitted ${used} input pixels in the last hour, its limit (CONVSERVE_OWNER_JOB_PIXELS_PER_HOUR=${limit}); retry in ${retry} s.`, retry, { used, limit, retry_after_s: retry });
  }

  /** Throws 429 (Retry-After: when enough of the window has expired) if `pixels` more would exceed the quota. */
  check(owner: string, pixels: number, now = Date.now()): void {
    const limit = this.config.ownerJobPixelsPerHour;
    const entries = this.window(owner, now);
    const used = entries.reduce((n, e) => n + e.pixels, 0);
    if (used + pixels <= limit) return;
    if (pixels > limit) {
      throw tooManyRequests('owner-pixel-quota', `This job has ${pixels} input pixels, more than the ${limit} pixels per hour one key may submit (CONVSERVE_OWNER_JOB_PIXELS_PER_HOUR); it can never be accepted.`, 3600, { pixels, limit });
    }
    // The earliest time at which the entries still in the window leave room for this job.
    let freed = used;
    let at = now;
    for (const e of entries) {
      freed -= e.pixels;
      at = e.at + HOUR_MS;
      if (freed + pixels <= limit) break;
    }
    const retry = Math.max(1, Math.ceil((at - now) / 1000));
    throw tooManyRequests('owner-pixel-quota', `The key '${owner}' submitted ${used} input pixels in the last hour; with this job's ${pixels} that exceeds ${limit} (CONVSERVE_OWNER_JOB_PIXELS_PER_HOUR); retry in ${retry} s.`, retry, { used, pixels, limit, retry_after_s: retry });
  }

  record(owner: string, pixels: number, now = Date.now()): void {
    const entries = this.window(owner, now);
    entries.push({ at: now, pixels });
    this.log.set(owner, entries);
  }

  private window(owner: string, now: number): { at: number; pixels: number }[] {
    const entries = this.log.get(owner);
    if (!entries) return [];
    while (entries.length && entries[0]!.at <= now - HOUR_MS) entries.shift();
    if (!entries.length) this.log.delete(owner);
    return entries;
  }
}
