// The embedded real model: `content-moderation` = the trained InceptionV3 the nsfwjs package bundles, installed with
// no network through the tfjs path of the Keras importer. Oracle: nsfwjs's own classify() on the same pixels
// (tfjs; the wasm backend, because three InceptionV3 passes on the pure-JS cpu backend cost ≈ 40 s of CPU here).
// Then a short DeepDream job runs on its learned mixed layers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import * as nsfwjs from 'nsfwjs';
import sharp from 'sharp';
import request from 'supertest';
import { CONTENT_MODERATION } from '../src/models/embedded.js';
import { readManifest } from '../src/models/manifest.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { wasmBinariesDir } from '../src/train/backend.js';
import { tempDir, testConfig } from './helpers/app.js';
import { decodeRaw, getJson, pollJob } from './helpers/jobs.js';
import { tf } from './helpers/tfjs-keras.js';

const modelsDir = tempDir('convserve-cm-models-');
const samples = join(import.meta.dirname, '..', 'samples');
let svc: RunningService<'engine' | 'models' | 'classify' | 'jobs'>;
let oracle: nsfwjs.NSFWJS;

before(async () => {
  const installed = CONTENT_MODERATION.install({ modelsDir });
  wasm.setWasmPaths(wasmBinariesDir());
  await tf.setBackend('wasm');
  await tf.ready();
  oracle = await nsfwjs.load('InceptionV3', { size: 299 });
  await installed;
  svc = await startService({
    config: testConfig({ modelsDir, dataDir: tempDir('convserve-cm-data-'), engineWorkers: 1, engineThreads: 2 }),
    plugins: [inferencePlugin(), jobsPlugin],
  });
  for (let i = 0; i < 600 && !(await fetch(`${svc.url}/readyz`)).ok; i++) await new Promise((r) => setTimeout(r, 100));
});
after(async () => { await svc?.shutdown(); oracle?.dispose(); });

describe('content-moderation (nsfwjs InceptionV3)', () => {
  it('installs as a recognised InceptionV3 with real imported weights, nsfwjs preprocessing and labels', async () => {
    const m = readManifest(join(modelsDir, 'content-moderation'));
    assert.equal(m.architecture, 'inception_v3');
    assert.equal(m.weights.provenance, 'imported');
    assert.match(m.weights.source!, /^nsfwjs \d+\.\d+\.\d+ \(MIT/);
    assert.equal(m.preprocessing, 'rescale:1/255');
    assert.deepEqual([m.input.height, m.input.width, m.input.channels], [299, 299, 3]);
    assert.equal(m.outputs, 'probabilities');
    assert.deepEqual(m.source, { format: 'tfjs-layers', keras_version: '2.2.4', file: 'model.min.js' });
    const res = await request(svc.url).get('/v1/models/content-moderation').expect(200);
    const names = new Set(res.body.layers.map((l: { name: string }) => l.name));
    for (let k = 0; k <= 10; k++) assert.ok(names.has(`mixed${k}`), `mixed${k}`);
    assert.deepEqual(res.body.layers.find((l: { name: string }) => l.name === 'mixed10').output_shape, [null, 8, 8, 2048]);
    assert.equal(res.body.weights.untrained, false);
  });

  for (const photo of ['chelsea.jpg', 'coffee.jpg']) {
    it(`classifies ${photo} like nsfwjs's own classify() (≤ 1e-4 per class)`, async () => {
      const { data } = await sharp(readFileSync(join(samples, photo))).removeAlpha().resize(299, 299, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
      const png = await sharp(data, { raw: { width: 299, height: 299, channels: 3 } }).png().toBuffer();
      const res = await request(svc.url).post('/v1/classify?model=content-moderation&resize=squash&top=5').attach('image', png, 'p.png').expect(200);
      const ours = new Map<string, number>(res.body.predictions.map((p: { label: string; probability: number }) => [p.label, p.probability]));
      const pixels = tf.tensor3d(Uint8Array.from(data), [299, 299, 3], 'int32');
      const theirs = await oracle.classify(pixels, 5);
      pixels.dispose();
      assert.equal(theirs.length, 5);
      for (const { className, probability } of theirs) {
        assert.ok(ours.has(className), `${className} in ${[...ours.keys()]}`);
        assert.ok(Math.abs(ours.get(className)! - probability) <= 1e-4, `${photo} ${className}: ${ours.get(className)} vs nsfwjs ${probability}`);
      }
    });
  }

  it('a short DeepDream job runs on its learned mixed layers', async () => {
    // 320×256: mixed4…mixed7 are then wide enough for keras-io's 2-pixel activation crop (at 120×96 they are not,
    // and the loss covers nothing).
    const { data } = await sharp(readFileSync(join(samples, 'coffee.jpg'))).removeAlpha().resize(320, 256, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    const png = await sharp(data, { raw: { width: 320, height: 256, channels: 3 } }).png().toBuffer();
    const form = new FormData();
    form.set('image', new Blob([png], { type: 'image/png' }), 'in.png');
    for (const [k, v] of Object.entries({ model: 'content-moderation', octaves: 1, iterations: 2, step: 0.05, seed: 3 })) form.set(k, String(v));
    const submitted = await fetch(`${svc.url}/v1/dream`, { method: 'POST', body: form });
    const body = (await submitted.json()) as { id: string };
    assert.equal(submitted.status, 202, JSON.stringify(body));
    const job = await pollJob(svc.url, body.id, (j) => ['succeeded', 'failed', 'cancelled'].includes(j.status), 240_000);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error ?? job));
    const { body: view } = await getJson(`${svc.url}/v1/jobs/${body.id}`);
    assert.ok(Number.isFinite(view.progress.metrics.loss), `loss ${view.progress.metrics.loss}`);
    const out = await decodeRaw(Buffer.from(await (await fetch(`${svc.url}/v1/jobs/${body.id}/result`)).arrayBuffer()));
    assert.deepEqual([out.width, out.height], [320, 256]);
    let diff = 0;
    for (let i = 0; i < out.data.length; i++) diff += Math.abs(out.data[i]! - data[i]!);
    assert.ok(diff / out.data.length > 0.5, `mean |result − input| = ${diff / out.data.length}`);
  });
});
