// A hostile corpus against EVERY route of the full service (issue 13): cases generated from /openapi.json — for
// every operation and every parameter or form field, a wrong type and values out of range, unknown fields,
// hostile path segments (traversal, unicode, NUL, overlong) — plus bomb and forged images, malformed multipart
// (no boundary, truncated, 10,000 fields, 17 files), oversize declarations, an exhausted upload budget and a
// slowloris client. Every case must answer one of the statuses its operation documents, never a 5xx, as
// problem+json when it is an error; the server stays up (/healthz) and the process RSS grows by less than
// RSS_GROWTH_BOUND_MB over the corpus.
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { createApp } from '../src/server/app.js';
import { type RunningService, defaultPlugins, startService } from '../src/server/service.js';
import { tempDir, testConfig, testContext } from './helpers/app.js';

type Json = Record<string, any>;

/** How much the test process's RSS may grow over the whole corpus (measured +30 MB over 704 cases; the line printed at the end says). */
const RSS_GROWTH_BOUND_MB = 200;

interface HostileCase {
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

/**
 * Authentication cases (missing key, wrong key, a `use` key on admin routes…) are added here once API keys are
 * merged (the secauth branch): each is a HostileCase with the headers to send and the 401/403 it expects.
 */
const AUTH_CASES: HostileCase[] = [];

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
function forgedPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 0;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(4 * (width + 1)))), pngChunk('IEND', Buffer.alloc(0))]);
}

function multipartBody(boundary: string, parts: { name: string; filename?: string; type?: string; data: Buffer | string }[], close = true): Buffer {
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

describe('hostile corpus (every route)', () => {
  let svc: RunningService;
  let spec: Json;
  let png: Buffer;
  let rssBefore = 0;
  let peakRss = 0;
  const results: { name: string; status: number }[] = [];

  before(async () => {
    const modelsDir = tempDir();
    cpSync(new URL('../models/mnist-cnn', import.meta.url), join(modelsDir, 'mnist-cnn'), { recursive: true });
    svc = await startService({
      config: testConfig({
        modelsDir, dataDir: tempDir('convserve-hostile-'), defaultModel: 'mnist-cnn', maxInputPixels: 4_000_000,
        jobQueueLength: 5000, headersTimeoutMs: 1000,
      }),
      plugins: await defaultPlugins(),
    });
    // Ready first (the model warmed up): /readyz's 503 while starting is its documented meaning, not a failure.
    for (let i = 0; i < 600 && (await fetch(`${svc.url}/readyz`)).status !== 200; i++) await new Promise((r) => setTimeout(r, 100));
    spec = await (await fetch(`${svc.url}/openapi.json`)).json() as Json;
    png = await sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer();
    const form = new FormData();
    form.append('image', new Blob([png], { type: 'image/png' }), 'in.png');
    jobId = ((await (await fetch(`${svc.url}/v1/jobs/blur-sweep?steps=2&preview_every=1`, { method: 'POST', body: form })).json()) as Json).id as string;
    await svc.ctx.core.jobs.waitFor(jobId);
    rssBefore = process.memoryUsage().rss;
  });
  after(async () => { await svc.shutdown(); });

  /** The operations of the spec with their documented statuses, file fields and value fields. */
  function operations() {
    return Object.entries(spec.paths as Record<string, Json>).flatMap(([path, item]) => Object.entries(item).map(([method, op]: [string, Json]) => {
      const body = op.requestBody?.content?.['multipart/form-data']?.schema as Json | undefined;
      const props = Object.entries((body?.properties ?? {}) as Record<string, Json>);
      const isFile = (p: Json) => p.contentMediaType === 'image/*' || p.items?.contentMediaType === 'image/*';
      return {
        key: `${method} ${path}`, method: method.toUpperCase(), path,
        documented: Object.keys(op.responses as Json).map(Number),
        query: ((op.parameters ?? []) as Json[]).filter((p) => p.in === 'query'),
        pathParams: ((op.parameters ?? []) as Json[]).filter((p) => p.in === 'path'),
        fileFields: props.filter(([, p]) => isFile(p)).map(([n]) => n),
        valueFields: props.filter(([, p]) => !isFile(p)) as [string, Json][],
        // Job kinds' parameter schemas are strict (an unknown parameter is a 400); the generic submit route takes a `params` JSON field.
        strict: method === 'post' && '202' in (op.responses as Json) && !path.includes('{kind}'),
      };
    }));
  }

  type Op = ReturnType<typeof operations>[number];

  /** A job that exists, so cases on /v1/jobs/{id}/… reach their query validation. */
  let jobId = '';
  const concrete = (op: Op, overrides: Record<string, string> = {}) => op.path.replace(/\{(\w+)\}/g, (_m, name: string) => overrides[name] ?? ({ id: jobId, kind: 'blur-sweep', n: '0', file: 'nothing.png' } as Record<string, string>)[name] ?? 'x');

  /** A form with a good image in every file field (so validation reaches the parameters) and `fields`. */
  function goodForm(op: Op, fields: Record<string, string>): FormData {
    const form = new FormData();
    for (const f of op.fileFields) form.append(f, new Blob([png], { type: 'image/png' }), 'in.png');
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    return form;
  }

  function generate(): HostileCase[] {
    const cases: HostileCase[] = [];
    for (const op of operations()) {
      const base = concrete(op);
      const upload = op.fileFields.length > 0;
      cases.push({ name: `${op.key}: plain request`, op: op.key, method: op.method, url: base, body: upload ? goodForm(op, {}) : undefined });
      for (const q of op.query) {
        for (const bad of badValues(q.schema as Json)) {
          cases.push({ name: `${op.key}: query ${q.name} ${bad.label}`, op: op.key, method: op.method, url: `${base}?${q.name}=${encodeURIComponent(bad.value)}`, body: upload ? goodForm(op, {}) : undefined, expect: bad.invalid ? [400] : undefined });
        }
      }
      for (const [name, schema] of op.valueFields) {
        for (const bad of badValues(schema)) {
          cases.push({ name: `${op.key}: field ${name} ${bad.label}`, op: op.key, method: op.method, url: base, body: goodForm(op, { [name]: bad.value }), expect: bad.invalid ? [400] : undefined });
        }
      }
      if (upload) {
        cases.push({ name: `${op.key}: unknown form field`, op: op.key, method: op.method, url: base, body: goodForm(op, { zz_unknown: '1' }), expect: op.strict ? [400] : undefined });
        cases.push({ name: `${op.key}: field value over CONVSERVE_MAX_FIELD_BYTES`, op: op.key, method: op.method, url: base, body: goodForm(op, { [op.valueFields[0]?.[0] ?? 'zz']: 'x'.repeat(70_000) }), expect: [413] });
      }
      if (op.query.length) cases.push({ name: `${op.key}: unknown query parameter`, op: op.key, method: op.method, url: `${base}?zz_unknown=1`, body: upload ? goodForm(op, {}) : undefined, expect: op.strict ? [400] : undefined });
      for (const p of op.pathParams) {
        for (const seg of HOSTILE_SEGMENTS) cases.push({ name: `${op.key}: path ${p.name}=${seg.slice(0, 30)}`, op: op.key, method: op.method, url: concrete(op, { [p.name]: seg }), body: upload ? goodForm(op, {}) : undefined });
      }
      // The filter needs a kernel before it looks at the image; attacks on the image go past that check.
      if (upload) cases.push(...uploadAttacks(op, op.path === '/v1/filter' ? `${base}?kernel=identity` : base));
    }
    return cases;
  }

  function uploadAttacks(op: Op, url: string): HostileCase[] {
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

  let bomb: Buffer;

  async function send(c: HostileCase): Promise<{ status: number; type: string; body: string }> {
    const res = await fetch(`${svc.url}${c.url}`, { method: c.method, headers: c.headers, body: c.method === 'GET' || c.method === 'HEAD' ? undefined : c.body });
    const body = await res.text();
    return { status: res.status, type: String(res.headers.get('content-type')), body };
  }

  it('every generated case answers a documented non-5xx status (problem+json for errors); the server stays up within the RSS bound', async () => {
    bomb = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png({ compressionLevel: 9 }).toBuffer();
    const cases = [...generate(), ...AUTH_CASES];
    assert.ok(cases.length >= 150, `${cases.length} cases`);
    const ops = new Set(operations().map((o) => o.key));
    assert.deepEqual([...ops].filter((o) => !cases.some((c) => c.op === o)), [], 'every operation has cases');
    const documented = new Map(operations().map((o) => [o.key, o.documented]));
    const failures: string[] = [];
    for (const [i, c] of cases.entries()) {
      const r = await send(c);
      results.push({ name: c.name, status: r.status });
      const allowed = c.expect ?? documented.get(c.op)!.filter((s) => s < 500);
      if (r.status >= 500) failures.push(`${c.name}: ${r.status} ${r.body.slice(0, 200)}`);
      else if (!allowed.includes(r.status) || !documented.get(c.op)!.includes(r.status)) failures.push(`${c.name}: ${r.status} not in ${allowed.join('/')} ${r.body.slice(0, 200)}`);
      else if (r.status >= 400 && !r.type.startsWith('application/problem+json')) failures.push(`${c.name}: ${r.status} as ${r.type}`);
      if (i % 25 === 0) {
        assert.equal((await fetch(`${svc.url}/healthz`)).status, 200, `healthz after ${c.name}`);
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases failed`);
    assert.equal((await fetch(`${svc.url}/healthz`)).status, 200);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    const growthMb = (peakRss - rssBefore) / 2 ** 20;
    const byStatus: Record<number, number> = {};
    for (const r of results) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    console.log(`hostile corpus: ${cases.length} cases, statuses ${JSON.stringify(byStatus)}, RSS ${Math.round(rssBefore / 2 ** 20)} → peak ${Math.round(peakRss / 2 ** 20)} MB (+${growthMb.toFixed(0)} MB)`);
    assert.ok(growthMb < RSS_GROWTH_BOUND_MB, `RSS grew by ${growthMb.toFixed(0)} MB`);
  });

  it('a Content-Length above the route\'s most is refused with 413 before the body is read', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${svc.url}/v1/filter`, { method: 'POST', headers: { 'Content-Type': 'multipart/form-data; boundary=x', 'Content-Length': String(50 * 2 ** 30) } }, (r) => {
        let body = '';
        r.on('data', (d: Buffer) => { body += d.toString(); });
        r.on('end', () => { resolve({ status: r.statusCode ?? 0, body }); req.destroy(); });
      });
      req.on('error', (e) => { if (!req.destroyed) reject(e); });
      req.write('--x\r\n');
    });
    assert.equal(res.status, 413);
    assert.match(res.body, /declares 53687091200 bytes/);
  });

  it('a slowloris client trickling headers is disconnected, not waited for', async () => {
    const sock = connect(Number(new URL(svc.url).port), '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
    let reply = '';
    sock.on('data', (d: Buffer) => { reply += d.toString(); });
    const trickle = setInterval(() => { if (!sock.destroyed) sock.write('X-Slow: 1\r\n'); }, 200);
    const closed = await Promise.race([
      new Promise<boolean>((r) => sock.once('close', () => r(true))),
      new Promise<boolean>((r) => setTimeout(() => r(false), 30_000)),
    ]);
    clearInterval(trickle);
    sock.destroy();
    assert.ok(closed, 'the server closed the connection');
    assert.match(reply, /^HTTP\/1\.1 408/);
    assert.equal((await fetch(`${svc.url}/healthz`)).status, 200);
  });
});

describe('the in-flight upload budget', () => {
  it('an upload that would exceed CONVSERVE_UPLOAD_BUDGET_BYTES answers 503 with Retry-After before its body is read; the budget frees when the first ends', async () => {
    const ctx = testContext({ uploadBudgetBytes: 100_000 });
    const server = createApp(ctx).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'white' } }).png().toBuffer();
      // The first upload declares 90,000 bytes and sends them slowly: it holds its reservation meanwhile.
      const first = request(`${url}/v1/filter?kernel=identity`, { method: 'POST', headers: { 'Content-Type': 'image/png', 'Content-Length': '90000' } });
      const firstDone = new Promise<number>((resolve) => { first.on('response', (r) => { r.resume(); resolve(r.statusCode ?? 0); }); first.on('error', () => resolve(-1)); });
      first.write(png);
      await new Promise((r) => setTimeout(r, 200));
      const second = await fetch(`${url}/v1/filter?kernel=identity`, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: Buffer.concat([png, Buffer.alloc(20_000)]) });
      assert.equal(second.status, 503);
      assert.equal(second.headers.get('retry-after'), '1');
      assert.equal((await second.json() as Json).type, 'https://convserve.dev/problems/upload-budget-exhausted');
      first.end(Buffer.alloc(90_000 - png.length));
      assert.ok([200, 422].includes(await firstDone));
      const third = await fetch(`${url}/v1/filter?kernel=identity`, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: png });
      assert.equal(third.status, 200, 'the reservation was released');
    } finally {
      server.close();
    }
  });
});
