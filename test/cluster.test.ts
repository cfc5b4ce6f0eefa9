// The distributed mode end to end (run `npm run build` first): a real redis-server, one API process
// (`convserve serve` with CONVSERVE_REDIS_URL) and worker processes (`convserve worker`) sharing a temp data
// directory. Jobs spread over the workers; a worker killed with SIGKILL mid-job → its job resumes on another
// worker from its checkpoint; SIGTERM hands a job back; cancel from the API reaches the worker; results equal
// the embedded mode's; an API (in-process) without Redis says so on /readyz and refuses jobs, not filters.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../src/config.js';
import { decodeImage } from '../src/image/io.js';
import { loadBuiltinJobKinds } from '../src/jobs/kind.js';
import { runJobLocally } from '../src/jobs/local.js';
import { tempDir, testPattern } from './helpers/app.js';
import { type Ev, blurNTimes, decodeRaw, getJson, pollJob, readSse, startJobsServer, submitBlur } from './helpers/jobs.js';
import { type RedisServer, type WorkerProcess, freePort, killProcess, startRedis, startWorkerProcess } from './helpers/redis.js';
import { type ServerProcess, startServerProcess } from './helpers/server-process.js';

/**
 * The one way this file makes a job slow enough to act on mid-run: the workers' CONVSERVE_BLUR_SWEEP_STEP_DELAY_MS
 * (an operator setting since the hardening work; no longer a request parameter), so a job's length is its steps.
 */
const STEP_DELAY_MS = 150;
const slowBlur = (steps: number, extra: Record<string, unknown> = {}) => ({ steps, ...extra });

const W = 24, H = 16;

describe('distributed mode: API + workers on Redis (BullMQ)', () => {
  let redis: RedisServer;
  let api: ServerProcess;
  const workers: WorkerProcess[] = [];
  /** A worker started in the background to replace one a test stopped, awaited by the next test. */
  let replacement: Promise<WorkerProcess> | undefined;
  let env: Record<string, string>;
  let pattern: { raw: Buffer; png: Buffer };

  const jobOnDisk = (id: string) => JSON.parse(readFileSync(join(env.CONVSERVE_DATA_DIR!, 'jobs', id, 'job.json'), 'utf8'));
  const result = async (id: string) => decodeRaw(Buffer.from(await (await fetch(`${api.url}/v1/jobs/${id}/result`)).arrayBuffer()));
  const live = () => workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);

  before(async () => {
    redis = await startRedis();
    env = {
      CONVSERVE_REDIS_URL: redis.url,
      CONVSERVE_DATA_DIR: tempDir('convserve-cluster-data-'),
      CONVSERVE_MODELS_DIR: tempDir('convserve-cluster-models-'),
      CONVSERVE_CHECKPOINT_STEPS: '3',
      CONVSERVE_CHECKPOINT_MS: '600000',
      // A dead worker's job is handed on after ~2-3 s instead of BullMQ's default 30-60 s.
      CONVSERVE_WORKER_LOCK_MS: '2000',
      CONVSERVE_WORKER_STALLED_MS: '1000',
      CONVSERVE_ENGINE_THREADS: '1',
      CONVSERVE_BLUR_SWEEP_STEP_DELAY_MS: String(STEP_DELAY_MS),
    };
    pattern = await testPattern(W, H);
    const [a, w1, w2] = await Promise.all([
      startServerProcess(env),
      startWorkerProcess(env, ['--concurrency', '2']),
      startWorkerProcess(env, ['--concurrency', '2']),
    ]);
    api = a;
    workers.push(w1, w2);
  });

  after(async () => {
    if (replacement) workers.push(await replacement);
    await Promise.all([...workers.map(killProcess), api && killProcess(api)]);
    await redis?.stop();
  });

  it('10 jobs spread over both workers; results equal the embedded mode and 10 blurs; status names the worker while it runs', async () => {
    const params = slowBlur(6, { sigma: 1.2, preview_every: 3 });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await submitBlur(api.url, pattern.png, params);
      assert.equal(res.status, 202, JSON.stringify(res.body));
      ids.push(res.body.id);
    }
    const running = await pollJob(api.url, ids[0]!, (j) => j.status === 'running' || j.status === 'succeeded');
    if (running.status === 'running') assert.ok(workers.some((w) => w.pid === running.worker?.pid), `worker shown while running: ${JSON.stringify(running.worker)}`);
    for (const id of ids) await pollJob(api.url, id, (j) => j.status === 'succeeded', 30_000);

    const used = new Set(ids.map((id) => jobOnDisk(id).worker.pid as number));
    assert.deepEqual([...used].sort(), workers.map((w) => w.pid).sort(), 'both workers ran jobs');
    const done = (await getJson(`${api.url}/v1/jobs/${ids[0]}`)).body;
    assert.equal(done.worker, undefined, 'no worker shown once finished');

    await loadBuiltinJobKinds();
    const embedded = await runJobLocally('blur-sweep', { image: [await decodeImage(pattern.png, loadConfig({}))] }, params, { config: loadConfig({}) });
    const oracle = await blurNTimes(pattern.raw, W, H, 1.2, 6);
    assert.ok(embedded.result.data.equals(oracle));
    for (const id of ids) assert.ok((await result(id)).data.equals(embedded.result.data), `job ${id}: the same pixels as the embedded mode`);

    const events = await readSse(`${api.url}/v1/jobs/${ids[9]}/events`);
    assert.deepEqual(events.map((e) => e.id), events.map((_e, i) => i + 1), 'event ids 1, 2, 3… without a gap');
    assert.deepEqual(events.map((e) => e.event).filter((e) => e !== 'progress' && e !== 'preview'), ['status', 'status', 'done']);
  });

  it('a worker killed with SIGKILL mid-job: the job resumes on another worker from its checkpoint, and SSE on the API shows it all', async (t) => {
    const steps = 40;
    const t0 = Date.now();
    const sub = await submitBlur(api.url, pattern.png, slowBlur(steps, { preview_every: 5 }));
    const id = sub.body.id as string;
    let killedAtStep = 0;
    let killedAt = 0;
    const sse = readSse(`${api.url}/v1/jobs/${id}/events`);
    const before = await pollJob(api.url, id, (j) => j.status === 'running' && j.progress.step >= 7 && j.worker, 20_000);
    const victim = workers.find((w) => w.pid === before.worker.pid)!;
    assert.ok(victim, `the job runs on one of our workers (${JSON.stringify(before.worker)})`);
    victim.child.kill('SIGKILL');
    killedAt = Date.now();
    killedAtStep = before.progress.step;
    await victim.exited;
    // Started now (start-up takes seconds): it may be the one that resumes the job, or the surviving worker.
    replacement = startWorkerProcess(env, ['--concurrency', '2']);
    const events: Ev[] = await sse;
    const totalMs = Date.now() - t0;

    assert.deepEqual(events.map((e) => e.id), events.map((_e, i) => i + 1), 'one stream, event ids without a gap across the kill');
    const done = events.at(-1)!;
    assert.equal(done.event, 'done');
    assert.equal(done.data.status, 'succeeded');
    const resumed = events.find((e) => e.event === 'resumed');
    assert.ok(resumed, 'a resumed event');
    const from = resumed.data.from_step as number;
    assert.ok(from > 0 && from <= killedAtStep + 1, `resumed from the checkpoint at ${from} (killed around step ${killedAtStep})`);
    const requeued = events.find((e) => e.event === 'status' && e.data.status === 'queued' && e.data.reason);
    assert.match(String(requeued?.data.reason), /stopped responding/);
    const beforeKill = events.filter((e) => e.event === 'progress' && e.id < resumed.id).map((e) => e.data.step as number);
    const afterKill = events.filter((e) => e.event === 'progress' && e.id > resumed.id).map((e) => e.data.step as number);
    assert.ok(beforeKill.length >= 7);
    assert.deepEqual(afterKill, Array.from({ length: steps - from }, (_v, i) => from + 1 + i), 'progress continues from the checkpoint to the end');

    const rec = jobOnDisk(id);
    assert.notEqual(rec.worker.pid, victim.pid, 'finished by another worker');
    assert.equal(rec.resumes, 1);
    assert.ok((await result(id)).data.equals(await blurNTimes(pattern.raw, W, H, 1, steps)), 'the resumed result equals 40 blurs');
    const job = (await getJson(`${api.url}/v1/jobs/${id}`)).body;
    assert.equal(job.previews.length, steps / 5, 'one preview per 5 steps, none lost or duplicated');
    const resumedAfterMs = Date.parse(String(resumed.data.at ?? '')) - killedAt;
    t.diagnostic(`kill/resume: killed at step ${killedAtStep}, resumed at step ${from} on another worker ${Number.isFinite(resumedAfterMs) ? `${resumedAfterMs} ms after the kill` : ''}, total ${totalMs} ms for ${steps} steps of ${STEP_DELAY_MS} ms`);
    console.log(`[cluster] killed at step ${killedAtStep}, resumed at step ${from}, resumed ${resumedAfterMs} ms after the kill, total ${totalMs} ms`);
  });

  it('SIGTERM: a worker checkpoints its job and hands it back; another worker resumes it; the worker exits 0', async () => {
    workers.push(await replacement!);
    const sub = await submitBlur(api.url, pattern.png, slowBlur(30));
    const id = sub.body.id as string;
    const running = await pollJob(api.url, id, (j) => j.status === 'running' && j.progress.step >= 4 && j.worker, 20_000);
    const leaving = live().find((w) => w.pid === running.worker.pid)!;
    leaving.child.kill('SIGTERM');
    assert.deepEqual(await leaving.exited, { code: 0, signal: null });
    replacement = startWorkerProcess(env, ['--concurrency', '2']);
    const done = await pollJob(api.url, id, (j) => j.status === 'succeeded', 20_000);
    const events = await readSse(`${api.url}/v1/jobs/${id}/events`);
    const handedBack = events.find((e) => e.event === 'status' && e.data.status === 'queued' && e.data.reason);
    assert.match(String(handedBack?.data.reason), /stopped; the job resumes from step/);
    const resumed = events.find((e) => e.event === 'resumed')!;
    assert.ok(resumed.data.from_step >= running.progress.step, `resumed from ${resumed.data.from_step}, at least where it was when SIGTERM came (${running.progress.step})`);
    assert.notEqual(jobOnDisk(id).worker.pid, leaving.pid);
    assert.equal(done.progress.step, 30);
    assert.ok((await result(id)).data.equals(await blurNTimes(pattern.raw, W, H, 1, 30)));
  });

  it('cancel from the API: a queued job at once, running ones on their workers within one step; queue metrics', async () => {
    workers.push(await replacement!);
    replacement = undefined;
    assert.equal(live().length, 2);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await submitBlur(api.url, pattern.png, slowBlur(200))).body.id);
    // Four slots (2 workers × 2): four run, one waits.
    const views = await Promise.all(ids.map((id) => pollJob(api.url, id, (j) => j.status === 'running' || j.queue_position !== undefined)));
    const deadline = Date.now() + 15_000;
    let states: any[] = views;
    while (states.filter((j) => j.status === 'running').length < 4 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      states = await Promise.all(ids.map(async (id) => (await getJson(`${api.url}/v1/jobs/${id}`)).body));
    }
    const queued = states.filter((j) => j.status === 'queued');
    assert.equal(queued.length, 1, JSON.stringify(states.map((j) => j.status)));
    assert.equal(queued[0].queue_position, 1);

    let metrics = '';
    for (const until = Date.now() + 5000; Date.now() < until;) {
      metrics = await (await fetch(`${api.url}/metrics`)).text();
      if (/^convserve_job_queue_depth 1$/m.test(metrics) && /^convserve_jobs_active\{kind="blur-sweep"\} 4$/m.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(metrics, /^convserve_job_queue_depth 1$/m);
    assert.match(metrics, /^convserve_jobs_active\{kind="blur-sweep"\} 4$/m);
    assert.match(metrics, /^convserve_job_queue_oldest_wait_seconds \d/m);

    const q = await getJson(`${api.url}/v1/jobs/${queued[0].id}`, { method: 'DELETE' });
    assert.equal(q.status, 200);
    assert.equal(q.body.status, 'cancelled');
    assert.equal(q.body.started_at, null, 'never started');

    for (const j of states.filter((x) => x.status === 'running')) {
      const stepBefore = (await getJson(`${api.url}/v1/jobs/${j.id}`)).body.progress.step as number;
      const res = await getJson(`${api.url}/v1/jobs/${j.id}`, { method: 'DELETE' });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.status, 'cancelled');
      const events = await readSse(`${api.url}/v1/jobs/${j.id}/events`);
      const done = events.at(-1)!;
      assert.equal(done.data.status, 'cancelled');
      assert.ok(done.data.progress.step <= stepBefore + 1, `stopped at step ${done.data.progress.step}, asked at step ${stepBefore}`);
    }
  });

  it('an API that cannot reach Redis: /readyz 503 naming Redis, job submission 503, filters still work', async (t) => {
    const deadPort = await freePort();
    const lonely = await startJobsServer({ redisUrl: `redis://127.0.0.1:${deadPort}`, dataDir: tempDir('convserve-cluster-lonely-') });
    t.after(() => lonely.shutdown());
    const ready = await getJson(`${lonely.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(ready.body.checks.redis, new RegExp(`Redis at redis://127\\.0\\.0\\.1:${deadPort}/? is unreachable`));
    const sub = await submitBlur(lonely.url, pattern.png, { steps: 2 });
    assert.equal(sub.status, 503);
    assert.equal(sub.body.type?.split('/').at(-1), 'job-queue-unavailable');
    const form = new FormData();
    form.set('image', new Blob([new Uint8Array(pattern.png)], { type: 'image/png' }), 'p.png');
    const filtered = await fetch(`${lonely.url}/v1/filter?kernel=box-blur`, { method: 'POST', body: form });
    assert.equal(filtered.status, 200);
  });
});
