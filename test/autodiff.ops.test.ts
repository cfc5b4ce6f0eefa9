// Per-op gradient checks (elementwise with broadcasting, linear algebra, shape ops, reductions): the graph
// emitted by gradientGraph, run in a real ORT session, against tfjs tf.grads at two sizes from one model.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { GraphBuilder } from '../src/onnx/builder.js';
import type { Dim } from '../src/onnx/proto.js';
import { type OpCase, prepare, prod, randn, relErr, tf, tfCpu, tfGrads } from './autodiff-util.js';

const TOL = 1e-4;
before(tfCpu);

interface Case {
  name: string;
  inputs: { name: string; dims: Dim[] }[];
  /** Concrete dims per input, one entry per run (at least two sizes). */
  sizes: number[][][];
  build: (b: GraphBuilder, ins: string[]) => string;
  tf: (...xs: tf.Tensor[]) => tf.Tensor;
  positive?: boolean;
  wrt?: string[];
  options?: OpCase['options'];
}

const NCHW: { name: string; dims: Dim[] } = { name: 'x', dims: ['N', 3, 'H', 'W'] };
const S1 = [[[2, 3, 8, 10]], [[2, 3, 9, 7]]];
const unary = (name: string, op: string, f: (x: tf.Tensor) => tf.Tensor, attrs: Record<string, number | number[]> = {}, positive = false): Case => ({
  name, inputs: [NCHW], sizes: S1, positive, build: (b, [x]) => b.node(op, [x!], attrs), tf: f,
});
const i64 = (b: GraphBuilder, v: number[]): string => b.ints(v);

const cases: Case[] = [
  unary('Relu', 'Relu', (x) => tf.relu(x)),
  unary('LeakyRelu', 'LeakyRelu', (x) => tf.leakyRelu(x, 0.2), { alpha: 0.2 } as never),
  unary('Abs', 'Abs', (x) => tf.abs(x)),
  unary('Sqrt', 'Sqrt', (x) => tf.sqrt(x), {}, true),
  unary('Neg', 'Neg', (x) => tf.neg(x)),
  unary('Exp', 'Exp', (x) => tf.exp(x)),
  unary('Log', 'Log', (x) => tf.log(x), {}, true),
  unary('Sigmoid', 'Sigmoid', (x) => tf.sigmoid(x)),
  unary('Tanh', 'Tanh', (x) => tf.tanh(x)),
  unary('Identity', 'Identity', (x) => tf.clone(x)),
  unary('Softmax axis −1', 'Softmax', (x) => tf.softmax(x)),
  unary('Softmax axis 1', 'Softmax', (x) => tf.transpose(tf.softmax(tf.transpose(x, [0, 2, 3, 1])), [0, 3, 1, 2]), { axis: 1 }),
  unary('LogSoftmax axis −1', 'LogSoftmax', (x) => tf.logSoftmax(x)),
  unary('GlobalAveragePool', 'GlobalAveragePool', (x) => tf.mean(x, [2, 3], true)),
  {
    name: 'Clip [−0.5, 0.8] (min/max inputs)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Clip', [x!, b.scalar(-0.5), b.scalar(0.8)]), tf: (x) => tf.clipByValue(x, -0.5, 0.8),
  },
  {
    name: 'Clip with only a max (min omitted)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Clip', [x!, '', b.scalar(0.3)]), tf: (x) => tf.minimum(x, 0.3),
  },
  {
    name: 'Pow 1.25 (constant exponent)', inputs: [NCHW], sizes: S1, positive: true,
    build: (b, [x]) => b.node('Pow', [x!, b.scalar(1.25)]), tf: (x) => tf.pow(x, 1.25),
  },
  {
    name: 'Pow 2', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Pow', [x!, b.scalar(2)]), tf: (x) => tf.square(x),
  },
  {
    name: 'Pow with a broadcast exponent tensor', inputs: [NCHW], sizes: S1, positive: true,
    build: (b, [x]) => b.node('Pow', [x!, b.weight('e', [3, 1, 1], Float32Array.from([0.5, 1.5, 3]))]),
    tf: (x) => tf.pow(x, tf.tensor([0.5, 1.5, 3], [3, 1, 1])),
  },
  // Broadcasting binary ops: both operands differentiated, gradients reduced back in-graph.
  ...(['Add', 'Sub', 'Mul', 'Div'] as const).flatMap((op): Case[] => {
    const f = { Add: tf.add, Sub: tf.sub, Mul: tf.mul, Div: tf.div }[op];
    return [
      {
        name: `${op} [N,3,H,W] ⊙ [1,3,1,1]`, inputs: [NCHW, { name: 'y', dims: [1, 3, 1, 1] }],
        sizes: [[[2, 3, 8, 10], [1, 3, 1, 1]], [[2, 3, 9, 7], [1, 3, 1, 1]]], positive: op === 'Div',
        build: (b, [x, y]) => b.node(op, [x!, y!]), tf: (x, y) => f(x!, y!),
      },
      {
        name: `${op} [N,1,H,1] ⊙ [3,1,W] (both broadcast, ranks differ)`, inputs: [{ name: 'x', dims: ['N', 1, 'H', 1] }, { name: 'y', dims: [3, 1, 'W'] }],
        sizes: [[[2, 1, 8, 1], [3, 1, 10]], [[2, 1, 9, 1], [3, 1, 7]]], positive: op === 'Div',
        build: (b, [x, y]) => b.node(op, [x!, y!]), tf: (x, y) => f(x!, y!),
      },
      {
        name: `${op} same shapes`, inputs: [NCHW, { name: 'y', dims: ['N', 3, 'H', 'W'] }],
        sizes: [[[2, 3, 8, 10], [2, 3, 8, 10]], [[1, 3, 9, 7], [1, 3, 9, 7]]], positive: op === 'Div',
        build: (b, [x, y]) => b.node(op, [x!, y!]), tf: (x, y) => f(x!, y!),
      },
    ];
  }),
  {
    name: 'Mul(x, x) (one input used twice) and scalar constant', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Mul', [b.node('Mul', [x!, x!]), b.scalar(-0.7)]), tf: (x) => tf.mul(tf.mul(x, x), -0.7),
  },
  {
    name: 'Where(x > 0, 2x, x²)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Where', [b.node('Greater', [x!, b.scalar(0)]), b.node('Mul', [x!, b.scalar(2)]), b.node('Mul', [x!, x!])]),
    tf: (x) => { const m = tf.step(x); return tf.add(tf.mul(m, tf.mul(x, 2)), tf.mul(tf.sub(1, m), tf.mul(x, x))); },
  },
  {
    name: 'Concat (axis 1) of three branches', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Concat', [x!, b.node('Mul', [x!, x!]), b.node('Relu', [x!])], { axis: 1 }),
    tf: (x) => tf.concat([x, tf.mul(x, x), tf.relu(x)], 1),
  },
  {
    name: 'Concat with constant parts around x (only x\'s part sliced out)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => {
      const zeros = (w: number): string => b.node('ConstantOfShape', [b.node('Concat', [b.node('Shape', [x!], { end: 3 }), b.ints([w])], { axis: 0 })]);
      return b.node('Concat', [zeros(2), b.node('Mul', [x!, x!]), zeros(1)], { axis: -1 });
    },
    tf: (x) => tf.concat([tf.zeros([...x.shape.slice(0, 3), 2]), tf.mul(x, x), tf.zeros([...x.shape.slice(0, 3), 1])], -1),
  },
  {
    name: 'Concat of two inputs (axis −1)', inputs: [NCHW, { name: 'y', dims: ['N', 3, 'H', 'V'] }],
    sizes: [[[2, 3, 8, 10], [2, 3, 8, 4]], [[1, 3, 5, 7], [1, 3, 5, 2]]],
    build: (b, [x, y]) => b.node('Concat', [x!, y!], { axis: -1 }), tf: (x, y) => tf.concat([x!, y!], -1),
  },
  {
    name: 'Split (only one part used)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => { const [, s2] = b.nodeMulti('Split', [x!, i64(b, [1, 2])], { axis: 1 }, { outputs: 2 }); return b.node('Mul', [s2!, s2!]); },
    tf: (x) => tf.square(tf.slice(x, [0, 1, 0, 0], [-1, 2, -1, -1])),
  },
  {
    name: 'BatchNormalization (inference)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('BatchNormalization', [x!, b.weight('s', [3], Float32Array.from([1.5, -0.5, 2])), b.weight('bb', [3], Float32Array.from([0.1, 0.2, 0.3])),
      b.weight('m', [3], Float32Array.from([0.3, -0.2, 0.1])), b.weight('v', [3], Float32Array.from([0.5, 2, 1.2]))], { epsilon: { float: 1e-3 } as never }),
    tf: (x) => tf.add(tf.mul(tf.div(tf.sub(x, tf.tensor([0.3, -0.2, 0.1], [3, 1, 1])), tf.sqrt(tf.add(tf.tensor([0.5, 2, 1.2], [3, 1, 1]), 1e-3))), tf.tensor([1.5, -0.5, 2], [3, 1, 1])), tf.tensor([0.1, 0.2, 0.3], [3, 1, 1])),
  },
  // Linear algebra
  {
    name: 'MatMul [M,K]·[K,N] (both differentiated)', inputs: [{ name: 'a', dims: ['M', 'K'] }, { name: 'b', dims: ['K', 5] }],
    sizes: [[[4, 6], [6, 5]], [[7, 3], [3, 5]]], build: (b, [a, c]) => b.node('MatMul', [a!, c!]), tf: (a, c) => tf.matMul(a as tf.Tensor2D, c as tf.Tensor2D),
  },
  {
    name: 'MatMul batched [B,M,K]·[K,N] (broadcast)', inputs: [{ name: 'a', dims: [3, 'M', 'K'] }, { name: 'b', dims: ['K', 4] }],
    sizes: [[[3, 4, 6], [6, 4]], [[3, 5, 3], [3, 4]]], build: (b, [a, c]) => b.node('MatMul', [a!, c!]),
    tf: (a, c) => tf.matMul(a!, tf.tile(tf.expandDims(c!, 0), [3, 1, 1])),
  },
  {
    name: 'MatMul 1-D [K]·[K,N]', inputs: [{ name: 'a', dims: ['K'] }, { name: 'b', dims: ['K', 3] }],
    sizes: [[[6], [6, 3]], [[5], [5, 3]]], build: (b, [a, c]) => b.node('MatMul', [a!, c!]),
    tf: (a, c) => tf.reshape(tf.matMul(tf.reshape(a!, [1, -1]) as tf.Tensor2D, c as tf.Tensor2D), [-1]),
  },
  {
    name: 'Gram F·Fᵀ (F = Reshape(x, [C, −1]))', inputs: [{ name: 'x', dims: [1, 4, 'H', 'W'] }], sizes: [[[1, 4, 6, 5]], [[1, 4, 7, 8]]],
    build: (b, [x]) => { const f = b.node('Reshape', [x!, i64(b, [4, -1])]); return b.node('MatMul', [f, b.node('Transpose', [f], { perm: [1, 0] })]); },
    tf: (x) => { const f = tf.reshape(x, [4, -1]) as tf.Tensor2D; return tf.matMul(f, f, false, true); },
  },
  ...([[0, 0], [1, 0], [0, 1], [1, 1]] as const).map(([tA, tB]): Case => ({
    name: `Gemm transA=${tA} transB=${tB} alpha=0.7 beta=1.3 (A, B, C differentiated)`,
    inputs: [{ name: 'a', dims: tA ? ['K', 'M'] : ['M', 'K'] }, { name: 'b', dims: tB ? [4, 'K'] : ['K', 4] }, { name: 'c', dims: [4] }],
    sizes: [[tA ? [6, 3] : [3, 6], tB ? [4, 6] : [6, 4], [4]], [tA ? [5, 2] : [2, 5], tB ? [4, 5] : [5, 4], [4]]],
    build: (b, [a, bb, c]) => b.node('Gemm', [a!, bb!, c!], { transA: tA, transB: tB, alpha: { float: 0.7 } as never, beta: { float: 1.3 } as never }),
    tf: (a, bb, c) => tf.add(tf.mul(tf.matMul(a as tf.Tensor2D, bb as tf.Tensor2D, tA === 1, tB === 1), 0.7), tf.mul(c!, 1.3)),
  })),
  {
    name: 'Flatten + Gemm(transB=1) classifier', inputs: [NCHW], sizes: [[[2, 3, 4, 4]], [[1, 3, 4, 4]]],
    build: (b, [x]) => b.node('Gemm', [b.node('Flatten', [x!]), b.weight('fc', [5, 48], randn(240, 2, 0.2))], { transB: 1 }),
    tf: (x) => tf.matMul(tf.reshape(x, [x.shape[0]!, -1]) as tf.Tensor2D, tf.tensor(randn(240, 2, 0.2), [5, 48]) as tf.Tensor2D, false, true),
  },
  // Shape ops
  {
    name: 'Reshape [0,3,−1] → Transpose → Flatten', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Flatten', [b.node('Transpose', [b.node('Reshape', [x!, i64(b, [0, 3, -1])])], { perm: [0, 2, 1] })], { axis: 1 }),
    tf: (x) => tf.reshape(tf.transpose(tf.reshape(x, [x.shape[0]!, 3, -1]), [0, 2, 1]), [x.shape[0]!, -1]),
  },
  {
    name: 'Transpose (default perm) and Unsqueeze/Squeeze', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Squeeze', [b.node('Unsqueeze', [b.node('Transpose', [x!]), i64(b, [0])]), i64(b, [0])]),
    tf: (x) => tf.transpose(x),
  },
  {
    name: 'Slice border crop [1:−1, 2:] (Pad adjoint)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Slice', [x!, i64(b, [1, 2]), i64(b, [-1, 2 ** 31 - 1]), i64(b, [2, -1])]),
    tf: (x) => tf.slice(x, [0, 0, 1, 2], [-1, -1, x.shape[2]! - 2, -1]),
  },
  {
    name: 'Slice without axes, ends beyond the size', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Slice', [x!, i64(b, [0, 1]), i64(b, [100, 3])]),
    tf: (x) => tf.slice(x, [0, 1, 0, 0], [-1, 2, -1, -1]),
  },
  {
    name: 'Slice step 2 and step −1 (scatter adjoint)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Slice', [x!, i64(b, [1, -1]), i64(b, [2 ** 31 - 1, -(2 ** 31)]), i64(b, [3, 2]), i64(b, [2, -1])]),
    tf: (x) => {
      const cols = Array.from({ length: Math.floor(x.shape[3]! / 2) }, (_, i) => 1 + 2 * i);
      return tf.reverse(tf.gather(x, tf.tensor1d(cols, 'int32'), 3), 2);
    },
  },
  {
    name: 'Pad constant (1,2 | 2,1)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Pad', [x!, i64(b, [0, 0, 1, 2, 0, 0, 2, 1])]),
    tf: (x) => tf.pad(x, [[0, 0], [0, 0], [1, 2], [2, 1]]),
  },
  {
    name: 'Pad with negative (cropping) amounts', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('Pad', [x!, i64(b, [0, 0, -1, 2, 0, 0, 1, -1])]),
    tf: (x) => tf.slice(tf.pad(x, [[0, 0], [0, 0], [0, 1], [2, 0]]), [0, 0, 1, 0], [-1, -1, -1, x.shape[3]! + 1]),
  },
  // Reductions
  unary('ReduceMean axes [2,3] keepdims 1', 'ReduceMean', (x) => tf.mean(x, [2, 3], true), { axes: [2, 3] }),
  unary('ReduceMean axes [1] keepdims 0', 'ReduceMean', (x) => tf.mean(x, [1], false), { axes: [1], keepdims: 0 }),
  unary('ReduceMean all', 'ReduceMean', (x) => tf.mean(x, undefined, true)),
  unary('ReduceSumSquare axes [1,−1] keepdims 1', 'ReduceSumSquare', (x) => tf.sum(tf.square(x), [1, 3], true), { axes: [1, -1] }),
  unary('ReduceSumSquare all keepdims 0', 'ReduceSumSquare', (x) => tf.sum(tf.square(x)), { keepdims: 0 }),
  {
    name: 'ReduceSum axes input [−1] keepdims 0', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('ReduceSum', [x!, i64(b, [-1])], { keepdims: 0 }), tf: (x) => tf.sum(x, -1),
  },
  {
    name: 'ReduceSum no axes (all)', inputs: [NCHW], sizes: S1,
    build: (b, [x]) => b.node('ReduceSum', [x!], { keepdims: 1 }), tf: (x) => tf.sum(x, undefined, true),
  },
];

describe('autodiff: per-op VJPs vs tfjs', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const p = await prepare({ inputs: c.inputs, build: c.build, wrt: c.wrt, options: c.options });
      let seed = 1;
      for (const size of c.sizes) {
        const data = size.map((dims) => {
          const d = randn(prod(dims), 1000 * seed++ + prod(dims));
          if (c.positive) for (let i = 0; i < d.length; i++) d[i] = Math.abs(d[i]!) + 0.2;
          return { data: d, dims };
        });
        const feeds = Object.fromEntries(c.inputs.map((s, i) => [s.name, data[i]!]));
        const r = await p.run(feeds, seed++);
        const o = tfGrads(c.tf, data, r.G, r.y.dims as number[]);
        const ey = relErr(r.y.data as Float32Array, o.y);
        assert.ok(ey < TOL, `forward differs from tfjs (${ey}) at ${JSON.stringify(size)}`);
        c.inputs.forEach((s, i) => {
          const e = relErr(r.grads[s.name]!, o.grads[i]!);
          assert.ok(e < TOL, `d/d${s.name} at ${JSON.stringify(size)}: rel. error ${e}`);
        });
      }
    });
  }
});
