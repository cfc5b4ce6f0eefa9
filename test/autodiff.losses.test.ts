// Loss heads (src/onnx/losses.ts) and training forms of layers (src/onnx/train-layers.ts): the loss value and
// its gradients from gradientGraph in a real ORT session, against tfjs's own losses (tf.losses.*,
// tf.metrics.binaryCrossentropy = Keras semantics) and tf.grads, at two batch sizes from one model.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { gradientGraph } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { binaryCrossEntropy, meanSquaredError, softmaxCrossEntropy } from '../src/onnx/losses.js';
import type { Dim } from '../src/onnx/proto.js';
import { toTrainingGraph } from '../src/onnx/train-graph.js';
import { batchNormTraining, dropoutWithMask } from '../src/onnx/train-layers.js';
import { hwio, ort, prod, randn, relErr, session, tf, tfCpu, toNCHW, toNHWC } from './autodiff-util.js';

const TOL = 1e-4;
before(tfCpu);

type Feed = { data: Float32Array | BigInt64Array; dims: number[] };

interface LossCase {
  name: string;
  /** Graph inputs: float32 unless 'int64'. */
  inputs: { name: string; dims: Dim[]; type?: 'int64' }[];
  weights?: { name: string; dims: number[]; data: Float32Array }[];
  wrt: string[];
  /** Appends the loss; returns its name. Extra outputs to compare may be listed in `extra`. */
  build: (b: GraphBuilder) => string;
  /** Feeds for one run (batch size n). */
  feeds: (n: number, seed: number) => Record<string, Feed>;
  /** tfjs loss of the wrt values (in wrt order), given the feeds. */
  tf: (feeds: Record<string, Feed>) => (...wrt: tf.Tensor[]) => tf.Scalar;
}

const rand = (dims: number[], seed: number, scale = 1): Feed => ({ data: randn(prod(dims), seed, scale), dims });
const labels = (n: number, classes: number, seed: number): Feed => {
  const u = randn(n, seed);
  return { data: BigInt64Array.from(Array.from(u, (v) => BigInt(Math.floor(Math.abs(v * 977)) % classes))), dims: [n] };
};
const t = (f: Feed): tf.Tensor => (f.data instanceof BigInt64Array ? tf.tensor(Array.from(f.data, Number), f.dims, 'int32') : tf.tensor(f.data, f.dims));
const softRows = (n: number, c: number, seed: number): Feed => {
  const d = randn(n * c, seed).map((v) => Math.exp(v));
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < c; j++) s += d[i * c + j]!;
    for (let j = 0; j < c; j++) d[i * c + j]! /= s;
  }
  return { data: d, dims: [n, c] };
};
const probabilities = (dims: number[], seed: number): Feed => {
  const p = randn(prod(dims), seed, 3).map((v) => 1 / (1 + Math.exp(-v)));
  p[0] = 0; p[1] = 1; p[2] = 1e-9; // exercise the clip to [ε, 1 − ε]
  return { data: p, dims };
};
const binary = (dims: number[], seed: number): Feed => ({ data: randn(prod(dims), seed).map((v) => (v > 0 ? 1 : 0)), dims });

const W1 = randn(6 * 8, 51, 0.5);
const B1 = randn(8, 52, 0.1);
const W2 = randn(8 * 4, 53, 0.5);
const B2 = randn(4, 54, 0.1);

const cases: LossCase[] = [
  {
    name: 'softmax cross-entropy, integer labels', wrt: ['logits'],
    inputs: [{ name: 'logits', dims: ['N', 5] }, { name: 'labels', dims: ['N'], type: 'int64' }],
    build: (b) => softmaxCrossEntropy(b, 'logits', 'labels', { labels: 'index' }),
    feeds: (n, s) => ({ logits: rand([n, 5], s, 3), labels: labels(n, 5, s + 1) }),
    tf: (f) => (z) => tf.losses.softmaxCrossEntropy(tf.oneHot(t(f.labels!) as tf.Tensor1D, 5), z!) as tf.Scalar,
  },
  {
    name: 'softmax cross-entropy, one-hot (soft) labels', wrt: ['logits'],
    inputs: [{ name: 'logits', dims: ['N', 'C'] }, { name: 'labels', dims: ['N', 'C'] }],
    build: (b) => softmaxCrossEntropy(b, 'logits', 'labels', { labels: 'one-hot', name: 'ce' }),
    feeds: (n, s) => ({ logits: rand([n, 3 + (n % 3)], s, 3), labels: softRows(n, 3 + (n % 3), s + 1) }),
    tf: (f) => (z) => tf.losses.softmaxCrossEntropy(t(f.labels!), z!) as tf.Scalar,
  },
  {
    // tf.losses.softmaxCrossEntropy's own labels gradient is dy·(labels − softmax), not the derivative
    // −log_softmax/N: the oracle here is the loss written with tfjs ops.
    name: 'softmax cross-entropy, gradient for the labels too', wrt: ['logits', 'labels'],
    inputs: [{ name: 'logits', dims: ['N', 4] }, { name: 'labels', dims: ['N', 4] }],
    build: (b) => softmaxCrossEntropy(b, 'logits', 'labels', { labels: 'one-hot' }),
    feeds: (n, s) => ({ logits: rand([n, 4], s, 3), labels: softRows(n, 4, s + 1) }),
    tf: () => (z, y) => tf.mean(tf.neg(tf.sum(tf.mul(y!, tf.logSoftmax(z!)), 1))) as tf.Scalar,
  },
  {
    name: 'binary cross-entropy on probabilities (clipped at 0 and 1)', wrt: ['p'],
    inputs: [{ name: 'p', dims: ['N', 3] }, { name: 't', dims: ['N', 3] }],
    build: (b) => binaryCrossEntropy(b, 'p', 't'),
    feeds: (n, s) => ({ p: probabilities([n, 3], s), t: binary([n, 3], s + 1) }),
    tf: (f) => (p) => tf.mean(tf.metrics.binaryCrossentropy(t(f.t!), p!)) as tf.Scalar,
  },
  {
    name: 'binary cross-entropy on logits (large |z| too)', wrt: ['z', 't'],
    inputs: [{ name: 'z', dims: ['N', 2] }, { name: 't', dims: ['N', 2] }],
    build: (b) => binaryCrossEntropy(b, 'z', 't', { fromLogits: true }),
    feeds: (n, s) => ({ z: rand([n, 2], s, 20), t: probabilities([n, 2], s + 1) }),
    tf: () => (z, y) => tf.losses.sigmoidCrossEntropy(y!, z!) as tf.Scalar,
  },
  {
    name: 'mean squared error (predictions and targets)', wrt: ['p', 't'],
    inputs: [{ name: 'p', dims: ['N', 2, 'K'] }, { name: 't', dims: ['N', 2, 'K'] }],
    build: (b) => meanSquaredError(b, 'p', 't'),
    feeds: (n, s) => ({ p: rand([n, 2, n + 1], s), t: rand([n, 2, n + 1], s + 1) }),
    tf: () => (p, y) => tf.losses.meanSquaredError(y!, p!) as tf.Scalar,
  },
  {
    name: 'two-layer classifier + softmax cross-entropy: gradients of every weight and bias', wrt: ['w1', 'b1', 'w2', 'b2'],
    inputs: [{ name: 'x', dims: ['N', 6] }, { name: 'labels', dims: ['N'], type: 'int64' }],
    weights: [{ name: 'w1', dims: [6, 8], data: W1 }, { name: 'b1', dims: [8], data: B1 }, { name: 'w2', dims: [4, 8], data: W2 }, { name: 'b2', dims: [4], data: B2 }],
    build: (b) => {
      const h = b.node('Relu', [b.node('Gemm', ['x', 'w1', 'b1'])]);
      return softmaxCrossEntropy(b, b.node('Gemm', [h, 'w2', 'b2'], { transB: 1 }), 'labels', { labels: 'index' });
    },
    feeds: (n, s) => ({ x: rand([n, 6], s), labels: labels(n, 4, s + 1) }),
    tf: (f) => (w1, b1, w2, b2) => {
      const h = tf.relu(tf.add(tf.matMul(t(f.x!) as tf.Tensor2D, w1 as tf.Tensor2D), b1!));
      const z = tf.add(tf.matMul(h as tf.Tensor2D, w2 as tf.Tensor2D, false, true), b2!);
      return tf.losses.softmaxCrossEntropy(tf.oneHot(t(f.labels!) as tf.Tensor1D, 4), z) as tf.Scalar;
    },
  },
];

async function check(c: LossCase): Promise<void> {
  const b = new GraphBuilder('loss');
  for (const i of c.inputs) b.input(i.name, i.type ?? 'float32', i.dims);
  for (const w of c.weights ?? []) b.weight(w.name, w.dims, w.data);
  const loss = c.build(b);
  b.output(loss);
  const s = await session(gradientGraph(b.serialize().model, { loss, wrt: c.wrt }));
  for (const [n, seed] of [[3, 10], [6, 20]] as const) {
    const f = c.feeds(n, seed);
    const feeds = Object.fromEntries(Object.entries(f).map(([k, v]) => [k, new ort.Tensor(v.data instanceof BigInt64Array ? 'int64' : 'float32', v.data, v.dims)]));
    const r = await s.run(feeds, ['loss', ...c.wrt.map((w) => `${w}_grad`)]);
    const ref = tf.tidy(() => {
      const at = c.wrt.map((w) => (f[w] ? t(f[w]) : tf.tensor(c.weights!.find((x) => x.name === w)!.data, c.weights!.find((x) => x.name === w)!.dims)));
      const { value, grads } = tf.valueAndGrads(c.tf(f))(at);
      return { loss: value.dataSync()[0]!, grads: grads.map((g) => Float32Array.from(g.dataSync())) };
    });
    const got = Number((r.loss!.data as Float32Array)[0]);
    assert.ok(Math.abs(got - ref.loss) <= TOL * Math.abs(ref.loss), `loss ${got} vs tfjs ${ref.loss} at N=${n}`);
    c.wrt.forEach((w, i) => {
      const e = relErr(r[`${w}_grad`]!.data as Float32Array, ref.grads[i]!);
      assert.ok(e < TOL, `d loss/d ${w} at N=${n}: rel. error ${e}`);
    });
  }
}

describe('autodiff: loss heads vs tfjs losses', () => {
  for (const c of cases) it(c.name, () => check(c));
});

describe('autodiff: training forms of BatchNormalization and Dropout', () => {
  for (const rank of [4, 2]) {
    it(`batchNormTraining (rank ${rank}): y, batch mean/variance and the gradients through the statistics`, async () => {
      const C = 3;
      const b = new GraphBuilder('bn');
      b.input('x', 'float32', rank === 4 ? ['N', C, 'H', 'W'] : ['N', C]);
      b.input('G', 'float32', rank === 4 ? ['N', C, 'H', 'W'] : ['N', C]);
      const scale = b.weight('scale', [C], Float32Array.from([1.5, -0.5, 2]));
      const bias = b.weight('bias', [C], Float32Array.from([0.1, 0.2, -0.3]));
      const bn = batchNormTraining(b, 'x', scale, bias, { epsilon: 1e-3, rank });
      b.node('ReduceSum', [b.node('Mul', [bn.y, 'G'])], { keepdims: 0 }, { outputs: ['loss'] });
      b.node('Identity', [bn.mean], {}, { outputs: ['batch_mean'] });
      b.node('Identity', [bn.variance], {}, { outputs: ['batch_var'] });
      for (const o of ['loss', 'batch_mean', 'batch_var']) b.output(o);
      // keepOutputs 'all': the statistics are not on the loss's path, the trainer fetches them for the moving averages.
      const s = await session(gradientGraph(b.serialize().model, { loss: 'loss', wrt: ['x', 'scale', 'bias'], keepOutputs: 'all' }));
      for (const dims of rank === 4 ? [[2, C, 4, 5], [3, C, 3, 3]] : [[5, C], [8, C]]) {
        const x = randn(prod(dims), prod(dims), 2, 0.5);
        const G = randn(prod(dims), prod(dims) + 1);
        const r = await s.run({ x: new ort.Tensor('float32', x, dims), G: new ort.Tensor('float32', G, dims) });
        const axes = rank === 4 ? [0, 2, 3] : [0];
        const ch = (v: tf.Tensor): tf.Tensor => (rank === 4 ? tf.reshape(v, [C, 1, 1]) : v);
        const ref = tf.tidy(() => {
          const { mean, variance } = tf.moments(tf.tensor(x, dims), axes);
          const f = (xx: tf.Tensor, sc: tf.Tensor, bi: tf.Tensor): tf.Scalar => {
            const m = tf.moments(xx, axes, true);
            const y = tf.add(tf.mul(tf.div(tf.sub(xx, m.mean), tf.sqrt(tf.add(m.variance, 1e-3))), ch(sc)), ch(bi));
            return tf.sum(tf.mul(y, tf.tensor(G, dims)));
          };
          const grads = tf.grads(f)([tf.tensor(x, dims), tf.tensor([1.5, -0.5, 2]), tf.tensor([0.1, 0.2, -0.3])]);
          return { mean: mean.dataSync(), variance: variance.dataSync(), grads: grads.map((g) => Float32Array.from(g.dataSync())) };
        });
        assert.ok(relErr(r.batch_mean!.data as Float32Array, ref.mean) < TOL);
        assert.ok(relErr(r.batch_var!.data as Float32Array, ref.variance) < TOL);
        ['x', 'scale', 'bias'].forEach((w, i) => {
          const e = relErr(r[`${w}_grad`]!.data as Float32Array, ref.grads[i]!);
          assert.ok(e < TOL, `d/d${w} at ${dims}: rel. error ${e}`);
        });
      }
    });
  }

  it('dropoutWithMask: inverted dropout with a fed 0/1 mask, gradient only through kept units', async () => {
    const b = new GraphBuilder('dropout');
    b.input('x', 'float32', ['N', 4]);
    b.input('mask', 'float32', ['N', 4]);
    b.input('G', 'float32', ['N', 4]);
    const y = dropoutWithMask(b, 'x', 'mask', 0.3);
    b.node('ReduceSum', [b.node('Mul', [y, 'G'])], { keepdims: 0 }, { outputs: ['loss'] });
    b.output('loss');
    const s = await session(gradientGraph(b.serialize().model, { loss: 'loss', wrt: ['x'] }));
    const n = 5;
    const x = randn(n * 4, 1);
    const mask = binary([n, 4], 2).data as Float32Array;
    const G = randn(n * 4, 3);
    const r = await s.run({ x: new ort.Tensor('float32', x, [n, 4]), mask: new ort.Tensor('float32', mask, [n, 4]), G: new ort.Tensor('float32', G, [n, 4]) });
    const ref = tf.tidy(() => tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.mul(tf.mul(xx, tf.tensor(mask, [n, 4])), 1 / 0.7), tf.tensor(G, [n, 4]))))(tf.tensor(x, [n, 4])).dataSync());
    assert.ok(relErr(r.x_grad!.data as Float32Array, ref) < TOL);
    assert.throws(() => dropoutWithMask(b, 'x', 'mask', 1), /rate must be in \[0, 1\)/);
  });
});

describe('autodiff: toTrainingGraph (inference graph → training graph)', () => {
  it('Conv → BatchNormalization → Relu → Dropout → GAP → Gemm → CE: weight gradients and batch statistics vs tfjs', async () => {
    const W = randn(3 * 2 * 9, 61, 0.5);
    const FC = randn(4 * 3, 62, 0.5);
    const b = new GraphBuilder('net');
    b.input('x', 'float32', ['N', 2, 'H', 'W']);
    b.input('labels', 'int64', ['N']);
    const conv = b.node('Conv', ['x', b.weight('w', [3, 2, 3, 3], W)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
    const bn = b.node('BatchNormalization', [conv, b.weight('scale', [3], Float32Array.from([1.2, 0.8, -0.5])), b.weight('bias', [3], Float32Array.from([0.1, -0.2, 0.3])),
      b.weight('rmean', [3], new Float32Array(3)), b.weight('rvar', [3], new Float32Array(3).fill(1))], { epsilon: { float: 1e-3 }, momentum: { float: 0.99 } }, { name: 'bn1' });
    const drop = b.node('Dropout', [b.node('Relu', [bn]), b.scalar(0.25)], {}, { name: 'drop1' });
    const logits = b.node('Gemm', [b.node('Flatten', [b.node('GlobalAveragePool', [drop])]), b.weight('fc', [4, 3], FC)], { transB: 1 });
    const loss = softmaxCrossEntropy(b, logits, 'labels', { labels: 'index', name: 'ce' });
    b.output(loss);
    const t = toTrainingGraph(b, { exposeStatistics: true });
    assert.equal(t.batchNorms.length, 1);
    assert.deepEqual([t.batchNorms[0]!.node, t.batchNorms[0]!.runningMean, t.batchNorms[0]!.momentum.toFixed(2)], ['bn1', 'rmean', '0.99']);
    assert.equal(t.dropouts.length, 1);
    assert.equal(t.dropouts[0]!.rate, 0.25);
    assert.ok(!b.nodes.some((n) => n.opType === 'BatchNormalization' || n.opType === 'Dropout'));
    const wrt = ['w', 'scale', 'bias', 'fc'];
    const s = await session(gradientGraph(b.serialize().model, { loss, wrt, keepOutputs: 'all' }));
    for (const [n, h, w] of [[3, 5, 6], [2, 7, 4]] as const) {
      const x = randn(n * 2 * h * w, n * h * w);
      const mask = randn(n * 3 * h * w, h * w + 1).map((v) => (v > -0.3 ? 1 : 0));
      const lab = BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 3 + h) % 4));
      const r = await s.run({
        x: new ort.Tensor('float32', x, [n, 2, h, w]), labels: new ort.Tensor('int64', lab, [n]),
        [t.dropouts[0]!.mask]: new ort.Tensor('float32', mask, [n, 3, h, w]),
      });
      const ref = tf.tidy(() => {
        const f = (wt: tf.Tensor, sc: tf.Tensor, bi: tf.Tensor, fc: tf.Tensor): tf.Scalar => {
          const c = toNCHW(tf.conv2d(toNHWC(tf.tensor(x, [n, 2, h, w])), hwio(wt), 1, 'same'));
          const m = tf.moments(c, [0, 2, 3], true);
          const y = tf.add(tf.mul(tf.div(tf.sub(c, m.mean), tf.sqrt(tf.add(m.variance, 1e-3))), tf.reshape(sc, [3, 1, 1])), tf.reshape(bi, [3, 1, 1]));
          const d = tf.mul(tf.mul(tf.relu(y), tf.tensor(mask, [n, 3, h, w])), 1 / 0.75);
          const z = tf.matMul(tf.mean(d, [2, 3]) as tf.Tensor2D, fc as tf.Tensor2D, false, true);
          return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(Array.from(lab, Number), 'int32'), 4), z) as tf.Scalar;
        };
        const at = [tf.tensor(W, [3, 2, 3, 3]), tf.tensor([1.2, 0.8, -0.5]), tf.tensor([0.1, -0.2, 0.3]), tf.tensor(FC, [4, 3])];
        const { value, grads } = tf.valueAndGrads(f)(at);
        const c = toNCHW(tf.conv2d(toNHWC(tf.tensor(x, [n, 2, h, w])), hwio(at[0]!), 1, 'same'));
        const m = tf.moments(c, [0, 2, 3]);
        return { loss: value.dataSync()[0]!, grads: grads.map((g) => Float32Array.from(g.dataSync())), mean: m.mean.dataSync(), variance: m.variance.dataSync() };
      });
      assert.ok(Math.abs(Number((r.ce!.data as Float32Array)[0]) - ref.loss) < TOL * Math.abs(ref.loss));
      wrt.forEach((name, i) => {
        const e = relErr(r[`${name}_grad`]!.data as Float32Array, ref.grads[i]!);
        assert.ok(e < TOL, `d/d${name} at N=${n} ${h}×${w}: rel. error ${e}`);
      });
      assert.ok(relErr(r[t.batchNorms[0]!.batchMean]!.data as Float32Array, ref.mean) < TOL);
      assert.ok(relErr(r[t.batchNorms[0]!.batchVariance]!.data as Float32Array, ref.variance) < TOL);
    }
  });
});
