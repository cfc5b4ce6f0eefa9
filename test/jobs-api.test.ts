import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { testPattern } from './helpers/app.js';
import { type JobsServer, blurNTimes, decodeRaw, getJson, pollJob, readSse, startJobsServer, submitBlur, totalVariation } from './helpers/jobs.js';

describe('job API (blur-sweep)', () => {
  let srv: JobsServer;
  let base: string;
  const W = 40, H = 28;
  let img: { raw: Buffer; png: Buffer };

  before(async () => {
    // A slow job is an operator setting now (step_delay_ms left the public API): 20 ms before every blur step.
    srv = await startJobsServer({ checkpointEverySteps: 2, blurSweepStepDelayMs: 20 });
    base = srv.url;
    img = await testPattern(W, H);
  });
  after(async () => { await srv.shutdown(); });

  it('submit → 202 + Location; SSE shows increasing progress, previews and a final event; the result is the input blurred N times', async () => {
    const steps = 6, sigma = 1.2;
    const sub = await submitBlur(base, img.png, { steps, sigma, preview_every: 2 });
    assert.equal(sub.status, 202);
    assert.equal(sub.headers.get('location'), `/v1/jobs/${sub.body.id}`);
    assert.equal(sub.body.kind, 'blur-sweep');
    assert.ok(['queued', 'running'].includes(sub.body.status));
    assert.equal(sub.body.links.self, `/v1/jobs/${sub.body.id}`);

    const events = await readSse(`${base}/v1/jobs/${sub.body.id}/events`);
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => i + 1), 'event ids are 1, 2, 3… in order');
    const progress = events.filter((e) => e.event === 'progress').map((e) => e.data.step);
    assert.deepEqual(progress, [1, 2, 3, 4, 5, 6]);
    const fractions = events.filter((e) => e.event === 'progress').map((e) => e.data.fraction);
    assert.equal(fractions.at(-1), 1);
    const previews = events.filter((e) => e.event === 'preview');
    assert.deepEqual(previews.map((p) => [p.data.n, p.data.step]), [[0, 2], [1, 4], [2, 6]]);
    assert.deepEqual(events.filter((e) => e.event === 'status').map((e) => e.data.status), ['queued', 'running']);
    const last = events.at(-1)!;
    assert.equal(last.event, 'done');
    assert.equal(last.data.status, 'succeeded');

    const job = (await getJson(`${base}/v1/jobs/${sub.body.id}`)).body;
    assert.equal(job.status, 'succeeded');
    assert.deepEqual(job.params, { steps, sigma, preview_every: 2 });
    assert.equal(job.progress.step, steps);
    assert.ok(job.started_at && job.finished_at && job.created_at <= job.started_at && job.started_at <= job.finished_at);
    assert.deepEqual(job.result, { url: `/v1/jobs/${job.id}/result`, content_type: 'image/png' });
    assert.equal(job.previews.length, 3);

    const res = await fetch(`${base}${job.result.url}`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/png');
    const out = await decodeRaw(Buffer.from(await res.arrayBuffer()));
    assert.deepEqual([out.width, out.height, out.channels], [W, H, 3]);
    const expected = await blurNTimes(img.raw, W, H, sigma, steps);
    assert.ok(out.data.equals(expected), 'result equals sharp.blur applied 6 times');
    assert.ok(totalVariation(out.data, W, H, 3) < 0.8 * totalVariation(img.raw, W, H, 3), 'the result is smoother than the input');

    // Preview 1 was taken after step 4.
    const p1 = await decodeRaw(Buffer.from(await (await fetch(`${base}${job.previews[1]}`)).arrayBuffer()));
    assert.ok(p1.data.equals(await blurNTimes(img.raw, W, H, sigma, 4)));
    assert.equal((await fetch(`${base}/v1/jobs/${job.id}/previews/3`)).status, 404);

    // A finished job's stream replays everything, then ends.
    const again = await readSse(`${base}/v1/jobs/${job.id}/events`);
    assert.deepEqual(again, events);
  });

  it('reconnecting with Last-Event-ID replays exactly the missed events', async () => {
    const sub = await submitBlur(base, img.png, { steps: 12, preview_every: 3 });
    const url = `${base}/v1/jobs/${sub.body.id}/events`;
    // First connection: drop it after the 3rd progress event, mid-run.
    const first = await readSse(url, { until: (_ev, all) => all.filter((e) => e.event === 'progress').length === 3 });
    const lastSeen = first.at(-1)!.id;
    await new Promise((r) => setTimeout(r, 120)); // events happen while disconnected
    const second = await readSse(url, { lastEventId: lastSeen });
    const full = await readSse(url);
    assert.ok(second.length > 0 && second[0]!.id === lastSeen + 1, 'replay starts right after the last seen id');
    assert.deepEqual([...first, ...second], full, 'first + replay = the whole log, no gap, no duplicate');
    assert.equal(full.at(-1)!.event, 'done');
    // Last-Event-ID at the end: nothing more, the stream closes.
    assert.deepEqual(await readSse(url, { lastEventId: full.at(-1)!.id }), []);
    // Mid-log replay on a finished job too.
    assert.deepEqual(await readSse(url, { lastEventId: 5 }), full.slice(5));
  });

  it('/healthz answers while a job is mid-run (the runner yields between steps)', async () => {
    const big = await testPattern(256, 256);
    const sub = await submitBlur(base, big.png, { steps: 1500, sigma: 2, preview_every: 0 });
    await pollJob(base, sub.body.id, (j) => j.status === 'running' && j.progress.step >= 1);
    const before = (await getJson(`${base}/v1/jobs/${sub.body.id}`)).body.progress.step;
    for (let i = 0; i < 8; i++) {
      const h = await getJson(`${base}/healthz`);
      assert.equal(h.status, 200);
      assert.equal(h.body.status, 'ok');
    }
    const mid = (await getJson(`${base}/v1/jobs/${sub.body.id}`)).body;
    assert.equal(mid.status, 'running', 'all health checks were answered while the job was still running');
    assert.ok(mid.progress.step >= before);
    const c = await getJson(`${base}/v1/jobs/${sub.body.id}`, { method: 'DELETE' });
    assert.equal(c.body.status, 'cancelled');
  });

  it('invalid parameters → 400 naming the parameter, before anything is stored', async () => {
    const { readdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    const beforeDirs = readdirSync(join(srv.dataDir, 'jobs')).sort();
    const cases: [Record<string, unknown>, string][] = [
      [{ steps: 0 }, 'steps'],
      [{ steps: 1_000_000 }, 'steps'],
      [{ steps: 'many' }, 'steps'],
      [{ sigma: 0 }, 'sigma'],
      [{ stepz: 3 }, 'stepz'],
      // No longer a request parameter (a caller could hold a job slot with sleeps): an unknown field now.
      [{ step_delay_ms: 10 }, 'step_delay_ms'],
    ];
    for (const [params, name] of cases) {
      const r = await submitBlur(base, img.png, params);
      assert.equal(r.status, 400, JSON.stringify(params));
      assert.equal(r.body.type, 'https://convserve.dev/problems/invalid-parameter');
      if (name in params && !['stepz', 'step_delay_ms'].includes(name)) assert.ok(r.body.errors.some((e: { parameter: string }) => e.parameter === name), JSON.stringify(r.body));
      else assert.match(r.body.detail, new RegExp(name));
    }
    // JSON params field
    const form = new FormData();
    form.set('image', new Blob([img.png], { type: 'image/png' }), 'in.png');
    form.set('params', JSON.stringify({ steps: 2, sigma: 99 }));
    const r = await getJson(`${base}/v1/jobs/blur-sweep`, { method: 'POST', body: form });
    assert.equal(r.status, 400);
    assert.equal(r.body.errors[0].parameter, 'sigma');
    // Missing image, not an image
    const noImg = new FormData();
    noImg.set('steps', '2');
    assert.equal((await getJson(`${base}/v1/jobs/blur-sweep`, { method: 'POST', body: noImg })).status, 400);
    const bad = await getJson(`${base}/v1/jobs/blur-sweep`, { method: 'POST', body: Buffer.from('not an image'), headers: { 'Content-Type': 'image/png' } });
    assert.equal(bad.status, 422);
    assert.deepEqual(readdirSync(join(srv.dataDir, 'jobs')).sort(), beforeDirs, 'nothing was written');
  });

  it('a raw image body with query parameters, and a JSON params field, are accepted', async () => {
    const r = await getJson(`${base}/v1/jobs/blur-sweep?steps=2`, { method: 'POST', body: img.png, headers: { 'Content-Type': 'image/png' } });
    assert.equal(r.status, 202);
    const form = new FormData();
    form.set('image', new Blob([img.png], { type: 'image/png' }), 'in.png');
    form.set('params', JSON.stringify({ steps: 3, sigma: 0.5 }));
    const r2 = await getJson(`${base}/v1/jobs/blur-sweep`, { method: 'POST', body: form });
    assert.equal(r2.status, 202);
    const j1 = await srv.jobs.waitFor(r.body.id);
    const j2 = await srv.jobs.waitFor(r2.body.id);
    assert.deepEqual([j1.status, j1.progress.total], ['succeeded', 2]);
    assert.deepEqual([j2.status, (j2.params as { sigma: number }).sigma, j2.progress.total], ['succeeded', 0.5, 3]);
  });

  it('unknown job → 404; unknown kind → 404 listing the known kinds; /v1/dream and /v1/style are aliases', async () => {
    const r = await getJson(`${base}/v1/jobs/00000000-0000-4000-8000-000000000000`);
    assert.equal(r.status, 404);
    assert.equal(r.body.type, 'https://convserve.dev/problems/no-such-job');
    assert.equal((await getJson(`${base}/v1/jobs/nope/result`)).status, 404);
    assert.equal((await getJson(`${base}/v1/jobs/nope/events`)).status, 404);
    assert.equal((await getJson(`${base}/v1/jobs/nope`, { method: 'DELETE' })).status, 404);
    // The aliases reach their kinds: parameters are validated before anything is queued.
    for (const path of ['/v1/dream', '/v1/style']) {
      const v = await getJson(`${base}${path}?iterations=-1`, { method: 'POST', body: img.png, headers: { 'Content-Type': 'image/png' } });
      assert.equal(v.status, 400, path);
    }
    for (const path of ['/v1/jobs/frobnicate']) {
      const k = await getJson(`${base}${path}`, { method: 'POST', body: img.png, headers: { 'Content-Type': 'image/png' } });
      assert.equal(k.status, 404, path);
      assert.equal(k.body.type, 'https://convserve.dev/problems/unknown-job-kind');
      assert.ok(k.body.known_kinds.includes('blur-sweep'));
      assert.match(k.body.detail, /blur-sweep/);
    }
    const kinds = await getJson(`${base}/v1/job-kinds`);
    assert.ok(kinds.body.kinds.some((k: { name: string }) => k.name === 'blur-sweep'));
  });

  it('GET /v1/jobs lists recent jobs, filtered by status and kind, newest first', async () => {
    const all = (await getJson(`${base}/v1/jobs?limit=100`)).body.jobs;
    assert.ok(all.length >= 3);
    for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].created_at >= all[i].created_at);
    const ok = (await getJson(`${base}/v1/jobs?status=succeeded&kind=blur-sweep&limit=2`)).body.jobs;
    assert.equal(ok.length, 2);
    assert.ok(ok.every((j: { status: string }) => j.status === 'succeeded'));
    assert.equal((await getJson(`${base}/v1/jobs?kind=frobnicate`)).body.jobs.length, 0);
    const bad = await getJson(`${base}/v1/jobs?status=done`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.errors[0].parameter, 'status');
  });
});
