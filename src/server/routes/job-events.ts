// GET /v1/jobs/{id}/events as Server-Sent Events: the logged events after Last-Event-ID, then the live ones,
// until the job's `done` event. Open streams are tracked per service so shutdown can end them, and counted so
// one job (429) or the whole server (503) cannot hold more of them than configured.
import type { Response } from 'express';
import type { Config } from '../../config.js';
import type { JobEvent } from '../../jobs/events.js';
import type { JobCaller } from '../../jobs/record.js';
import type { JobService } from '../../jobs/service.js';
import { tooManyRequests, unavailable } from '../../util/problem.js';
import { eventData } from './job-view.js';

const SSE_KEEPALIVE_MS = 15_000;

/** Open SSE responses per service, so shutdown can end them (clients reconnect with Last-Event-ID). */
const openStreams = new WeakMap<JobService, Set<Response>>();

/** Ends every open event stream of `service` (called as shutdown begins, so server.close() need not wait). */
export function endEventStreams(service: JobService): void {
  for (const res of openStreams.get(service) ?? []) res.end();
}

/** Caps on open event streams: CONVSERVE_MAX_EVENT_STREAMS_PER_JOB (429) and CONVSERVE_MAX_EVENT_STREAMS (503). */
export class EventStreamLimits {
  private total = 0;
  private readonly perJob = new Map<string, number>();

  constructor(private readonly config: Pick<Config, 'maxEventStreams' | 'maxEventStreamsPerJob'>) {}

  get open(): number {
    return this.total;
  }

  /** Takes a slot for a stream of job `id` on `res` (released when `res` closes), or throws 429/503. */
  admit(res: Response, id: string): void {
    const { maxEventStreams, maxEventStreamsPerJob } = this.config;
    const mine = this.perJob.get(id) ?? 0;
    if (mine >= maxEventStreamsPerJob) throw tooManyRequests('too-many-event-streams', `Job ${id} already has ${mine} open event streams (CONVSERVE_MAX_EVENT_STREAMS_PER_JOB=${maxEventStreamsPerJob}); close one or retry later.`, 5, { open: mine, limit: maxEventStreamsPerJob });
    if (this.total >= maxEventStreams) throw unavailable('event-streams-exhausted', `The server has ${this.total} open event streams, its limit (CONVSERVE_MAX_EVENT_STREAMS=${maxEventStreams}); retry later or poll GET /v1/jobs/{id}.`, { open: this.total, limit: maxEventStreams }, 5);
    this.total++;
    this.perJob.set(id, mine + 1);
    res.once('close', () => {
      this.total--;
      const n = (this.perJob.get(id) ?? 1) - 1;
      if (n > 0) this.perJob.set(id, n);
      else this.perJob.delete(id);
    });
  }
}

function formatEvent(id: string, ev: JobEvent): string {
  return `id: ${ev.id}\nevent: ${ev.event}\ndata: ${JSON.stringify({ ...eventData(id, ev), at: ev.at })}\n\n`;
}

/**
 * Replays the persisted events after `after`, then streams live ones; ends after the `done` event. Live
 * events are buffered while the log is read and de-duplicated by id, so nothing is lost or repeated.
 */
export async function streamEvents(res: Response, service: JobService, id: string, after: number, caller: JobCaller): Promise<void> {
  const open = openStreams.get(service) ?? new Set<Response>();
  openStreams.set(service, open);
  open.add(res);
  res.on('close', () => open.delete(res));
  let last = after;
  let finished = false;
  let replaying = true;
  const pending: JobEvent[] = [];
  const write = (ev: JobEvent) => {
    if (ev.id <= last || finished) return;
    last = ev.id;
    res.write(formatEvent(id, ev));
    if (ev.event === 'done') { finished = true; res.end(); }
  };
  const off = service.subscribe(id, caller, (ev) => { if (replaying) pending.push(ev); else write(ev); });
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), SSE_KEEPALIVE_MS);
  keepAlive.unref();
  const cleanup = () => { off(); clearInterval(keepAlive); };
  res.on('close', cleanup);

  res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  res.write('retry: 1000\n\n');
  try {
    for (const ev of await service.events(id, after, caller)) write(ev);
  } catch {
    // expired meanwhile (or an unreadable log): end the stream
    finished = true;
    res.end();
  }
  replaying = false;
  for (const ev of pending.sort((a, b) => a.id - b.id)) write(ev);
  if (finished) cleanup();
  else if (isFinishedWithoutLiveEvent(service, id, caller)) { finished = true; res.end(); cleanup(); }
}

/** A finished job whose `done` event was before `after`: nothing more will come. */
function isFinishedWithoutLiveEvent(service: JobService, id: string, caller: JobCaller): boolean {
  try {
    const s = service.record(id, caller).status;
    return s === 'succeeded' || s === 'failed' || s === 'cancelled';
  } catch {
    return true;
  }
}
