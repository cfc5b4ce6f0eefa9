import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runJobLocally } from '../src/jobs/local.js';
import { testConfig, testPattern } from './helpers/app.js';
import { blurNTimes, decodeRaw, getJson, pollJob, readSse, startJobsServer, submitBlur } from './helpers/jobs.js';

describe('job lifecycle', () => {
  it('cancelling a running job stops it within one step; a queued job is cancelled before it starts', async () => {
    const srv = await startJobsServer({ jobConcurrency: 1, blurSweepStepDelayMs: 150 });
    try {
      const { png } = await testPattern(32, 24);
      const a = await submitBlur(srv.url, png, { steps: 200 });
      const b = await submitBlur(srv.url, png, { steps: 3 });
      await pollJob(srv.url, a.body.id, (j) => j.status === 'running' && j.progress.step >= 2);
      const queued = await getJson(`${srv.url}/v1/jobs/${b.body.id}`);
      assert.equal(queued.body.status, 'queued');
      assert.equal(queued.body.queue_position, 1);

      const cb = await getJson(`${srv.url}/v1/jobs/${b.body.id}`, { method: 'DELETE' });
      assert.equal(cb.status, 200);
      assert.equal(cb.body.status, 'cancelled');
      assert.equal(cb.body.started_at, null);

      const stepAtCancel = (await getJson(`${srv.url}/v1/jobs/${a.body.id}`)).body.progress.step;
      const ca = await getJson(`${srv.url}/v1/jobs/${a.body.id}`, { method: 'DELETE' });
      assert.equal(ca.status, 200);
      assert.equal(ca.body.status, 'cancelled');
      assert.ok(ca.body.progress.step <= stepAtCancel + 1, `stopped at ${ca.body.progress.step}, cancel requested at ${stepAtCancel}`);
      assert.ok(ca.body.finished_at);

      const evA = await readSse(`${srv.url}/v1/jobs/${a.body.id}/events`);
      assert.deepEqual(evA.at(-1)!.data.status, 'cancelled');
      const evB = await readSse(`${srv.url}/v1/jobs/${b.body.id}/events`);
      assert.deepEqual(evB.map((e) => e.event === 'status' ? e.data.status : e.event), ['queued', 'done'], 'B never ran');
      assert.equal(evB.at(-1)!.data.status, 'cancelled');
      assert.equal((await getJson(`${srv.url}/v1/jobs/${a.body.id}/result`)).status, 404);
      assert.equal(existsSync(join(srv.dataDir, 'jobs', a.body.id, 'checkpoint.bin')), false);
      // Cancelling again is idempotent; a finished job cannot be cancelled.
      assert.equal((await getJson(`${srv.url}/v1/jobs/${a.body.id}`, { method: 'DELETE' })).status, 200);
      const c = await submitBlur(srv.url, png, { steps: 1 });
      await srv.jobs.waitFor(c.body.id);
      const cc = await getJson(`${srv.url}/v1/jobs/${c.body.id}`, { method: 'DELETE' });
      assert.equal(cc.status, 409);
      assert.equal(cc.body.type, 'https://convserve.dev/problems/job-finished');
    } finally {
      await srv.shutdown();
    }
  });

  it('a full queue answers 429 with Retry-After, before reading the upload', async () => {
    const srv = await startJobsServer({ jobConcurrency: 1, jobQueueLength: 1, blurSweepStepDelayMs: 30 });
    try {
      const { png } = await testPattern(16, 16);
      const a = await submitBlur(srv.url, png, { steps: 100 });
      await pollJob(srv.url, a.body.id, (j) => j.status === 'running' && j.progress.step >= 2);
      const b = await submitBlur(srv.url, png, { steps: 2 });
      assert.equal(b.status, 202);
      const c = await submitBlur(srv.url, png, { steps: 2 });
      assert.equal(c.status, 429);
      assert.equal(c.body.type, 'https://convserve.dev/problems/job-queue-full');
      const retry = Number(c.headers.get('retry-after'));
      assert.ok(Number.isInteger(retry) && retry >= 1, `Retry-After ${c.headers.get('retry-after')}`);
      assert.equal(readdirSync(join(srv.dataDir, 'jobs')).length, 2);
      await getJson(`${srv.url}/v1/jobs/${a.body.id}`, { method: 'DELETE' });
      assert.equal((await srv.jobs.waitFor(b.body.id)).status, 'succeeded');
      assert.equal((await submitBlur(srv.url, png, { steps: 1 })).status, 202, 'accepted again once the queue drained');
    } finally {
      await srv.shutdown();
    }
  });

  it('finished jobs expire after the TTL (records and files); the disk budget evicts the oldest finished first', async () => {
    const srv = await startJobsServer({ jobTtlHours: 0.5 / 3600, blurSweepStepDelayMs: 30 }); // 0.5 s
    try {
      const { png } = await testPattern(24, 24);
      const a = await submitBlur(srv.url, png, { steps: 2 });
      await srv.jobs.waitFor(a.body.id);
      assert.equal((await fetch(`${srv.url}/v1/jobs/${a.body.id}/result`)).status, 200);
      const running = await submitBlur(srv.url, png, { steps: 100 });
      await pollJob(srv.url, running.body.id, (j) => j.status === 'running');
      await new Promise((r) => setTimeout(r, 600));
      await srv.jobs.sweep();
      assert.equal((await getJson(`${srv.url}/v1/jobs/${a.body.id}`)).status, 404);
      assert.equal((await getJson(`${srv.url}/v1/jobs/${a.body.id}/result`)).status, 404);
      assert.equal(existsSync(join(srv.dataDir, 'jobs', a.body.id)), false);
      assert.equal((await getJson(`${srv.url}/v1/jobs/${running.body.id}`)).body.status, 'running', 'unfinished jobs never expire');
      await getJson(`${srv.url}/v1/jobs/${running.body.id}`, { method: 'DELETE' });
    } finally {
      await srv.shutdown();
    }

    const srv2 = await startJobsServer();
    try {
      const { png } = await testPattern(24, 24);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await submitBlur(srv2.url, png, { steps: 2 });
        await srv2.jobs.waitFor(r.body.id);
        ids.push(r.body.id);
        await new Promise((res) => setTimeout(res, 5));
      }
      const size = await srv2.jobs.store.size(ids[2]!);
      // A budget for a bit more than two jobs: the oldest one goes.
      srv2.ctx.config.jobMaxDiskMb = (2.5 * size) / (1024 * 1024);
      await srv2.jobs.sweep();
      assert.equal((await getJson(`${srv2.url}/v1/jobs/${ids[0]}`)).status, 404);
      assert.equal((await getJson(`${srv2.url}/v1/jobs/${ids[1]}`)).status, 200);
      assert.equal((await getJson(`${srv2.url}/v1/jobs/${ids[2]}`)).status, 200);
      assert.equal(existsSync(join(srv2.dataDir, 'jobs', ids[0]!)), false);
    } finally {
      await srv2.shutdown();
    }
  });

  it('a shutdown checkpoints a running job which resumes at the next start', async () => {
    const { raw, png } = await testPattern(30, 20);
    const srv = await startJobsServer({ checkpointEverySteps: 1000, checkpointEveryMs: 1_000_000, blurSweepStepDelayMs: 20 });
    const dataDir = srv.dataDir;
    const sub = await submitBlur(srv.url, png, { steps: 30, preview_every: 0 });
    await pollJob(srv.url, sub.body.id, (j) => j.progress.step >= 4);
    await srv.shutdown();
    const stoppedAt = (await import('node:fs')).readFileSync(join(dataDir, 'jobs', sub.body.id, 'job.json'), 'utf8');
    const rec = JSON.parse(stoppedAt);
    assert.equal(rec.status, 'running', 'left running on disk');
    assert.ok(rec.checkpoint.step >= 4, 'checkpointed at shutdown even though no periodic checkpoint was due');

    const srv2 = await startJobsServer({ dataDir });
    try {
      const done = await srv2.jobs.waitFor(sub.body.id);
      assert.equal(done.status, 'succeeded');
      const evs = await readSse(`${srv2.url}/v1/jobs/${sub.body.id}/events`);
      const resumed = evs.find((e) => e.event === 'resumed')!;
      assert.equal(resumed.data.from_step, rec.checkpoint.step);
      const after = evs.slice(evs.indexOf(resumed)).filter((e) => e.event === 'progress');
      assert.equal(after[0]!.data.step, rec.checkpoint.step + 1);
      const out = await decodeRaw(Buffer.from(await (await fetch(`${srv2.url}/v1/jobs/${sub.body.id}/result`)).arrayBuffer()));
      assert.ok(out.data.equals(await blurNTimes(raw, 30, 20, 1, 30)));
    } finally {
      await srv2.shutdown();
    }
  });

  it('a job over its wall-clock limit fails cleanly with an error', async () => {
    const srv = await startJobsServer({ jobWallClockMs: 150, blurSweepStepDelayMs: 30 });
    try {
      const { png } = await testPattern(16, 16);
      const r = await submitBlur(srv.url, png, { steps: 100 });
      const j = await srv.jobs.waitFor(r.body.id);
      assert.equal(j.status, 'failed');
      assert.equal(j.error!.type, 'job-time-limit');
      assert.match(j.error!.detail, /wall-clock limit of 150 ms/);
      assert.ok(j.progress.step < 100);
    } finally {
      await srv.shutdown();
    }
  });

  it('runJobLocally runs a kind in-process through the same runner', async () => {
    const { raw } = await testPattern(20, 20);
    const progress: number[] = [];
    const previews: number[] = [];
    const out = await runJobLocally('blur-sweep', { image: [{ data: raw, width: 20, height: 20, channels: 3 }] }, { steps: '5', sigma: '0.8', preview_every: '2' }, {
      onProgress: (p) => progress.push(p.step),
      onPreview: (_img, step) => { previews.push(step); },
    });
    assert.deepEqual(progress, [1, 2, 3, 4, 5]);
    assert.deepEqual(previews, [2, 4]);
    assert.ok(out.result.data.equals(await blurNTimes(raw, 20, 20, 0.8, 5)));
    await assert.rejects(runJobLocally('blur-sweep', { image: [] }, {}), /needs an input image/);
    await assert.rejects(runJobLocally('nope', {}, {}), /Unknown job kind 'nope'/);
    const ac = new AbortController();
    const p = runJobLocally('blur-sweep', { image: [{ data: raw, width: 20, height: 20, channels: 3 }] }, { steps: 50 }, { signal: ac.signal, config: testConfig({ blurSweepStepDelayMs: 20 }) });
    setTimeout(() => ac.abort(), 60);
    await assert.rejects(p, { name: 'AbortError' });
  });
});
