// The hostile corpus shared by test/hostile.test.ts (a server without keys) and test/hostile-auth.test.ts (a
// server with API keys): cases generated from a server's /openapi.json — for every operation and every parameter
// or form field, a wrong type and values out of range, unknown fields, hostile path segments (traversal,
// unicode, NUL, overlong) — plus bomb and forged images and malformed multipart (no boundary, truncated, 10,000
// fields, 17 files); and the checks every answer must pass (a documented non-5xx status, problem+json for
// errors, helmet's headers).
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, request } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deflateSync } from 'node:zlib';

export type Json = Record<string, any>;

export interface HostileCase {
  name: string;
  /** The operation as documented: 'post /v1/classify'. */
  op: string;
  method: string;
  /** Path with query, already encoded as the attacker sends it. */
  url: string;
  headers?: Record<string, string>;
  body?: Buffer | FormData | string;
  /** Statuses this case must answer (default: any documented non-5xx status). */
  expect?: number[];
}

const HOSTILE_SEGMENTS = ['..%2F..%2Fetc%2Fpasswd', '..', '%2e%2e', 'x%00y', '%C3%BC%F0%9F%98%80', 'A'.repeat(1200), '%E2%80%AEgnp.exe', '00000000-0000-4000-8000-000000000000'];

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A PNG whose header claims width × height (8-bit grey) over a few rows of real data: a forged giant. */
export function forgedPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 0;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(4 * (width + 1)))), pngChunk('IEND', Buffer.alloc(0))]);
}

export function multipartBody(boundary: string, parts: { name: string; filename?: string; type?: string; data: Buffer | string }[], close = true): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename !== undefined ? `; filename="${p.filename}"` : ''}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`));
    chunks.push(Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  if (close) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

/** Values of the wrong type and out of range for one JSON schema (from the OpenAPI document). */
function badValues(schema: Json): { label: string; value: string; invalid: boolean }[] {
  const s = (schema.anyOf as Json[] | undefined)?.find((x) => x.type === 'integer' || x.type === 'number') ?? schema;
  const out: { label: string; value: string; invalid: boolean }[] = [];
  if (s.type === 'integer' || s.type === 'number') {
    out.push({ label: 'wrong type', value: 'not-a-number', invalid: !schema.anyOf });
    if (s.type === 'integer') out.push({ label: 'fraction', value: '1.5', invalid: true });
    if (typeof s.minimum === 'number' && s.minimum > -1e15) out.push({ label: 'below minimum', value: String(s.minimum - 1), invalid: true });
    if (typeof s.exclusiveMinimum === 'number') out.push({ label: 'at exclusive minimum', value: String(s.exclusiveMinimum), invalid: true });
    if (typeof s.maximum === 'number') out.push({ label: 'above maximum', value: s.maximum > 1e15 ? '1e400' : String(s.maximum * 2 + 1), invalid: true });
    out.push({ label: 'NaN', value: 'NaN', invalid: !schema.anyOf });
  } else if (s.enum) {
    out.push({ label: 'not in enum', value: 'zz-not-a-choice', invalid: true });
  } else if (s.type === 'boolean' || (schema.anyOf as Json[] | undefined)?.some((x) => x.type === 'boolean')) {
    out.push({ label: 'not a boolean', value: 'maybe', invalid: true });
  } else {
    out.push({ label: 'traversal', value: '../../../../etc/passwd', invalid: false });
    out.push({ label: 'unicode', value: 'ü😀\u202e\u0000', invalid: false });
    if (s.pattern) out.push({ label: 'pattern', value: '!!bad pattern!!', invalid: true });
  }
  return out;
}

/** One operation of the document with what the corpus needs of it. */
export interface Operation {
  key: string;
  method: string;
  path: string;
  documented: number[];
  /** From its `security`: no requirement, any key, or the admin role. */
  access: 'public' | 'user' | 'admin';
  query: Json[];
  pathParams: Json[];
  fileFields: string[];
  valueFields: [string, Json][];
  /** Job kinds' parameter schemas are strict (an unknown parameter is a 400); the generic submit route takes a `params` JSON field. */
  strict: boolean;
}

export function operations(spec: Json): Operation[] {
  return Object.entries(spec.paths as Record<string, Json>).flatMap(([path, item]) => Object.entries(item).map(([method, op]: [string, Json]): Operation => {
    const body = op.requestBody?.content?.['multipart/form-data']?.schema as Json | undefined;
    const props = Object.entries((body?.properties ?? {}) as Record<string, Json>);
    const isFile = (p: Json) => p.contentMediaType === 'image/*' || p.items?.contentMediaType === 'image/*';
    const security = (op.security ?? []) as Record<string, string[]>[];
    return {
      key: `${method} ${path}`, method: method.toUpperCase(), path,
      documented: Object.keys(op.responses as Json).map(Number),
      access: security.length === 0 ? 'public' : security.some((s) => Object.values(s).some((roles) => roles.includes('admin'))) ? 'admin' : 'user',
      query: ((op.parameters ?? []) as Json[]).filter((p) => p.in === 'query'),
      pathParams: ((op.parameters ?? []) as Json[]).filter((p) => p.in === 'path'),
      fileFields: props.filter(([, p]) => isFile(p)).map(([n]) => n),
      valueFields: props.filter(([, p]) => !isFile(p)) as [string, Json][],
      strict: method === 'post' && '202' in (op.responses as Json) && !path.includes('{kind}'),
    };
  }));
}

/** What the corpus is generated against: the document, a small good PNG, a decompression bomb and an existing job. */
export interface CorpusInputs {
  spec: Json;
  png: Buffer;
  bomb: Buffer;
  jobId: string;
}

/** The operation's path with its parameters filled in (an existing job, a real kind) or overridden. */
export function concretePath(op: Operation, jobId: string, overrides: Record<string, string> = {}): string {
  const defaults: Record<string, string> = { id: jobId, kind: 'blur-sweep', n: '0', file: 'nothing.png' };
  return op.path.replace(/\{(\w+)\}/g, (_m, name: string) => overrides[name] ?? defaults[name] ?? 'x');
}

/** A form with a good image in every file field (so validation reaches the parameters) and `fields`. */
export function goodForm(op: Operation, png: Buffer, fields: Record<string, string> = {}): FormData {
  const form = new FormData();
  for (const f of op.fileFields) form.append(f, new Blob([png], { type: 'image/png' }), 'in.png');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  return form;
}

export function generateCorpus({ spec, png, bomb, jobId }: CorpusInputs): HostileCase[] {
  const cases: HostileCase[] = [];
  for (const op of operations(spec)) {
    const base = concretePath(op, jobId);
    const upload = op.fileFields.length > 0;
    const form = (fields: Record<string, string> = {}) => (upload ? goodForm(op, png, fields) : undefined);
    cases.push({ name: `${op.key}: plain request`, op: op.key, method: op.method, url: base, body: form() });
    for (const q of op.query) {
      for (const bad of badValues(q.schema as Json)) {
        cases.push({ name: `${op.key}: query ${q.name} ${bad.label}`, op: op.key, method: op.method, url: `${base}?${q.name}=${encodeURIComponent(bad.value)}`, body: form(), expect: bad.invalid ? [400] : undefined });
      }
    }
    for (const [name, schema] of op.valueFields) {
      for (const bad of badValues(schema)) {
        cases.push({ name: `${op.key}: field ${name} ${bad.label}`, op: op.key, method: op.method, url: base, body: goodForm(op, png, { [name]: bad.value }), expect: bad.invalid ? [400] : undefined });
      }
    }
    if (upload) {
      cases.push({ name: `${op.key}: unknown form field`, op: op.key, method: op.method, url: base, body: form({ zz_unknown: '1' }), expect: op.strict ? [400] : undefined });
      cases.push({ name: `${op.key}: field value over CONVSERVE_MAX_FIELD_BYTES`, op: op.key, method: op.method, url: base, body: form({ [op.valueFields[0]?.[0] ?? 'zz']: 'x'.repeat(70_000) }), expect: [413] });
    }
    if (op.query.length) cases.push({ name: `${op.key}: unknown query parameter`, op: op.key, method: op.method, url: `${base}?zz_unknown=1`, body: form(), expect: op.strict ? [400] : undefined });
    for (const p of op.pathParams) {
      for (const seg of HOSTILE_SEGMENTS) cases.push({ name: `${op.key}: path ${p.name}=${seg.slice(0, 30)}`, op: op.key, method: op.method, url: concretePath(op, jobId, { [p.name]: seg }), body: form() });
    }
    // The filter needs a kernel before it looks at the image; attacks on the image go past that check.
    if (upload) cases.push(...uploadAttacks(op, op.path === '/v1/filter' ? `${base}?kernel=identity` : base, png, bomb));
  }
  return cases;
}

function uploadAttacks(op: Operation, url: string, png: Buffer, bomb: Buffer): HostileCase[] {
  const field = op.fileFields[0]!;
  const others = op.fileFields.slice(1);
  const withFile = (data: Buffer, filename = 'in.png', type = 'image/png') => {
    const form = new FormData();
    form.append(field, new Blob([data], { type }), filename);
    for (const o of others) form.append(o, new Blob([png], { type: 'image/png' }), 'o.png');
    return form;
  };
  const b = 'hostileboundary42';
  const k = op.key;
  const m = op.method;
  // Jobs check the image header at admission and decode it when they run: a truncated body is accepted (202)
  // and the job fails; the synchronous routes decode at once (422).
  const isJob = op.documented.includes(202);
  return [
    { name: `${k}: PNG header claiming 50000×50000`, op: k, method: m, url, body: withFile(forgedPng(50_000, 50_000)), expect: [413] },
    { name: `${k}: decompression bomb (3000×3000, a few KB)`, op: k, method: m, url, body: withFile(bomb), expect: [413] },
    { name: `${k}: truncated PNG`, op: k, method: m, url, body: withFile(png.subarray(0, png.length >> 1)), expect: isJob ? [202] : [422] },
    { name: `${k}: not an image`, op: k, method: m, url, body: withFile(Buffer.from('#!/bin/sh\nrm -rf /\n'), 'x.sh', 'text/plain'), expect: [415, 422] },
    { name: `${k}: empty file`, op: k, method: m, url, body: withFile(Buffer.alloc(0)), expect: [400, 415, 422] },
    { name: `${k}: traversal file name`, op: k, method: m, url, body: withFile(png, '../../../../tmp/pwned.png') },
    { name: `${k}: unicode file name`, op: k, method: m, url, body: withFile(png, '\u202eü😀\u0000.png') },
    { name: `${k}: raw body, forged giant`, op: k, method: m, url, headers: { 'Content-Type': 'image/png' }, body: forgedPng(60_000, 60_000), expect: [413] },
    { name: `${k}: JSON body`, op: k, method: m, url, headers: { 'Content-Type': 'application/json' }, body: '{"image":"x"}', expect: [415] },
    { name: `${k}: multipart without boundary`, op: k, method: m, url, headers: { 'Content-Type': 'multipart/form-data' }, body: multipartBody(b, [{ name: field, filename: 'a.png', type: 'image/png', data: png }]), expect: [400] },
    { name: `${k}: truncated multipart`, op: k, method: m, url, headers: { 'Content-Type': `multipart/form-data; boundary=${b}` }, body: multipartBody(b, [{ name: field, filename: 'a.png', type: 'image/png', data: png }], false).subarray(0, 200), expect: [400] },
    { name: `${k}: 10,000 form fields`, op: k, method: m, url, headers: { 'Content-Type': `multipart/form-data; boundary=${b}` }, body: multipartBody(b, Array.from({ length: 10_000 }, (_, i) => ({ name: `f${i}`, data: 'v' }))), expect: [413] },
    { name: `${k}: 17 files in '${field}'`, op: k, method: m, url, headers: { 'Content-Type': `multipart/form-data; boundary=${b}` }, body: multipartBody(b, Array.from({ length: 17 }, () => ({ name: field, filename: 'a.png', type: 'image/png', data: png }))), expect: [413] },
    { name: `${k}: a file in an unknown field`, op: k, method: m, url, headers: { 'Content-Type': `multipart/form-data; boundary=${b}` }, body: multipartBody(b, [{ name: 'evil', filename: 'a.png', type: 'image/png', data: png }]), expect: [400] },
  ];
}

/** helmet's headers, which every answer carries (the page, JSON, images and problem responses alike). */
export function missingSecurityHeaders(get: (name: string) => string | null | undefined): string[] {
  const missing: string[] = [];
  const csp = String(get('content-security-policy') ?? '');
  if (!/(^|;)\s*default-src 'self'/.test(csp)) missing.push(`CSP default-src 'self' (got '${csp.slice(0, 60)}')`);
  if (!/frame-ancestors 'none'/.test(csp)) missing.push("CSP frame-ancestors 'none'");
  if (get('x-frame-options') !== 'DENY') missing.push('X-Frame-Options: DENY');
  if (get('x-content-type-options') !== 'nosniff') missing.push('X-Content-Type-Options: nosniff');
  return missing;
}

export interface CorpusRun {
  failures: string[];
  byStatus: Record<number, number>;
}

/**
 * Sends every case to `base` (with `headers` added: a key) and checks each answer: one of the statuses the case
 * expects and its operation documents, never a 5xx, problem+json for errors, helmet's headers. `between` runs
 * every 25 cases (health and RSS checks).
 */
export async function runCorpus(base: string, spec: Json, cases: HostileCase[], headers: Record<string, string> = {}, between: (lastCase: string) => Promise<void> = async () => undefined): Promise<CorpusRun> {
  const documented = new Map(operations(spec).map((o) => [o.key, o.documented]));
  const failures: string[] = [];
  const byStatus: Record<number, number> = {};
  for (const [i, c] of cases.entries()) {
    const res = await fetch(`${base}${c.url}`, { method: c.method, headers: { ...headers, ...c.headers }, body: c.method === 'GET' || c.method === 'HEAD' ? undefined : c.body });
    const body = await res.text();
    const type = String(res.headers.get('content-type'));
    byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
    const docs = documented.get(c.op)!;
    const allowed = c.expect ?? docs.filter((s) => s < 500);
    const missing = missingSecurityHeaders((h) => res.headers.get(h));
    if (res.status >= 500) failures.push(`${c.name}: ${res.status} ${body.slice(0, 200)}`);
    else if (!allowed.includes(res.status) || !docs.includes(res.status)) failures.push(`${c.name}: ${res.status} not in ${allowed.join('/')} ${body.slice(0, 200)}`);
    else if (res.status >= 400 && !type.startsWith('application/problem+json')) failures.push(`${c.name}: ${res.status} as ${type}`);
    else if (missing.length) failures.push(`${c.name}: ${res.status} without ${missing.join(', ')}`);
    if (i % 25 === 0) await between(c.name);
  }
  return { failures, byStatus };
}

export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A request through node:http, which (unlike fetch) sends any Host, repeated headers (an array value) and
 * bytes above 0x7F in a header as they are.
 */
export function rawRequest(url: string, opts: { method?: string; headers?: Record<string, string | string[]>; body?: Buffer } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    for (const [name, value] of Object.entries(opts.headers ?? {})) req.setHeader(name, value);
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** A multipart body (and its Content-Type) with a good image in each of the operation's file fields. */
export function rawUpload(op: Operation, png: Buffer): { body: Buffer; contentType: string } | undefined {
  if (!op.fileFields.length) return undefined;
  const boundary = 'rawuploadboundary7';
  return { body: multipartBody(boundary, op.fileFields.map((name) => ({ name, filename: 'in.png', type: 'image/png', data: png }))), contentType: `multipart/form-data; boundary=${boundary}` };
}

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

/**
 * The process RSS in MB after a full garbage collection: what is retained, not the garbage of the last requests
 * (without the collection one pass of the corpus showed +160 MB of garbage; three passes in a row, collected,
 * 418 → 440 → 442 MB with the heap flat at 103–105 MB).
 */
export function settledRssMb(): number {
  collectGarbage();
  return process.memoryUsage().rss / 2 ** 20;
}

/** Waits until /readyz answers 200 (the model warmed up): its 503 while starting is its documented meaning. */
export async function waitReady(base: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if ((await fetch(`${base}/readyz`)).status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail('the service did not become ready');
}
