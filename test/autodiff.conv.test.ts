// Per-op gradient checks for Conv, MaxPool, AveragePool and GlobalAveragePool: the gradient graph emitted by
// gradientGraph, run in a real ORT session, against tfjs tf.grad (conv, max-pool) or float64 central finite
// differences (average pool: tfjs's own 'same' avgPool gradient is wrong), at odd and even sizes from one model.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { GraphBuilder } from '../src/onnx/builder.js';
import { decodeModel } from '../src/onnx/proto.js';
import {
  type OpCase, fdGrad, hwio, prepare, prod, randn, relErr, tf, tfCpu, tfGrads, toNCHW, toNHWC,
} from './autodiff-util.js';

const TOL = 1e-4;
const SIZES: [number, number][] = [[8, 10], [9, 7], [11, 12]];

before(tfCpu);

interface ConvCase {
  name: string;
  cin: number;
  cout: number;
  k: [number, number];
  attrs: Record<string, number[] | number | string>;
  /** tfjs padding and strides equivalent to attrs. */
  tfPad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  strides: [number, number];
  bias?: boolean;
  group?: number;
  options?: OpCase['options'];
}

const convCases: ConvCase[] = [
  { name: '3×3 s1 pads 1 + bias', cin: 3, cout: 4, k: [3, 3], attrs: { pads: [1, 1, 1, 1] }, tfPad: [[0, 0], [1, 1], [1, 1], [0, 0]], strides: [1, 1], bias: true },
  { name: '3×3 s1 pads 1 via ConvTranspose', cin: 3, cout: 4, k: [3, 3], attrs: { pads: [1, 1, 1, 1] }, tfPad: [[0, 0], [1, 1], [1, 1], [0, 0]], strides: [1, 1], options: { convBackward: 'transpose' } },
  { name: '3×3 s1 VALID', cin: 3, cout: 4, k: [3, 3], attrs: { auto_pad: 'VALID' }, tfPad: 'valid', strides: [1, 1] },
  { name: '1×7 s1 SAME_UPPER', cin: 3, cout: 2, k: [1, 7], attrs: { auto_pad: 'SAME_UPPER' }, tfPad: 'same', strides: [1, 1] },
  { name: '7×1 s1 pads (3,0,3,0)', cin: 3, cout: 2, k: [7, 1], attrs: { pads: [3, 0, 3, 0] }, tfPad: [[0, 0], [3, 3], [0, 0], [0, 0]], strides: [1, 1] },
  { name: '2×2 s1 SAME_UPPER (asymmetric pads 0/1)', cin: 3, cout: 2, k: [2, 2], attrs: { auto_pad: 'SAME_UPPER' }, tfPad: 'same', strides: [1, 1] },
  { name: '3×3 s1 explicit pads (0,1,2,1)', cin: 3, cout: 2, k: [3, 3], attrs: { pads: [0, 1, 2, 1] }, tfPad: [[0, 0], [0, 2], [1, 1], [0, 0]], strides: [1, 1] },
  { name: '1×1', cin: 3, cout: 5, k: [1, 1], attrs: {}, tfPad: 'valid', strides: [1, 1], bias: true },
  { name: '3×3 s1 pads 3 (beyond k−1: general path)', cin: 2, cout: 3, k: [3, 3], attrs: { pads: [3, 3, 3, 3] }, tfPad: [[0, 0], [3, 3], [3, 3], [0, 0]], strides: [1, 1] },
  { name: '3×3 s2 valid', cin: 3, cout: 4, k: [3, 3], attrs: { strides: [2, 2] }, tfPad: 'valid', strides: [2, 2] },
  { name: '3×3 s2 SAME_UPPER', cin: 3, cout: 4, k: [3, 3], attrs: { strides: [2, 2], auto_pad: 'SAME_UPPER' }, tfPad: 'same', strides: [2, 2] },
  { name: '5×5 s2 asymmetric pads (1,2,2,1)', cin: 2, cout: 3, k: [5, 5], attrs: { strides: [2, 2], pads: [1, 2, 2, 1] }, tfPad: [[0, 0], [1, 2], [2, 1], [0, 0]], strides: [2, 2] },
  { name: '4×4 s2 pads 1, stride (2,3)', cin: 2, cout: 3, k: [4, 4], attrs: { strides: [2, 3], pads: [1, 1, 1, 1] }, tfPad: [[0, 0], [1, 1], [1, 1], [0, 0]], strides: [2, 3] },
  { name: '3×3 s1 pads 1 group 2', cin: 4, cout: 6, k: [3, 3], attrs: { pads: [1, 1, 1, 1], group: 2 }, tfPad: [[0, 0], [1, 1], [1, 1], [0, 0]], strides: [1, 1], group: 2 },
];

describe('autodiff: Conv', () => {
  for (const c of convCases) {
    it(c.name, async () => {
      const group = c.group ?? 1;
      const wDims = [c.cout, c.cin / group, ...c.k];
      const W = randn(prod(wDims), 3, 0.4);
      const B = randn(c.cout, 4);
      const p = await prepare({
        inputs: [{ name: 'x', dims: ['N', c.cin, 'H', 'W'] }],
        options: c.options,
        build: (b: GraphBuilder, [x]) => {
          const ins = [x!, b.weight('w', wDims, W)];
          if (c.bias) ins.push(b.weight('b', [c.cout], B));
          return b.node('Conv', ins, { kernel_shape: c.k, ...c.attrs });
        },
      });
      for (const [h, w] of SIZES) {
        const dims = [2, c.cin, h, w];
        const x = randn(prod(dims), h * 100 + w);
        const r = await p.run({ x: { data: x, dims } }, 7);
        const o = tfGrads((xx) => {
          const wt = hwio(tf.tensor(W, wDims));
          let y: tf.Tensor;
          if (group === 1) y = tf.conv2d(toNHWC(xx), wt, c.strides, c.tfPad);
          else {
            const xs = tf.split(toNHWC(xx), group, 3);
            const ws = tf.split(wt, group, 3);
            y = tf.concat(xs.map((xg, i) => tf.conv2d(xg as tf.Tensor4D, ws[i] as tf.Tensor4D, c.strides, c.tfPad)), 3);
          }
          if (c.bias) y = tf.add(y, tf.tensor(B));
          return toNCHW(y);
        }, [{ data: x, dims }], r.G, r.y.dims as number[]);
        assert.ok(relErr(r.y.data as Float32Array, o.y) < TOL, `forward ${h}×${w}`);
        const e = relErr(r.grads.x!, o.grads[0]!);
        assert.ok(e < TOL, `${c.name} at ${h}×${w}: rel. error ${e}`);
      }
    });
  }
});

describe('autodiff: MaxPool (block mask for k×k/k, parity split for 3×3/2, ScatterElements add otherwise)', () => {
  const cases: { name: string; k: number; s: number; attrs: Record<string, unknown>; tfPad: 'valid' | 'same' | number; ties?: boolean; options?: OpCase['options'] }[] = [
    { name: '2×2 s2 (SpaceToDepth mask, no Indices)', k: 2, s: 2, attrs: {}, tfPad: 'valid' },
    { name: '2×2 s2 with many ties (first max gets the gradient, like TF)', k: 2, s: 2, attrs: {}, tfPad: 'valid', ties: true },
    { name: '3×3 s3 with ties (block mask)', k: 3, s: 3, attrs: {}, tfPad: 'valid', ties: true },
    { name: '2×2 s2 with ties via ScatterElements (maxPoolBackward: scatter)', k: 2, s: 2, attrs: {}, tfPad: 'valid', ties: true, options: { maxPoolBackward: 'scatter' } },
    { name: '3×3 s2 valid (overlapping windows, parity split)', k: 3, s: 2, attrs: {}, tfPad: 'valid' },
    { name: '3×3 s2 valid with many ties (parity split: first max in row-major order, like TF)', k: 3, s: 2, attrs: {}, tfPad: 'valid', ties: true },
    { name: '3×3 s2 valid with ties via ScatterElements (maxPoolBackward: scatter)', k: 3, s: 2, attrs: {}, tfPad: 'valid', ties: true, options: { maxPoolBackward: 'scatter' } },
    { name: '3×3 s2 SAME_UPPER', k: 3, s: 2, attrs: { auto_pad: 'SAME_UPPER' }, tfPad: 'same' },
    { name: '3×3 s1 pads 1', k: 3, s: 1, attrs: { pads: [1, 1, 1, 1] }, tfPad: 1 },
  ];
  for (const [k, s] of [[2, 2], [3, 2]] as const) {
    it(`Relu → ${k}×${k} s${s} (many zero windows): the Relu mask is applied once, at the pooled size`, async () => {
      const p = await prepare({
        inputs: [{ name: 'x', dims: ['N', 3, 'H', 'W'] }],
        build: (b, [x]) => b.node('MaxPool', [b.node('Relu', [x!])], { kernel_shape: [k, k], strides: [s, s] }),
      });
      const greater = decodeModel(p.gradModel).graph!.node!.filter((n) => n.opType === 'Greater');
      assert.equal(greater.length, 1, 'one Greater (pooled size), no full-size Relu mask');
      for (const [h, w] of [...SIZES, [17, 17] as [number, number]]) {
        const dims = [2, 3, h, w];
        const x = randn(prod(dims), h * 37 + w, 1, -0.6).map((v) => Math.round(v * 2) / 2); // mostly ≤ 0, ties
        const r = await p.run({ x: { data: x, dims } }, 9);
        const o = tfGrads((xx) => toNCHW(tf.maxPool(toNHWC(tf.relu(xx)), k, s, 'valid')), [{ data: x, dims }], r.G, r.y.dims as number[]);
        const e = relErr(r.grads.x!, o.grads[0]!);
        assert.ok(e < TOL, `at ${h}×${w}: rel. error ${e}`);
      }
    });
  }
  for (const c of cases) {
    it(c.name, async () => {
      const p = await prepare({
        inputs: [{ name: 'x', dims: ['N', 3, 'H', 'W'] }],
        options: c.options,
        build: (b, [x]) => b.node('MaxPool', [x!], { kernel_shape: [c.k, c.k], strides: [c.s, c.s], ...(c.attrs as Record<string, string>) }),
      });
      const ops = new Set(decodeModel(p.gradModel).graph!.node!.map((n) => n.opType));
      const dense = !c.options && Object.keys(c.attrs).length === 0 && (c.k === c.s || (c.k === 3 && c.s === 2));
      assert.equal(ops.has('ScatterElements'), !dense, 'ScatterElements only for pools that are neither k×k/k nor 3×3/2 without padding');
      for (const [h, w] of [...SIZES, [17, 17] as [number, number]]) {
        const dims = [2, 3, h, w];
        // Ties: values on a coarse grid, a quarter of them clamped to 0 (as after a ReLU).
        const x = randn(prod(dims), h * 31 + w).map((v) => (c.ties ? Math.max(Math.round(v * 2) / 2, 0) : v));
        const r = await p.run({ x: { data: x, dims } }, 9);
        const o = tfGrads((xx) => toNCHW(tf.maxPool(toNHWC(xx), c.k, c.s, c.tfPad)), [{ data: x, dims }], r.G, r.y.dims as number[]);
        assert.ok(relErr(r.y.data as Float32Array, o.y) < TOL, `forward ${h}×${w}`);
        const e = relErr(r.grads.x!, o.grads[0]!);
        assert.ok(e < TOL, `${c.name} at ${h}×${w}: rel. error ${e}`);
      }
    });
  }
});

/** Float64 NCHW average pool; pads = [top, left, bottom, right]; SAME_UPPER pads computed like ONNX/TF. */
function avgPool64(
  x: Float64Array, dimsIn: number[], k: number, s: number, padsIn: number[] | 'SAME_UPPER', cip: number,
): { y: Float64Array; dims: number[] } {
  const [n, ch, h, w] = dimsIn as [number, number, number, number];
  let pads: number[];
  let oh: number;
  let ow: number;
  if (padsIn === 'SAME_UPPER') {
    oh = Math.ceil(h / s); ow = Math.ceil(w / s);
    const th = Math.max((oh - 1) * s + k - h, 0);
    const tw = Math.max((ow - 1) * s + k - w, 0);
    pads = [Math.floor(th / 2), Math.floor(tw / 2), th - Math.floor(th / 2), tw - Math.floor(tw / 2)];
  } else {
    pads = padsIn;
    oh = Math.floor((h + pads[0]! + pads[2]! - k) / s) + 1;
    ow = Math.floor((w + pads[1]! + pads[3]! - k) / s) + 1;
  }
  const y = new Float64Array(n * ch * oh * ow);
  for (let b = 0; b < n * ch; b++) {
    for (let i = 0; i < oh; i++) {
      for (let j = 0; j < ow; j++) {
        let sum = 0;
        let cnt = 0;
        for (let di = 0; di < k; di++) {
          for (let dj = 0; dj < k; dj++) {
            const r = i * s - pads[0]! + di;
            const c = j * s - pads[1]! + dj;
            if (r >= 0 && r < h && c >= 0 && c < w) { sum += x[(b * h + r) * w + c]!; cnt++; }
          }
        }
        y[(b * oh + i) * ow + j] = sum / (cip ? k * k : cnt);
      }
    }
  }
  return { y, dims: [n, ch, oh, ow] };
}

describe('autodiff: AveragePool (vs float64 finite differences)', () => {
  const cases: { name: string; k: number; s: number; pads: number[] | 'SAME_UPPER'; cip: number }[] = [
    { name: '3×3 s1 SAME_UPPER count_include_pad 0 (Inception)', k: 3, s: 1, pads: 'SAME_UPPER', cip: 0 },
    { name: '3×3 s1 pads 1 count_include_pad 1', k: 3, s: 1, pads: [1, 1, 1, 1], cip: 1 },
    { name: '2×2 s1 SAME_UPPER count_include_pad 0 (asymmetric)', k: 2, s: 1, pads: 'SAME_UPPER', cip: 0 },
    { name: '3×3 s1 pads (0,1,2,1) count_include_pad 1', k: 3, s: 1, pads: [0, 1, 2, 1], cip: 1 },
    { name: '3×3 s2 valid', k: 3, s: 2, pads: [0, 0, 0, 0], cip: 0 },
    { name: '3×3 s2 pads 1 count_include_pad 0', k: 3, s: 2, pads: [1, 1, 1, 1], cip: 0 },
    { name: '3×3 s2 pads (0,1,1,0) count_include_pad 1', k: 3, s: 2, pads: [0, 1, 1, 0], cip: 1 },
    { name: '2×2 s2', k: 2, s: 2, pads: [0, 0, 0, 0], cip: 0 },
    { name: '3×3 s2 SAME_UPPER count_include_pad 0', k: 3, s: 2, pads: 'SAME_UPPER', cip: 0 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const p = await prepare({
        inputs: [{ name: 'x', dims: ['N', 2, 'H', 'W'] }],
        build: (b, [x]) => b.node('AveragePool', [x!], {
          kernel_shape: [c.k, c.k], strides: [c.s, c.s], count_include_pad: c.cip,
          ...(c.pads === 'SAME_UPPER' ? { auto_pad: 'SAME_UPPER' } : { pads: c.pads }),
        }),
      });
      for (const [h, w] of SIZES) {
        const dims = [2, 2, h, w];
        const x = randn(prod(dims), h * 7 + w);
        const r = await p.run({ x: { data: x, dims } }, 13);
        const ref = avgPool64(Float64Array.from(x), dims, c.k, c.s, c.pads, c.cip);
        assert.deepEqual(r.y.dims, ref.dims);
        assert.ok(relErr(r.y.data as Float32Array, ref.y) < TOL, `forward ${h}×${w}`);
        const G = r.G;
        const g = fdGrad((xx) => {
          const yy = avgPool64(xx, dims, c.k, c.s, c.pads, c.cip).y;
          let sum = 0;
          for (let i = 0; i < yy.length; i++) sum += yy[i]! * G[i]!;
          return sum;
        }, Float64Array.from(x), 0.5);
        const e = relErr(r.grads.x!, g);
        assert.ok(e < TOL, `${c.name} at ${h}×${w}: rel. error ${e}`);
      }
    });
  }

  it('GlobalAveragePool', async () => {
    const p = await prepare({
      inputs: [{ name: 'x', dims: ['N', 3, 'H', 'W'] }],
      build: (b, [x]) => b.node('GlobalAveragePool', [x!]),
    });
    for (const [h, w] of SIZES) {
      const dims = [2, 3, h, w];
      const x = randn(prod(dims), h + w);
      const r = await p.run({ x: { data: x, dims } }, 3);
      const o = tfGrads((xx) => tf.mean(xx, [2, 3], true), [{ data: x, dims }], r.G, r.y.dims as number[]);
      assert.ok(relErr(r.grads.x!, o.grads[0]!) < TOL);
    }
  });
});
