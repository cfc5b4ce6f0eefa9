// Whole-graph checks on the real architecture builders (src/models/architectures) at reduced width with
// synthetic weights: VGG19 Gatys loss (5 Gram style layers + block5_conv2 content + TV) and InceptionV3
// DeepDream loss (mixed4…mixed7, 2-pixel crop), input gradient from gradientGraph vs tfjs. The tfjs oracle
// re-executes the same forward graph op by op with tfjs ops (independent kernels and independent autodiff;
// the 'same' average pool is built from depthwiseConv2d sums/counts because tfjs's avgPool gradient is wrong).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { getArchitecture } from '../src/models/architectures/index.js';
import { synthesizeKerasWeights } from '../src/models/synth.js';
import { gradientGraph } from '../src/onnx/autodiff.js';
import type { GraphBuilder } from '../src/onnx/builder.js';
import { attributeValue, tensorToFloat32 } from '../src/onnx/proto.js';
import { ort, prod, randn, relErr, session, tf, tfCpu, toNCHW, toNHWC } from './autodiff-util.js';

const TOL = 1e-4;
const WIDTH = 1 / 8;
before(tfCpu);

/** Runs the forward nodes of `b` with tfjs (4-D values kept NHWC); returns every value by name. */
function tfForward(b: GraphBuilder, input: string, x: tf.Tensor): Map<string, tf.Tensor> {
  const vals = new Map<string, tf.Tensor>([[input, toNHWC(x)]]);
  const init = new Map(b.initializers.map((t) => [t.name!, t]));
  const w = (name: string): Float32Array => tensorToFloat32(init.get(name)!);
  for (const n of b.nodes) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const a = Object.fromEntries((n.attribute ?? []).map((at) => [at.name!, attributeValue(at)])) as Record<string, any>;
    const ins = n.input!.map((i) => vals.get(i)!);
    let y: tf.Tensor;
    const pads = (p: number[] | undefined): [[number, number], [number, number], [number, number], [number, number]] =>
      [[0, 0], [p?.[0] ?? 0, p?.[2] ?? 0], [p?.[1] ?? 0, p?.[3] ?? 0], [0, 0]];
    switch (n.opType) {
      case 'Conv': {
        const dims = init.get(n.input![1]!)!.dims!.map(Number);
        const k = tf.transpose(tf.tensor4d(w(n.input![1]!), dims as [number, number, number, number]), [2, 3, 1, 0]);
        y = tf.conv2d(ins[0] as tf.Tensor4D, k, a.strides as [number, number] ?? 1, pads(a.pads));
        if (n.input![2]) y = tf.add(y, tf.tensor(w(n.input![2]!)));
        break;
      }
      case 'Relu': y = tf.relu(ins[0]!); break;
      case 'MaxPool':
        assert.ok((a.pads ?? [0]).every((p: number) => p === 0));
        y = tf.maxPool(ins[0] as tf.Tensor4D, a.kernel_shape as [number, number], a.strides as [number, number], 'valid');
        break;
      case 'AveragePool': {
        assert.equal(a.count_include_pad ?? 0, 0);
        const [kh, kw] = a.kernel_shape as [number, number];
        const xin = ins[0] as tf.Tensor4D;
        const c = xin.shape[3];
        const sum = tf.depthwiseConv2d(xin, tf.ones([kh, kw, c, 1]) as tf.Tensor4D, a.strides as [number, number], pads(a.pads));
        const cnt = tf.conv2d(tf.ones([1, xin.shape[1], xin.shape[2], 1]) as tf.Tensor4D, tf.ones([kh, kw, 1, 1]) as tf.Tensor4D, a.strides as [number, number], pads(a.pads));
        y = tf.div(sum, cnt);
        break;
      }
      case 'Concat': assert.equal(a.axis, 1); y = tf.concat(ins, 3); break;
      case 'Identity': y = ins[0]!; break;
      default: throw new Error(`tfjs oracle: op ${n.opType} not implemented`);
    }
    vals.set(n.output![0]!, y);
  }
  return vals;
}

describe('autodiff: real architectures at reduced width vs tfjs', () => {
  it('VGG19 (width 1/8) Gatys loss: 5 Gram style layers + block5_conv2 content + TV, at 40×48 and 37×45', async () => {
    const arch = getArchitecture('vgg19');
    const styleLayers = ['block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1'];
    const b = arch.build(arch.toOnnxWeights(synthesizeKerasWeights(arch, { width: WIDTH, includeTop: false })), { includeTop: false });
    const fwdNodes = b.nodes.length;
    const chans = styleLayers.map((l) => b.initializers.find((t) => t.name === `${l}/bias`)!.dims!.map(Number)[0]!);
    const x = b.inputs[0]!.name!;
    // Keras: style_l = Σ(S − C)² / (4·3²·size²), size = input pixels (from Shape), weight 1/5 each; content Σ(c − base)².
    const shp = b.node('Shape', [x]);
    const size = b.node('Cast', [b.node('ReduceProd', [b.node('Slice', [shp, b.ints([2]), b.ints([4])])], { keepdims: 0 })], { to: 1 });
    const denom = b.node('Mul', [b.node('Mul', [size, size]), b.scalar(36)]);
    const styleTerms = styleLayers.map((l, i) => {
      const f = b.node('Reshape', [l, b.ints([chans[i]!, -1])]);
      const gram = b.node('MatMul', [f, b.node('Transpose', [f], { perm: [1, 0] })]);
      const target = b.input(`S${i}`, 'float32', [chans[i]!, chans[i]!]);
      return b.node('Div', [b.node('ReduceSumSquare', [b.node('Sub', [target, gram])], { keepdims: 0 }), denom]);
    });
    const style = b.node('Mul', [b.node('Sum', styleTerms), b.scalar(0.2)]);
    const base = b.input('base', 'float32', [1, 'C5', 'h5', 'w5']);
    const content = b.node('Mul', [b.node('ReduceSumSquare', [b.node('Sub', [base, 'block5_conv2'])], { keepdims: 0 }), b.scalar(0.025)]);
    const big = 2 ** 31 - 1;
    const sl = (s: number[], e: number[]): string => b.node('Slice', [x, b.ints(s), b.ints(e), b.ints([2, 3])]);
    const d0 = sl([0, 0], [-1, -1]);
    const da = b.node('Sub', [d0, sl([1, 0], [big, -1])]);
    const dc = b.node('Sub', [d0, sl([0, 1], [-1, big])]);
    const tv = b.node('ReduceSum', [b.node('Pow', [b.node('Add', [b.node('Mul', [da, da]), b.node('Mul', [dc, dc])]), b.scalar(1.25)])], { keepdims: 0 });
    b.node('Sum', [style, content, b.node('Mul', [tv, b.scalar(1e-3)])], {}, { outputs: ['gatys'] });
    const grad = gradientGraph(b.serialize().model, { loss: 'gatys', wrt: [x] });
    const s = await session(grad);
    const refModel = { nodes: b.nodes.slice(0, fwdNodes) };

    let seed = 50;
    for (const [h, w] of [[40, 48], [37, 45]] as const) {
      const dims = [1, 3, h, w];
      const xd = randn(prod(dims), seed++, 20);
      const targets = chans.map((c) => randn(c * c, seed++, 50));
      const h5 = Math.floor(Math.floor(Math.floor(Math.floor(h / 2) / 2) / 2) / 2);
      const w5 = Math.floor(Math.floor(Math.floor(Math.floor(w / 2) / 2) / 2) / 2);
      const c5 = chans[4]!;
      const baseD = randn(c5 * h5 * w5, seed++, 5);
      const feeds: Record<string, ort.Tensor> = { [x]: new ort.Tensor('float32', xd, dims), base: new ort.Tensor('float32', baseD, [1, c5, h5, w5]) };
      targets.forEach((t, i) => { feeds[`S${i}`] = new ort.Tensor('float32', t, [chans[i]!, chans[i]!]); });
      const r = await s.run(feeds, ['loss', `${x}_grad`]);
      const ref = tf.tidy(() => {
        const f = (xx: tf.Tensor): tf.Scalar => {
          const v = tfForward({ ...b, nodes: refModel.nodes } as GraphBuilder, x, xx);
          const sz = h * w;
          const st = styleLayers.map((l, i) => {
            const F = tf.reshape(toNCHW(v.get(l)!), [chans[i]!, -1]) as tf.Tensor2D;
            return tf.div(tf.sum(tf.square(tf.sub(tf.tensor(targets[i]!, [chans[i]!, chans[i]!]), tf.matMul(F, F, false, true)))), 36 * sz * sz);
          });
          const styleL = tf.mul(tf.addN(st), 0.2);
          const contentL = tf.mul(tf.sum(tf.square(tf.sub(tf.tensor(baseD, [1, c5, h5, w5]), toNCHW(v.get('block5_conv2')!)))), 0.025);
          const b0 = tf.slice(xx, [0, 0, 0, 0], [-1, -1, h - 1, w - 1]);
          const A = tf.square(tf.sub(b0, tf.slice(xx, [0, 0, 1, 0], [-1, -1, h - 1, w - 1])));
          const C = tf.square(tf.sub(b0, tf.slice(xx, [0, 0, 0, 1], [-1, -1, h - 1, w - 1])));
          const tvL = tf.sum(tf.pow(tf.add(A, C), 1.25));
          return tf.addN([styleL, contentL, tf.mul(tvL, 1e-3)]) as tf.Scalar;
        };
        const { value, grad: g } = tf.valueAndGrad(f)(tf.tensor(xd, dims));
        return { loss: value.dataSync()[0]!, grad: Float32Array.from(g.dataSync()) };
      });
      assert.ok(Math.abs(Number(r.loss!.data[0]) - ref.loss) / Math.abs(ref.loss) < TOL, `loss ${r.loss!.data[0]} vs ${ref.loss}`);
      const e = relErr(r[`${x}_grad`]!.data as Float32Array, ref.grad);
      assert.ok(e < TOL, `VGG19 gradient at ${h}×${w}: rel. error ${e}`);
    }
  });

  it('InceptionV3 (width 1/8) DeepDream loss mixed4…mixed7 (2-px crop, / size), at 139×150 and 150×147', async () => {
    const arch = getArchitecture('inception_v3');
    const layers = ['mixed4', 'mixed5', 'mixed6', 'mixed7'];
    const coeff = [1.0, 1.5, 2.0, 2.5];
    const b = arch.build(arch.toOnnxWeights(synthesizeKerasWeights(arch, { width: WIDTH, includeTop: false })), { includeTop: false });
    b.outputs.length = 0;
    const fwdNodes = b.nodes.length;
    const x = b.inputs[0]!.name!;
    const terms = layers.map((l, i) => {
      const crop = b.node('Slice', [l, b.ints([2, 2]), b.ints([-2, -2]), b.ints([2, 3])]);
      const sz = b.node('Cast', [b.node('Size', [l])], { to: 1 });
      return b.node('Mul', [b.node('Div', [b.node('ReduceSumSquare', [crop], { keepdims: 0 }), sz]), b.scalar(coeff[i]!)]);
    });
    b.node('Sum', terms, {}, { outputs: ['dream'] });
    b.output('dream');
    const grad = gradientGraph(b.serialize().model, { loss: 'dream', wrt: [x] });
    const kept = new Set((await import('../src/onnx/proto.js')).decodeModel(grad).graph!.node!.map((n) => n.output![0]));
    assert.ok(!kept.has('mixed8') && !kept.has('mixed10'), 'layers after mixed7 are pruned');
    const s = await session(grad);
    const refNodes = b.nodes.slice(0, fwdNodes);
    let seed = 90;
    for (const [h, w] of [[139, 150], [150, 147]] as const) {
      const dims = [1, 3, h, w];
      const xd = randn(prod(dims), seed++, 0.5);
      const r = await s.run({ [x]: new ort.Tensor('float32', xd, dims) }, ['loss', `${x}_grad`]);
      const ref = tf.tidy(() => {
        const f = (xx: tf.Tensor): tf.Scalar => {
          const v = tfForward({ ...b, nodes: refNodes } as GraphBuilder, x, xx);
          return tf.addN(layers.map((l, i) => {
            const act = v.get(l)!; // NHWC
            const [, hh, ww] = act.shape as number[];
            const crop = tf.slice(act, [0, 2, 2, 0], [-1, hh! - 4, ww! - 4, -1]);
            return tf.mul(tf.div(tf.sum(tf.square(crop)), act.size), coeff[i]!);
          })) as tf.Scalar;
        };
        const { value, grad: g } = tf.valueAndGrad(f)(tf.tensor(xd, dims));
        return { loss: value.dataSync()[0]!, grad: Float32Array.from(g.dataSync()) };
      });
      assert.ok(Math.abs(Number(r.loss!.data[0]) - ref.loss) / Math.abs(ref.loss) < TOL, `loss ${r.loss!.data[0]} vs ${ref.loss}`);
      const e = relErr(r[`${x}_grad`]!.data as Float32Array, ref.grad);
      assert.ok(e < TOL, `InceptionV3 gradient at ${h}×${w}: rel. error ${e}`);
    }
  });
});
