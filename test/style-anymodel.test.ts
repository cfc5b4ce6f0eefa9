// Style transfer on imported models that are not VGG19: small tfjs-layers convnets (RGB; grey with a classifier
// top) converted by the Keras → ONNX converter, written as model folders with `rescale:1/255` preprocessing, used
// by layer name (style_layers=, content_layer=). Oracles: the same loss written in tfjs on the same tfjs model
// (value and tf.grad), tfjs activations for the targets, the job's own core functions, luma of the grey result.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import request from 'supertest';
import type { RawImage } from '../src/image/raw.js';
import type { JobContext } from '../src/jobs/kind.js';
import styleKind from '../src/jobs/kinds/style.js';
import { kerasToOnnx } from '../src/models/keras/to-onnx.js';
import { modelStamp, requireModel } from '../src/ops/grad-session.js';
import { convActivationLayers, modelLayers } from '../src/ops/model-layers.js';
import { modelSpace } from '../src/ops/model-space.js';
import { type StyleRecipe, computeTargets, evaluateStyle, perLayerStyleWeight, resolveStyleSpec, styleSessions } from '../src/ops/style.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { logger } from '../src/util/logger.js';
import { parseParams } from '../src/util/params.js';
import { tempDir, testConfig, testPattern } from './helpers/app.js';
import { getJson, readSse } from './helpers/jobs.js';
import { tinyConvNet, writeConvertedModel } from './helpers/model-folder.js';
import { errors, nchwToNhwc, nhwcToNchw, randomizeWeights, tf, tfReady, toKerasImport } from './helpers/tfjs-keras.js';

let svc: RunningService<'engine' | 'models' | 'classify' | 'jobs'>;
const tfModels: Record<string, tf.Sequential> = {};
let rgbLayers: string[];

function ctx(): JobContext {
  return { jobId: 't', config: svc.ctx.config, signal: new AbortController().signal, logger, services: svc.ctx.core };
}

function pattern(w: number, h: number, k: number): RawImage {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const i = (y * w + x) * 3;
    data[i] = (x * k + 40 * Math.sin(y / 5)) & 255;
    data[i + 1] = (y * 3 * k) & 255;
    data[i + 2] = ((x ^ y) * k) & 255;
  }
  return { data, width: w, height: h, channels: 3 };
}

const png = (img: RawImage) => sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } }).png().toBuffer();

async function styleJob(params: Record<string, string | number | boolean>): Promise<{ status: number; body: any; result?: Buffer }> {
  let req = request(svc.url).post('/v1/style').attach('content', await png(pattern(48, 40, 3)), 'c.png').attach('style', await png(pattern(40, 40, 11)), 's.png');
  for (const [k, v] of Object.entries(params)) req = req.field(k, String(v));
  const res = await req;
  if (res.status !== 202) return { status: res.status, body: res.body };
  await readSse(`${svc.url}/v1/jobs/${res.body.id}/events`);
  const { body: job } = await getJson(`${svc.url}/v1/jobs/${res.body.id}`);
  assert.equal(job.status, 'succeeded', JSON.stringify(job.error ?? job));
  const result = Buffer.from(await (await fetch(`${svc.url}/v1/jobs/${res.body.id}/result`)).arrayBuffer());
  return { status: 202, body: job, result };
}

const inputsOf = () => ({ content: [pattern(48, 40, 3)], style: [pattern(40, 40, 11)] });

before(async () => {
  await tfReady();
  const modelsDir = tempDir('convserve-anystyle-models-');
  for (const [name, channels, seed] of [['tiny-rgb', 3, 21], ['tiny-grey', 1, 22]] as const) {
    const m = tinyConvNet(tf, channels);
    randomizeWeights(m, seed);
    tfModels[name] = m;
    const converted = kerasToOnnx(toKerasImport(m));
    writeConvertedModel(modelsDir, converted, { name, preprocessing: 'rescale:1/255' });
    if (channels === 3) rgbLayers = converted.layers.filter((l) => l.className !== 'InputLayer' && l.outputShape.length === 4).map((l) => l.name);
  }
  svc = await startService({
    config: testConfig({ modelsDir, dataDir: tempDir('convserve-anystyle-data-'), defaultModel: 'tiny-grey', engineWorkers: 1, engineThreads: 1 }),
    plugins: [inferencePlugin(), jobsPlugin],
  });
  for (let i = 0; i < 600 && !(await fetch(`${svc.url}/readyz`)).ok; i++) await new Promise((r) => setTimeout(r, 100));
});
after(async () => { await svc?.shutdown(); });

/** G = FᵀF of an NHWC activation (F = [h·w, C]): the Gram matrix Σ_k F[c, k]·F[c', k]. */
function tfGram(a: tf.Tensor): tf.Tensor {
  const c = a.shape[3]!;
  const f = a.reshape([-1, c]);
  return f.transpose().matMul(f);
}

describe('style transfer on any model by layer name', () => {
  for (const [model, recipe] of [['tiny-rgb', 'gatys'], ['tiny-grey', 'keras']] as [string, StyleRecipe][]) {
    it(`${model}, ${recipe} recipe: targets, loss and input gradient equal the same loss written in tfjs (tf.grad)`, async () => {
      const { engine, registry } = svc.ctx.core;
      const entry = requireModel(registry, model);
      const space = modelSpace(entry);
      const spec = resolveStyleSpec(modelLayers(entry), recipe, 'c3', ['r1', 'c2']);
      const keys = await styleSessions(engine, entry.modelPath, modelStamp(entry), spec);
      const [h, w] = [19, 22];
      const contentX = space.toModel(pattern(w, h, 3));
      const styleX = space.toModel(pattern(20, 20, 11));
      const targets = await computeTargets(engine, keys.targets, spec, contentX, [styleX], [1]);
      const x = space.toModel(pattern(w, h, 5));
      const wts = { content: 0.7, style: 3, tv: 0.01 };
      const per = perLayerStyleWeight(spec, wts.style);
      const ev = await evaluateStyle(engine, keys.grad, x.data, h, w, targets, wts, per);

      const tfm = tfModels[model]!;
      const c = space.channels;
      const sub = tf.model({ inputs: tfm.inputs, outputs: ['c3', 'r1', 'c2'].map((n) => tfm.getLayer(n).output as tf.SymbolicTensor) });
      const nhwc = (chw: { data: Float32Array; h: number; w: number }) => tf.tensor(nchwToNhwc(chw.data, [1, c, chw.h, chw.w]), [1, chw.h, chw.w, c]);
      // Targets: content activations and Grams, from tfjs.
      const [contentAct] = sub.apply(nhwc(contentX)) as tf.Tensor[];
      const contentRef = nhwcToNchw(Float32Array.from(await contentAct!.data()), contentAct!.shape as number[]);
      assert.ok(errors(targets.content.data, contentRef).rel < 1e-4, 'content target');
      const styleActs = (sub.apply(nhwc(styleX)) as tf.Tensor[]).slice(1);
      for (const [i, a] of styleActs.entries()) {
        assert.ok(errors(targets.grams[i]!.data, Float32Array.from(await tfGram(a).data())).rel < 1e-4, `gram ${i}`);
      }
      // The loss in tfjs, on the engine's targets.
      const contentT = tf.tensor(nchwToNhwc(targets.content.data, targets.content.dims), contentAct!.shape);
      const gramsT = targets.grams.map((g) => tf.tensor(g.data, g.dims));
      const loss = (xx: tf.Tensor) => {
        const [ca, ...sa] = sub.apply(xx) as tf.Tensor[];
        const content = ca!.sub(contentT).square().sum().mul(wts.content);
        const style = sa.map((a, i) => {
          const ch = a.shape[3]!;
          const m = a.shape[1]! * a.shape[2]!;
          const denom = recipe === 'gatys' ? 4 * ch * ch * m * m : 4 * c * c * (h * w) ** 2;
          return tfGram(a).sub(gramsT[i]!).square().sum().div(denom);
        }).reduce((s, t) => s.add(t)).mul(per);
        const d0 = xx.slice([0, 0, 0, 0], [1, h - 1, w - 1, c]);
        const da = d0.sub(xx.slice([0, 1, 0, 0], [1, h - 1, w - 1, c]));
        const db = d0.sub(xx.slice([0, 0, 1, 0], [1, h - 1, w - 1, c]));
        const tv = da.square().add(db.square()).pow(1.25).sum().mul(wts.tv);
        return content.add(style).add(tv);
      };
      const { value, grad } = tf.valueAndGrad(loss)(nhwc(x));
      const refLoss = (await value.data())[0]!;
      const refGrad = nhwcToNchw(Float32Array.from(await grad.data()), [1, h, w, c]);
      assert.ok(Math.abs(ev.loss - refLoss) <= 1e-4 * Math.abs(refLoss), `loss ${ev.loss} vs tfjs ${refLoss}`);
      const e = errors(ev.grad, refGrad);
      assert.ok(e.rel <= 1e-3, `gradient: max relative error ${e.rel} (abs ${e.maxAbs})`);
    });
  }

  it('POST /v1/style with style_layers= and content_layer=: 202 and the image; the core functions give the same pixels', async () => {
    const params = { model: 'tiny-rgb', style_layers: 'r1,c2', content_layer: 'c3', size: 40, iterations: 3, style_weight: 1, content_weight: 1, optimizer: 'adam' };
    const { result } = await styleJob(params);
    const { data, info } = await sharp(result!).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [48, 40, 3]);
    const p = parseParams(styleKind.params(svc.ctx.config), params);
    let s = await styleKind.init(inputsOf(), p, ctx());
    for (let i = 0; i < 3; i++) s = await styleKind.step(s, { ...ctx(), params: p, step: i, total: 3 });
    const core = await styleKind.finish(s, ctx());
    assert.ok(core.data.equals(data), 'job API result = core function result');
    let diff = 0;
    for (let i = 0; i < data.length; i++) diff += Math.abs(data[i]! - inputsOf().content[0]!.data[i]!);
    assert.ok(diff / data.length > 0.5, `mean |result − content| = ${diff / data.length}`);
  });

  it('defaults on a model without the recipe layers: style layers spread from the first to the last conv/activation map, content deep', async () => {
    const ml = modelLayers(requireModel(svc.ctx.core.registry, 'tiny-rgb'));
    const candidates = convActivationLayers(ml).map((l) => l.name);
    const spec = resolveStyleSpec(ml, 'keras');
    assert.equal(spec.styleLayers[0], candidates[0]);
    assert.equal(spec.styleLayers.at(-1), candidates.at(-1));
    assert.ok(candidates.indexOf(spec.contentLayer) >= (candidates.length - 1) / 2, spec.contentLayer);
    const { body } = await styleJob({ model: 'tiny-rgb', size: 36, iterations: 2 });
    assert.equal(body.status, 'succeeded');
  });

  it('a grey model gives a grey image; preserve_color puts its luma on the content colours', async () => {
    const base = { model: 'tiny-grey', style_layers: 'r1,c2', content_layer: 'c3', size: 40, iterations: 2, optimizer: 'adam' };
    const grey = await styleJob(base);
    const meta = await sharp(grey.result!).metadata();
    assert.deepEqual([meta.width, meta.height, meta.channels], [48, 40, 1]);
    const g = { data: await sharp(grey.result!).extractChannel(0).raw().toBuffer() };
    const kept = await styleJob({ ...base, preserve_color: true });
    const k = await sharp(kept.result!).raw().toBuffer({ resolveWithObject: true });
    assert.equal(k.info.channels, 3);
    let worst = 0;
    for (let i = 0; i < g.data.length; i++) {
      const y = 0.299 * k.data[i * 3]! + 0.587 * k.data[i * 3 + 1]! + 0.114 * k.data[i * 3 + 2]!;
      if (k.data.subarray(i * 3, i * 3 + 3).every((v) => v > 0 && v < 255)) worst = Math.max(worst, Math.abs(y - g.data[i]!));
    }
    assert.ok(worst <= 2, `luma of the colour result vs the grey result: max |Δ| ${worst}`);
  });

  it('checkpoint/resume of a grey style job gives the same image as an uninterrupted run', async () => {
    const p = parseParams(styleKind.params(svc.ctx.config), { model: 'tiny-grey', style_layers: 'c2', content_layer: 'c3', size: 36, optimizer: 'lbfgs', iterations: 4 });
    let a = await styleKind.init(inputsOf(), p, ctx());
    for (let i = 0; i < 4; i++) a = await styleKind.step(a, { ...ctx(), params: p, step: i, total: 4 });
    let b = await styleKind.init(inputsOf(), p, ctx());
    for (let i = 0; i < 2; i++) b = await styleKind.step(b, { ...ctx(), params: p, step: i, total: 4 });
    const saved = await styleKind.serialize(b);
    b = await styleKind.deserialize({ json: JSON.parse(JSON.stringify(saved.json)), buffers: saved.buffers }, p, inputsOf(), ctx());
    for (let i = 2; i < 4; i++) b = await styleKind.step(b, { ...ctx(), params: p, step: i, total: 4 });
    assert.ok((await styleKind.finish(a, ctx())).data.equals((await styleKind.finish(b, ctx())).data));
  });

  it('a missing content_layer or style layer is a 422 before the job exists, listing the layers', async () => {
    const content = await styleJob({ model: 'tiny-rgb', content_layer: 'nope' });
    assert.equal(content.status, 422);
    assert.equal(content.body.type, 'https://convserve.dev/problems/unknown-layer');
    assert.match(content.body.detail, /^content_layer: Model 'tiny-rgb' has no layer 'nope'/);
    for (const l of rgbLayers) assert.match(content.body.detail, new RegExp(`\\b${l}\\b`));
    assert.deepEqual(content.body.available, rgbLayers);
    const style = await styleJob({ model: 'tiny-rgb', style_layers: 'r1,block1_conv1' });
    assert.equal(style.status, 422);
    assert.match(style.body.detail, /^style_layers: .*'block1_conv1'/);
    const dense = await styleJob({ model: 'tiny-grey', content_layer: 'd' });
    assert.equal(dense.status, 422);
    assert.match(dense.body.detail, /'d' is a Dense .* not a 4-D feature map/);
  });
});
