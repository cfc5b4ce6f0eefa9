// The job files on disk as the service reads them back: event logs written before events dropped their URLs
// replay byte for byte as new ones, a job.json that is not a valid record is quarantined (not loaded, not
// deleted), a damaged checkpoint (with no good one before it) fails its job with `invalid-checkpoint`; and the JSON of a job keeps the
// key order of its declared schema.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { JobStore } from '../src/jobs/store.js';
import { JobViewSchema } from '../src/server/api-schemas.js';
import { testPattern } from './helpers/app.js';
import { finishedBlurJobs, getJson, pollJob, startJobsServer, submitBlur } from './helpers/jobs.js';

const sseText = async (url: string) => (await fetch(url)).text();

/** Rewrites a log as the service wrote it before: URLs inside preview and done events. */
function withOldUrls(log: string, id: string): string {
  return log.split('\n').filter(Boolean).map((line) => {
    const ev = JSON.parse(line);
    if (ev.event === 'preview') ev.data = { n: ev.data.n, step: ev.data.step, url: `/v1/jobs/${id}/previews/${ev.data.n}`, content_type: ev.data.content_type };
    if (ev.event === 'done' && ev.data.result) ev.data = { ...ev.data, result: { url: `/v1/jobs/${id}/result`, content_type: ev.data.result.content_type } };
    return JSON.stringify(ev) + '\n';
  }).join('');
}

describe('job files on disk', () => {
  it('an event log in the old format (with URLs) replays exactly like the new one; views keep the schema key order', async () => {
    const { png } = await testPattern(20, 16);
    const srv = await startJobsServer();
    const dataDir = srv.dataDir;
    let id: string;
    let stream: string;
    try {
      const sub = await submitBlur(srv.url, png, { steps: 4, preview_every: 2 });
      id = sub.body.id;
      await srv.jobs.waitFor(id);
      stream = await sseText(`${srv.url}/v1/jobs/${id}/events`);
      const preview = stream.split('\n\n').find((b) => b.includes('event: preview'))!;
      const data = JSON.parse(preview.split('\n').find((l) => l.startsWith('data: '))!.slice(6));
      assert.deepEqual(Object.keys(data), ['n', 'step', 'url', 'content_type', 'at']);
      assert.equal(data.url, `/v1/jobs/${id}/previews/0`);
      const done = stream.split('\n\n').find((b) => b.includes('event: done'))!;
      const doneData = JSON.parse(done.split('\n').find((l) => l.startsWith('data: '))!.slice(6));
      assert.deepEqual(doneData.result, { url: `/v1/jobs/${id}/result`, content_type: 'image/png' });

      // Every key of the view, in the order the OpenAPI schema declares them.
      const job = (await getJson(`${srv.url}/v1/jobs/${id}`)).body;
      const declared = Object.keys(JobViewSchema.shape);
      assert.deepEqual(Object.keys(job), declared.filter((k) => k in job));
      assert.deepEqual(Object.keys(job.links), ['self', 'events', 'result', 'cancel']);
      const listed = (await getJson(`${srv.url}/v1/jobs`)).body.jobs[0];
      assert.equal(JSON.stringify(listed), JSON.stringify(job));
    } finally {
      await srv.shutdown();
    }
    const logFile = join(dataDir, 'jobs', id, 'events.ndjson');
    const log = readFileSync(logFile, 'utf8');
    assert.doesNotMatch(log, /"url"/, 'events are stored without URLs');
    writeFileSync(logFile, withOldUrls(log, id));
    assert.match(readFileSync(logFile, 'utf8'), /"url"/);

    const srv2 = await startJobsServer({ dataDir });
    try {
      assert.equal(await sseText(`${srv2.url}/v1/jobs/${id}/events`), stream);
    } finally {
      await srv2.shutdown();
    }
  });

  it('a job.json that is not a valid record is moved to the quarantine folder, not deleted; the other jobs load', async () => {
    const { dataDir, ids } = await finishedBlurJobs(2, 16);
    const bad = join(dataDir, 'jobs', ids[0]!, 'job.json');
    const rec = JSON.parse(readFileSync(bad, 'utf8'));
    writeFileSync(bad, JSON.stringify({ ...rec, status: 'finished', progress: { ...rec.progress, step: -1 } }));

    const { records, unreadable } = await new JobStore(dataDir).loadAll();
    assert.deepEqual(records.map((r) => r.id), [ids[1]]);
    assert.equal(unreadable.length, 1);
    assert.equal(unreadable[0]!.id, ids[0]);
    assert.match(unreadable[0]!.problem, /status: .*progress\.step: /);
    const quarantined = join(dataDir, 'quarantine', ids[0]!, 'job.json');
    assert.equal(unreadable[0]!.quarantinedTo, join(dataDir, 'quarantine', ids[0]!));
    assert.ok(existsSync(quarantined) && !existsSync(bad), 'moved aside, whole');

    const srv2 = await startJobsServer({ dataDir });
    try {
      assert.equal((await getJson(`${srv2.url}/v1/jobs/${ids[0]}`)).status, 404);
      assert.equal((await getJson(`${srv2.url}/v1/jobs/${ids[1]}`)).body.status, 'succeeded');
      await srv2.jobs.sweep(Date.now() + 1000 * 3_600_000);
      assert.ok(existsSync(quarantined), 'the unreadable job is neither loaded nor deleted');
    } finally {
      await srv2.shutdown();
    }
  });

  it('a damaged checkpoint fails its job at the next start with invalid-checkpoint', async () => {
    const W = 18, H = 12;
    const { png } = await testPattern(W, H);
    for (const damage of ['json', 'truncated'] as const) {
      const srv = await startJobsServer({ checkpointEverySteps: 2, blurSweepStepDelayMs: 20 });
      const dataDir = srv.dataDir;
      const sub = await submitBlur(srv.url, png, { steps: 200, preview_every: 0 });
      const id: string = sub.body.id;
      await pollJob(srv.url, id, (j) => j.progress.step >= 3);
      await srv.shutdown();

      const store = new JobStore(dataDir);
      const file = store.path(id, 'checkpoint.bin');
      const ckpt = (await store.readCheckpoint(id))!;
      assert.ok(ckpt.state.buffers?.pixels, 'the job left a checkpoint');
      if (damage === 'json') {
        const json = { ...(ckpt.state.json as Record<string, number>), width: W + 1 };
        await store.writeCheckpoint(id, ckpt.meta, { json, buffers: ckpt.state.buffers });
      } else {
        // Both the last checkpoint and the one before it: with a good previous one the job would resume from it.
        for (const f of [file, store.path(id, 'checkpoint.prev.bin')]) {
          if (!existsSync(f)) continue;
          const bytes = readFileSync(f);
          writeFileSync(f, bytes.subarray(0, bytes.length - 10));
        }
      }

      const srv2 = await startJobsServer({ dataDir });
      try {
        const job = await srv2.jobs.waitFor(id);
        assert.equal(job.status, 'failed', damage);
        assert.equal(job.error?.type, 'invalid-checkpoint', damage);
        assert.match(job.error!.detail, damage === 'json' ? new RegExp(`buffer 'pixels' holds ${W * H * 3} bytes, ${(W + 1) * H * 3} expected`) : /SHA-256 checksum does not match/);
        assert.equal(existsSync(file), false, 'the bad checkpoint is deleted with the failed job');
      } finally {
        await srv2.shutdown();
      }
    }
  });
});
