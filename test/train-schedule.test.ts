// The small-data defaults of a fine-tune (issue 12 item 4), unit by unit: the step plan (floor, warm-up + cosine,
// patience in steps), fit() counting steps (the schedule applied per step, early stopping never before the floor),
// the class-balanced validation split and the verdict on a validation result.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stratifiedSplit } from '../src/train/finetune-data.js';
import { fit } from '../src/train/fit.js';
import { validationWarnings } from '../src/train/judge.js';
import { type Evaluation, Scorer } from '../src/train/metrics.js';
import { headPlan, warmupCosine } from '../src/train/schedule.js';
import type { LabelledSet, TrainableModel, WeightsSnapshot } from '../src/train/trainable.js';

/** A real (tiny) classifier: class scores b only, softmax, trained by gradient descent on the cross-entropy. */
class PriorClassifier implements TrainableModel {
  b: Float64Array;
  lr = 0;
  lrs: number[] = [];
  constructor(readonly classes: number) { this.b = new Float64Array(classes); }
  get parameters() { return this.classes; }
  setLearningRate(lr: number) { this.lr = lr; }
  private probs(): Float32Array {
    const m = Math.max(...this.b);
    const e = Array.from(this.b, (v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    return Float32Array.from(e, (v) => v / s);
  }
  async step(batch: LabelledSet): Promise<{ loss: number; acc: number }> {
    this.lrs.push(this.lr);
    const p = this.probs();
    const g = new Float64Array(this.classes);
    let loss = 0;
    for (const y of batch.y) { loss -= Math.log(p[y]!); for (let c = 0; c < this.classes; c++) g[c]! += (p[c]! - (c === y ? 1 : 0)) / batch.y.length; }
    for (let c = 0; c < this.classes; c++) this.b[c]! -= this.lr * g[c]!;
    return { loss: loss / batch.y.length, acc: 0 };
  }
  async evaluate(set: LabelledSet): Promise<Evaluation> {
    const scorer = new Scorer(this.classes, set.y);
    const p = this.probs();
    for (let i = 0; i < set.y.length; i++) scorer.add(p, 1);
    return scorer.result();
  }
  snapshot(): WeightsSnapshot { return new PriorSnapshot(Float64Array.from(this.b)); }
  restore(s: WeightsSnapshot): void {
    if (!(s instanceof PriorSnapshot)) throw new Error('not a PriorClassifier snapshot');
    this.b.set(s.b);
  }
}

class PriorSnapshot implements WeightsSnapshot {
  constructor(readonly b: Float64Array) {}
  release(): void {}
}

const settings = { epochs: 20, batchSize: 32, minSteps: 300, patience: 5, patienceSteps: 100, learningRate: 1e-3 };

describe('the step plan of a head on small data', () => {
  it('120 images at batch 32: 4 steps an epoch, 20 epochs would be 80 steps, the floor makes it 300 (75 epochs)', () => {
    const p = headPlan(120, settings);
    assert.deepEqual([p.stepsPerEpoch, p.epochs, p.totalSteps, p.warmupSteps, p.patienceSteps], [4, 75, 300, 15, 100]);
    const big = headPlan(6400, settings); // 200 steps an epoch: the epochs rule, patience is 5 epochs' worth
    assert.deepEqual([big.epochs, big.totalSteps, big.patienceSteps, big.warmupSteps], [20, 4000, 1000, 50]);
  });

  it('warm-up is linear to the peak, then a cosine down to 1 % of it', () => {
    const f = warmupCosine(1e-3, 300, 15);
    assert.ok(Math.abs(f(0) - 1e-3 / 15) < 1e-12);
    assert.ok(Math.abs(f(14) - 1e-3) < 1e-12);
    assert.ok(Math.abs(f(15) - 1e-3) < 1e-12);
    assert.ok(Math.abs(f(15 + 285 / 2) - 1e-3 * (0.01 + 0.99 * 0.5)) < 1e-12);
    assert.ok(Math.abs(f(300) - 1e-5) < 1e-12);
    for (let t = 16; t < 300; t++) assert.ok(f(t) <= f(t - 1), `monotone after the warm-up at ${t}`);
  });
});

describe('fit() counted in steps', () => {
  const train: LabelledSet = { x: { data: new Float32Array(12), shape: [1] }, y: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 2]) };
  const val: LabelledSet = { x: { data: new Float32Array(6), shape: [1] }, y: Uint8Array.from([0, 0, 0, 0, 1, 2]) };
  const source = { size: 12, epoch: async () => train };

  it('applies the schedule per step and never stops before the floor, then stops after patienceSteps', async () => {
    const m = new PriorClassifier(3);
    const lrAt = (t: number) => 0.5 + t;
    const r = await fit(m, source, val, {
      epochs: 500, batchSize: 4, learningRate: () => 0, learningRateAt: lrAt, monitor: 'val_loss', evalBatch: 8,
      patienceSteps: 6, minSteps: 120, orderSeed: (e) => e, dropoutSeed: () => 0,
    });
    const steps = r.history.length * 3;
    assert.deepEqual(m.lrs, Array.from({ length: steps }, (_, t) => lrAt(t)), 'one learning rate per step, from the step count');
    assert.ok(steps >= 120, `ran ${steps} steps: not before the floor`);
    assert.ok(r.history.length < 500, 'stopped early once past the floor');
    assert.equal(r.history[r.bestEpoch - 1]!.val_loss, Math.min(...r.history.map((h) => h.val_loss)));
  });
});

describe('class-balanced validation split and the verdict', () => {
  it('every class gives the same number of validation images (from the smallest class), never its last one', () => {
    const labels = [...Array(50).fill(0), ...Array(20).fill(1), ...Array(10).fill(2)];
    const s = stratifiedSplit(labels, 3, 0.2, 7);
    assert.deepEqual([0, 1, 2].map((c) => s.val.filter((i) => labels[i] === c).length), [2, 2, 2]);
    assert.equal(s.train.length + s.val.length, labels.length);
    assert.equal(new Set([...s.train, ...s.val]).size, labels.length);
    const tiny = stratifiedSplit([0, 0, 1, 1], 2, 0.2, 1);
    assert.deepEqual([tiny.train.length, tiny.val.length], [2, 2]);
  });

  it('warns near chance and when the validation set is too small to judge', () => {
    assert.deepEqual(validationWarnings(0.95, 3, [10, 10, 10]), []);
    const near = validationWarnings(0.4, 3, [10, 10, 10]);
    assert.equal(near.length, 1);
    assert.match(near[0]!, /within 10 points of chance \(33\.3 %/);
    const small = validationWarnings(1, 2, [2, 2]);
    assert.equal(small.length, 1);
    assert.match(small[0]!, /too small to judge \(4 images, 2 in the smallest class/);
  });
});
