// GET /v1/jobs/{id}/events as Server-Sent Events: the logged events after Last-Event-ID, then the live ones,
// until the job's `done` event. Open streams are tracked per service so shutdown can end them.
import type { Response } from 'express';
import type { JobEvent } from '../../jobs/events.js';
import type { JobService } from '../../jobs/service.js';
import { eventData } from './job-view.js';

const SSE_KEEPALIVE_MS = 15_000;

/** Open SSE responses per service, so shutdown can end them (clients reconnect with Last-Event-ID). */
const openStreams = new WeakMap<JobService, Set<Response>>();

/** Ends every open event stream of `service` (called as shutdown begins, so server.close() need not wait). */
export function endEventStreams(service: JobService): void {
  for (const res of openStreams.get(service) ?? []) res.end();
}

function formatEvent(id: string, ev: JobEvent): string {
  return `id: ${ev.id}\nevent: ${ev.event}\ndata: ${JSON.stringify({ ...eventData(id, ev), at: ev.at })}\n\n`;
}

/**
 * Replays the persisted events after `after`, then streams live ones; ends after the `done` event. Live
 * events are buffered while the log is read and de-duplicated by id, so nothing is lost or repeated.
 */
export async function streamEvents(res: Response, service: JobService, id: string, after: number): Promise<void> {
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
  const off = service.subscribe(id, (ev) => { if (replaying) pending.push(ev); else write(ev); });
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), SSE_KEEPALIVE_MS);
  keepAlive.unref();
  const cleanup = () => { off(); clearInterval(keepAlive); };
  res.on('close', cleanup);

  res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.flushHeaders();
  res.write('retry: 1000\n\n');
  try {
    for (const ev of await service.events(id, after)) write(ev);
  } catch {
    // expired meanwhile (or an unreadable log): end the stream
    finished = true;
    res.end();
  }
  replaying = false;
  for (const ev of pending.sort((a, b) => a.id - b.id)) write(ev);
  if (finished) cleanup();
  else if (isFinishedWithoutLiveEvent(service, id)) { finished = true; res.end(); cleanup(); }
}

/** A finished job whose `done` event was before `after`: nothing more will come. */
function isFinishedWithoutLiveEvent(service: JobService, id: string): boolean {
  try {
    const s = service.record(id).status;
    return s === 'succeeded' || s === 'failed' || s === 'cancelled';
  } catch {
    return true;
  }
}
