// Fair quotas per API key: the owner round-robin queue (unit: order and positions against a direct simulation;
// service: two keys submitting 20 jobs each are served alternately), the per-key caps on queued and running jobs,
// input pixels per hour, and the interactive token bucket — each answering 429 + Retry-After with a precise detail.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { z } from 'zod';
import type { Config } from '../src/config.js';
import { defineJobKind, registerJobKind } from '../src/jobs/kind.js';
import { OwnerRoundRobinQueue } from '../src/jobs/queue.js';
import { sha256Hex } from '../src/util/api-keys.js';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { TokenBuckets } from '../src/server/security-rate.js';
import { tempDir, testConfig, testPattern } from './helpers/app.js';

type Json = Record<string, any>;

// A job kind whose first step waits for the test to open a gate, and which records the order jobs start in.
const KIND = `gate-${process.pid}`;
const started: string[] = [];
let openGate: () => void = () => undefined;
let gate = new Promise<void>((r) => { openGate = r; });
registerJobKind(defineJobKind<{ steps: number }, number>({
  name: KIND, description: 'Waits for the test, then counts.', inputs: [{ name: 'image', required: false, maxCount: 2 }],
  params: () => z.object({ steps: z.coerce.number().int().min(1).max(10).default(1) }).strict(),
  totalSteps: (p) => p.steps,
  init: (_inputs, _p, ctx) => { started.push(ctx.jobId); return 0; },
  step: async (s) => { await gate; return s + 1; },
  finish: () => ({ data: Buffer.alloc(3), width: 1, height: 1, channels: 3 }),
  serialize: (s) => ({ json: s }), deserialize: (d) => Number(d.json),
}));

const KEYS = { alice: 'key-alice-0123456789', bob: 'key-bob-0123456789', carol: 'key-carol-0123456789' };
const keysJson = JSON.stringify(Object.entries(KEYS).map(([id, key]) => ({ id, key_sha256: sha256Hex(key), scopes: ['use'] })));

async function serve(overrides: Partial<Config>): Promise<RunningService<'jobs'>> {
  return startService({ config: testConfig({ apiKeys: keysJson, dataDir: tempDir('convserve-quota-'), ...overrides }), plugins: [jobsPlugin] });
}

async function post(base: string, who: keyof typeof KEYS, path: string, body?: FormData): Promise<{ status: number; headers: Headers; body: Json }> {
  const res = await fetch(base + path, { method: 'POST', body, headers: { Authorization: `Bearer ${KEYS[who]}` } });
  return { status: res.status, headers: res.headers, body: await res.json() as Json };
}

const get = async (base: string, who: keyof typeof KEYS, path: string) =>
  (await fetch(base + path, { headers: { Authorization: `Bearer ${KEYS[who]}` } })).json() as Promise<Json>;

describe('owner round-robin queue', () => {
  /** The order a rotation serves the owners' FIFOs in (least recently served owner first): the oracle. */
  function simulate(fifos: Map<string, string[]>, lastServed: Map<string, number>): string[] {
    const f = new Map([...fifos].map(([o, ids]) => [o, [...ids]]));
    const last = new Map(lastServed);
    const out: string[] = [];
    for (let tick = 1000; ; tick++) {
      const owners = [...f.keys()].filter((o) => f.get(o)!.length).sort((a, b) => (last.get(a) ?? 0) - (last.get(b) ?? 0));
      if (!owners.length) return out;
      out.push(f.get(owners[0]!)!.shift()!);
      last.set(owners[0]!, tick);
    }
  }

  it('serves owners in rotation, positions match the order it then serves, cancelled jobs leave no gap', () => {
    const q = new OwnerRoundRobinQueue();
    const fifos = new Map<string, string[]>();
    const add = (owner: string, id: string) => { q.add({ id, owner }); fifos.set(owner, [...(fifos.get(owner) ?? []), id]); };
    for (let i = 0; i < 5; i++) add('a', `a${i}`);
    assert.equal(q.next(), 'a0');
    fifos.get('a')!.shift();
    for (let i = 0; i < 3; i++) add('b', `b${i}`);
    for (let i = 0; i < 2; i++) add('c', `c${i}`);
    q.remove('a2');
    fifos.set('a', fifos.get('a')!.filter((x) => x !== 'a2'));
    const expected = simulate(fifos, new Map([['a', 1]]));
    assert.deepEqual(expected.slice(0, 6), ['b0', 'c0', 'a1', 'b1', 'c1', 'a3'], 'a was served last, so b and c come first');
    for (const [i, id] of expected.entries()) assert.equal(q.position(id), i + 1, `position of ${id}`);
    assert.equal(q.length, 8);
    assert.equal(q.lengthOf('a'), 3);
    const served: string[] = [];
    for (let id = q.next(); id !== undefined; id = q.next()) served.push(id);
    assert.deepEqual(served, expected);
    assert.equal(q.position('a1'), undefined);
  });

  it('an owner at its running cap is passed over and keeps its place', () => {
    const q = new OwnerRoundRobinQueue();
    for (const id of ['a0', 'a1']) q.add({ id, owner: 'a' });
    q.add({ id: 'b0', owner: 'b' });
    assert.equal(q.next((o) => o !== 'a'), 'b0');
    assert.equal(q.next((o) => o !== 'a'), undefined);
    assert.equal(q.next(), 'a0');
  });
});

describe('fair quotas per key (service)', () => {
  const servers: RunningService<'jobs'>[] = [];
  let png: Buffer;
  before(async () => { png = (await testPattern(100, 50)).png; });
  after(async () => { openGate(); for (const s of servers) await s.shutdown(); });

  it('two keys submitting 20 jobs each are served alternately', async () => {
    started.length = 0;
    gate = new Promise<void>((r) => { openGate = r; });
    const svc = await serve({ jobConcurrency: 1, jobQueueLength: 100, ownerQueuedJobs: 50 });
    servers.push(svc);
    const owner = new Map<string, string>();
    // alice submits all of hers first, then bob: FIFO would run all of alice's before any of bob's.
    for (const who of ['alice', 'bob'] as const) {
      for (let i = 0; i < 20; i++) {
        const r = await post(svc.url, who, `/v1/job-kinds/${KIND}/jobs`);
        assert.equal(r.status, 202, JSON.stringify(r.body));
        owner.set(r.body.id, who);
      }
    }
    const queued = (await get(svc.url, 'bob', '/v1/jobs?status=queued&limit=100')).jobs as Json[];
    assert.deepEqual(queued.map((j) => j.queue_position).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => 2 * i + 1), 'bob\'s positions interleave with alice\'s');
    openGate();
    const ids = [...owner.keys()];
    for (let i = 0; i < 400 && started.length < 40; i++) await new Promise((r) => setTimeout(r, 25));
    for (const id of ids) await svc.ctx.core.jobs.waitFor(id);
    const order = started.map((id) => owner.get(id));
    assert.equal(order.length, 40);
    assert.deepEqual(order, Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? 'alice' : 'bob')), order.join(' '));
  });

  it('per-key caps: queued jobs, running jobs, input pixels per hour — 429 + Retry-After with the numbers', async () => {
    started.length = 0;
    gate = new Promise<void>((r) => { openGate = r; });
    const pixels = 100 * 50;
    const svc = await serve({ jobConcurrency: 3, ownerRunningJobs: 1, ownerQueuedJobs: 2, ownerJobPixelsPerHour: 3 * pixels });
    servers.push(svc);
    const withImage = () => { const f = new FormData(); f.set('image', new Blob([png], { type: 'image/png' }), 'p.png'); return f; };
    const a: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await post(svc.url, 'alice', `/v1/job-kinds/${KIND}/jobs`, withImage());
      assert.equal(r.status, 202, JSON.stringify(r.body));
      a.push(r.body.id);
    }
    // One running (her cap), two queued (her cap) although two of the three slots are free.
    for (let i = 0; i < 100 && started.length < 1; i++) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(started, [a[0]], 'alice runs one job at a time');
    const full = await post(svc.url, 'alice', `/v1/job-kinds/${KIND}/jobs`);
    assert.equal(full.status, 429);
    assert.equal(full.body.type, 'https://convserve.dev/problems/owner-queue-full');
    assert.match(full.body.detail, /'alice' already has 2 queued jobs.*CONVSERVE_OWNER_QUEUED_JOBS=2/);
    assert.ok(Number(full.headers.get('retry-after')) >= 1);
    // bob is not affected and starts on a free slot at once.
    const b = await post(svc.url, 'bob', `/v1/job-kinds/${KIND}/jobs`, withImage());
    assert.equal(b.status, 202);
    for (let i = 0; i < 100 && started.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(started, [a[0], b.body.id]);
    // Pixels: alice has submitted 3 × 5000 of her 15000 per hour; cancel a queued job to free a queue place.
    await fetch(`${svc.url}/v1/jobs/${a[2]}`, { method: 'DELETE', headers: { Authorization: `Bearer ${KEYS.alice}` } });
    const over = await post(svc.url, 'alice', `/v1/job-kinds/${KIND}/jobs`, withImage());
    assert.equal(over.status, 429);
    assert.equal(over.body.type, 'https://convserve.dev/problems/owner-pixel-quota');
    assert.match(over.body.detail, /'alice' submitted 15000 input pixels in the last hour, its limit \(CONVSERVE_OWNER_JOB_PIXELS_PER_HOUR=15000\)/);
    const retry = Number(over.headers.get('retry-after'));
    assert.ok(retry > 3500 && retry <= 3600, `the oldest submission frees its pixels in about an hour: ${retry}`);
    // bob's hour is his own: 5000 used, a second image fits, a job of more pixels than the whole quota never does.
    assert.equal((await post(svc.url, 'bob', `/v1/job-kinds/${KIND}/jobs`, withImage())).status, 202);
    const huge = new FormData();
    for (let i = 0; i < 2; i++) huge.append('image', new Blob([(await testPattern(200, 50)).png], { type: 'image/png' }), `h${i}.png`);
    const never = await post(svc.url, 'bob', `/v1/job-kinds/${KIND}/jobs`, huge);
    assert.equal(never.status, 429);
    assert.match(never.body.detail, /20000 input pixels, more than the 15000 pixels per hour one key may submit/);
    openGate();
  });

  it('the interactive limit: a token bucket per key shared by classify, filter (and explain), 429 with the wait', async () => {
    const svc = await serve({ ownerRequestBurst: 3, ownerRequestsPerSecond: 0.5 });
    servers.push(svc);
    const filter = () => post(svc.url, 'carol', '/v1/filter?kernel=edge-3', (() => { const f = new FormData(); f.set('image', new Blob([png], { type: 'image/png' }), 'p.png'); return f; })());
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${svc.url}/v1/filter?kernel=edge-3`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png', Authorization: `Bearer ${KEYS.carol}` } });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    }
    const limited = await filter();
    assert.equal(limited.status, 429);
    assert.equal(limited.body.type, 'https://convserve.dev/problems/rate-limited');
    assert.match(limited.body.detail, /'carol'.*3 requests at once, then 0\.5 per second/);
    assert.equal(limited.headers.get('retry-after'), '2', 'one token at 0.5/s takes 2 s');
    // Another key has its own bucket.
    const other = await fetch(`${svc.url}/v1/filter?kernel=edge-3`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png', Authorization: `Bearer ${KEYS.bob}` } });
    assert.equal(other.status, 200);
    await other.arrayBuffer();
  });

  it('token bucket arithmetic: burst, then the refill rate', () => {
    const b = new TokenBuckets(2, 3);
    assert.deepEqual([0, 0, 0].map(() => b.take('x', 1000)), [0, 0, 0]);
    assert.equal(b.take('x', 1000), 0.5, 'empty: the next token in 1/rate s');
    assert.equal(b.take('x', 1250), 0.25);
    assert.equal(b.take('x', 1500), 0, 'refilled');
    assert.equal(b.take('y', 1500), 0, 'buckets are per owner');
  });
});
