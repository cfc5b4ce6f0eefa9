// API keys and job ownership against a real service (jobs, inference, web and metrics plugins) whose keys file
// is written by `convserve keys add`'s own function: no key / a wrong key → 401, a `use` key on admin routes →
// 403, every job route isolates owners (404 for another key's job), an admin sees every job, keys are matched
// by their SHA-256 only.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addKey } from '../src/cli/keys.js';
import type { CorePart } from '../src/app/core.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { metricsPlugin } from '../src/server/metrics.js';
import { type RunningService, startService } from '../src/server/service.js';
import { webPlugin } from '../src/server/web.js';
// @ts-expect-error -- plain .mjs build script without types
import { buildWeb } from '../scripts/build-web.mjs';
import { tempDir, testConfig, testPattern } from './helpers/app.js';
import { readSse } from './helpers/jobs.js';

type Json = Record<string, any>;

describe('API keys and job ownership', () => {
  let svc: RunningService<CorePart>;
  let base: string;
  let keysFile: string;
  const key: Record<'alice' | 'bob' | 'ops', string> = { alice: '', bob: '', ops: '' };
  let png: Buffer;

  before(async () => {
    await buildWeb();
    keysFile = join(tempDir('convserve-keys-'), 'keys.json');
    key.alice = addKey(keysFile, 'alice', false);
    key.bob = addKey(keysFile, 'bob', false);
    key.ops = addKey(keysFile, 'ops', true);
    svc = await startService({
      config: testConfig({ apiKeysFile: keysFile, dataDir: tempDir('convserve-auth-data-'), modelsDir: tempDir(), engineWorkers: 1, engineThreads: 1 }),
      plugins: [jobsPlugin, inferencePlugin(), webPlugin(), metricsPlugin()],
    });
    base = svc.url;
    png = (await testPattern(24, 16)).png;
  });
  after(async () => { await svc?.shutdown(); });

  const as = (who: keyof typeof key | undefined, init: RequestInit = {}): RequestInit =>
    ({ ...init, headers: { ...(init.headers as Record<string, string> | undefined), ...(who ? { Authorization: `Bearer ${key[who]}` } : {}) } });

  async function json(path: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Json }> {
    const res = await fetch(base + path, init);
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  }

  async function submit(who: keyof typeof key, steps = 2): Promise<string> {
    const form = new FormData();
    form.set('image', new Blob([png], { type: 'image/png' }), 'p.png');
    form.set('steps', String(steps));
    const r = await json('/v1/job-kinds/blur-sweep/jobs', as(who, { method: 'POST', body: form }));
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return r.body.id as string;
  }

  async function finished(who: keyof typeof key, id: string): Promise<Json> {
    for (let i = 0; i < 400; i++) {
      const r = await json(`/v1/jobs/${id}`, as(who));
      if (['succeeded', 'failed', 'cancelled'].includes(r.body.status)) return r.body;
      await new Promise((res) => setTimeout(res, 25));
    }
    throw new Error(`job ${id} did not finish`);
  }

  it('the keys file stores only SHA-256 hashes, is private (0600), and the CLI refuses a duplicate id', () => {
    const text = readFileSync(keysFile, 'utf8');
    for (const k of Object.values(key)) {
      assert.equal(text.includes(k), false, 'the key itself is not stored');
      assert.ok(text.includes(createHash('sha256').update(k).digest('hex')), 'its SHA-256 is');
    }
    assert.equal(statSync(keysFile).mode & 0o777, 0o600);
    assert.throws(() => addKey(keysFile, 'alice', false), /already has a key 'alice'/);
    assert.throws(() => addKey(keysFile, 'anonymous', false), /reserved/);
  });

  it('without a key, or with a wrong or malformed one, every /v1 route answers 401 problem+json with WWW-Authenticate: Bearer', async () => {
    const wrong = `${key.alice}x`;
    const cases: [string, RequestInit][] = [
      ['/v1/jobs', {}], ['/v1/kernels', {}], ['/v1/models', {}], ['/v1/info', {}], ['/v1/no-such-route', {}],
      ['/v1/jobs', { headers: { Authorization: `Bearer ${wrong}` } }],
      ['/v1/jobs', { headers: { 'X-API-Key': wrong } }],
      ['/v1/jobs', { headers: { Authorization: `Basic ${Buffer.from(`alice:${key.alice}`).toString('base64')}` } }],
      ['/v1/filter?kernel=edge-3', { method: 'POST', body: png, headers: { 'Content-Type': 'image/png' } }],
      // The `?key=` form is accepted on the event stream only.
      [`/v1/jobs?key=${key.alice}`, {}],
    ];
    for (const [path, init] of cases) {
      const r = await json(path, init);
      assert.equal(r.status, 401, `${path} ${JSON.stringify(init.headers ?? {})}`);
      assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.equal(r.body.type, 'https://convserve.dev/problems/unauthorized');
    }
    // A key that hashes to a listed hash except one digit is not accepted either: comparison is on the whole hash.
    const listed = JSON.parse(readFileSync(keysFile, 'utf8')) as { key_sha256: string }[];
    assert.ok(listed.every((e) => /^[0-9a-f]{64}$/.test(e.key_sha256)));
    assert.equal((await json('/v1/jobs', { headers: { Authorization: `Bearer ${listed[0]!.key_sha256}` } })).status, 401, 'the stored hash is not a key');
  });

  it('a valid key (Bearer or X-API-Key) is accepted; probes, the page and its assets stay open', async () => {
    assert.equal((await json('/v1/kernels', as('alice'))).status, 200);
    assert.equal((await json('/v1/kernels', { headers: { 'X-API-Key': key.bob } })).status, 200);
    for (const path of ['/healthz', '/readyz', '/', '/assets/main.js', '/docs', '/openapi.json']) {
      const res = await fetch(base + path);
      assert.ok([200, 503].includes(res.status), `${path}: ${res.status}`);
      await res.arrayBuffer();
    }
  });

  it('a `use` key gets 403 on admin routes (reload, /metrics) and a reduced /v1/info; an admin key gets them', async () => {
    const reload = await json('/v1/models/reload', as('alice', { method: 'POST' }));
    assert.equal(reload.status, 403);
    assert.equal(reload.body.type, 'https://convserve.dev/problems/forbidden');
    assert.match(reload.body.detail, /alice.*admin/);
    assert.equal((await fetch(`${base}/metrics`, as('alice'))).status, 403);
    assert.equal((await fetch(`${base}/metrics`)).status, 401);
    const metrics = await fetch(`${base}/metrics`, as('ops'));
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /convserve_http_requests_total/);
    assert.equal((await json('/v1/models/reload', as('ops', { method: 'POST' }))).status, 200);
    const info = await json('/v1/info', as('alice'));
    assert.equal(info.status, 200);
    assert.deepEqual(Object.keys(info.body).sort(), ['name', 'version'], 'no runtimes or directories without admin');
  });

  it('every job route shows and acts on the caller\'s own jobs only (404 for another key\'s job); an admin sees all', async () => {
    const a = await submit('alice');
    const b = await submit('bob');
    const aJob = await finished('alice', a);
    await finished('bob', b);
    assert.equal(aJob.status, 'succeeded');

    const list = async (who: keyof typeof key) => ((await json('/v1/jobs?limit=100', as(who))).body.jobs as Json[]).map((j) => j.id);
    assert.ok((await list('alice')).includes(a) && !(await list('alice')).includes(b));
    assert.ok((await list('bob')).includes(b) && !(await list('bob')).includes(a));
    const all = await list('ops');
    assert.ok(all.includes(a) && all.includes(b), 'admin lists every owner\'s jobs');

    const unknown = await json('/v1/jobs/00000000-0000-4000-8000-000000000000', as('bob'));
    for (const [method, path] of [['GET', `/v1/jobs/${a}`], ['GET', `/v1/jobs/${a}/result`], ['GET', `/v1/jobs/${a}/previews/0`], ['GET', `/v1/jobs/${a}/events`], ['DELETE', `/v1/jobs/${a}`]] as const) {
      const r = await json(path, as('bob', { method }));
      assert.equal(r.status, 404, `bob ${method} ${path}`);
      assert.equal(r.body.type, unknown.body.type, 'the same answer as for an unknown job');
      assert.equal(r.body.detail.replace(a, 'ID'), unknown.body.detail.replace('00000000-0000-4000-8000-000000000000', 'ID'), 'nothing reveals that it exists');
    }
    // The owner and the admin reach every route of the job.
    for (const who of ['alice', 'ops'] as const) {
      assert.equal((await json(`/v1/jobs/${a}`, as(who))).body.id, a);
      const result = await fetch(`${base}/v1/jobs/${a}/result`, as(who));
      assert.equal(result.status, 200);
      assert.equal(result.headers.get('content-type'), 'image/png');
      await result.arrayBuffer();
      const preview = await fetch(`${base}/v1/jobs/${a}/previews/0`, as(who));
      assert.equal(preview.status, 200);
      await preview.arrayBuffer();
      const events = await readSse(`${base}/v1/jobs/${a}/events?key=${encodeURIComponent(key[who])}`);
      assert.equal(events.at(-1)?.event, 'done', 'the event stream takes the key as ?key=');
      assert.equal((await json(`/v1/jobs/${a}`, as(who, { method: 'DELETE' }))).status, 409, 'finished: nothing to cancel, but the job is found');
    }
    // Cancelling: bob cannot, the owner can.
    const long = await submit('alice', 2000);
    assert.equal((await json(`/v1/jobs/${long}`, as('bob', { method: 'DELETE' }))).status, 404);
    const cancelled = await json(`/v1/jobs/${long}`, as('alice', { method: 'DELETE' }));
    assert.ok([200, 202].includes(cancelled.status), JSON.stringify(cancelled.body));
    assert.equal((await finished('alice', long)).status, 'cancelled');
  });

  it('a key added to the file while the server runs is accepted within a couple of seconds; a removed one is refused', async () => {
    const carol = addKey(keysFile, 'carol', false);
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      status = (await fetch(`${base}/v1/kernels`, { headers: { Authorization: `Bearer ${carol}` } })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200);
    const entries = (JSON.parse(readFileSync(keysFile, 'utf8')) as { id: string }[]).filter((e) => e.id !== 'carol');
    writeFileSync(keysFile, JSON.stringify(entries));
    for (let i = 0; i < 40 && status !== 401; i++) {
      status = (await fetch(`${base}/v1/kernels`, { headers: { Authorization: `Bearer ${carol}` } })).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 401);
  });
});
