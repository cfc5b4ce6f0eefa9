// HTTP API of the job service: submit, status, list, SSE events (with Last-Event-ID replay, job-events.ts),
// result, previews, cancel — each on behalf of the request's caller (auth.ts), who sees only its own jobs unless
// it is an admin. Submission: POST /v1/job-kinds/{kind}/jobs; aliases: POST /v1/jobs/{kind} (deprecated),
// POST /v1/dream and /v1/style.
// The service answers with records; the JSON views and their links are built in job-view.ts.
import { createReadStream } from 'node:fs';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { z } from 'zod';
import { jobKinds } from '../../jobs/kind.js';
import type { JobService } from '../../jobs/service.js';
import { parseParams } from '../../util/params.js';
import { badRequest } from '../../util/problem.js';
import type { JobListResponse, JobSubmittedResponse, JobViewSchema } from '../api-schemas.js';
import type { AppContext } from '../context.js';
import { callerOf } from '../auth.js';
import { type ApiRouter, route } from '../route-registry.js';
import { imageUpload } from '../upload.js';
import { EventStreamLimits, streamEvents } from './job-events.js';
import { JOB_ROUTES, ListQuery, describeKindSubmits, submitPath, submitRoute } from './job-specs.js';
import { jobSubmitted, jobUrl, jobView } from './job-view.js';

export { endEventStreams } from './job-events.js';

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
      service.kind(kindFrom(req));
      service.checkCapacity(callerOf(req));
      next();
    },
    (req, res, next) => {
      const kind = service.kind(kindFrom(req));
      let up = uploads.get(kind.name);
      if (!up) {
        up = imageUpload(config, { fields: kind.inputs.map((f) => ({ name: f.name, maxCount: f.maxCount ?? 1, maxBytes: f.file?.maxBytes(config) })), required: kind.inputs.some((f) => f.required ?? true) });
        uploads.set(kind.name, up);
      }
      up(req, res, next);
    },
    async (req, res) => {
      const job = await service.submit(kindFrom(req), (req.images ?? []).map((i) => ({ field: i.field, bytes: i.bytes, mimetype: i.mimetype })), jobParams(req), callerOf(req));
      res.status(202).location(jobUrl(job.id)).json(jobSubmitted(job) satisfies z.input<typeof JobSubmittedResponse>);
    },
  ];

  route(r, JOB_ROUTES.kinds, (_req, res) => {
    res.json({ kinds: jobKinds().map((k) => ({ name: k.name, description: k.description, inputs: k.inputs.map((f) => ({ name: f.name, required: f.required ?? true, max_count: f.maxCount ?? 1 })), submit: submitPath(k.name) })) });
  });
  route(r, submitRoute(submitPath('{kind}'), 'submitJob', undefined, config), ...submit((req) => String(req.params.kind)));
  route(r, submitRoute('/v1/jobs/{kind}', 'submitJobLegacy', undefined, config, { deprecated: true, documentedByInstances: true }), ...submit((req) => String(req.params.kind)));
  describeKindSubmits(r, config);
  route(r, submitRoute('/v1/dream', 'submitDream', 'dream', config), ...submit(() => 'dream'));
  route(r, submitRoute('/v1/style', 'submitStyle', 'style', config), ...submit(() => 'style'));

  route(r, JOB_ROUTES.list, (req, res) => {
    const q = parseParams(ListQuery, req.query as Record<string, unknown>);
    res.json({ jobs: service.list({ status: q.status, kind: q.kind, limit: q.limit }, callerOf(req)).map(jobView) } satisfies z.input<typeof JobListResponse>);
  });
  route(r, JOB_ROUTES.get, (req, res) => { res.json(jobView(service.get(req.params.id!, callerOf(req))) satisfies z.input<typeof JobViewSchema>); });
  route(r, JOB_ROUTES.cancel, async (req, res) => {
    const job = await service.cancel(req.params.id!, callerOf(req));
    res.status(job.status === 'cancelled' ? 200 : 202).json(jobView(job) satisfies z.input<typeof JobViewSchema>);
  });
  route(r, JOB_ROUTES.result, (req, res, next) => sendFile(res, next, service.resultFile(req.params.id!, callerOf(req))));
  route(r, JOB_ROUTES.preview, (req, res, next) => {
    const n = Number(req.params.n);
    if (!Number.isInteger(n) || n < 0) throw badRequest('invalid-parameter', `n: must be a preview number 0, 1, 2…; got '${req.params.n}'.`);
    sendFile(res, next, service.previewFile(req.params.id!, n, callerOf(req)));
  });
  const streams = new EventStreamLimits(config);
  route(r, JOB_ROUTES.events, async (req, res) => {
    const id = req.params.id!;
    const caller = callerOf(req);
    service.record(id, caller); // 404 before switching to an event stream
    const header = req.headers['last-event-id'] ?? (req.query.last_event_id as string | undefined) ?? '0';
    const after = Number(header);
    if (!Number.isInteger(after) || after < 0) throw badRequest('invalid-parameter', `Last-Event-ID: must be a non-negative integer event id; got '${String(header)}'.`);
    streams.admit(res, id); // 429/503 beyond the caps; the slot is freed when the response closes
    await streamEvents(res, service, id, after, caller);
  });
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
