// DeepDream on imported models that are neither VGG19 nor InceptionV3: small tfjs-layers convnets (RGB, and grey
// with a classifier top) converted by the Keras → ONNX converter and written as model folders with
// `rescale:1/255` preprocessing. Through the job API (supertest on the real service) and the core functions.
// Oracles: tfjs tf.valueAndGrad of the same model, ORT itself for the smallest input side, the
// preprocessing's own inverse, the job's own uninterrupted run for checkpoints.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import request from 'supertest';
import type { Chw } from '../src/image/chw.js';
import dreamKind from '../src/jobs/kinds/dream.js';
import type { JobContext } from '../src/jobs/kind.js';
import { kerasToOnnx } from '../src/models/keras/to-onnx.js';
import { ascend, dreamSession, engineTileRunner, resolveDreamLayers } from '../src/ops/dream.js';
import { buildForwardModel, modelStamp, requireModel } from '../src/ops/grad-session.js';
import { convActivationLayers, modelLayers } from '../src/ops/model-layers.js';
import { modelSpace } from '../src/ops/model-space.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { logger } from '../src/util/logger.js';
import { parseParams } from '../src/util/params.js';
import { tempDir, testConfig, testPattern } from './helpers/app.js';
import { decodeRaw, getJson, readSse } from './helpers/jobs.js';
import { tinyConvNet, writeConvertedModel } from './helpers/model-folder.js';
import { SESSION, errors, nchwToNhwc, nhwcToNchw, randomizeWeights, tf, tfReady, toKerasImport, uniform } from './helpers/tfjs-keras.js';

let svc: RunningService<'engine' | 'models' | 'classify' | 'jobs'>;
let rgb: tf.Sequential;
let rgbLayers: string[];

function ctx(): JobContext {
  return { jobId: 't', config: svc.ctx.config, signal: new AbortController().signal, logger, services: svc.ctx.core };
}

async function dreamJob(png: Buffer, params: Record<string, string | number>): Promise<{ status: number; body: any; result?: Buffer }> {
  let req = request(svc.url).post('/v1/dream').attach('image', png, 'in.png');
  for (const [k, v] of Object.entries(params)) req = req.field(k, String(v));
  const res = await req;
  if (res.status !== 202) return { status: res.status, body: res.body };
  await readSse(`${svc.url}/v1/jobs/${res.body.id}/events`);
  const { body: job } = await getJson(`${svc.url}/v1/jobs/${res.body.id}`);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error ?? job));
  const result = await request(svc.url).get(`/v1/jobs/${res.body.id}/result`).buffer(true).parse((r, cb) => {
    const chunks: Buffer[] = [];
    r.on('data', (c: Buffer) => chunks.push(c));
    r.on('end', () => cb(null, Buffer.concat(chunks)));
  });
  return { status: 202, body: job, result: result.body as Buffer };
}

before(async () => {
  await tfReady();
  const modelsDir = tempDir('convserve-anydream-models-');
  rgb = tinyConvNet(tf, 3);
  randomizeWeights(rgb, 11);
  const rgbOnnx = kerasToOnnx(toKerasImport(rgb));
  writeConvertedModel(modelsDir, rgbOnnx, { name: 'tiny-rgb', preprocessing: 'rescale:1/255' });
  // The 4-D layers of the model as the converter lists them: what a missing-layer answer must offer.
  rgbLayers = rgbOnnx.layers.filter((l) => l.className !== 'InputLayer' && l.outputShape.length === 4).map((l) => l.name);
  writeConvertedModel(modelsDir, kerasToOnnx(toKerasImport(rgb)), { name: 'tiny-bare', preprocessing: 'rescale:1/255', withoutLayers: true });
  const grey = tinyConvNet(tf, 1);
  randomizeWeights(grey, 12);
  writeConvertedModel(modelsDir, kerasToOnnx(toKerasImport(grey)), { name: 'tiny-grey', preprocessing: 'rescale:1/255' });
  svc = await startService({
    config: testConfig({ modelsDir, dataDir: tempDir('convserve-anydream-data-'), defaultModel: 'tiny-grey', engineWorkers: 1, engineThreads: 1 }),
    plugins: [inferencePlugin(), jobsPlugin],
  });
  for (let i = 0; i < 600 && !(await fetch(`${svc.url}/readyz`)).ok; i++) await new Promise((r) => setTimeout(r, 100));
});
after(async () => { await svc?.shutdown(); });

describe('DeepDream on any model by layer name', () => {
  it('the dream loss and its input gradient equal tfjs tf.valueAndGrad on the same Keras model', async () => {
    const { engine, registry } = svc.ctx.core;
    const entry = requireModel(registry, 'tiny-rgb');
    const layers = [{ name: 'r1', coeff: 0.7 }, { name: 'c3', coeff: 1.3 }];
    const key = await dreamSession(engine, entry.modelPath, modelStamp(entry), { layers: layers.map((l) => l.name), crop: 2 });
    const [h, w] = [20, 23];
    const tile: Chw = { data: uniform(3 * h * w, 0, 1, 5), c: 3, h, w };
    const ours = await engineTileRunner(engine, key, layers)(tile);

    const sub = tf.model({ inputs: rgb.inputs, outputs: layers.map((l) => rgb.getLayer(l.name).output as tf.SymbolicTensor) });
    const x = tf.tensor(nchwToNhwc(tile.data, [1, 3, h, w]), [1, h, w, 3]);
    const loss = (xx: tf.Tensor) => {
      const acts = sub.apply(xx) as tf.Tensor[];
      return acts.reduce((acc: tf.Tensor, a, k) => {
        const [, ah, aw] = a.shape as number[];
        const crop = a.slice([0, 2, 2, 0], [-1, ah! - 4, aw! - 4, -1]);
        return acc.add(crop.square().sum().div(a.size).mul(layers[k]!.coeff));
      }, tf.scalar(0));
    };
    const { value, grad } = tf.valueAndGrad(loss)(x);
    const refLoss = (await value.data())[0]!;
    const refGrad = nhwcToNchw(Float32Array.from(await grad.data()), [1, h, w, 3]);
    tf.dispose([x, value, grad]);
    assert.ok(Math.abs(ours.loss - refLoss) <= 1e-5 * Math.abs(refLoss), `loss ${ours.loss} vs tfjs ${refLoss}`);
    const e = errors(ours.grad, refGrad);
    assert.ok(e.rel <= 1e-4, `gradient: max relative error ${e.rel} (abs ${e.maxAbs})`);
  });

  it('a job step ascends in the model space: step scaled by the input range (rescale:1/255 → ×½ of keras-io units)', async () => {
    const { engine, registry } = svc.ctx.core;
    const p = parseParams(dreamKind.params(svc.ctx.config), { model: 'tiny-rgb', layers: 'c2', octaves: 1, iterations: 1, step: 0.2, jitter: 0 });
    const { raw } = await testPattern(40, 30);
    const inputs = { image: [{ data: raw, width: 40, height: 30, channels: 3 as const }] };
    const s0 = await dreamKind.init(inputs, p, ctx());
    const entry = requireModel(registry, 'tiny-rgb');
    const key = await dreamSession(engine, entry.modelPath, modelStamp(entry), { layers: ['c2'], crop: 2 });
    const { grad } = await engineTileRunner(engine, key, [{ name: 'c2', coeff: 1 }])(s0.img);
    const expected = s0.img.data.slice();
    ascend(expected, grad, 0.2 * (modelSpace(entry).span / 2));
    assert.equal(modelSpace(entry).span, 1);
    const s1 = await dreamKind.step(s0, { ...ctx(), params: p, step: 0, total: 1 });
    assert.deepEqual(Array.from(s1.img.data), Array.from(expected));
  });

  it('the preprocessing round trip is exact: rescale:1/255 in, ×255 out (RGB and grey)', async () => {
    const { raw } = await testPattern(64, 48);
    for (const name of ['tiny-rgb', 'tiny-grey']) {
      const space = modelSpace(requireModel(svc.ctx.core.registry, name));
      const grey = space.channels === 1 ? await sharp(raw, { raw: { width: 64, height: 48, channels: 3 } }).greyscale().raw().toBuffer() : raw;
      const img = { data: grey, width: 64, height: 48, channels: space.channels };
      const x = space.toModel(img);
      assert.equal(x.c, space.channels);
      // Channel 0 (grey, or red) of pixel k is value/255.
      for (let k = 0; k < 64 * 48; k += 37) assert.equal(x.data[k], Math.fround(grey[k * space.channels]! / 255));
      assert.ok(space.fromModel(x).data.equals(grey), `${name}: fromModel(toModel(img)) = img`);
    }
  });

  it('the smallest input side of a layer is what ONNX Runtime accepts', async () => {
    const entry = requireModel(svc.ctx.core.registry, 'tiny-rgb');
    const side = modelLayers(entry).minSide(['c3']);
    const session = await ort.InferenceSession.create(buildForwardModel(entry.modelPath, () => ['c3']), SESSION);
    const run = (n: number) => session.run({ input: new ort.Tensor('float32', new Float32Array(3 * n * n), [1, 3, n, n]) });
    try {
      await run(side);
      await assert.rejects(run(side - 1));
    } finally {
      await session.release();
    }
  });

  it('POST /v1/dream by layer name on an imported RGB model: 202, a full-size dreamed image; the core function gives the same pixels', async () => {
    const { png, raw } = await testPattern(48, 40);
    const params = { model: 'tiny-rgb', layers: 'c2:1,c3:0.5', octaves: 2, octave_scale: 1.3, iterations: 2, step: 0.1, seed: 3 };
    const { result } = await dreamJob(png, params);
    const out = await decodeRaw(result!);
    assert.deepEqual([out.width, out.height, out.channels], [48, 40, 3]);
    let diff = 0;
    for (let i = 0; i < out.data.length; i++) diff += Math.abs(out.data[i]! - raw[i]!);
    assert.ok(diff / out.data.length > 0.5, `mean |result − input| = ${diff / out.data.length}`);

    const p = parseParams(dreamKind.params(svc.ctx.config), params);
    let s = await dreamKind.init({ image: [{ data: raw, width: 48, height: 40, channels: 3 }] }, p, ctx());
    for (let i = 0; i < 4; i++) s = await dreamKind.step(s, { ...ctx(), params: p, step: i, total: 4 });
    assert.ok((await dreamKind.finish(s, ctx())).data.equals(out.data), 'job API result = core function result');
  });

  it('default layers of a model without mixed4…mixed7: its conv/activation maps from the middle to the end', async () => {
    const ml = modelLayers(requireModel(svc.ctx.core.registry, 'tiny-rgb'));
    const candidates = convActivationLayers(ml).map((l) => l.name);
    assert.ok(!candidates.includes('p1'), 'pools are not candidates');
    const chosen = resolveDreamLayers(ml, undefined);
    assert.ok(chosen.length >= 1 && chosen.every((l) => l.coeff === 1));
    assert.equal(chosen.at(-1)!.name, candidates.at(-1), 'the deepest feature map is included');
    assert.ok(chosen.every((l) => candidates.indexOf(l.name) >= Math.floor((candidates.length - 1) / 2)), JSON.stringify(chosen));
    const { png } = await testPattern(40, 40);
    const { body } = await dreamJob(png, { model: 'tiny-rgb', octaves: 1, iterations: 1 });
    assert.equal(body.status, 'succeeded');
  });

  it('a grey (1-channel) model dreams on the luma and answers a grey image', async () => {
    const { png } = await testPattern(50, 44);
    const { result } = await dreamJob(png, { model: 'tiny-grey', layers: 'c3', octaves: 1, iterations: 2, step: 0.2 });
    const meta = await sharp(result!).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [50, 44, 1]);
  });

  it('checkpoint/resume of a grey dream gives the same image as an uninterrupted run', async () => {
    const p = parseParams(dreamKind.params(svc.ctx.config), { model: 'tiny-grey', layers: 'c2,c3:2', octaves: 2, iterations: 2, seed: 4, jitter: 3 });
    const { raw } = await testPattern(44, 40);
    const inputs = { image: [{ data: raw, width: 44, height: 40, channels: 3 as const }] };
    let a = await dreamKind.init(inputs, p, ctx());
    for (let i = 0; i < 4; i++) a = await dreamKind.step(a, { ...ctx(), params: p, step: i, total: 4 });
    let b = await dreamKind.init(inputs, p, ctx());
    for (let i = 0; i < 3; i++) b = await dreamKind.step(b, { ...ctx(), params: p, step: i, total: 4 });
    const saved = await dreamKind.serialize(b);
    b = await dreamKind.deserialize({ json: JSON.parse(JSON.stringify(saved.json)), buffers: saved.buffers }, p, inputs, ctx());
    b = await dreamKind.step(b, { ...ctx(), params: p, step: 3, total: 4 });
    assert.ok((await dreamKind.finish(a, ctx())).data.equals((await dreamKind.finish(b, ctx())).data));
  });

  it('a layer the model lacks is a 422 before the job exists, listing the layers (manifest, or the graph without one)', async () => {
    const { png } = await testPattern(40, 40);
    const missing = await dreamJob(png, { model: 'tiny-rgb', layers: 'c2:1,nope:2' });
    assert.equal(missing.status, 422);
    assert.equal(missing.body.type, 'https://convserve.dev/problems/unknown-layer');
    assert.match(missing.body.detail, /no layer 'nope'/);
    for (const l of rgbLayers) assert.match(missing.body.detail, new RegExp(`\\b${l}\\b`));
    assert.deepEqual(missing.body.available, rgbLayers);

    const dense = await dreamJob(png, { model: 'tiny-grey', layers: 'd' });
    assert.equal(dense.status, 422);
    assert.match(dense.body.detail, /'d' is a Dense with output shape \(None, 4\), not a 4-D feature map/);

    const bare = await dreamJob(png, { model: 'tiny-bare', layers: 'nope' });
    assert.equal(bare.status, 422);
    // Without a layer list, every 4-D value of the graph is offered: the Keras layers are among them.
    for (const l of rgbLayers) assert.ok(bare.body.available.includes(l), `${l} in ${bare.body.available}`);
    const ok = await dreamJob(png, { model: 'tiny-bare', layers: 'c2', octaves: 1, iterations: 1 });
    assert.equal(ok.body.status, 'succeeded');
  });
});
