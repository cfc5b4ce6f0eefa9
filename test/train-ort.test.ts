// The ONNX Runtime trainer (src/train/ort-*.ts) against TensorFlow.js as the oracle: the same network written as
// a tfjs function of tf.Variables (in the ONNX layouts, transposed inside), the same initial weights, batches and
// dropout masks. Each optimizer's steps equal tfjs' own optimizers (AdamW = tfjs Adam after the decoupled decay);
// a tiny conv net with batch-norm and dropout tracks tfjs' losses and moving statistics over several steps; the
// exported inference graph equals tfjs' inference; a checkpoint resumes exactly.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/onnx/builder.js';
import { loadCheckpoint, saveCheckpoint } from '../src/train/ort-checkpoint.js';
import { decodeModel } from '../src/onnx/proto.js';
import { mnistNet } from '../src/train/mnist-net.js';
import { type NetSpec, describeNet, trainingGraph } from '../src/train/ort-net.js';
import type { OptimizerConfig } from '../src/train/ort-optim.js';
import { OrtTrainable } from '../src/train/ort-trainable.js';
import type { LabelledSet } from '../src/train/trainable.js';
import { Prng } from '../src/util/prng.js';

before(async () => {
  await tf.setBackend('cpu');
  await tf.ready();
});

const dir = mkdtempSync(join(tmpdir(), 'convserve-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Vars = Map<string, tf.Variable>;

/** The network of `spec` in tfjs, on NCHW inputs with ONNX-layout weights; logits (no final softmax). */
function tfLogits(spec: NetSpec, vars: Vars, x: tf.Tensor, training: boolean, masks: Map<string, tf.Tensor>, batchStats?: Map<string, { mean: tf.Tensor; variance: tf.Tensor }>): tf.Tensor {
  let v = x;
  let nchw = spec.input.length === 3;
  const nhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;
  const back = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);
  spec.layers.forEach((l, i) => {
    const final = i === spec.layers.length - 1;
    switch (l.kind) {
      case 'conv': {
        const w = tf.transpose(vars.get(`${l.name}/kernel`)!, [2, 3, 1, 0]) as tf.Tensor4D;
        v = back(tf.add(tf.conv2d(nhwc(v), w, l.stride ?? 1, l.padding), vars.get(`${l.name}/bias`)!));
        if (l.activation === 'relu') v = tf.relu(v);
        break;
      }
      case 'maxPool':
        v = back(tf.maxPool(nhwc(v), l.size, l.stride ?? l.size, 'valid'));
        break;
      case 'globalAvgPool':
        v = tf.mean(v, [2, 3]);
        nchw = false;
        break;
      case 'flatten':
        v = tf.reshape(v, [v.shape[0]!, -1]);
        nchw = false;
        break;
      case 'dense':
        v = tf.add(tf.matMul(v as tf.Tensor2D, vars.get(`${l.name}/kernel`)! as tf.Tensor2D), vars.get(`${l.name}/bias`)!);
        if (l.activation === 'relu') v = tf.relu(v);
        if (l.activation === 'softmax' && !final) v = tf.softmax(v);
        break;
      case 'dropout':
        if (training && l.rate > 0) v = tf.mul(tf.mul(v, masks.get(`${l.name}/mask`)!), 1 / (1 - l.rate));
        break;
      case 'batchNorm': {
        const axes = nchw ? [0, 2, 3] : [0];
        const ch = (t: tf.Tensor) => (nchw ? tf.reshape(t, [-1, 1, 1]) : t);
        let mean: tf.Tensor;
        let variance: tf.Tensor;
        if (training) {
          ({ mean, variance } = tf.moments(v, axes));
          batchStats?.set(l.name, { mean, variance });
        } else {
          mean = vars.get(`${l.name}/moving_mean`)!;
          variance = vars.get(`${l.name}/moving_variance`)!;
        }
        v = tf.add(tf.mul(tf.div(tf.sub(v, ch(mean)), tf.sqrt(tf.add(ch(variance), l.epsilon))), ch(vars.get(`${l.name}/gamma`)!)), ch(vars.get(`${l.name}/beta`)!));
        break;
      }
    }
  });
  return v;
}

/** The masks OrtTrainable draws for a step with `seed` (its documented contract: one Prng, masks in layer order). */
function masksFor(spec: NetSpec, n: number, seed: number): Map<string, tf.Tensor> {
  const rng = new Prng(seed);
  const out = new Map<string, tf.Tensor>();
  for (const m of describeNet(spec).masks.filter((k) => k.rate > 0)) {
    const u = rng.fillUniform(new Float32Array(n * m.shape.reduce((a, b) => a * b, 1)), 0, 1);
    out.set(m.name, tf.tensor(u.map((v) => (v >= m.rate ? 1 : 0)), [n, ...m.shape]));
  }
  return out;
}

function batchOf(spec: NetSpec, n: number, classes: number, seed: number): LabelledSet {
  const rng = new Prng(seed);
  const per = spec.input.reduce((a, b) => a * b, 1);
  return { x: { data: rng.fillNormal(new Float32Array(n * per), 0.5, 1), shape: spec.input }, y: Uint8Array.from({ length: n }, () => rng.int(classes)) };
}

function tfOptimizer(c: OptimizerConfig, lr: number): tf.Optimizer {
  switch (c.name) {
    case 'sgd': return c.momentum ? tf.train.momentum(lr, c.momentum, c.nesterov ?? false) : tf.train.sgd(lr);
    case 'rmsprop': return tf.train.rmsprop(lr, 0.9, 0, 1e-7);
    default: return tf.train.adam(lr, 0.9, 0.999, 1e-7);
  }
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return num / Math.max(den, 1e-12);
}

const SMALL: NetSpec = {
  input: [2, 7, 7],
  layers: [
    { kind: 'conv', name: 'c1', filters: 4, kernel: 3, padding: 'valid', activation: 'relu' },
    { kind: 'maxPool', name: 'p1', size: 2 },
    { kind: 'conv', name: 'c2', filters: 5, kernel: 2, padding: 'same', activation: 'relu' },
    { kind: 'flatten', name: 'f' },
    { kind: 'dense', name: 'd1', units: 6, activation: 'relu' },
    { kind: 'dense', name: 'd2', units: 3, activation: 'softmax' },
  ],
};

/** Runs `steps` steps of the ORT trainer and of the tfjs oracle from the same weights; returns both. */
async function compare(spec: NetSpec, opt: OptimizerConfig, lr: number, steps: number, n: number, spinning = false) {
  const shape = describeNet(spec);
  const trainer = await OrtTrainable.create({ spec, optimizer: opt, learningRate: lr, seed: 7, threads: spinning ? 2 : 1, spinning });
  try {
    const vars: Vars = new Map([...trainer.values].map(([k, v]) => [k, tf.variable(tf.tensor(Float32Array.from(v), shape.params.find((p) => p.name === k)!.dims), true, k.replace(/\W/g, '_') + Math.random())]));
    const trainable = shape.params.filter((p) => p.trainable).map((p) => vars.get(p.name)!);
    const optimizer = tfOptimizer(opt, lr);
    const ours: number[] = [];
    const theirs: number[] = [];
    for (let s = 0; s < steps; s++) {
      const batch = batchOf(spec, n, shape.classes, 100 + s);
      ours.push((await trainer.step(batch, 1000 + s)).loss);
      const x = tf.tensor(batch.x.data, [n, ...spec.input]);
      const labels = tf.oneHot(tf.tensor1d(batch.y, 'int32'), shape.classes);
      const masks = masksFor(spec, n, 1000 + s);
      if (opt.name === 'adam' || opt.name === 'adamw') {
        // Keras adds ε to √v, tfjs to √v̂ = √v/√(1 − β2ᵗ): the same update when tfjs' ε is ε·/√(1 − β2ᵗ) at step t.
        Reflect.set(optimizer, 'epsilon', 1e-7 / Math.sqrt(1 - 0.999 ** (s + 1)));
      }
      if (opt.name === 'adamw') for (const v of trainable) v.assign(tf.mul(v, 1 - lr * (opt.weightDecay ?? 0.004)));
      // The batch statistics of this step's forward pass (before the update), for Keras' moving averages.
      const stats = new Map<string, { mean: tf.Tensor; variance: tf.Tensor }>();
      tfLogits(spec, vars, x, true, masks, stats);
      const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, tfLogits(spec, vars, x, true, masks)) as tf.Scalar, true, trainable)!;
      theirs.push(loss.dataSync()[0]!);
      for (const l of spec.layers) {
        if (l.kind !== 'batchNorm') continue;
        const mm = vars.get(`${l.name}/moving_mean`)!;
        const mv = vars.get(`${l.name}/moving_variance`)!;
        mm.assign(tf.add(tf.mul(mm, l.momentum), tf.mul(stats.get(l.name)!.mean, 1 - l.momentum)));
        mv.assign(tf.add(tf.mul(mv, l.momentum), tf.mul(stats.get(l.name)!.variance, 1 - l.momentum)));
      }
    }
    return { trainer, vars, ours, theirs };
  } catch (e) {
    await trainer.release();
    throw e;
  }
}

describe('ORT trainer vs tfjs', () => {
  const optimizers: [string, OptimizerConfig, number][] = [
    ['SGD', { name: 'sgd' }, 0.1],
    ['SGD momentum 0.9', { name: 'sgd', momentum: 0.9 }, 0.05],
    ['SGD Nesterov momentum 0.9', { name: 'sgd', momentum: 0.9, nesterov: true }, 0.05],
    ['RMSprop (ρ 0.9, ε 1e-7)', { name: 'rmsprop' }, 1e-3],
    ['Adam (β 0.9/0.999, ε 1e-7)', { name: 'adam' }, 1e-3],
    ['AdamW (weight decay 0.004)', { name: 'adamw' }, 1e-2],
  ];
  for (const [label, opt, lr] of optimizers) {
    it(`${label}: three steps give tfjs' weights (≤ 1e-5) and losses`, async () => {
      const { trainer, vars, ours, theirs } = await compare(SMALL, opt, lr, 3, 5);
      try {
        assertMatchesTfjs({ trainer, vars, ours, theirs });
        assert.ok(ours[0]! !== ours[2]!, 'the loss changes as the weights are trained');
      } finally {
        await trainer.release();
      }
    });
  }

  it('the digit net (conv2/conv3 weight gradients as patches + one Gemm, spinning session): RMSprop steps give tfjs\' weights', async () => {
    const spec = mnistNet(0);
    const nodes = decodeModel(trainingGraph(spec).bytes).graph!.node!;
    const patchGathers = nodes.filter((n) => n.opType === 'Gather' && n.name!.includes('patches'));
    assert.equal(patchGathers.length, 2, 'conv2 and conv3 take the patch form; conv1 (one channel) keeps the Conv form');
    const { trainer, vars, ours, theirs } = await compare(spec, { name: 'rmsprop' }, 1e-3, 2, 4, true);
    try {
      assertMatchesTfjs({ trainer, vars, ours, theirs });
    } finally {
      await trainer.release();
    }
  });
});

/** Every trained weight within 1e-5 of tfjs' and every step's loss within 2e-5 (relative above 1). */
function assertMatchesTfjs({ trainer, vars, ours, theirs }: Pick<Awaited<ReturnType<typeof compare>>, 'trainer' | 'vars' | 'ours' | 'theirs'>): void {
  for (const [name, v] of trainer.values) {
    const want = vars.get(name)!.dataSync();
    let worst = 0;
    for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - want[i]!));
    assert.ok(worst <= 1e-5, `${name}: max |Δ| ${worst}`);
  }
  ours.forEach((l, i) => assert.ok(Math.abs(l - theirs[i]!) <= 2e-5 * Math.max(1, Math.abs(theirs[i]!)), `loss of step ${i + 1}: ${l} vs tfjs ${theirs[i]}`));
}

const TINY: NetSpec = {
  input: [1, 8, 8],
  layers: [
    { kind: 'conv', name: 'c1', filters: 4, kernel: 3, padding: 'same', activation: 'linear' },
    { kind: 'batchNorm', name: 'bn1', epsilon: 1e-3, momentum: 0.99 },
    { kind: 'conv', name: 'c2', filters: 6, kernel: 3, stride: 2, padding: 'valid', activation: 'relu' },
    { kind: 'globalAvgPool', name: 'gap' },
    { kind: 'dropout', name: 'drop', rate: 0.3 },
    { kind: 'dense', name: 'd1', units: 8, activation: 'relu' },
    { kind: 'batchNorm', name: 'bn2', epsilon: 1e-3, momentum: 0.9 },
    { kind: 'dense', name: 'out', units: 4, activation: 'softmax' },
  ],
};

describe('ORT trainer: a tiny conv net with batch-norm and dropout', () => {
  it('tracks tfjs\' losses and moving statistics over 8 Adam steps; the export equals tfjs inference', async () => {
    const { trainer, vars, ours, theirs } = await compare(TINY, { name: 'adam' }, 3e-3, 8, 6);
    try {
      ours.forEach((l, i) => assert.ok(Math.abs(l - theirs[i]!) <= 1e-4 * Math.max(1, theirs[i]!), `loss of step ${i + 1}: ${l} vs tfjs ${theirs[i]}`));
      for (const name of ['bn1/moving_mean', 'bn1/moving_variance', 'bn2/moving_mean', 'bn2/moving_variance']) {
        const e = maxRelDiff(trainer.values.get(name)!, vars.get(name)!.dataSync());
        assert.ok(e <= 2e-3, `${name}: rel. difference ${e}`);
      }
      // Export: the inference chain with the trained weights as initializers, run by ORT, vs tfjs inference
      // with the very same weights.
      for (const [name, v] of trainer.values) vars.get(name)!.assign(tf.tensor(Float32Array.from(v), vars.get(name)!.shape));
      const b = new GraphBuilder('exported');
      const x = b.input('input', 'float32', ['N', ...TINY.input]);
      const p = trainer.exportable().appendToOnnx(b, x);
      b.node('Identity', [p], {}, { outputs: ['probabilities'] });
      b.output('probabilities');
      const session = await ort.InferenceSession.create(b.serialize().model, { logSeverityLevel: 3, intraOpNumThreads: 1 });
      const batch = batchOf(TINY, 5, 4, 999);
      const got = (await session.run({ input: new ort.Tensor('float32', batch.x.data, [5, ...TINY.input]) })).probabilities!.data as Float32Array;
      await session.release();
      const want = tf.softmax(tfLogits(TINY, vars, tf.tensor(batch.x.data, [5, ...TINY.input]), false, new Map())).dataSync();
      const e = maxRelDiff(got, want);
      assert.ok(e <= 1e-5, `exported probabilities differ from tfjs by ${e}`);
      const evaluated = await trainer.evaluate({ x: batch.x, y: batch.y }, 2);
      assert.equal(evaluated.predictions.length, 5);
      const predicted = await trainer.exportable().predict(batch.x, 5);
      assert.ok(maxRelDiff(predicted, want) <= 1e-5);
    } finally {
      await trainer.release();
    }
  });

  it('a checkpoint (weights + optimizer state) saved to a file resumes exactly', async () => {
    const opt: OptimizerConfig = { name: 'adam' };
    const a = await OrtTrainable.create({ spec: TINY, optimizer: opt, learningRate: 1e-2, seed: 3, threads: 1 });
    const b = await OrtTrainable.create({ spec: TINY, optimizer: opt, learningRate: 1e-2, seed: 99, threads: 1 });
    try {
      for (let s = 0; s < 3; s++) await a.step(batchOf(TINY, 4, 4, s), s);
      const file = join(dir, 'run.ckpt');
      saveCheckpoint(file, a.checkpoint(), { epoch: 1 });
      const loaded = loadCheckpoint(file);
      assert.deepEqual(loaded.meta, { epoch: 1 });
      b.resume(loaded.checkpoint);
      assert.equal(b.optimizer.iterations, 3);
      const la = await a.step(batchOf(TINY, 4, 4, 10), 10);
      const lb = await b.step(batchOf(TINY, 4, 4, 10), 10);
      assert.equal(lb.loss, la.loss);
      for (const [name, v] of a.values) assert.deepEqual(b.values.get(name), v, name);
    } finally {
      await a.release();
      await b.release();
    }
  });
});
