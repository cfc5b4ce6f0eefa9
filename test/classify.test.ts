import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import request from 'supertest';
import { synthesizeModel } from '../src/models/synth.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { tempDir, testConfig } from './helpers/app.js';

/** A deterministic photo-like RGB image (smooth gradients + texture), raw and PNG. */
async function photo(width: number, height: number, seed = 0) {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
    const i = (y * width + x) * 3;
    raw[i] = (128 + 100 * Math.sin((x + seed * 7) / 13)) | 0;
    raw[i + 1] = (128 + 100 * Math.cos((y + seed * 3) / 9)) | 0;
    raw[i + 2] = ((x * y + seed * 31) % 256) | 0;
  }
  return { raw, png: await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer() };
}

/** Independent reference: Keras preprocess_input + the ONNX model run directly in this thread. */
async function referenceProbabilities(modelPath: string, raw: Buffer, size: number, mode: 'caffe' | 'tf'): Promise<Float32Array> {
  const plane = size * size;
  const x = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    const [r, g, b] = [raw[i * 3]!, raw[i * 3 + 1]!, raw[i * 3 + 2]!];
    if (mode === 'caffe') { x[i] = b - 103.939; x[plane + i] = g - 116.779; x[2 * plane + i] = r - 123.68; }
    else { x[i] = r / 127.5 - 1; x[plane + i] = g / 127.5 - 1; x[2 * plane + i] = b / 127.5 - 1; }
  }
  const session = await ort.InferenceSession.create(modelPath, { logSeverityLevel: 3 });
  const out = await session.run({ input: new ort.Tensor('float32', x, [1, 3, size, size]) });
  await session.release();
  return out.probabilities!.data as Float32Array;
}

describe('classification over HTTP (synthetic reduced-width VGG19 and InceptionV3)', () => {
  const modelsDir = tempDir();
  let svc: RunningService<'engine' | 'models' | 'classify'>;
  let emptySvc: RunningService<'engine' | 'models' | 'classify'>;

  before(async () => {
    // Reduced width keeps the suite fast; the full architectures are exercised by the models tests.
    await synthesizeModel('vgg19', { modelsDir, name: 'vgg19', width: 0.125, seed: 3 });
    await synthesizeModel('inception_v3', { modelsDir, name: 'inception_v3', width: 0.125, seed: 4 });
    svc = await startService({ config: testConfig({ modelsDir, batchWaitMs: 30, maxBatch: 8 }), plugins: [inferencePlugin()] });
    emptySvc = await startService({ config: testConfig({ modelsDir: tempDir() }), plugins: [inferencePlugin()] });
    for (const s of [svc, emptySvc]) {
      for (let i = 0; i < 300 && !s.ctx.readiness.status().ready; i++) await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => { await svc?.shutdown(); await emptySvc?.shutdown(); });

  it('installed models are loaded and warmed up (one run each) before /readyz says ready', async () => {
    const engine = svc.ctx.core.engine;
    await request(svc.url).get('/readyz').expect(200);
    assert.equal(engine.stats.runs, 2, 'one warm-up run per model, before any request');
  });

  for (const [model, size, mode] of [['vgg19', 224, 'caffe'], ['inception_v3', 299, 'tf']] as const) {
    it(`${model}: ${mode} preprocessing and top-k match a direct ORT run (squash, image at input size)`, async () => {
      const { raw, png } = await photo(size, size, 1);
      const res = await request(svc.url).post(`/v1/classify?model=${model}&resize=squash&top=5`).attach('image', png, 'p.png').expect(200);
      assert.equal(res.body.model, model);
      assert.equal(res.body.weights.provenance, 'synthetic');
      assert.equal(res.body.weights.untrained, true);
      assert.match(res.body.weights.note, /UNTRAINED/);
      const probs = await referenceProbabilities(join(modelsDir, model, 'model.onnx'), raw, size, mode);
      const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]!).slice(0, 5);
      assert.deepEqual(res.body.predictions.map((p: { index: number }) => p.index), order);
      for (const p of res.body.predictions) {
        assert.ok(Math.abs(p.probability - probs[p.index]!) <= 1e-5 * Math.max(1, probs[p.index]!), `p[${p.index}]`);
        assert.equal(p.label, `class_${p.index}`);
      }
      for (const k of ['decode', 'preprocess', 'queue', 'infer']) assert.equal(typeof res.body.timing_ms[k], 'number');
    });
  }

  it('crop: short side to the input size, then the centre (exact when no scaling is needed)', async () => {
    const { raw, png } = await photo(224, 300, 2);
    const res = await request(svc.url).post('/v1/classify?model=vgg19&resize=crop&top=3').attach('image', png, 'p.png').expect(200);
    const top = (300 - 224) / 2;
    const centre = raw.subarray(top * 224 * 3, (top + 224) * 224 * 3);
    const probs = await referenceProbabilities(join(modelsDir, 'vgg19', 'model.onnx'), Buffer.from(centre), 224, 'caffe');
    const order = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]!).slice(0, 3);
    assert.deepEqual(res.body.predictions.map((p: { index: number }) => p.index), order);
    const squashed = await request(svc.url).post('/v1/classify?model=vgg19&resize=squash&top=3').attach('image', png, 'p.png').expect(200);
    assert.notDeepEqual(squashed.body.predictions.map((p: { probability: number }) => p.probability), res.body.predictions.map((p: { probability: number }) => p.probability));
  });

  it('several images in one request are classified like single ones', async () => {
    const a = await photo(224, 224, 5);
    const b = await photo(224, 224, 6);
    const both = await request(svc.url).post('/v1/classify?model=vgg19&resize=squash&top=2').attach('image', a.png, 'a.png').attach('image', b.png, 'b.png').expect(200);
    assert.equal(both.body.results.length, 2);
    assert.equal(both.body.results[1].filename, 'b.png');
    for (const [i, img] of [a, b].entries()) {
      const single = await request(svc.url).post('/v1/classify?model=vgg19&resize=squash&top=2').attach('image', img.png, 'x.png').expect(200);
      assert.deepEqual(both.body.results[i].predictions.map((p: { index: number }) => p.index), single.body.predictions.map((p: { index: number }) => p.index));
    }
  });

  it('concurrent requests are batched', async () => {
    const { png } = await photo(224, 224, 7);
    const all = await Promise.all(Array.from({ length: 6 }, () => request(svc.url).post('/v1/classify?model=vgg19&top=1').attach('image', png, 'p.png').expect(200)));
    assert.ok(Math.max(...all.map((r) => r.body.batch_size)) > 1, `batch sizes ${all.map((r) => r.body.batch_size)}`);
    assert.equal(new Set(all.map((r) => r.body.predictions[0].index)).size, 1);
  });

  it('/healthz answers while a VGG19 batch is running', async () => {
    const { png } = await photo(400, 300, 8);
    let classifyDone = false;
    const req = request(svc.url).post('/v1/classify?model=vgg19');
    for (let i = 0; i < 8; i++) req.attach('image', png, `p${i}.png`);
    const classify = req.then((r) => { classifyDone = true; return r; });
    await new Promise((r) => setTimeout(r, 60));
    const t = performance.now();
    await request(svc.url).get('/healthz').expect(200);
    const healthMs = performance.now() - t;
    const healthBeforeClassify = !classifyDone;
    assert.equal((await classify).status, 200);
    assert.ok(healthBeforeClassify, `/healthz (${healthMs.toFixed(0)} ms) should answer before the batch finishes`);
  });

  it('top out of range → 400; unknown model → 404; bad resize → 400', async () => {
    const { png } = await photo(50, 40);
    for (const top of ['0', '1001', '2.5', 'x']) {
      const r = await request(svc.url).post(`/v1/classify?model=vgg19&top=${top}`).attach('image', png, 'p.png').expect(400);
      assert.match(r.headers['content-type'] ?? '', /problem\+json/);
      assert.match(r.body.detail, /top/);
    }
    const unknown = await request(svc.url).post('/v1/classify?model=resnet50').attach('image', png, 'p.png').expect(404);
    assert.equal(unknown.body.type, 'https://convserve.dev/problems/unknown-model');
    assert.deepEqual(unknown.body.models.sort(), ['inception_v3', 'vgg19']);
    await request(svc.url).post('/v1/classify?model=vgg19&resize=stretch').attach('image', png, 'p.png').expect(400);
  });

  it('a model that is not installed → 503 with the command that installs it', async () => {
    const { png } = await photo(50, 40);
    const r = await request(emptySvc.url).post('/v1/classify?model=vgg19').attach('image', png, 'p.png').expect(503);
    assert.equal(r.body.type, 'https://convserve.dev/problems/model-not-installed');
    assert.match(r.body.detail, /convserve models fetch vgg19/);
    assert.ok(r.body.install.includes('convserve models synth vgg19'));
    const models = await request(emptySvc.url).get('/v1/models').expect(200);
    const vgg = models.body.models.find((m: { name: string }) => m.name === 'vgg19');
    assert.equal(vgg.status, 'missing');
  });

  it('after an inference worker crash the service keeps classifying on its replacement (no restart, ready)', async () => {
    // (A run already sent to the dying worker fails with 503 engine-worker-crashed: test/engine.test.ts.)
    const { png } = await photo(224, 224, 9);
    const engine = svc.ctx.core.engine;
    const restarts = engine.stats.workerRestarts;
    const replaced = new Promise((r) => engine.once('worker-restart', r));
    engine.injectWorkerCrash(0);
    await replaced;
    assert.equal(engine.stats.workerRestarts, restarts + 1);
    const ok = await request(svc.url).post('/v1/classify?model=vgg19&top=1').attach('image', png, 'p.png').expect(200);
    assert.equal(ok.body.predictions.length, 1);
    await request(svc.url).get('/readyz').expect(200);
  });

  it('a failed background download (auto-fetch) leaves the model missing, with its install commands', async () => {
    const requests: string[] = [];
    const mirror = http.createServer((req, res) => { requests.push(req.url ?? ''); res.statusCode = 404; res.end(); });
    await new Promise<void>((r) => mirror.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}`;
    const s = await startService({ config: testConfig({ modelsDir: tempDir(), autoFetch: true, weightsBaseUrl: base }), plugins: [inferencePlugin()] });
    try {
      for (let i = 0; i < 200 && requests.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(requests.length > 0, 'the service tried the (local) mirror');
      let vgg: { status: string; install?: string[] } | undefined;
      for (let i = 0; i < 100; i++) {
        vgg = (await request(s.url).get('/v1/models').expect(200)).body.models.find((m: { name: string }) => m.name === 'vgg19');
        if (vgg?.status !== 'downloading') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(vgg?.status, 'missing');
      assert.deepEqual(vgg?.install, ['convserve models fetch vgg19', 'convserve models synth vgg19']);
    } finally {
      await s.shutdown();
      mirror.close();
    }
  });

  it('GET /v1/models lists installed models as ready, with untrained weights flagged', async () => {
    const r = await request(svc.url).get('/v1/models').expect(200);
    const vgg = r.body.models.find((m: { name: string }) => m.name === 'vgg19');
    assert.equal(vgg.status, 'ready');
    assert.equal(vgg.weights.untrained, true);
    assert.deepEqual([vgg.input.name, vgg.input.height, vgg.input.width, vgg.input.channels], ['input', 224, 224, 3]);
    assert.equal(vgg.engine.state, 'loaded');
  });
});
