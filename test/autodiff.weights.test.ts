// Weight gradients: gradientGraph with initializers in `wrt` (Conv weights and bias incl. strides, asymmetric
// and SAME padding, groups, dilation; Gemm / MatMul weights; BatchNormalization scale and bias), run in a real
// ORT session at two sizes from one model, against tfjs tf.grads of the same function of (x, weights).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { gradientGraph } from '../src/onnx/autodiff.js';
import type { GraphBuilder } from '../src/onnx/builder.js';
import { decodeModel } from '../src/onnx/proto.js';
import { type InputSpec, type OpCase, hwio, prepare, prod, randn, relErr, tf, tfCpu, tfGrads, toNCHW, toNHWC } from './autodiff-util.js';

const TOL = 1e-4;
before(tfCpu);

interface Weight { name: string; dims: number[]; data: Float32Array }

interface WeightCase {
  name: string;
  inputs: InputSpec[];
  weights: Weight[];
  /** Concrete dims of each input, one entry per run. */
  sizes: number[][][];
  build: (b: GraphBuilder, ins: string[], w: string[]) => string;
  /** The same function in tfjs, of the inputs then the weights. */
  tf: (...xs: tf.Tensor[]) => tf.Tensor;
  options?: OpCase['options'];
  /** Op types the weight-gradient part of the graph must (and must not) contain: which form was emitted. */
  expectOps?: { has: string[]; hasNot?: string[] };
}

const weight = (name: string, dims: number[], seed: number, scale = 0.4): Weight => ({ name, dims, data: randn(prod(dims), seed, scale) });

/** 0/1 matrix spreading a k-tap kernel (flattened kh·kw) onto its dilated extent (flattened). */
function dilationMatrix(k: [number, number], d: [number, number]): tf.Tensor2D {
  const e = [(k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1];
  const s = new Float32Array(k[0] * k[1] * e[0]! * e[1]!);
  for (let i = 0; i < k[0]; i++) for (let j = 0; j < k[1]; j++) s[(i * k[1] + j) * e[0]! * e[1]! + i * d[0] * e[1]! + j * d[1]] = 1;
  return tf.tensor2d(s, [k[0] * k[1], e[0]! * e[1]!]);
}

interface ConvSpec {
  cin: number; cout: number; k: [number, number]; strides?: [number, number]; dilations?: [number, number]; group?: number;
  attrs: Record<string, number[] | number | string>;
  tfPad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  bias?: boolean;
}

/** tfjs oracle for an ONNX Conv: dilation by zero-inserting the kernel (differentiable in w), groups by split. */
function tfConv(c: ConvSpec, x: tf.Tensor, w: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const group = c.group ?? 1;
  const d = c.dilations ?? [1, 1];
  let wk = w;
  if (d[0] !== 1 || d[1] !== 1) {
    const e = [(c.k[0] - 1) * d[0] + 1, (c.k[1] - 1) * d[1] + 1];
    wk = tf.reshape(tf.matMul(tf.reshape(w, [-1, c.k[0] * c.k[1]]) as tf.Tensor2D, dilationMatrix(c.k, d)), [c.cout, c.cin / group, e[0]!, e[1]!]);
  }
  const conv = (xg: tf.Tensor, wg: tf.Tensor): tf.Tensor => tf.conv2d(xg as tf.Tensor4D, wg as tf.Tensor4D, c.strides ?? [1, 1], c.tfPad);
  let y: tf.Tensor;
  if (group === 1) y = conv(toNHWC(x), hwio(wk));
  else {
    const ws = tf.split(hwio(wk), group, 3);
    y = tf.concat(tf.split(toNHWC(x), group, 3).map((xg, i) => conv(xg, ws[i]!)), 3);
  }
  if (bias) y = tf.add(y, bias);
  return toNCHW(y);
}

const convCase = (name: string, c: ConvSpec, seed: number): WeightCase => {
  const group = c.group ?? 1;
  const weights = [weight('w', [c.cout, c.cin / group, ...c.k], seed), ...(c.bias ? [weight('b', [c.cout], seed + 1, 1)] : [])];
  return {
    name: `Conv ${name}`, inputs: [{ name: 'x', dims: ['N', c.cin, 'H', 'W'] }], weights,
    sizes: [[[2, c.cin, 8, 10]], [[1, c.cin, 9, 7]]],
    build: (b, [x], w) => b.node('Conv', [x!, ...w], {
      kernel_shape: c.k, ...c.attrs, ...(c.strides ? { strides: c.strides } : {}), ...(c.dilations ? { dilations: c.dilations } : {}),
      ...(group !== 1 ? { group } : {}),
    }),
    tf: (x, w, bias) => tfConv(c, x!, w!, bias),
  };
};

const P = (t: number, b: number, l: number, r: number): ConvSpec['tfPad'] => [[0, 0], [t, b], [l, r], [0, 0]];

const cases: WeightCase[] = [
  convCase('3×3 s1 pads 1 + bias', { cin: 3, cout: 4, k: [3, 3], attrs: { pads: [1, 1, 1, 1] }, tfPad: P(1, 1, 1, 1), bias: true }, 11),
  convCase('1×1 + bias', { cin: 3, cout: 5, k: [1, 1], attrs: {}, tfPad: 'valid', bias: true }, 12),
  convCase('2×2 s1 SAME_UPPER (asymmetric)', { cin: 3, cout: 2, k: [2, 2], attrs: { auto_pad: 'SAME_UPPER' }, tfPad: 'same' }, 13),
  convCase('3×3 s2 valid', { cin: 3, cout: 4, k: [3, 3], strides: [2, 2], attrs: {}, tfPad: 'valid' }, 14),
  convCase('3×3 s2 SAME_UPPER + bias (pads depend on the size)', { cin: 3, cout: 4, k: [3, 3], strides: [2, 2], attrs: { auto_pad: 'SAME_UPPER' }, tfPad: 'same', bias: true }, 15),
  convCase('5×5 s2 pads (1,2,2,1)', { cin: 2, cout: 3, k: [5, 5], strides: [2, 2], attrs: { pads: [1, 2, 2, 1] }, tfPad: P(1, 2, 2, 1) }, 16),
  convCase('4×4 strides (2,3) pads 1', { cin: 2, cout: 3, k: [4, 4], strides: [2, 3], attrs: { pads: [1, 1, 1, 1] }, tfPad: P(1, 1, 1, 1) }, 17),
  convCase('3×3 group 2 pads 1 + bias', { cin: 4, cout: 6, k: [3, 3], group: 2, attrs: { pads: [1, 1, 1, 1] }, tfPad: P(1, 1, 1, 1), bias: true }, 18),
  convCase('3×3 group 3 s2 SAME_UPPER', { cin: 6, cout: 3, k: [3, 3], group: 3, strides: [2, 2], attrs: { auto_pad: 'SAME_UPPER' }, tfPad: 'same' }, 19),
  convCase('3×3 depthwise (group = C = 4, 8 outputs)', { cin: 4, cout: 8, k: [3, 3], group: 4, attrs: { pads: [1, 1, 1, 1] }, tfPad: P(1, 1, 1, 1) }, 20),
  convCase('3×3 dilation 2 pads 2', { cin: 3, cout: 4, k: [3, 3], dilations: [2, 2], attrs: { pads: [2, 2, 2, 2] }, tfPad: P(2, 2, 2, 2) }, 21),
  // ORT's Conv rejects dilation with SAME auto_pad, so explicit asymmetric pads here.
  convCase('3×2 dilation (2,3) s2 pads (2,1,2,2) + bias', { cin: 2, cout: 3, k: [3, 2], dilations: [2, 3], strides: [2, 2], attrs: { pads: [2, 1, 2, 2] }, tfPad: P(2, 2, 1, 2), bias: true }, 22),
  {
    name: 'Gemm transB=1 alpha 0.7 beta 1.3 (W and bias)', inputs: [{ name: 'x', dims: ['N', 6] }],
    weights: [weight('w', [4, 6], 31), weight('b', [4], 32)], sizes: [[[3, 6]], [[5, 6]]],
    build: (b, [x], [w, c]) => b.node('Gemm', [x!, w!, c!], { transB: 1, alpha: { float: 0.7 }, beta: { float: 1.3 } }),
    tf: (x, w, c) => tf.add(tf.mul(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D, false, true), 0.7), tf.mul(c!, 1.3)),
  },
  {
    name: 'Gemm transA=1 (W and a [1, M] bias)', inputs: [{ name: 'x', dims: [6, 'N'] }],
    weights: [weight('w', [6, 4], 33), weight('b', [1, 4], 34)], sizes: [[[6, 3]], [[6, 2]]],
    build: (b, [x], [w, c]) => b.node('Gemm', [x!, w!, c!], { transA: 1 }),
    tf: (x, w, c) => tf.add(tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D, true, false), c!),
  },
  {
    name: 'MatMul [B,N,K]·W[K,M] + bias (W summed over the batch)', inputs: [{ name: 'x', dims: [2, 'N', 5] }],
    weights: [weight('w', [5, 3], 35), weight('b', [3], 36)], sizes: [[[2, 4, 5]], [[2, 3, 5]]],
    build: (b, [x], [w, c]) => b.node('Add', [b.node('MatMul', [x!, w!]), c!]),
    tf: (x, w, c) => tf.add(tf.matMul(x!, tf.tile(tf.expandDims(w!, 0), [2, 1, 1])), c!),
  },
  {
    name: 'BatchNormalization (inference): scale and bias', inputs: [{ name: 'x', dims: ['N', 3, 'H', 'W'] }],
    weights: [weight('scale', [3], 41, 1), weight('bias', [3], 42, 1)], sizes: [[[2, 3, 5, 6]], [[1, 3, 7, 4]]],
    build: (b, [x], [s, c]) => b.node('BatchNormalization', [x!, s!, c!,
      b.weight('mean', [3], Float32Array.from([0.3, -0.2, 0.1])), b.weight('var', [3], Float32Array.from([0.5, 2, 1.2]))], { epsilon: { float: 1e-3 } }),
    tf: (x, s, c) => {
      const ch = (t: tf.Tensor): tf.Tensor => tf.reshape(t, [3, 1, 1]);
      const norm = tf.div(tf.sub(x!, ch(tf.tensor([0.3, -0.2, 0.1]))), tf.sqrt(tf.add(ch(tf.tensor([0.5, 2, 1.2])), 1e-3)));
      return tf.add(tf.mul(norm, ch(s!)), ch(c!));
    },
  },
];

/**
 * convWeightGrad 'gemm' (the ORT trainer's form): static C, H, W (N stays symbolic, two batch sizes); the patch
 * Gather + Gemm where K·C ≥ 64 and the patches are small, the Conv form otherwise (one channel; SAME with stride 2,
 * whose pads are not static).
 */
const gemmCase = (name: string, c: ConvSpec, hw: [number, number], seed: number, form: 'gemm' | 'conv'): WeightCase => {
  const base = convCase(name, c, seed);
  return {
    ...base, name: `${base.name} (convWeightGrad gemm → ${form === 'gemm' ? 'patches + Gemm' : 'Conv form kept'})`,
    inputs: [{ name: 'x', dims: ['N', c.cin, ...hw] }],
    sizes: [[[2, c.cin, ...hw]], [[3, c.cin, ...hw]]],
    options: { convWeightGrad: 'gemm' },
    expectOps: form === 'gemm' ? { has: ['Gather'], hasNot: ['dweight:Conv'] } : { has: ['dweight:Conv'], hasNot: ['Gather'] },
  };
};

cases.push(
  gemmCase('3×3 valid + bias', { cin: 8, cout: 4, k: [3, 3], attrs: {}, tfPad: 'valid', bias: true }, [9, 11], 51, 'gemm'),
  gemmCase('3×3 s2 pads (1,2,2,1)', { cin: 8, cout: 3, k: [3, 3], strides: [2, 2], attrs: { pads: [1, 2, 2, 1] }, tfPad: P(1, 2, 2, 1) }, [10, 9], 52, 'gemm'),
  gemmCase('2×2 s1 SAME_UPPER (asymmetric)', { cin: 16, cout: 5, k: [2, 2], attrs: { auto_pad: 'SAME_UPPER' }, tfPad: 'same' }, [7, 8], 53, 'gemm'),
  gemmCase('3×2 dilation (2,3) s2 pads (2,1,2,2) + bias', { cin: 11, cout: 3, k: [3, 2], dilations: [2, 3], strides: [2, 2], attrs: { pads: [2, 1, 2, 2] }, tfPad: P(2, 2, 1, 2), bias: true }, [11, 12], 54, 'gemm'),
  gemmCase('3×3 one input channel', { cin: 1, cout: 4, k: [3, 3], attrs: {}, tfPad: 'valid' }, [9, 8], 55, 'conv'),
  gemmCase('3×3 s2 SAME_UPPER', { cin: 8, cout: 4, k: [3, 3], strides: [2, 2], attrs: { auto_pad: 'SAME_UPPER' }, tfPad: 'same' }, [9, 8], 56, 'conv'),
);

/** Op types of a gradient graph, plus `hint:Op` for the autodiff's named backward nodes (n_grad/<hint>…). */
function opsOf(model: Uint8Array): Set<string> {
  const ops = new Set<string>();
  for (const n of decodeModel(model).graph!.node!) {
    ops.add(n.opType!);
    const hint = /grad\/([a-z_]+?)(_\d+)?$/.exec(n.name ?? '')?.[1];
    if (hint) ops.add(`${hint}:${n.opType}`);
  }
  return ops;
}

describe('autodiff: weight gradients vs tfjs', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const wrt = [...c.inputs.map((i) => i.name), ...c.weights.map((w) => w.name)];
      const p = await prepare({
        inputs: c.inputs, wrt, options: c.options,
        build: (b, ins) => c.build(b, ins, c.weights.map((w) => b.weight(w.name, w.dims, w.data))),
      });
      if (c.expectOps) {
        const ops = opsOf(p.gradModel);
        for (const op of c.expectOps.has) assert.ok(ops.has(op), `${op} expected in the gradient graph`);
        for (const op of c.expectOps.hasNot ?? []) assert.ok(!ops.has(op), `${op} not expected in the gradient graph`);
      }
      let seed = 5;
      for (const size of c.sizes) {
        const data = size.map((dims) => ({ data: randn(prod(dims), 100 * seed++ + prod(dims)), dims }));
        const r = await p.run(Object.fromEntries(c.inputs.map((s, i) => [s.name, data[i]!])), seed++);
        const o = tfGrads(c.tf, [...data, ...c.weights], r.G, r.y.dims as number[]);
        assert.ok(relErr(r.y.data as Float32Array, o.y) < TOL, `forward differs at ${JSON.stringify(size)}`);
        wrt.forEach((name, i) => {
          const e = relErr(r.grads[name]!, o.grads[i]!);
          assert.ok(e < TOL, `d/d${name} at ${JSON.stringify(size)}: rel. error ${e}`);
        });
      }
    });
  }

  it('initializer gradients are declared outputs with the initializer\'s dims; mean/var are refused', () => {
    const c = cases.find((k) => k.name.startsWith('BatchNormalization'))!;
    const p = (wrt: string[]): Uint8Array => {
      const { GraphBuilder } = builderModule;
      const b = new GraphBuilder('bn');
      const x = b.input('x', 'float32', ['N', 3, 'H', 'W']);
      const y = c.build(b, [x], c.weights.map((w) => b.weight(w.name, w.dims, w.data)));
      b.node('ReduceSum', [y], { keepdims: 0 }, { outputs: ['loss'] });
      b.output('loss');
      return gradientGraph(b.serialize().model, { loss: 'loss', wrt });
    };
    const out = decodeModel(p(['scale'])).graph!.output!.find((o) => o.name === 'scale_grad')!;
    assert.deepEqual(out.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue)), [3]);
    assert.throws(() => p(['mean']), /running mean\/var are not supported/);
    assert.throws(() => p(['nope']), /wrt 'nope' is neither a graph input nor an initializer/);
  });
});

const builderModule = await import('../src/onnx/builder.js');
