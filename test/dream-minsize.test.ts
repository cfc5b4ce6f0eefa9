// DeepDream's smallest picture (POST /v1/dream on the real service, synthetic reduced-width InceptionV3): keras-io
// crops 2 px from each side of every activation, so a map at most 4 px wide adds nothing to the loss — a picture
// whose smallest octave gives the dream layers such maps used to be accepted and left unchanged. It is refused at
// submission with a 422 naming the minimum; a picture at exactly the minimum dreams. Oracles: ONNX Runtime's own
// output shapes of the layers (for the minimum side), keras-io's octave sizes int(side / scale^i).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { KERAS_DREAM_LAYERS } from '../src/ops/dream.js';
import { buildForwardModel, requireModel } from '../src/ops/grad-session.js';
import type { RunningService } from '../src/server/service.js';
import { type Ev, decodeRaw, getJson, readSse, startDreamService } from './helpers/jobs.js';
import { pngPattern } from './helpers/pictures.js';

let svc: RunningService<'engine' | 'models' | 'classify' | 'jobs'>;
const LAYERS = KERAS_DREAM_LAYERS.map((l) => l.name);


async function submit(png: Buffer, params: Record<string, unknown>): Promise<{ status: number; type: string; body: any }> {
  const form = new FormData();
  form.set('image', new Blob([png], { type: 'image/png' }), 'in.png');
  for (const [k, v] of Object.entries(params)) form.set(k, String(v));
  const res = await fetch(`${svc.url}/v1/dream`, { method: 'POST', body: form });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.json() };
}

/** The smallest side of the dream layers' maps ONNX Runtime gives for an n×n input (0: too small for the network). */
async function ortMapSide(n: number): Promise<number> {
  const entry = requireModel(svc.ctx.core.registry, 'inception_v3');
  const session = await ort.InferenceSession.create(buildForwardModel(entry.modelPath, () => LAYERS), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  try {
    const out = await session.run({ input: new ort.Tensor('float32', new Float32Array(3 * n * n), [1, 3, n, n]) }, LAYERS);
    return Math.min(...LAYERS.flatMap((l) => [Number(out[l]!.dims[2]), Number(out[l]!.dims[3])]));
  } catch {
    return 0;
  } finally {
    await session.release();
  }
}

/** keras-io's octave sizes: the shortest side whose smallest octave int(side / scale^(octaves−1)) is ≥ min. */
function kerasMinImageSide(min: number, octaves: number, scale: number): number {
  let side = min;
  while (Math.trunc(side / scale ** (octaves - 1)) < min) side++;
  return side;
}

async function dream(png: Buffer, params: Record<string, unknown>): Promise<{ events: Ev[]; result: Buffer }> {
  const sub = await submit(png, params);
  assert.equal(sub.status, 202, JSON.stringify(sub.body));
  const events = await readSse(`${svc.url}/v1/jobs/${sub.body.id}/events`);
  const { body: job } = await getJson(`${svc.url}/v1/jobs/${sub.body.id}`);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error ?? job));
  return { events, result: Buffer.from(await (await fetch(`${svc.url}/v1/jobs/${sub.body.id}/result`)).arrayBuffer()) };
}

before(async () => { svc = await startDreamService('convserve-dream-min-'); });
after(async () => { await svc?.shutdown(); });

describe('DeepDream minimum picture size', () => {
  let minSide = 0;
  before(async () => {
    const r = await submit(await pngPattern(120, 96), { octaves: 1, iterations: 1 });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    minSide = r.body.min_side;
  });

  it('the minimum side is where ONNX Runtime starts giving every dream layer a map wider than the 2 + 2 px crop', async () => {
    // Keras' own minimum of InceptionV3 is 75; mixed4…mixed7 are 3×3 there, empty once cropped.
    assert.ok(minSide > 75, `min_side ${minSide}`);
    assert.ok((await ortMapSide(minSide)) >= 5, `at ${minSide} px every map is at least 5 px`);
    assert.ok((await ortMapSide(minSide - 1)) < 5, `at ${minSide - 1} px a map is narrower than 5 px`);
  });

  it('a 120×96 picture is refused at submission with a 422 naming the minimum for the layers and octaves', async () => {
    const png = await pngPattern(120, 96);
    for (const octaves of [1, 3]) {
      const r = await submit(png, { octaves, octave_scale: 1.4, iterations: 2 });
      assert.equal(r.status, 422, JSON.stringify(r.body));
      assert.match(r.type, /application\/problem\+json/);
      assert.match(r.body.type, /image-too-small/);
      const need = kerasMinImageSide(minSide, octaves, 1.4);
      assert.equal(r.body.min_side, minSide);
      assert.equal(r.body.min_image_side, need);
      assert.deepEqual(r.body.layers, LAYERS);
      assert.match(r.body.detail, new RegExp(`${minSide}×${minSide}`));
      assert.match(r.body.detail, new RegExp(`at least ${need} px`));
      assert.match(r.body.detail, /mixed4, mixed5, mixed6, mixed7/);
    }
  });

  it('a tile_size that would cut an octave into tiles narrower than the minimum is a 422 naming the tile size that works', async () => {
    // 170 px in tiles of at most 160: two tiles of 85 px, under the minimum.
    const png = await pngPattern(170, 170);
    const r = await submit(png, { octaves: 1, iterations: 1, tile_size: 160 });
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.match(r.type, /application\/problem\+json/);
    assert.match(r.body.type, /tile-too-small/);
    assert.equal(r.body.min_side, minSide);
    assert.match(r.body.detail, /85 px/);
    const ok = await submit(png, { octaves: 1, iterations: 1, tile_size: r.body.min_tile_size });
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    await readSse(`${svc.url}/v1/jobs/${ok.body.id}/events`);
  });

  it('at exactly the minimum the picture dreams (every octave has a loss and the image changes); one pixel less is a 422', async () => {
    for (const octaves of [1, 2]) {
      const side = kerasMinImageSide(minSide, octaves, 1.4);
      const params = { octaves, octave_scale: 1.4, iterations: 2, step: 0.05, seed: 1 };
      const under = await submit(await pngPattern(side + 13, side - 1), params);
      assert.equal(under.status, 422, `short side ${side - 1} with ${octaves} octave(s): ${JSON.stringify(under.body)}`);
      const png = await pngPattern(side + 13, side);
      const { events, result } = await dream(png, params);
      const losses = events.filter((e) => e.event === 'progress').map((e) => ({ octave: e.data.metrics.octave as number, loss: e.data.metrics.loss as number }));
      assert.equal(losses.length, octaves * 2);
      for (let o = 1; o <= octaves; o++) {
        assert.ok(losses.some((l) => l.octave === o && l.loss > 0), `octave ${o} of ${octaves} has a non-zero loss: ${JSON.stringify(losses)}`);
      }
      const before = await decodeRaw(png);
      const after = await decodeRaw(result);
      assert.deepEqual([after.width, after.height], [side + 13, side]);
      let changed = 0;
      for (let i = 0; i < before.data.length; i++) if (Math.abs(before.data[i]! - after.data[i]!) > 2) changed++;
      assert.ok(changed > before.data.length / 10, `the dream changed ${changed} of ${before.data.length} values`);
    }
  });
});
