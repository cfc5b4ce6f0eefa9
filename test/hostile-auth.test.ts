// The hostile corpus (hostile-corpus.ts) against a server with API keys configured inline (CONVSERVE_API_KEYS),
// a Host allow-list and one CORS origin: the generated cases sent with an admin key answer as they do without
// keys; then, for every operation of its /openapi.json, the key attacks — no key, a wrong key, malformed
// Authorization headers (`Bearer`, `Basic x`, 10 kB, non-ASCII bytes, two headers), X-API-Key with spaces or
// repeated → 401 problem+json with `WWW-Authenticate: Bearer`; a `use` key on admin operations → 403; another
// owner's job id → the very 404 of an unknown id; a Host not allowed → 403 and a foreign Origin → 403 even with
// a valid key; the probes open. No 5xx anywhere, helmet's headers on every answer.
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { newApiKey, sha256Hex } from '../src/util/api-keys.js';
import { type RunningService, defaultPlugins, startService } from '../src/server/service.js';
import { PROBE_PATHS } from '../src/server/security-origin.js';
// @ts-expect-error -- plain .mjs build script without types
import { buildWeb } from '../scripts/build-web.mjs';
import { tempDir, testConfig } from './helpers/app.js';
import { type Json, type Operation, type RawAnswer, concretePath, generateCorpus, missingSecurityHeaders, operations, rawRequest, rawUpload, runCorpus, waitReady } from './hostile-corpus.js';

const UNKNOWN_ID = '00000000-0000-4000-8000-000000000000';
const ALLOWED_HOST = 'convserve.example';
const CORS_ORIGIN = 'https://app.example';

describe('hostile corpus with API keys (every route)', () => {
  let svc: RunningService;
  let spec: Json;
  let ops: Operation[];
  let png: Buffer;
  /** alice's finished job (with a preview and a result), which bob must not be able to tell from an unknown id. */
  let aliceJob = '';
  const key = { alice: newApiKey(), bob: newApiKey(), ops: newApiKey() };
  const bearer = (k: string) => ({ Authorization: `Bearer ${k}` });

  before(async () => {
    await buildWeb();
    const modelsDir = tempDir();
    cpSync(new URL('../models/mnist-cnn', import.meta.url), join(modelsDir, 'mnist-cnn'), { recursive: true });
    const apiKeys = JSON.stringify([
      { id: 'alice', key_sha256: sha256Hex(key.alice), scopes: ['use'] },
      { id: 'bob', key_sha256: sha256Hex(key.bob), scopes: ['use'] },
      { id: 'ops', key_sha256: sha256Hex(key.ops), scopes: ['use', 'admin'] },
    ]);
    svc = await startService({
      config: testConfig({
        apiKeys, allowedHosts: ALLOWED_HOST, corsOrigins: CORS_ORIGIN,
        modelsDir, dataDir: tempDir('convserve-hostile-auth-'), defaultModel: 'mnist-cnn', maxInputPixels: 4_000_000, jobQueueLength: 5000,
        // The corpus sends ~1,000 requests with one key: the per-key quotas (security-quotas.test.ts) would answer 429 first.
        ownerQueuedJobs: 10_000, ownerRequestsPerSecond: 10_000, ownerRequestBurst: 100_000,
      }),
      plugins: await defaultPlugins(),
    });
    await waitReady(svc.url);
    spec = await (await fetch(`${svc.url}/openapi.json`)).json() as Json;
    ops = operations(spec);
    png = await sharp({ create: { width: 28, height: 28, channels: 3, background: { r: 30, g: 200, b: 30 } } }).png().toBuffer();
    const form = new FormData();
    form.append('image', new Blob([png], { type: 'image/png' }), 'in.png');
    const submitted = await fetch(`${svc.url}/v1/job-kinds/blur-sweep/jobs?steps=2&preview_every=1`, { method: 'POST', body: form, headers: bearer(key.alice) });
    assert.equal(submitted.status, 202);
    aliceJob = ((await submitted.json()) as Json).id as string;
    const jobs = svc.ctx.core.jobs;
    assert.ok(jobs, 'the jobs plugin runs');
    await jobs.waitFor(aliceJob);
  });
  after(async () => { await svc?.shutdown(); });

  const url = (op: Operation, id = aliceJob) => `${svc.url}${concretePath(op, id)}`;

  /** A request to `op` with `headers`, carrying a good upload where the operation takes one. */
  async function call(op: Operation, headers: Record<string, string | string[]>, id = aliceJob): Promise<RawAnswer> {
    const upload = rawUpload(op, png);
    return rawRequest(url(op, id), { method: op.method, headers: { ...headers, ...(upload ? { 'Content-Type': upload.contentType } : {}) }, body: upload?.body });
  }

  const problemType = (r: RawAnswer) => (JSON.parse(r.body) as Json).type as string;

  it('the generated corpus sent with an admin key: every case answers a documented non-5xx status with helmet\'s headers', async () => {
    const bomb = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: { r: 0, g: 0, b: 0 } } }).png({ compressionLevel: 9 }).toBuffer();
    const cases = generateCorpus({ spec, png, bomb, jobId: aliceJob });
    assert.ok(cases.length >= 150, `${cases.length} cases`);
    const run = await runCorpus(svc.url, spec, cases, bearer(key.ops), async (last) => {
      assert.equal((await fetch(`${svc.url}/healthz`)).status, 200, `healthz after ${last}`);
    });
    console.log(`hostile corpus with keys: ${cases.length} cases, statuses ${JSON.stringify(run.byStatus)}`);
    assert.deepEqual(run.failures, [], `${run.failures.length} of ${cases.length} cases failed`);
    assert.equal(run.byStatus[401] ?? 0, 0, 'the admin key is accepted everywhere');
  });

  it('every operation that needs a key answers 401 problem+json with WWW-Authenticate: Bearer to a missing, wrong or malformed one', async () => {
    const nonAscii = Buffer.from(`${key.alice.slice(0, 10)}clé😀`, 'utf8').toString('latin1');
    const attempts: [string, Record<string, string | string[]>][] = [
      ['no key', {}],
      ['a wrong key', bearer(newApiKey())],
      ['the stored hash as the key', bearer(sha256Hex(key.alice))],
      ['`Bearer` alone', { Authorization: 'Bearer' }],
      ['`Basic x`', { Authorization: 'Basic x' }],
      ['a 10 kB Authorization header', bearer('A'.repeat(10_000))],
      ['non-ASCII bytes in the key', { Authorization: `Bearer ${nonAscii}` }],
      ['the key followed by junk', { Authorization: `Bearer ${key.alice} ${key.alice}` }],
      ['two Authorization headers, the valid one first', { Authorization: [`Bearer ${key.alice}`, `Bearer ${newApiKey()}`] }],
      ['two Authorization headers, the valid one second', { Authorization: [`Bearer ${newApiKey()}`, `Bearer ${key.alice}`] }],
      ['two Authorization headers with the same valid key', { Authorization: [`Bearer ${key.alice}`, `Bearer ${key.alice}`] }],
      ['X-API-Key with spaces inside', { 'X-API-Key': `${key.alice.slice(0, 20)} ${key.alice.slice(20)}` }],
      ['X-API-Key of spaces only', { 'X-API-Key': '    ' }],
      ['two X-API-Key headers', { 'X-API-Key': [key.alice, key.alice] }],
    ];
    const guarded = ops.filter((o) => o.access !== 'public');
    assert.ok(guarded.length >= 20, `${guarded.length} operations need a key`);
    assert.deepEqual(ops.filter((o) => o.path.startsWith('/v1/') && o.access === 'public').map((o) => o.key), [], 'every /v1 operation needs a key');
    const failures: string[] = [];
    for (const op of guarded) {
      for (const [label, headers] of attempts) {
        const r = await call(op, headers);
        const what = `${op.key} with ${label}`;
        if (r.status !== 401) failures.push(`${what}: ${r.status} ${r.body.slice(0, 150)}`);
        else if (!String(r.headers['content-type']).startsWith('application/problem+json')) failures.push(`${what}: ${r.headers['content-type']}`);
        else if (!/^Bearer/.test(String(r.headers['www-authenticate']))) failures.push(`${what}: WWW-Authenticate '${r.headers['www-authenticate']}'`);
        else if (problemType(r) !== 'https://convserve.dev/problems/unauthorized') failures.push(`${what}: type ${problemType(r)}`);
        else if (!op.documented.includes(401)) failures.push(`${what}: 401 is not documented`);
        const missing = missingSecurityHeaders((h) => r.headers[h] as string | undefined);
        if (missing.length) failures.push(`${what}: without ${missing.join(', ')}`);
      }
    }
    assert.deepEqual(failures, [], `${failures.length} of ${guarded.length * attempts.length} attempts`);
    // The same key sent once is accepted (the attempts fail for what they are, not for the key).
    assert.equal((await rawRequest(`${svc.url}/v1/kernels`, { headers: { 'X-API-Key': key.alice } })).status, 200);
    assert.equal((await rawRequest(`${svc.url}/v1/kernels`, { headers: bearer(key.alice) })).status, 200);
  });

  it('the open operations (probes, page, docs, assets, /openapi.json) answer without a key; /healthz and /readyz 200', async () => {
    const open = ops.filter((o) => o.access === 'public');
    assert.ok(open.some((o) => o.path === '/healthz') && open.some((o) => o.path === '/readyz'));
    for (const op of open) {
      const r = await call(op, {});
      assert.ok(r.status !== 401 && r.status < 500 && op.documented.includes(r.status), `${op.key}: ${r.status}`);
      if (PROBE_PATHS.has(op.path)) assert.equal(r.status, 200, op.key);
    }
  });

  it('a `use` key gets 403 forbidden on every admin operation (reload, /metrics without CONVSERVE_METRICS_PUBLIC); the admin key passes', async () => {
    const admin = ops.filter((o) => o.access === 'admin');
    assert.ok(admin.some((o) => o.path === '/v1/models/reload') && admin.some((o) => o.path === '/metrics'), admin.map((o) => o.key).join(', '));
    for (const op of admin) {
      const use = await call(op, bearer(key.alice));
      assert.equal(use.status, 403, `${op.key}: ${use.body.slice(0, 150)}`);
      assert.equal(problemType(use), 'https://convserve.dev/problems/forbidden');
      assert.match((JSON.parse(use.body) as Json).detail as string, /'alice' lacks the admin scope/);
      assert.deepEqual(missingSecurityHeaders((h) => use.headers[h] as string | undefined), []);
      assert.equal((await call(op, {})).status, 401, `${op.key} without a key`);
      const ok = await call(op, bearer(key.ops));
      assert.equal(ok.status, 200, `${op.key} with the admin key: ${ok.body.slice(0, 150)}`);
    }
  });

  it('another owner\'s job id answers exactly what an unknown id answers, on every job operation (get, events, result, previews, cancel)', async () => {
    const jobOps = ops.filter((o) => o.pathParams.some((p) => p.name === 'id'));
    assert.deepEqual(jobOps.map((o) => o.key).sort(), ['delete /v1/jobs/{id}', 'get /v1/jobs/{id}', 'get /v1/jobs/{id}/events', 'get /v1/jobs/{id}/previews/{n}', 'get /v1/jobs/{id}/result']);
    const sameAnswer = (r: RawAnswer, id: string) => ({ status: r.status, type: problemType(r), detail: ((JSON.parse(r.body) as Json).detail as string).replaceAll(id, 'ID') });
    for (const op of jobOps) {
      const unknown = sameAnswer(await call(op, bearer(key.bob), UNKNOWN_ID), UNKNOWN_ID);
      assert.equal(unknown.status, 404, op.key);
      assert.deepEqual(sameAnswer(await call(op, bearer(key.bob)), aliceJob), unknown, `${op.key}: bob on alice's job`);
      assert.deepEqual(sameAnswer(await call(op, { 'X-API-Key': key.bob }), aliceJob), unknown, `${op.key}: bob (X-API-Key) on alice's job`);
      // The owner and an admin find it (the cancel of a finished job is a 409: found, nothing to cancel).
      for (const who of [key.alice, key.ops]) {
        const r = await rawRequest(url(op), { method: op.method, headers: bearer(who) });
        assert.ok([200, 409].includes(r.status), `${op.key} by its owner or an admin: ${r.status} ${r.body.slice(0, 150)}`);
      }
    }
    // The event stream also takes the key as ?key=: bob's is no better there.
    const events = ops.find((o) => o.path === '/v1/jobs/{id}/events')!;
    const byQuery = await rawRequest(`${url(events)}?key=${encodeURIComponent(key.bob)}`);
    const unknownByQuery = await rawRequest(`${url(events, UNKNOWN_ID)}?key=${encodeURIComponent(key.bob)}`);
    assert.deepEqual(sameAnswer(byQuery, aliceJob), sameAnswer(unknownByQuery, UNKNOWN_ID));
  });

  it('a Host that is not allowed gets 403 on every operation but the probes, even with a valid key; the allowed name is served', async () => {
    const port = new URL(svc.url).port;
    for (const op of ops) {
      const r = await call(op, { Host: `rebind.attacker.example:${port}`, ...bearer(key.ops) });
      if (PROBE_PATHS.has(op.path)) {
        assert.equal(r.status, 200, `${op.key} answers under any name`);
        continue;
      }
      assert.equal(r.status, 403, `${op.key}: ${r.body.slice(0, 150)}`);
      assert.equal(problemType(r), 'https://convserve.dev/problems/host-not-allowed', op.key);
      assert.deepEqual(missingSecurityHeaders((h) => r.headers[h] as string | undefined), [], op.key);
    }
    assert.equal((await rawRequest(`${svc.url}/v1/kernels`, { headers: { Host: `${ALLOWED_HOST}:${port}`, ...bearer(key.alice) } })).status, 200);
    assert.equal((await rawRequest(`${svc.url}/v1/kernels`, { headers: { Host: `${ALLOWED_HOST}:${port}` } })).status, 401, 'an allowed name still needs a key');
  });

  it('a POST or DELETE from a foreign Origin gets 403 even with a valid key; the CORS origin is served with its headers', async () => {
    const changing = ops.filter((o) => o.method !== 'GET');
    for (const op of changing) {
      const r = await call(op, { Origin: 'https://attacker.example', ...bearer(key.ops) });
      assert.equal(r.status, 403, `${op.key}: ${r.body.slice(0, 150)}`);
      assert.equal(problemType(r), 'https://convserve.dev/problems/foreign-origin', op.key);
      assert.equal(r.headers['access-control-allow-origin'], undefined, op.key);
      assert.deepEqual(missingSecurityHeaders((h) => r.headers[h] as string | undefined), [], op.key);
    }
    const preflight = await rawRequest(`${svc.url}/v1/filter`, { method: 'OPTIONS', headers: { Origin: CORS_ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' } });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], CORS_ORIGIN);
    assert.match(String(preflight.headers['access-control-allow-headers']), /Authorization/);
    const filtered = await rawRequest(`${svc.url}/v1/filter?kernel=identity`, { method: 'POST', headers: { Origin: CORS_ORIGIN, 'Content-Type': 'image/png', ...bearer(key.alice) }, body: png });
    assert.equal(filtered.status, 200, filtered.body.slice(0, 150));
    assert.equal(filtered.headers['access-control-allow-origin'], CORS_ORIGIN);
    assert.equal(filtered.headers['access-control-allow-credentials'], undefined, 'keys travel in headers: no credentials mode');
    const refusedByCors = await rawRequest(`${svc.url}/v1/kernels`, { headers: { Origin: 'https://attacker.example', ...bearer(key.alice) } });
    assert.equal(refusedByCors.status, 200, 'a GET is answered…');
    assert.equal(refusedByCors.headers['access-control-allow-origin'], undefined, '…but a foreign page may not read it');
    const unauthorizedCors = await rawRequest(`${svc.url}/v1/kernels`, { headers: { Origin: CORS_ORIGIN } });
    assert.equal(unauthorizedCors.status, 401);
    assert.match(String(unauthorizedCors.headers['access-control-expose-headers']), /WWW-Authenticate/, 'the allowed page can read why');
  });
});
