// HTTP API of the job service: submit, status, list, SSE events (with Last-Event-ID replay, job-events.ts),
// result, previews, cancel. Route aliases: POST /v1/dream and /v1/style = POST /v1/jobs/dream|style.
// The service answers with records; the JSON views and their links are built in job-view.ts.
import { createReadStream } from 'node:fs';
import { type NextFunction, type Request, type RequestHandler, type Response, Router } from 'express';
import { z } from 'zod';
import { jobKinds } from '../../jobs/kind.js';
import { JOB_STATUSES, type JobStatus } from '../../jobs/record.js';
import type { JobService } from '../../jobs/service.js';
import { parseParams } from '../../util/params.js';
import { badRequest } from '../../util/problem.js';
import type { JobListResponse, JobSubmittedResponse, JobViewSchema } from '../api-schemas.js';
import type { AppContext } from '../context.js';
import { imageUpload } from '../upload.js';
import { streamEvents } from './job-events.js';
import { jobSubmitted, jobUrl, jobView } from './job-view.js';

export { endEventStreams } from './job-events.js';

export const ListQuery = z.object({
  status: z.string().optional().transform((s, c) => {
    if (!s) return undefined;
    const list = s.split(',').map((x) => x.trim()).filter(Boolean);
    const bad = list.find((x) => !(JOB_STATUSES as readonly string[]).includes(x));
    if (bad) { c.addIssue({ code: 'custom', message: `unknown status '${bad}'; one or more (comma-separated) of ${JOB_STATUSES.join(', ')}` }); return z.NEVER; }
    return list as JobStatus[];
  }),
  kind: z.string().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});

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

export function jobRoutes(ctx: AppContext, service: JobService): Router {
  const r = Router();
  const { config } = ctx;
  const uploads = new Map<string, RequestHandler>();

  const submit = (kindFrom: (req: Request) => string): RequestHandler[] => [
    // Unknown kind and a full queue are answered before the upload is read.
    (req, _res, next) => {
      service.kind(kindFrom(req));
      service.checkCapacity();
      next();
    },
    (req, res, next) => {
      const kind = service.kind(kindFrom(req));
      let up = uploads.get(kind.name);
      if (!up) {
        up = imageUpload(config, { fields: kind.inputs.map((f) => f.name), required: kind.inputs.some((f) => f.required ?? true) });
        uploads.set(kind.name, up);
      }
      up(req, res, next);
    },
    async (req, res) => {
      const job = await service.submit(kindFrom(req), (req.images ?? []).map((i) => ({ field: i.field, bytes: i.bytes, mimetype: i.mimetype })), jobParams(req));
      res.status(202).location(jobUrl(job.id)).json(jobSubmitted(job) satisfies z.input<typeof JobSubmittedResponse>);
    },
  ];

  r.get('/v1/job-kinds', (_req, res) => {
    res.json({ kinds: jobKinds().map((k) => ({ name: k.name, description: k.description, inputs: k.inputs.map((f) => ({ name: f.name, required: f.required ?? true, max_count: f.maxCount ?? 1 })), submit: `/v1/jobs/${k.name}` })) });
  });
  r.post('/v1/jobs/:kind', ...submit((req) => String(req.params.kind)));
  r.post('/v1/dream', ...submit(() => 'dream'));
  r.post('/v1/style', ...submit(() => 'style'));

  r.get('/v1/jobs', (req, res) => {
    const q = parseParams(ListQuery, req.query as Record<string, unknown>);
    res.json({ jobs: service.list({ status: q.status, kind: q.kind, limit: q.limit }).map(jobView) } satisfies z.input<typeof JobListResponse>);
  });
  r.get('/v1/jobs/:id', (req, res) => { res.json(jobView(service.get(req.params.id!)) satisfies z.input<typeof JobViewSchema>); });
  r.delete('/v1/jobs/:id', async (req, res) => {
    const job = await service.cancel(req.params.id!);
    res.status(job.status === 'cancelled' ? 200 : 202).json(jobView(job) satisfies z.input<typeof JobViewSchema>);
  });
  r.get('/v1/jobs/:id/result', (req, res, next) => sendFile(res, next, service.resultFile(req.params.id!)));
  r.get('/v1/jobs/:id/previews/:n', (req, res, next) => {
    const n = Number(req.params.n);
    if (!Number.isInteger(n) || n < 0) throw badRequest('invalid-parameter', `n: must be a preview number 0, 1, 2…; got '${req.params.n}'.`);
    sendFile(res, next, service.previewFile(req.params.id!, n));
  });
  r.get('/v1/jobs/:id/events', async (req, res) => {
    const id = req.params.id!;
    service.record(id); // 404 before switching to an event stream
    const header = req.headers['last-event-id'] ?? (req.query.last_event_id as string | undefined) ?? '0';
    const after = Number(header);
    if (!Number.isInteger(after) || after < 0) throw badRequest('invalid-parameter', `Last-Event-ID: must be a non-negative integer event id; got '${String(header)}'.`);
    await streamEvents(res, service, id, after);
  });
  return r;
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
