// How an HTTP route is described: method, path, parameters, request body and responses, with the same zod
// schemas the handlers validate with; and the OpenAPI 3.1 document generated from such descriptions
// (z.toJSONSchema), so the documentation cannot drift from the code. Routes are declared through the
// RouteRegistry of their app (route-registry.ts); test/openapi-metrics.test.ts checks that every express route is
// described and that real responses match the declared schemas.
import { z } from 'zod';
import type { Access } from './auth.js';
import { PROBE_PATHS } from './security-origin.js';

export type HttpMethod = 'get' | 'post' | 'delete';

/** A response body: a zod schema (JSON), 'binary' (images), or 'text' (HTML, SSE, Prometheus text). */
export type BodySpec = z.ZodType | 'binary' | 'text';

export interface ResponseSpec {
  description: string;
  /** content type → body; omitted for bodiless responses. */
  content?: Record<string, BodySpec>;
  headers?: Record<string, string>;
}

export type RequestBodySpec =
  /** Images as multipart file fields (or one raw image/* body = the first field), plus form fields. */
  | { kind: 'image-upload'; files: { name: string; required?: boolean; maxCount?: number; archive?: boolean }[]; fields?: z.ZodType; required?: boolean }
  | { kind: 'json'; schema: z.ZodType };

export interface ApiRoute {
  method: HttpMethod;
  /** OpenAPI path template, e.g. `/v1/jobs/{id}` (express path `/v1/jobs/:id`). */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  pathParams?: z.ZodObject;
  query?: z.ZodType;
  /** Request headers the route reads (name → description). */
  headers?: Record<string, string>;
  body?: RequestBodySpec;
  responses: Record<number, ResponseSpec>;
  /** Error statuses answered with application/problem+json. */
  problems?: number[];
  /** Not part of the JSON API (HTML pages, static files): documented, tagged `web`. */
  hidden?: boolean;
  /** Who may call it when API keys are configured (default: a key for /v1/*, anyone elsewhere; see auth.ts). */
  access?: Access;
  /** Subject to the per-key interactive rate limit (security-rate.ts): classify, filter, explain. */
  rateLimit?: 'interactive';
  /** The key may also be sent as `?key=` (the SSE route: EventSource cannot send headers). */
  keyInQuery?: boolean;
  /** An old path kept for existing clients; documented with `deprecated: true`. */
  deprecated?: boolean;
  /**
   * A template route served for compatibility whose concrete paths are documented instead (describeEach): it is
   * mounted but not in the document, where its template would be identical to another path's.
   */
  documentedByInstances?: boolean;
}

/** `/v1/jobs/{id}/previews/{n}` → `/v1/jobs/:id/previews/:n`. */
export function expressPath(openapiPath: string): string {
  return openapiPath.replace(/\{(\w+)\}/g, ':$1');
}

/** `/v1/jobs/:id` → `/v1/jobs/{id}`. */
export function openapiPath(expressPathStr: string): string {
  return expressPathStr.replace(/:(\w+)/g, '{$1}');
}

// ---- shared schemas -------------------------------------------------------------------------------------------

/** RFC 9457 problem details, as every error is rendered (extension members allowed). */
export const ProblemSchema = z.looseObject({
  type: z.string().describe('https://convserve.dev/problems/<slug>'),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string().optional(),
  request_id: z.string().optional(),
}).meta({ id: 'Problem' });

const PROBLEM_TEXT: Record<number, string> = {
  400: 'Invalid parameters or upload', 401: 'No valid API key (WWW-Authenticate: Bearer)', 403: 'The key lacks the admin scope, a foreign Origin (POST/DELETE), or a Host not served (DNS rebinding)', 404: 'Not found', 409: 'Conflict', 413: 'Content too large', 415: 'Unsupported media type',
  422: 'Undecodable image', 429: 'Queue full, or a per-key quota or rate exceeded (Retry-After)', 500: 'Internal error', 503: 'Not ready / shutting down (Retry-After)',
};

// ---- OpenAPI generation ---------------------------------------------------------------------------------------

type JsonSchema = Record<string, unknown>;

function toJsonSchema(schema: z.ZodType, io: 'input' | 'output', defs: Record<string, JsonSchema>): JsonSchema {
  const s = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12', reused: 'inline' }) as JsonSchema;
  delete s.$schema;
  // Schemas with a registered id (`.meta({ id })`) become components.
  const id = (schema.meta() as { id?: string } | undefined)?.id;
  const inner = s.$defs as Record<string, JsonSchema> | undefined;
  delete s.$defs;
  if (inner) for (const [k, v] of Object.entries(inner)) defs[k] = rewriteRefs(v);
  if (id) return { $ref: `#/components/schemas/${id}` };
  return rewriteRefs(s);
}

function rewriteRefs<T>(v: T): T {
  if (Array.isArray(v)) return v.map(rewriteRefs) as T;
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = k === '$ref' && typeof x === 'string' ? x.replace('#/$defs/', '#/components/schemas/') : rewriteRefs(x);
    return out as T;
  }
  return v;
}

function objectProperties(schema: z.ZodType | undefined, defs: Record<string, JsonSchema>): { properties: Record<string, JsonSchema>; required: string[] } {
  if (!schema) return { properties: {}, required: [] };
  const s = toJsonSchema(schema, 'input', defs);
  return { properties: (s.properties ?? {}) as Record<string, JsonSchema>, required: (s.required ?? []) as string[] };
}

function bodyContent(b: BodySpec, defs: Record<string, JsonSchema>): { schema: JsonSchema } {
  if (b === 'binary') return { schema: { type: 'string', contentMediaType: 'application/octet-stream' } };
  if (b === 'text') return { schema: { type: 'string' } };
  return { schema: toJsonSchema(b, 'output', defs) };
}

export interface OpenApiOptions {
  version: string;
  /** Default: `/` (the server that serves the document). */
  serverUrl?: string;
}

/** How a client authenticates (the API keys of util/api-keys.ts). */
export const SECURITY_SCHEMES = {
  bearerKey: { type: 'http', scheme: 'bearer', description: 'An API key as `Authorization: Bearer <key>`. Needed on every /v1 route when the server has API keys configured (without keys it serves localhost only, anonymously).' },
  apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'The same API key in the X-API-Key header.' },
  apiKeyQuery: { type: 'apiKey', in: 'query', name: 'key', description: 'The API key as `?key=`, accepted only on the job event stream (EventSource cannot send headers).' },
} as const;

export function resolvedAccess(r: ApiRoute): Access {
  return r.access ?? (r.path.startsWith('/v1/') ? 'user' : 'public');
}

/** The operation's security requirements: none for open routes; a key (with the role `admin` where needed) otherwise. */
function securityOf(r: ApiRoute): Record<string, string[]>[] {
  const access = resolvedAccess(r);
  if (access === 'public') return [];
  const roles = access === 'admin' ? ['admin'] : [];
  return [{ bearerKey: roles }, { apiKeyHeader: roles }, ...(r.keyInQuery ? [{ apiKeyQuery: roles }] : [])];
}

/** The OpenAPI 3.1 document of `routes`. */
export function openApiDocument(routes: readonly ApiRoute[], opts: OpenApiOptions): Record<string, unknown> {
  const defs: Record<string, JsonSchema> = {};
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const parameters: Record<string, unknown>[] = [];
    const pp = objectProperties(r.pathParams, defs);
    for (const [name, schema] of Object.entries(pp.properties)) parameters.push({ name, in: 'path', required: true, schema });
    const q = objectProperties(r.query, defs);
    for (const [name, schema] of Object.entries(q.properties)) {
      const { description, ...rest } = schema;
      parameters.push({ name, in: 'query', required: q.required.includes(name) && !('default' in schema), schema: rest, ...(description ? { description } : {}) });
    }
    for (const [name, description] of Object.entries(r.headers ?? {})) parameters.push({ name, in: 'header', required: false, description, schema: { type: 'string' } });

    let requestBody: Record<string, unknown> | undefined;
    if (r.body?.kind === 'image-upload') {
      const fields = objectProperties(r.body.fields, defs);
      const fileProps: Record<string, JsonSchema> = {};
      for (const f of r.body.files) {
        const one = f.archive
          ? { type: 'string', contentMediaType: 'application/octet-stream', description: 'archive file (.zip, .tar or .tar.gz, recognised by its content)' }
          : { type: 'string', contentMediaType: 'image/*', description: `image file (JPEG, PNG, WebP, GIF, TIFF, AVIF)` };
        fileProps[f.name] = (f.maxCount ?? 1) > 1 ? { type: 'array', items: one, maxItems: f.maxCount } : one;
      }
      const requiredFiles = r.body.files.filter((f) => f.required ?? true).map((f) => f.name);
      requestBody = {
        required: r.body.required ?? requiredFiles.length > 0,
        description: `Multipart form with the image file field(s) ${r.body.files.map((f) => `\`${f.name}\``).join(', ')}${fields.required.length || Object.keys(fields.properties).length ? ' and the parameters as form fields (they may also be given in the query string)' : ''}; or the image as a raw body with an image/* Content-Type.`,
        content: {
          'multipart/form-data': { schema: { type: 'object', properties: { ...fileProps, ...fields.properties }, required: requiredFiles } },
          'image/*': { schema: { type: 'string', contentMediaType: 'image/*' } },
        },
      };
    } else if (r.body?.kind === 'json') {
      requestBody = { required: true, content: { 'application/json': { schema: toJsonSchema(r.body.schema, 'input', defs) } } };
    }

    const responses: Record<string, unknown> = {};
    for (const [status, spec] of Object.entries(r.responses)) {
      responses[status] = {
        description: spec.description,
        ...(spec.headers ? { headers: Object.fromEntries(Object.entries(spec.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }])) } : {}),
        ...(spec.content ? { content: Object.fromEntries(Object.entries(spec.content).map(([ct, b]) => [ct, bodyContent(b, defs)])) } : {}),
      };
    }
    const access = resolvedAccess(r);
    // Every route but the probes checks the Host (403), state-changing ones the Origin (403) too.
    const authProblems = [...(access === 'public' ? [] : [401]), ...(PROBE_PATHS.has(r.path) ? [] : [403]), ...(r.rateLimit ? [429] : [])];
    for (const status of [...new Set([...(r.problems ?? []), ...authProblems, 500])].sort((a, b) => a - b)) {
      responses[String(status)] ??= { description: PROBLEM_TEXT[status] ?? 'Error', content: { 'application/problem+json': { schema: toJsonSchema(ProblemSchema, 'output', defs) } } };
    }

    const pathItem = (paths[r.path] ??= {});
    pathItem[r.method] = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.description || access === 'admin' ? { description: [access === 'admin' ? 'Needs an API key with the `admin` scope (when keys are configured).' : '', r.description ?? ''].filter(Boolean).join(' ') } : {}),
      tags: r.tags,
      ...(r.deprecated ? { deprecated: true } : {}),
      security: securityOf(r),
      ...(parameters.length ? { parameters } : {}),
      ...(requestBody ? { requestBody } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'convserve',
      version: opts.version,
      description: 'The classic Keras computer-vision toolbox as a Node service: ImageNet classification, kernel filters, DeepDream, style transfer, fine-tuning. Every error is application/problem+json (RFC 9457).',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: opts.serverUrl ?? '/', description: 'this server' }],
    tags: [
      { name: 'classify', description: 'ImageNet (and other) classification' },
      { name: 'filter', description: 'Convolution-kernel filters' },
      { name: 'jobs', description: 'Long-running jobs: DeepDream, style transfer, blur-sweep' },
      { name: 'ops', description: 'Health, readiness, metrics, the API description' },
      { name: 'web', description: 'The web page and its assets' },
    ],
    paths,
    components: { schemas: defs, securitySchemes: SECURITY_SCHEMES },
  };
}
