// HTTP API of the job service: submit, status, list, SSE events (with Last-Event-ID replay), result,
// previews, cancel. Route aliases: POST /v1/dream and /v1/style = POST /v1/jobs/dream|style.
import { createReadStream } from 'node:fs';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AppContext } from '../server/context.js';
import { type ApiRouter, route } from '../server/route-registry.js';
import { JOB_ROUTES, ListQuery, describeKindSubmits, submitRoute } from '../server/routes/job-specs.js';
import { parseParams } from '../util/params.js';
import { imageUpload } from '../server/upload.js';
import { badRequest } from '../util/problem.js';
import { jobKinds } from './kind.js';
import type { JobService } from './service.js';
import type { JobEvent } from './store.js';

const SSE_KEEPALIVE_MS = 15_000;

/** Parameters from the query string, then a JSON `params` field (form or query), then the form fields / JSON body (later wins). */
function jobParams(req: Request): Record<string, unknown> {
  const query = { ...(req.query as Record<string, unknown>) };
  const body = req.body && typeof req.body === 'object' && !Buffer.isBuffer(req.body) ? { ...(req.body as Record<string, unknown>) } : {};
  const rawJson = body.params ?? query.params;
  delete body.params;
  delete query.params;
  let json: Record<string, unknown> = {};
  if (rawJson !== undefined) {
    let parsed: unknown = rawJson;
    if (typeof rawJson === 'string') {
      try { parsed = JSON.parse(rawJson); } catch (e) {
        throw badRequest('invalid-parameter', `params: not valid JSON (${(e as Error).message}).`, { errors: [{ parameter: 'params', message: 'not valid JSON' }] });
      }
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw badRequest('invalid-parameter', 'params: must be a JSON object.', { errors: [{ parameter: 'params', message: 'must be a JSON object' }] });
    json = parsed as Record<string, unknown>;
  }
  return { ...query, ...json, ...body };
}

export function jobRoutes(r: ApiRouter, ctx: AppContext, service: JobService): void {
  const { config } = ctx;
  const uploads = new Map<string, RequestHandler>();

  const submit = (kindFrom: (req: Request) => string): RequestHandler[] => [
    // Unknown kind and a full queue are answered before the upload is read.
    (req, _res, next) => {
      const kind = service.kind(kindFrom(req));
      service.checkCapacity();
      res_locals(req).kind = kind.name;
      next();
    },
    (req, res, next) => {
      const kind = service.kind(res_locals(req).kind!);
      let up = uploads.get(kind.name);
      if (!up) {
        up = imageUpload(config, { fields: kind.inputs.map((f) => f.name), required: kind.inputs.some((f) => f.required ?? true) });
        uploads.set(kind.name, up);
      }
      up(req, res, next);
    },
    async (req, res) => {
      const view = await service.submit(res_locals(req).kind!, (req.images ?? []).map((i) => ({ field: i.field, bytes: i.bytes, mimetype: i.mimetype })), jobParams(req));
      res.status(202).location(view.links.self).json({ id: view.id, kind: view.kind, status: view.status, links: view.links });
    },
  ];

  route(r, JOB_ROUTES.kinds, (_req, res) => {
    res.json({ kinds: jobKinds().map((k) => ({ name: k.name, description: k.description, inputs: k.inputs.map((f) => ({ name: f.name, required: f.required ?? true, max_count: f.maxCount ?? 1 })), submit: `/v1/jobs/${k.name}` })) });
  });
  route(r, submitRoute('/v1/jobs/{kind}', 'submitJob', undefined, config), ...submit((req) => String(req.params.kind)));
  describeKindSubmits(r, config);
  route(r, submitRoute('/v1/dream', 'submitDream', 'dream', config), ...submit(() => 'dream'));
  route(r, submitRoute('/v1/style', 'submitStyle', 'style', config), ...submit(() => 'style'));

  route(r, JOB_ROUTES.list, (req, res) => {
    const q = parseParams(ListQuery, req.query as Record<string, unknown>);
    res.json({ jobs: service.list({ status: q.status, kind: q.kind, limit: q.limit }) });
  });
  route(r, JOB_ROUTES.get, (req, res) => { res.json(service.get(req.params.id!)); });
  route(r, JOB_ROUTES.cancel, async (req, res) => {
    const view = await service.cancel(req.params.id!);
    res.status(view.status === 'cancelled' ? 200 : 202).json(view);
  });
  route(r, JOB_ROUTES.result, (req, res, next) => sendFile(res, next, service.resultFile(req.params.id!)));
  route(r, JOB_ROUTES.preview, (req, res, next) => {
    const n = Number(req.params.n);
    if (!Number.isInteger(n) || n < 0) throw badRequest('invalid-parameter', `n: must be a preview number 0, 1, 2…; got '${req.params.n}'.`);
    sendFile(res, next, service.previewFile(req.params.id!, n));
  });
  route(r, JOB_ROUTES.events, async (req, res) => {
    const id = req.params.id!;
    service.record(id); // 404 before switching to an event stream
    const header = req.headers['last-event-id'] ?? (req.query.last_event_id as string | undefined) ?? '0';
    const after = Number(header);
    if (!Number.isInteger(after) || after < 0) throw badRequest('invalid-parameter', `Last-Event-ID: must be a non-negative integer event id; got '${String(header)}'.`);
    await streamEvents(req, res, service, id, after);
  });
}

type Locals = { kind?: string };
function res_locals(req: Request): Locals {
  return ((req as unknown as { jobLocals?: Locals }).jobLocals ??= {});
}

function sendFile(res: Response, next: NextFunction, f: { path: string; content_type: string }): void {
  const s = createReadStream(f.path);
  s.once('error', next);
  s.once('open', () => {
    res.setHeader('Content-Type', f.content_type);
    res.setHeader('Cache-Control', 'private, max-age=86400, immutable');
    s.pipe(res);
  });
}

/** Open SSE responses per service, so shutdown can end them (clients reconnect with Last-Event-ID). */
const openStreams = new WeakMap<JobService, Set<Response>>();

/** Ends every open event stream of `service` (called as shutdown begins, so server.close() need not wait). */
export function endEventStreams(service: JobService): void {
  for (const res of openStreams.get(service) ?? []) res.end();
}

function formatEvent(ev: JobEvent): string {
  return `id: ${ev.id}\nevent: ${ev.event}\ndata: ${JSON.stringify({ ...ev.data, at: ev.at })}\n\n`;
}

/**
 * Replays the persisted events after `after`, then streams live ones; ends after the `done` event. Live
 * events are buffered while the log is read and de-duplicated by id, so nothing is lost or repeated.
 */
async function streamEvents(req: Request, res: Response, service: JobService, id: string, after: number): Promise<void> {
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
    res.write(formatEvent(ev));
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
    // expired meanwhile: end the stream
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
