// The Gram matrix of the style loss as one Gemm (F·Fᵀ with transB, no transposed copy of F) and the autodiff's
// Gemm rule for a shared operand (one product with the symmetrised upstream gradient): the ORT gradient
// against tfjs tf.grads at two sizes, and the backward's shape (one Gemm per Gram, no Transpose of F).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { GraphBuilder } from '../src/onnx/builder.js';
import { decodeModel } from '../src/onnx/proto.js';
import { prepare, prod, randn, relErr, tf, tfCpu, tfGrads } from './autodiff-util.js';

const TOL = 1e-4;
before(tfCpu);

const C = 4;
const flat = (b: GraphBuilder, x: string): string => b.node('Reshape', [x, b.ints([C, -1])]);
const tfFlat = (x: tf.Tensor): tf.Tensor2D => tf.reshape(x, [C, -1]) as tf.Tensor2D;

const cases = [
  {
    name: 'Gram F·Fᵀ = Gemm(F, F, transB=1)',
    build: (b: GraphBuilder, [x]: string[]) => { const f = flat(b, x!); return b.node('Gemm', [f, f], { transB: 1 }); },
    tf: (x: tf.Tensor) => tf.matMul(tfFlat(x), tfFlat(x), false, true),
  },
  {
    name: 'Fᵀ·F = Gemm(F, F, transA=1), alpha 0.5',
    build: (b: GraphBuilder, [x]: string[]) => { const f = flat(b, x!); return b.node('Gemm', [f, f], { transA: 1, alpha: { float: 0.5 } }); },
    tf: (x: tf.Tensor) => tf.mul(tf.matMul(tfFlat(x), tfFlat(x), true, false), 0.5),
  },
  {
    name: 'style term Σ(Gemm(F, F, transB=1) − A)² (A a second input, not differentiated)',
    build: (b: GraphBuilder, [x, a]: string[]) => {
      const f = flat(b, x!);
      return b.node('ReduceSumSquare', [b.node('Sub', [b.node('Gemm', [f, f], { transB: 1 }), a!])], { keepdims: 0 });
    },
    tf: (x: tf.Tensor, a: tf.Tensor) => tf.sum(tf.square(tf.sub(tf.matMul(tfFlat(x), tfFlat(x), false, true), a!))),
    target: true,
  },
];

describe('style Gram as one Gemm: gradient vs tfjs', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const inputs = [{ name: 'x', dims: [1, C, 'H', 'W'] as (string | number)[] }, ...(c.target ? [{ name: 'a', dims: [C, C] as (string | number)[] }] : [])];
      const p = await prepare({ inputs, build: c.build, wrt: ['x'] });
      let seed = 7;
      for (const [h, w] of [[6, 5], [7, 8]] as const) {
        const data = [{ data: randn(C * h * w, seed++), dims: [1, C, h, w] }, ...(c.target ? [{ data: randn(C * C, seed++, 3), dims: [C, C] }] : [])];
        const r = await p.run(Object.fromEntries(inputs.map((s, i) => [s.name, data[i]!])), seed++);
        const o = tfGrads(c.tf as (...xs: tf.Tensor[]) => tf.Tensor, data, r.G, r.y.dims as number[]);
        assert.ok(relErr(r.y.data as Float32Array, o.y) < TOL, `forward at ${h}×${w}`);
        const e = relErr(r.grads.x!, o.grads[0]!);
        assert.ok(e < TOL, `d/dx at ${h}×${w}: rel. error ${e}`);
        assert.equal(prod([1, C, h, w]), r.grads.x!.length);
      }
      // One Gemm forward, one backward; the only Transpose is the C×C one of the upstream gradient.
      const ops = (decodeModel(p.gradModel).graph?.node ?? []).map((n) => n.opType);
      assert.equal(ops.filter((o) => o === 'Gemm').length, 2, ops.join(','));
      assert.equal(ops.filter((o) => o === 'MatMul').length, 0, ops.join(','));
      assert.equal(ops.filter((o) => o === 'Transpose').length, 1, ops.join(','));
    });
  }
});
