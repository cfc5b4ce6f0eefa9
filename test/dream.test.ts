// DeepDream end to end over HTTP: the real service in-process (inference + jobs plugins) on a temp models
// directory holding a synthetic reduced-width (1/8) InceptionV3 with its top, so the same model serves
// /v1/classify and /v1/dream. Oracles: the input image, a second run with the same seed, TF-exact resize
// arithmetic, the job's own step timings.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import dreamKind from '../src/jobs/kinds/dream.js';
import type { JobContext } from '../src/jobs/kind.js';
import { parseParams } from '../src/util/params.js';
import { ProblemError } from '../src/util/problem.js';
import { logger } from '../src/util/logger.js';
import { octaveShapes, rollFor, tiledGradient } from '../src/ops/dream.js';
import { type Chw, resizeBilinear, roll } from '../src/image/chw.js';
import type { RunningService } from '../src/server/service.js';
import { type Ev, decodeRaw, getJson, readSse, startDreamService } from './helpers/jobs.js';
import { pngPattern } from './helpers/pictures.js';

let svc: RunningService<'engine' | 'models' | 'classify' | 'jobs'>;


async function submitDream(png: Buffer, params: Record<string, unknown>): Promise<string> {
  const form = new FormData();
  form.set('image', new Blob([png], { type: 'image/png' }), 'in.png');
  for (const [k, v] of Object.entries(params)) form.set(k, String(v));
  const res = await fetch(`${svc.url}/v1/dream`, { method: 'POST', body: form });
  const body = (await res.json()) as { id: string; detail?: string };
  assert.equal(res.status, 202, JSON.stringify(body));
  return body.id;
}

async function runDream(png: Buffer, params: Record<string, unknown>): Promise<{ events: Ev[]; result: Buffer; job: any }> {
  const id = await submitDream(png, params);
  const events = await readSse(`${svc.url}/v1/jobs/${id}/events`);
  const { body: job } = await getJson(`${svc.url}/v1/jobs/${id}`);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error ?? job));
  const result = Buffer.from(await (await fetch(`${svc.url}/v1/jobs/${id}/result`)).arrayBuffer());
  return { events, result, job };
}

before(async () => { svc = await startDreamService('convserve-dream-'); });
after(async () => { await svc?.shutdown(); });

describe('DeepDream', () => {
  it('resizes exactly like tf.image.resize (bilinear, half-pixel centres): 5×5 → 3×5 row 0 = 0.667·r0 + 0.333·r1', () => {
    const src: Chw = { data: Float32Array.from({ length: 25 }, (_, i) => i), c: 1, h: 5, w: 5 };
    const out = resizeBilinear(src, 3, 5);
    // in = (o + 0.5)·5/3 − 0.5: rows 1/3, 2, 11/3 → row 0 = r0 + (r1 − r0)/3 (TF docs' 0.667/0.333).
    for (let x = 0; x < 5; x++) {
      assert.ok(Math.abs(out.data[x]! - (src.data[x]! * (2 / 3) + src.data[5 + x]! / 3)) < 1e-5);
      assert.ok(Math.abs(out.data[5 + x]! - src.data[10 + x]!) < 1e-5);
    }
    assert.deepEqual(octaveShapes(300, 200, 3, 1.4), [[153, 102], [214, 142], [300, 200]]);
  });

  it('tiled gradient with a roll = the whole-image gradient for a pointwise loss (no seams, every pixel covered)', async () => {
    // A pointwise "network" (loss = Σ x³) has no receptive field, so tiling + rolling must reproduce 3x² exactly.
    const img: Chw = { data: Float32Array.from({ length: 3 * 37 * 53 }, (_, i) => Math.sin(i)), c: 3, h: 37, w: 53 };
    const shift = rollFor(7, 3, img.h, img.w, 'full');
    assert.notDeepEqual(shift, [0, 0]);
    let calls = 0;
    const r = await tiledGradient(img, 16, shift, async (t) => {
      calls++;
      let loss = 0;
      const g = t.data.map((v) => { loss += v ** 3; return 3 * v * v; });
      return { loss, grad: g };
    });
    assert.equal(calls, 3 * 4);
    img.data.forEach((v, i) => assert.ok(Math.abs(r.grad.data[i]! - 3 * v * v) < 1e-5, `pixel ${i}`));
    assert.deepEqual(roll(roll(img, 5, -7), -5, 7).data, img.data);
  });

  it('POST /v1/dream end to end: previews after each octave over SSE, result differs from the input, same seed → same bytes', async () => {
    // 3 octaves at 1.4: the smallest is 110×107, the least at which mixed4…mixed7 keep a map once cropped by 2 px.
    const png = await pngPattern(216, 210);
    const params = { octaves: 3, iterations: 3, seed: 11, step: 0.05 };
    const a = await runDream(png, params);
    const previews = a.events.filter((e) => e.event === 'preview');
    assert.equal(previews.length, 3, `one preview per octave: ${JSON.stringify(previews.map((p) => p.data))}`);
    assert.deepEqual(previews.map((p) => p.data.step), [3, 6, 9]);
    const firstPreview = await decodeRaw(Buffer.from(await (await fetch(`${svc.url}${previews[0]!.data.url}`)).arrayBuffer()));
    assert.deepEqual([firstPreview.width, firstPreview.height], [110, 107]); // int(216/1.96), int(210/1.96)
    const progress = a.events.filter((e) => e.event === 'progress');
    assert.equal(progress.length, 9);
    assert.ok(progress.every((p) => typeof p.data.metrics.loss === 'number' && p.data.step_ms > 0));

    const out = await decodeRaw(a.result);
    const inp = await decodeRaw(png);
    assert.deepEqual([out.width, out.height], [216, 210]);
    let diff = 0;
    for (let i = 0; i < out.data.length; i++) diff += Math.abs(out.data[i]! - inp.data[i]!);
    assert.ok(diff / out.data.length > 0.5, `mean |result − input| = ${diff / out.data.length}`);

    const b = await runDream(png, params);
    assert.ok(a.result.equals(b.result), 'same seed and parameters → identical PNG bytes');
  });

  it('tiling: an image larger than one tile is processed tile by tile (random roll) and gives a full-size result', async () => {
    // Tiles of 115×110 px: each at least the 107 px that mixed4…mixed7 need.
    const png = await pngPattern(230, 220);
    const { events, result } = await runDream(png, { octaves: 1, iterations: 2, tile_size: 160, seed: 2, step: 0.05 });
    const progress = events.filter((e) => e.event === 'progress');
    assert.equal(progress.at(-1)!.data.metrics.tiles, 4, '2×2 tiles of ≤ 160 px');
    const out = await decodeRaw(result);
    const inp = await decodeRaw(png);
    assert.deepEqual([out.width, out.height], [230, 220]);
    let diff = 0;
    for (let i = 0; i < out.data.length; i++) diff += Math.abs(out.data[i]! - inp.data[i]!);
    assert.ok(diff / out.data.length > 0.2, `mean |result − input| = ${diff / out.data.length}`);
  });

  it('checkpoint/resume between steps (mid-octave and across an octave change) gives the same image as an uninterrupted run', async () => {
    const p = parseParams(dreamKind.params(svc.ctx.config), { octaves: 2, iterations: 3, seed: 4, step: 0.05, jitter: 20 });
    const ctx: JobContext = { jobId: 't', config: svc.ctx.config, signal: new AbortController().signal, logger, services: svc.ctx.core };
    const raw = await decodeRaw(await pngPattern(170, 160));
    const inputs = { image: [{ data: raw.data, width: raw.width, height: raw.height, channels: 3 as const }] };
    const total = dreamKind.totalSteps(p);
    let a = await dreamKind.init(inputs, p, ctx);
    for (let i = 0; i < total; i++) a = await dreamKind.step(a, { ...ctx, params: p, step: i, total });
    for (const cut of [2, 3]) {
      let b = await dreamKind.init(inputs, p, ctx);
      for (let i = 0; i < cut; i++) b = await dreamKind.step(b, { ...ctx, params: p, step: i, total });
      const saved = await dreamKind.serialize(b);
      b = await dreamKind.deserialize({ json: JSON.parse(JSON.stringify(saved.json)), buffers: saved.buffers }, p, inputs, ctx);
      for (let i = cut; i < total; i++) b = await dreamKind.step(b, { ...ctx, params: p, step: i, total });
      const ra = await dreamKind.finish(a, ctx);
      const rb = await dreamKind.finish(b, ctx);
      assert.ok(ra.data.equals(rb.data), `resume after step ${cut}`);
    }
  });

  it('a damaged or foreign checkpoint is refused with invalid-checkpoint naming what is wrong', async () => {
    const p = parseParams(dreamKind.params(svc.ctx.config), { octaves: 2, iterations: 2, seed: 1 });
    const ctx: JobContext = { jobId: 't', config: svc.ctx.config, signal: new AbortController().signal, logger, services: svc.ctx.core };
    const raw = await decodeRaw(await pngPattern(170, 160));
    const inputs = { image: [{ data: raw.data, width: raw.width, height: raw.height, channels: 3 as const }] };
    let s = await dreamKind.init(inputs, p, ctx);
    s = await dreamKind.step(s, { ...ctx, params: p, step: 0, total: 4 });
    const saved = await dreamKind.serialize(s);
    const json = JSON.parse(JSON.stringify(saved.json)) as Record<string, unknown>;
    const img = saved.buffers!.img!;
    const refused = (json2: unknown, buffers: Record<string, Buffer>, detail: RegExp) => assert.rejects(
      async () => dreamKind.deserialize({ json: json2, buffers }, p, inputs, ctx),
      (e: unknown) => e instanceof ProblemError && e.slug === 'invalid-checkpoint' && detail.test(e.detail),
    );
    await refused(json, { img: img.subarray(0, img.length - 4) }, /buffer 'img' holds \d+ bytes/);
    await refused(json, {}, /buffer 'img' is missing/);
    await refused({ ...json, octave: 'one' }, { img }, /octave/);
    await refused({ ...json, stopped: undefined }, { img }, /stopped/);
    // The same image bytes declared transposed: the octave's shape for this input gives it away.
    await refused({ ...json, h: json.w, w: json.h }, { img }, /at octave 0, where this job works at/);
    // The untouched checkpoint still resumes.
    await dreamKind.deserialize({ json, buffers: { img } }, p, inputs, ctx);
  });

  it('parameters are validated before the job is accepted', async () => {
    const form = new FormData();
    form.set('image', new Blob([await pngPattern(160, 160)], { type: 'image/png' }), 'in.png');
    form.set('layers', 'mixed4:1,nolayer:2');
    const res = await fetch(`${svc.url}/v1/dream`, { method: 'POST', body: form });
    assert.equal(res.status, 422);
    const body = (await res.json()) as { detail: string; available: string[] };
    assert.match(body.detail, /no layer 'nolayer'/);
    assert.ok(body.available.includes('mixed4'));
  });

  it('classify requests during a running dream job wait at most one job step in the engine queue', async (t) => {
    // max_loss out of reach: every step is a real gradient step (no skipped no-op steps).
    const id = await submitDream(await pngPattern(300, 280), { octaves: 1, iterations: 12, seed: 1, max_loss: 1e20 });
    const events: Ev[] = [];
    const done = readSse(`${svc.url}/v1/jobs/${id}/events`, { until: (ev, all) => { events.push(ev); return ev.event === 'done' && all.length > 0; } });
    // Wait until the job is stepping, then classify while it runs.
    for (let i = 0; i < 600 && !events.some((e) => e.event === 'progress'); i++) await new Promise((r) => setTimeout(r, 20));
    const jpeg = await sharp(await pngPattern(120, 100)).jpeg().toBuffer();
    const queues: number[] = [];
    while (!events.some((e) => e.event === 'done') && queues.length < 6) {
      const form = new FormData();
      form.set('image', new Blob([jpeg], { type: 'image/jpeg' }), 'x.jpg');
      const res = await fetch(`${svc.url}/v1/classify`, { method: 'POST', body: form });
      const body = (await res.json()) as { timing_ms: { queue: number } } & { results?: { timing_ms: { queue: number } }[] };
      assert.equal(res.status, 200, JSON.stringify(body));
      queues.push(body.timing_ms?.queue ?? body.results![0]!.timing_ms.queue);
      await new Promise((r) => setTimeout(r, 15));
    }
    await done;
    const at = events.filter((e) => e.event === 'progress').map((e) => Date.parse(e.data.at));
    const stepMs = at.slice(1).map((t, i) => t - at[i]!);
    const longest = Math.max(...stepMs);
    t.diagnostic(`classify queue ms: ${queues.join(', ')}; job step ms: ${stepMs.join(', ')}`);
    assert.ok(queues.length >= 2, `classified ${queues.length} images during the job`);
    for (const q of queues) assert.ok(q <= longest, `classify queued ${q} ms; the longest job step took ${longest} ms (steps: ${stepMs.join(', ')})`);
  });
});
