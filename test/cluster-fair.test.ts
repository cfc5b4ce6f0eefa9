// Fairness across owners and replicas in distributed mode, and a Redis restart (run `npm run build` first): a
// real redis-server, two API processes (`convserve serve`) and worker processes (`convserve worker`) on one data
// directory, three API keys. The fair scheduler on Redis serves the owners round-robin whichever replica took a
// job; queue positions and the per-owner queued limit are the same on both replicas; the per-owner running
// limit holds across workers; a job cancelled while waiting never runs. Then Redis is stopped (SIGTERM, AOF on)
// in the middle of a job and started again on its port and directory: /readyz goes 503 and back to 200, and
// every job submitted ends succeeded, the interrupted one with the pixels of an uninterrupted run.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { OwnerRoundRobinQueue } from '../src/jobs/queue.js';
import { ANONYMOUS_OWNER } from '../src/jobs/record.js';
import { redisNames } from '../src/jobs/redis/connection.js';
import { FairScheduler } from '../src/jobs/redis/fair-scheduler.js';
import { JobStore } from '../src/jobs/store.js';
import { logger } from '../src/util/logger.js';
import { Prng } from '../src/util/prng.js';
import { tempDir, testPattern } from './helpers/app.js';
import { blurNTimes, decodeRaw, getJson, pollJob, submitBlur } from './helpers/jobs.js';
import { type Owner, eventually, ownerFetch, ownerKeysJson, pollJobAs, submitBlurAs } from './helpers/owners.js';
import { type RedisServer, type WorkerProcess, killProcess, startRedis, startWorkerProcess } from './helpers/redis.js';
import { type ServerProcess, startServerProcess } from './helpers/server-process.js';

const W = 16, H = 12;
const STEP_DELAY_MS = 50;
/** A job that runs until the test cancels it (50 s of steps). */
const LONG = { steps: 1000, preview_every: 0 };
const SHORT = { steps: 2, preview_every: 0 };

const jobOnDisk = (dataDir: string, id: string) => JSON.parse(readFileSync(join(dataDir, 'jobs', id, 'job.json'), 'utf8'));
const eventsOnDisk = (dataDir: string, id: string): { event: string; data: Record<string, any> }[] =>
  readFileSync(join(dataDir, 'jobs', id, 'events.ndjson'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

describe('fair scheduler scripts against the embedded round-robin queue (the oracle)', () => {
  it('2,000 random submissions, feeds, finishes and cancels: the same jobs fed in the same order, the same queue positions', async () => {
    const redis = await startRedis();
    const client = new Redis(redis.url, { maxRetriesPerRequest: null });
    const names = redisNames('oracle');
    const bull = new Queue('jobs', { connection: client, prefix: names.prefix });
    const LIMIT = 2;
    const fair = new FairScheduler({ redis: client, names: names.fair, ownerRunningJobs: LIMIT, store: new JobStore(tempDir('convserve-fair-oracle-')), bull, logger });
    try {
      const oracle = new OwnerRoundRobinQueue();
      const owners = ['alice', 'bob', 'carol', ANONYMOUS_OWNER];
      const fed = new Map<string, string>();
      const waiting = new Map<string, string>();
      const rng = new Prng(14);
      const pick = <T>(xs: T[]): T => xs[Math.floor(rng.uniform() * xs.length)]!;
      let slots = 0;
      let checkedPositions = 0;
      for (let i = 0; i < 2000; i++) {
        const r = rng.uniform();
        if (r < 0.45) {
          // Now and then a new owner, named so that Redis' tie order (by name) is the reverse of arrival order.
          if (rng.uniform() < 0.08) owners.push(`owner-${100_000 - i}`);
          const job = { id: `job-${i}`, owner: pick(owners) };
          assert.equal(await fair.enqueue(job.id, job.owner), true);
          assert.equal(await fair.enqueue(job.id, job.owner), false, 'enqueue is idempotent');
          oracle.add(job);
          waiting.set(job.id, job.owner);
        } else if (r < 0.6 && waiting.size) {
          const id = pick([...waiting.keys()]);
          assert.equal(await fair.remove(id, waiting.get(id)!), true);
          assert.equal(oracle.remove(id), true);
          waiting.delete(id);
        } else if (r < 0.8 && fed.size) {
          const id = pick([...fed.keys()]);
          await fair.done(id);
          fed.delete(id);
        } else if (r < 0.85) {
          slots = 1 + Math.floor(rng.uniform() * 6);
          await fair.announceSlots('w', slots);
        }
        // What the oracle would start now: while a slot is free, the next owner of its rotation below the limit.
        const expected: string[] = [];
        const running = (o: string) => [...fed.values()].filter((x) => x === o).length;
        while (fed.size < slots) {
          const id = oracle.next((o) => o === ANONYMOUS_OWNER || running(o) < LIMIT);
          if (id === undefined) break;
          fed.set(id, waiting.get(id)!);
          waiting.delete(id);
          expected.push(id);
        }
        assert.deepEqual(await fair.take(), expected, `step ${i}`);
        if (i % 50 === 0) {
          const view = await fair.view();
          const copy = new OwnerRoundRobinQueue();
          for (const { owner, ids } of view.owners) for (const id of ids) copy.add({ id, owner });
          assert.deepEqual([...waiting.keys()].map((id) => copy.position(id)), [...waiting.keys()].map((id) => oracle.position(id)), `positions at step ${i}`);
          assert.deepEqual(new Set(view.fed.map((f) => f.id)), new Set(fed.keys()));
          checkedPositions += waiting.size;
        }
      }
      assert.ok(checkedPositions > 100, `positions compared for ${checkedPositions} waiting jobs`);
    } finally {
      await bull.close();
      client.disconnect();
      await redis.stop();
    }
  });
});

describe('distributed mode: fairness across owners, two API replicas', () => {
  let redis: RedisServer;
  let apis: ServerProcess[] = [];
  const workers: WorkerProcess[] = [];
  let env: Record<string, string>;
  let png: Buffer;

  before(async () => {
    redis = await startRedis();
    env = {
      CONVSERVE_REDIS_URL: redis.url,
      CONVSERVE_DATA_DIR: tempDir('convserve-fair-data-'),
      CONVSERVE_MODELS_DIR: tempDir('convserve-fair-models-'),
      CONVSERVE_API_KEYS: ownerKeysJson,
      CONVSERVE_OWNER_RUNNING_JOBS: '1',
      CONVSERVE_OWNER_QUEUED_JOBS: '6',
      CONVSERVE_BLUR_SWEEP_STEP_DELAY_MS: String(STEP_DELAY_MS),
      CONVSERVE_CHECKPOINT_STEPS: '3',
      CONVSERVE_ENGINE_THREADS: '1',
    };
    png = (await testPattern(W, H)).png;
    apis = await Promise.all([startServerProcess(env), startServerProcess(env)]);
  });

  after(async () => {
    await Promise.all([...workers, ...apis].map(killProcess));
    await redis?.stop();
  });

  const submit = async (who: Owner, api: ServerProcess, params: Record<string, unknown>): Promise<string> => {
    const res = await submitBlurAs(who, api.url, png, params);
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body.id as string;
  };
  const position = async (who: Owner, api: ServerProcess, id: string) => (await ownerFetch(who, `${api.url}/v1/jobs/${id}`)).body.queue_position as number | undefined;

  it('one worker slot: alice queues 6 jobs on replica 1, bob 2 on replica 2 → served alice, bob, alice, bob, then alice; positions agree on both replicas; alice\'s 7th is refused (429) on replica 2', async () => {
    // No worker yet: every job waits, so the order is the scheduler's alone.
    const a: string[] = [];
    for (let i = 0; i < 6; i++) a.push(await submit('alice', apis[0]!, SHORT));
    const refused = await submitBlurAs('alice', apis[1]!.url, png, SHORT);
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.type.split('/').at(-1), 'owner-queue-full');
    assert.equal(refused.body.queued, 6, 'the replica counts the jobs queued on the other one');
    const b = [await submit('bob', apis[1]!, SHORT), await submit('bob', apis[1]!, SHORT)];

    const expected = [a[0]!, b[0]!, a[1]!, b[1]!, a[2]!, a[3]!, a[4]!, a[5]!];
    const ownerOf = (id: string): Owner => (a.includes(id) ? 'alice' : 'bob');
    for (const api of apis) {
      const positions = await eventually(() => Promise.all(expected.map((id) => position(ownerOf(id), api, id))), (ps) => ps.every((p, i) => p === i + 1), 20_000, `queue positions on ${api.url}`);
      assert.deepEqual(positions, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    workers.push(await startWorkerProcess(env, ['--concurrency', '1']));
    const done = [];
    for (const id of expected) done.push(await pollJobAs(ownerOf(id), apis[0]!.url, id, (j) => j.status === 'succeeded', 60_000));
    const byStart = [...done].sort((x, y) => x.started_at.localeCompare(y.started_at));
    assert.deepEqual(byStart.map((j) => j.id), expected, 'round-robin order: bob\'s two jobs start before alice\'s third');
    for (let i = 1; i < byStart.length; i++) assert.ok(byStart[i].started_at >= byStart[i - 1].finished_at, 'one slot: one job at a time');
  });

  it('two workers, CONVSERVE_OWNER_RUNNING_JOBS=1: a free slot is not given to an owner at its running limit; its next job starts when its first ends', async () => {
    workers.push(await startWorkerProcess(env, ['--concurrency', '1']));
    const long = await submit('alice', apis[0]!, LONG);
    await pollJobAs('alice', apis[0]!.url, long, (j) => j.status === 'running', 30_000);
    const next = await submit('alice', apis[1]!, SHORT);
    const bob = await submit('bob', apis[1]!, SHORT);
    await pollJobAs('bob', apis[0]!.url, bob, (j) => j.status === 'succeeded', 30_000);
    // A job submitted after bob's ended is fed to the free slot: alice's waiting job was passed over.
    const carol = await submit('carol', apis[0]!, SHORT);
    await pollJobAs('carol', apis[1]!.url, carol, (j) => j.status === 'succeeded', 30_000);

    for (const api of apis) {
      const waiting = (await ownerFetch('alice', `${api.url}/v1/jobs/${next}`)).body;
      assert.equal(waiting.status, 'queued', 'alice is at her running limit');
      assert.equal(waiting.queue_position, 1);
    }
    assert.equal((await ownerFetch('alice', `${apis[0]!.url}/v1/jobs/${long}`)).body.status, 'running');

    const cancelled = await ownerFetch('alice', `${apis[1]!.url}/v1/jobs/${long}`, { method: 'DELETE' });
    assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
    const ran = await pollJobAs('alice', apis[0]!.url, next, (j) => j.status === 'succeeded', 30_000);
    const first = await pollJobAs('alice', apis[0]!.url, long, (j) => j.status === 'cancelled');
    assert.ok(ran.started_at >= first.finished_at, `alice's second job started (${ran.started_at}) after her first ended (${first.finished_at})`);
  });

  it('a job cancelled while waiting (on the other replica) never runs; its slot was never taken', async () => {
    const longA = await submit('alice', apis[0]!, LONG);
    const longB = await submit('bob', apis[0]!, LONG);
    await pollJobAs('alice', apis[0]!.url, longA, (j) => j.status === 'running', 30_000);
    await pollJobAs('bob', apis[0]!.url, longB, (j) => j.status === 'running', 30_000);
    const waiting = await submit('carol', apis[1]!, SHORT);
    assert.equal(await eventually(() => position('carol', apis[0]!, waiting), (p) => p === 1, 20_000, 'carol waiting'), 1);

    const res = await ownerFetch('carol', `${apis[0]!.url}/v1/jobs/${waiting}`, { method: 'DELETE' });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.status, 'cancelled');
    assert.equal(res.body.started_at, null);

    // Both slots free again: the next job is carol's new one, not the cancelled one.
    for (const [who, id] of [['alice', longA], ['bob', longB]] as const) assert.equal((await ownerFetch(who, `${apis[1]!.url}/v1/jobs/${id}`, { method: 'DELETE' })).status, 200);
    const after = await submit('carol', apis[1]!, SHORT);
    await pollJobAs('carol', apis[0]!.url, after, (j) => j.status === 'succeeded', 30_000);

    const rec = jobOnDisk(env.CONVSERVE_DATA_DIR!, waiting);
    assert.equal(rec.status, 'cancelled');
    assert.equal(rec.started_at, null);
    assert.equal(rec.worker, undefined, 'no worker ever took it');
    const events = eventsOnDisk(env.CONVSERVE_DATA_DIR!, waiting);
    assert.deepEqual(events.map((e) => e.event), ['status', 'done'], 'queued, then cancelled: never running');
    for (const w of workers) assert.ok(!w.logs.join('').includes(waiting), 'no worker log mentions it');
  });
});

describe('distributed mode: Redis restarted mid-job (AOF)', () => {
  let redis: RedisServer;
  let api: ServerProcess;
  let worker: WorkerProcess;
  let env: Record<string, string>;
  let pattern: { raw: Buffer; png: Buffer };

  before(async () => {
    redis = await startRedis({ appendOnly: true });
    env = {
      CONVSERVE_REDIS_URL: redis.url,
      CONVSERVE_DATA_DIR: tempDir('convserve-restart-data-'),
      CONVSERVE_MODELS_DIR: tempDir('convserve-restart-models-'),
      CONVSERVE_BLUR_SWEEP_STEP_DELAY_MS: String(STEP_DELAY_MS),
      CONVSERVE_CHECKPOINT_STEPS: '3',
      CONVSERVE_CHECKPOINT_MS: '600000',
      CONVSERVE_WORKER_LOCK_MS: '2000',
      CONVSERVE_WORKER_STALLED_MS: '1000',
      CONVSERVE_ENGINE_THREADS: '1',
    };
    pattern = await testPattern(W, H);
    [api, worker] = await Promise.all([startServerProcess(env), startWorkerProcess(env, ['--concurrency', '1'])]);
  });

  after(async () => {
    await Promise.all([worker, api].filter(Boolean).map(killProcess));
    await redis?.stop();
  });

  it('Redis stopped (SIGTERM) mid-job and started again: /readyz 503 then 200, the job finishes with the right pixels, no job is lost', async (t) => {
    const steps = 100;
    const ids: string[] = [];
    for (const params of [{ steps, preview_every: 10 }, SHORT, SHORT]) {
      const res = await submitBlur(api.url, pattern.png, params);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      ids.push(res.body.id);
    }
    const running = await pollJob(api.url, ids[0]!, (j) => j.status === 'running' && j.progress.step >= 5, 30_000);

    await redis.stop('SIGTERM');
    const down = await eventually(() => getJson(`${api.url}/readyz`), (r) => r.status === 503, 20_000, '/readyz 503');
    assert.match(down.body.checks.redis, /unreachable/);
    const refused = await submitBlur(api.url, pattern.png, SHORT);
    assert.equal(refused.status, 503);
    assert.equal(refused.body.type.split('/').at(-1), 'job-queue-unavailable');
    // Longer than the lock (2 s): the worker cannot renew it, so the job is handed on through BullMQ's stalled check.
    await new Promise((r) => setTimeout(r, 3000));
    redis = await startRedis({ port: redis.port, dir: redis.dir, appendOnly: true });
    await eventually(() => getJson(`${api.url}/readyz`), (r) => r.status === 200, 30_000, '/readyz 200');

    for (const id of ids) await pollJob(api.url, id, (j) => j.status === 'succeeded', 90_000);
    const result = await decodeRaw(Buffer.from(await (await fetch(`${api.url}/v1/jobs/${ids[0]}/result`)).arrayBuffer()));
    assert.ok(result.data.equals(await blurNTimes(pattern.raw, W, H, 1, steps)), `the job interrupted at step ${running.progress.step} gives ${steps} blurs`);

    const events = eventsOnDisk(env.CONVSERVE_DATA_DIR!, ids[0]!);
    assert.deepEqual(events.map((e: any) => e.id), events.map((_e, i) => i + 1), 'event ids without a gap across the restart');
    const resumed = events.find((e) => e.event === 'resumed');
    t.diagnostic(`Redis stopped at step ${running.progress.step}; ${resumed ? `the job resumed from step ${resumed.data.from_step}` : 'the worker kept its lock and went on'}; ${jobOnDisk(env.CONVSERVE_DATA_DIR!, ids[0]!).resumes} resume(s)`);
  });
});
