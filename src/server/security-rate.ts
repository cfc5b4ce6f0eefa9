// The interactive rate limit: one token bucket per API key (CONVSERVE_OWNER_BURST tokens, refilled at
// CONVSERVE_OWNER_RATE per second) shared by the interactive routes — classify, filter, explain — which declare
// `rateLimit: 'interactive'` in their spec; the route registry mounts the limiter in front of them, before the
// upload is read. The anonymous caller of a server without keys is not limited (a local tool: one user).
import type { RequestHandler } from 'express';
import type { Config } from '../config.js';
import { tooManyRequests } from '../util/problem.js';

export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(readonly ratePerSecond: number, readonly burst: number) {}

  /** Takes one token of `owner`'s bucket: 0 when granted, else the seconds until one will be there. */
  take(owner: string, now = Date.now()): number {
    const b = this.buckets.get(owner) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerSecond);
    b.at = now;
    this.buckets.set(owner, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return (1 - b.tokens) / this.ratePerSecond;
  }
}

/** Express middleware over one set of buckets: 429 with Retry-After and a precise detail when a key is over its rate. */
export function interactiveRateLimit(config: Pick<Config, 'ownerRequestsPerSecond' | 'ownerRequestBurst'>): RequestHandler {
  const buckets = new TokenBuckets(config.ownerRequestsPerSecond, config.ownerRequestBurst);
  return (req, _res, next) => {
    const caller = req.caller;
    if (!caller || caller.anonymous) return next();
    const wait = buckets.take(caller.id);
    if (wait === 0) return next();
    const retry = Math.max(1, Math.ceil(wait));
    next(tooManyRequests('rate-limited', `The key '${caller.id}' is over its interactive rate: ${config.ownerRequestBurst} requests at once, then ${config.ownerRequestsPerSecond} per second (CONVSERVE_OWNER_BURST, CONVSERVE_OWNER_RATE); the next is allowed in ${wait.toFixed(2)} s.`, retry, { rate_per_s: config.ownerRequestsPerSecond, burst: config.ownerRequestBurst, retry_after_s: retry }));
  };
}
