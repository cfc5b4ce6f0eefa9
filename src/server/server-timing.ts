// Where a request's milliseconds go, as a standard `Server-Timing` response header (browsers show it in their
// devtools; the bench reads it). The clock starts when express first sees the request (headers parsed) and
// every stage is a disjoint stretch of the request's own timeline, so the stages never add up to more than
// `total`. docs/http-path.md lists the stages of POST /v1/classify.
import type { RequestHandler, Response } from 'express';

declare module 'express-serve-static-core' {
  interface Request {
    /** Started by {@link startStageClock}, the app's first middleware. */
    clock?: StageClock;
  }
}

/** Server-Timing metric names are HTTP tokens. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export class StageClock {
  private readonly stages: [string, number][] = [];
  private last: number;

  constructor(readonly start = performance.now()) {
    this.last = start;
  }

  /** Adds `ms` to `name` (a stage reported twice accumulates); a function, so the ops layer can be handed it. */
  readonly add = (name: string, ms: number): void => {
    if (!TOKEN.test(name)) throw new Error(`'${name}' is not a Server-Timing metric name`);
    const seen = this.stages.find(([n]) => n === name);
    if (seen) seen[1] += ms;
    else this.stages.push([name, ms]);
  };

  /** Records the time since the previous lap (or the start) as stage `name`. */
  lap(name: string, now = performance.now()): void {
    this.add(name, now - this.last);
    this.last = now;
  }

  /** Moves the lap point to now without recording (the time since went to stages reported through add). */
  resume(now = performance.now()): void {
    this.last = now;
  }

  /** `name;dur=1.23, …, total;dur=…` — total is the time from the start until now. */
  header(now = performance.now()): string {
    const total: [string, number] = ['total', now - this.start];
    return [...this.stages, total].map(([n, ms]) => `${n};dur=${ms.toFixed(2)}`).join(', ');
  }
}

/** Starts the request's clock; mount it first so the middlewares in front of a route count as a stage. */
export const startStageClock: RequestHandler = (req, _res, next) => {
  req.clock = new StageClock();
  next();
};

/**
 * Sends `body` as JSON with the Server-Timing header of `clock`: the serialisation is timed as stage `json`,
 * so the header must be computed after it (and before the first byte is written).
 */
export function sendTimedJson(res: Response, clock: StageClock | undefined, body: unknown): void {
  clock?.resume();
  const text = JSON.stringify(body);
  if (clock) {
    clock.lap('json');
    res.setHeader('Server-Timing', clock.header());
  }
  res.type('application/json').send(text);
}
