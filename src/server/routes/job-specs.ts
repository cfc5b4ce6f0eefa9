// Descriptions of the job routes (mounted by the jobs plugin, handlers in the jobs area's routes), with the
// schemas those handlers use. Job submission lives at POST /v1/job-kinds/{kind}/jobs, described once generically
// and once per registered job kind with that kind's own parameter schema. The old POST /v1/jobs/{kind} is still
// served: its template would be identical to /v1/jobs/{id}, so it is documented by its per-kind paths, deprecated.
import { z } from 'zod';
import type { Config } from '../../config.js';
import { getJobKind, jobKinds } from '../../jobs/kind.js';
import { JOB_STATUSES, type JobStatus } from '../../jobs/store.js';
import type { ApiRoute } from '../api.js';
import { ImageResponses, JobKindsResponse, JobListResponse, JobSubmittedResponse, JobViewSchema } from '../api-schemas.js';
import type { ApiRouter } from '../route-registry.js';

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

const JobId = z.object({ id: z.string().describe('job id (UUID)') });

/** Where a job of `kind` is submitted. */
export const submitPath = (kind: string) => `/v1/job-kinds/${kind}/jobs`;
/** The old submission path of a kind (an alias, deprecated). */
export const legacySubmitPath = (kind: string) => `/v1/jobs/${kind}`;

/** How a submission route is documented besides its path and kind. */
export interface SubmitRouteOptions {
  deprecated?: boolean;
  documentedByInstances?: boolean;
}

/** POST `path`: submit a job of `kindName` (any kind for a path with `{kind}`). */
export function submitRoute(path: string, operationId: string, kindName: string | undefined, config: Config, opts: SubmitRouteOptions = {}): ApiRoute {
  const kind = kindName ? getJobKind(kindName) : undefined;
  const fields = kind ? kind.params(config) : z.object({ params: z.string().optional().describe('all parameters as one JSON object') }).catchall(z.unknown());
  return {
    method: 'post', path, operationId, tags: ['jobs'],
    summary: kind ? `Submit a ${kind.name} job` : kindName ? `Submit a ${kindName} job (kind not installed on this server: 404 unknown-job-kind)` : 'Submit a job of any kind',
    description: `${kind ? kind.description + ' ' : ''}Parameters come from the query string, a JSON \`params\` field, or form fields (later wins). Answers 202 with Location; follow progress at links.events.${opts.deprecated ? ` Deprecated alias of POST ${submitPath(kindName ?? '{kind}')}.` : ''}`,
    ...(opts.deprecated ? { deprecated: true } : {}),
    ...(opts.documentedByInstances ? { documentedByInstances: true } : {}),
    ...(path.includes('{kind}') ? { pathParams: z.object({ kind: z.string().describe('job kind (GET /v1/job-kinds)') }) } : {}),
    query: fields,
    body: { kind: 'image-upload', files: kind ? kind.inputs.map((f) => ({ name: f.name, required: f.required ?? true, maxCount: f.maxCount ?? 1, ...(f.file ? { archive: true } : {}) })) : [{ name: 'image', required: false }], fields },
    responses: { 202: { description: 'Accepted (queued)', content: { 'application/json': JobSubmittedResponse }, headers: { Location: 'the job URL' } } },
    problems: [400, 404, ...(!kind || kind.inputs.some((f) => f.file) ? [409] : []), 413, 415, 422, 429, 503],
  };
}

/**
 * Describes, for every kind registered when the description is read, `POST /v1/job-kinds/<kind>/jobs` (served by
 * the `{kind}` route) and its deprecated alias `POST /v1/jobs/<kind>`.
 */
export function describeKindSubmits(r: ApiRouter, config: Config): void {
  r.describeEach(() => jobKinds().flatMap((k) => {
    const op = k.name.replace(/-/g, '_');
    return [
      submitRoute(submitPath(k.name), `submitJob_${op}`, k.name, config),
      submitRoute(legacySubmitPath(k.name), `submitJobLegacy_${op}`, k.name, config, { deprecated: true }),
    ];
  }));
}

export const JOB_ROUTES = {
  kinds: {
    method: 'get', path: '/v1/job-kinds', operationId: 'listJobKinds', tags: ['jobs'], summary: 'The job kinds this server can run',
    responses: { 200: { description: 'Kinds', content: { 'application/json': JobKindsResponse } } },
  },
  list: {
    method: 'get', path: '/v1/jobs', operationId: 'listJobs', tags: ['jobs'], summary: 'Recent jobs, newest first', query: ListQuery,
    responses: { 200: { description: 'Jobs', content: { 'application/json': JobListResponse } } }, problems: [400],
  },
  get: {
    method: 'get', path: '/v1/jobs/{id}', operationId: 'getJob', tags: ['jobs'], summary: 'Status, progress, previews and result link of a job', pathParams: JobId,
    responses: { 200: { description: 'The job', content: { 'application/json': JobViewSchema } } }, problems: [404],
  },
  cancel: {
    method: 'delete', path: '/v1/jobs/{id}', operationId: 'cancelJob', tags: ['jobs'], summary: 'Cancel a queued or running job', pathParams: JobId,
    responses: {
      200: { description: 'Cancelled', content: { 'application/json': JobViewSchema } },
      202: { description: 'Cancel requested; the step in progress is still finishing', content: { 'application/json': JobViewSchema } },
    },
    problems: [404, 409],
  },
  result: {
    method: 'get', path: '/v1/jobs/{id}/result', operationId: 'getJobResult', tags: ['jobs'], summary: 'The result of a succeeded job: an image, or a JSON document (the finetune kind: its report)', pathParams: JobId,
    responses: { 200: { description: 'PNG, or JSON for kinds whose result is a document', content: { 'image/png': ImageResponses['image/png'], 'application/json': z.record(z.string(), z.unknown()) } } }, problems: [404, 409],
  },
  preview: {
    method: 'get', path: '/v1/jobs/{id}/previews/{n}', operationId: 'getJobPreview', tags: ['jobs'], summary: 'An intermediate image',
    pathParams: JobId.extend({ n: z.coerce.number().int().min(0).describe('preview number 0, 1, 2…') }),
    responses: { 200: { description: 'PNG', content: { 'image/png': 'binary' } } }, problems: [400, 404],
  },
  events: {
    method: 'get', path: '/v1/jobs/{id}/events', operationId: 'jobEvents', tags: ['jobs'], summary: 'Server-Sent Events: status, progress, preview, resumed, done',
    description: 'Replays the stored events after Last-Event-ID, then streams live ones; ends after `done`.',
    pathParams: JobId, query: z.object({ last_event_id: z.coerce.number().int().min(0).optional().describe('same as the Last-Event-ID header') }),
    headers: { 'Last-Event-ID': 'resume after this event id' },
    keyInQuery: true,
    responses: { 200: { description: 'Event stream', content: { 'text/event-stream': 'text' } } }, problems: [400, 404, 429, 503],
  },
} satisfies Record<string, ApiRoute>;
