// The training loop (src/train/fit.ts) through its seam (src/train/trainable.ts) with a second, framework-free backend: softmax
// regression by plain gradient descent in Float64 JS. Checks the loop's contract on real learning — every example
// once per epoch in batches, the best epoch's weights restored, early stopping after `patience` epochs without a
// better one — plus the option rules (src/train/options.ts) and each architecture's top block.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ARCHITECTURES } from '../src/models/architectures/index.js';
import { type EpochSource, fit, gather } from '../src/train/fit.js';
import type { LabelledSet, TrainableModel, WeightsSnapshot } from '../src/train/trainable.js';
import { type Evaluation, Scorer } from '../src/train/metrics.js';
import { finetuneSettingsSchema, mnistSettingsSchema, parseSettings } from '../src/train/options.js';
import { Prng } from '../src/util/prng.js';

/** Softmax regression: probabilities = softmax(x·W + b), trained by gradient descent on the mean cross-entropy. */
class SoftmaxRegression implements TrainableModel {
  w: Float64Array;
  b: Float64Array;
  lr = 0.1;
  steps = 0;
  constructor(private readonly features: number, private readonly classes: number) {
    this.w = new Float64Array(features * classes);
    this.b = new Float64Array(classes);
  }

  get parameters() { return this.w.length + this.b.length; }
  setLearningRate(lr: number) { this.lr = lr; }

  probabilities(x: Float32Array, n: number): Float64Array {
    const { features: f, classes: k } = this;
    const p = new Float64Array(n * k);
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let c = 0; c < k; c++) {
        let z = this.b[c]!;
        for (let j = 0; j < f; j++) z += x[i * f + j]! * this.w[j * k + c]!;
        p[i * k + c] = z;
        max = Math.max(max, z);
      }
      let sum = 0;
      for (let c = 0; c < k; c++) { p[i * k + c] = Math.exp(p[i * k + c]! - max); sum += p[i * k + c]!; }
      for (let c = 0; c < k; c++) p[i * k + c]! /= sum;
    }
    return p;
  }

  async step(batch: LabelledSet): Promise<{ loss: number; acc: number }> {
    const n = batch.y.length;
    const { features: f, classes: k } = this;
    const p = this.probabilities(batch.x.data, n);
    let loss = 0;
    let correct = 0;
    const gw = new Float64Array(this.w.length);
    const gb = new Float64Array(k);
    for (let i = 0; i < n; i++) {
      const y = batch.y[i]!;
      loss -= Math.log(Math.max(p[i * k + y]!, 1e-12));
      let best = 0;
      for (let c = 1; c < k; c++) if (p[i * k + c]! > p[i * k + best]!) best = c;
      if (best === y) correct++;
      for (let c = 0; c < k; c++) {
        const d = (p[i * k + c]! - (c === y ? 1 : 0)) / n;
        gb[c]! += d;
        for (let j = 0; j < f; j++) gw[j * k + c]! += batch.x.data[i * f + j]! * d;
      }
    }
    for (let i = 0; i < gw.length; i++) this.w[i]! -= this.lr * gw[i]!;
    for (let c = 0; c < k; c++) this.b[c]! -= this.lr * gb[c]!;
    this.steps++;
    return { loss: loss / n, acc: correct / n };
  }

  async evaluate(set: LabelledSet, batchSize: number): Promise<Evaluation> {
    const scorer = new Scorer(this.classes, set.y);
    const f = this.features;
    for (let s = 0; s < set.y.length; s += batchSize) {
      const e = Math.min(set.y.length, s + batchSize);
      scorer.add(Float32Array.from(this.probabilities(set.x.data.subarray(s * f, e * f), e - s)), e - s);
    }
    return scorer.result();
  }

  snapshot(): WeightsSnapshot & { w: Float64Array; b: Float64Array } {
    return { w: this.w.slice(), b: this.b.slice(), release() {} };
  }

  restore(s: WeightsSnapshot): void {
    if (!('w' in s && s.w instanceof Float64Array && 'b' in s && s.b instanceof Float64Array)) throw new Error('not a SoftmaxRegression snapshot');
    this.w = s.w.slice();
    this.b = s.b.slice();
  }
}

/** Three Gaussian blobs in 2-D (class c centred at angle 2πc/3), `noise` their spread. */
function blobs(n: number, seed: number, noise: number): LabelledSet {
  const rand = new Prng(seed).asFunction();
  const data = new Float32Array(n * 2);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    y[i] = c;
    data[i * 2] = Math.cos((2 * Math.PI * c) / 3) * 2 + (rand() * 2 - 1) * noise;
    data[i * 2 + 1] = Math.sin((2 * Math.PI * c) / 3) * 2 + (rand() * 2 - 1) * noise;
  }
  return { x: { data, shape: [2] }, y };
}

describe('fit(): the training loop through the TrainableModel seam', () => {
  const train = blobs(90, 1, 1.5);
  const val = blobs(30, 2, 1.5);

  it('every example once per epoch in batches; learns; the best epoch is the one whose weights the model holds', async () => {
    const model = new SoftmaxRegression(2, 3);
    const orders: number[][] = [];
    const source: EpochSource = { size: train.y.length, epoch: async (_e, order) => { orders.push([...order]); return gather(train, order); } };
    const batches: { epoch: number; step: number; steps: number }[] = [];
    const epochs: boolean[] = [];
    const r = await fit(model, source, val, {
      epochs: 6, batchSize: 16, learningRate: (e) => 0.5 / e, orderSeed: (e) => e, dropoutSeed: () => 0, monitor: 'val_loss', evalBatch: 7,
      onBatch: (p) => batches.push(p), onEpoch: (_r, best) => epochs.push(best),
    });
    assert.equal(r.history.length, 6);
    for (const o of orders) assert.deepEqual([...o].sort((a, b) => a - b), Array.from({ length: 90 }, (_, i) => i), 'a permutation of the training set');
    assert.notDeepEqual(orders[0], orders[1], 'a new order every epoch');
    assert.equal(batches.length, 6 * Math.ceil(90 / 16));
    assert.equal(model.steps, batches.length);
    assert.deepEqual(r.history.map((h) => h.lr), [1, 2, 3, 4, 5, 6].map((e) => 0.5 / e));
    const losses = r.history.map((h) => h.val_loss);
    assert.equal(r.bestEpoch, losses.indexOf(Math.min(...losses)) + 1);
    assert.equal(epochs.filter(Boolean).length >= 1, true);
    const now = await model.evaluate(val, 30);
    assert.ok(Math.abs(now.loss - r.history[r.bestEpoch - 1]!.val_loss) < 1e-12, 'best weights restored');
    assert.ok(now.accuracy > 0.6, `accuracy ${now.accuracy} (chance 1/3)`);
  });

  it('early stopping: stops `patience` epochs after the best one, whose weights it restores', async () => {
    const model = new SoftmaxRegression(2, 3);
    const source: EpochSource = { size: train.y.length, epoch: async (_e, order) => gather(train, order) };
    let stopped: [number, number] | undefined;
    // A learning rate that explodes after epoch 2 makes validation worse from then on.
    const r = await fit(model, source, val, {
      epochs: 30, batchSize: 90, learningRate: (e) => (e <= 2 ? 0.5 : 400), orderSeed: (e) => e, dropoutSeed: () => 0,
      monitor: 'val_loss', patience: 3, evalBatch: 30, onEarlyStop: (e, b) => { stopped = [e, b]; },
    });
    assert.ok(stopped, 'stopped early');
    assert.equal(r.history.length, stopped[0]);
    assert.equal(r.history.length - r.bestEpoch, 3);
    assert.equal(stopped[1], r.bestEpoch);
    const losses = r.history.map((h) => h.val_loss);
    assert.equal(r.bestEpoch, losses.indexOf(Math.min(...losses)) + 1);
    assert.ok(Math.abs((await model.evaluate(val, 30)).loss - losses[r.bestEpoch - 1]!) < 1e-12);
  });

  it("monitor 'val_acc': the best epoch has the highest validation accuracy (ties: the lower loss)", async () => {
    const model = new SoftmaxRegression(2, 3);
    const source: EpochSource = { size: train.y.length, epoch: async (_e, order) => gather(train, order) };
    const r = await fit(model, source, val, { epochs: 5, batchSize: 8, learningRate: () => 0.3, orderSeed: (e) => 7 * e, dropoutSeed: () => 0, monitor: 'val_acc', evalBatch: 30 });
    const h = r.history;
    const best = h.reduce((b, x) => (x.val_acc > b.val_acc || (x.val_acc === b.val_acc && x.val_loss < b.val_loss) ? x : b));
    assert.equal(r.bestEpoch, best.epoch);
  });
});

describe('training options', () => {
  it('defaults, and the first broken rule as the error message', () => {
    const s = parseSettings(finetuneSettingsSchema, {}, (m) => new Error(m));
    assert.deepEqual(
      [s.epochs, s.batchSize, s.learningRate, s.valSplit, s.seed, s.unfreezeEpochs, s.unfreezeLearningRate, s.patience, s.units, s.dropout, s.augment, s.unfreezeTop],
      [20, 32, 1e-3, 0.2, 42, 10, 1e-5, 5, 256, 0.5, false, false],
    );
    assert.throws(() => parseSettings(finetuneSettingsSchema, { batchSize: 0, valSplit: 1.5 }, (m) => new Error(m)), /^Error: batch size must be an integer ≥ 1, got 0$/);
    assert.throws(() => parseSettings(finetuneSettingsSchema, { dropout: 1 }, (m) => new Error(m)), /dropout must be in \[0, 1\), got 1/);
    assert.throws(() => parseSettings(finetuneSettingsSchema, { learningRate: Number.NaN }, (m) => new Error(m)), /learning rate must be in \(0, 1\), got NaN/);
    assert.throws(() => parseSettings(mnistSettingsSchema, { epochs: 1.5 }, (m) => new Error(m)), /epochs must be a positive integer, got 1.5/);
    const m = parseSettings(mnistSettingsSchema, { augment: false }, (msg) => new Error(msg));
    assert.equal(m.augment, false);
    assert.equal(m.out, 'models/mnist-cnn');
  });
});

describe('architectures: the top block ends at the feature layer', () => {
  for (const arch of Object.values(ARCHITECTURES)) {
    it(`${arch.name}: block = the Keras layers after its input, up to and including ${arch.featureLayer}`, () => {
      const names = arch.kerasLayerNames(false);
      const { input, layers, chain } = arch.topBlock;
      assert.equal(names.at(-1), arch.featureLayer);
      assert.deepEqual([...layers], names.slice(names.indexOf(input) + 1));
      if (chain) {
        assert.deepEqual(chain.map((l) => l.name), [...layers]);
        const weighted = new Set(arch.kerasWeightSpec(false).map((l) => l.name));
        for (const l of chain) assert.equal(weighted.has(l.name), l.kind === 'conv', `${l.name}: a conv has weights, a pool none`);
      }
    });
  }
});
