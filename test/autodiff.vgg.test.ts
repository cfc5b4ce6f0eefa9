// Whole-graph check: a small VGG-like conv/relu/maxpool stack with a Gatys loss (Gram-matrix style losses on
// two layers + content loss + total variation Σ(dx²+dy²)^1.25) built with GraphBuilder; the input gradient
// from gradientGraph (one model, two input sizes, odd and even) against tfjs valueAndGrad.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { gradientGraph } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { hwio, ort, prod, randn, relErr, session, tf, tfCpu, toNHWC } from './autodiff-util.js';

const TOL = 1e-4;
before(tfCpu);

const CH = [3, 8, 8, 16, 16];
const WS = [0, 1, 2, 3].map((i) => randn(CH[i + 1]! * CH[i]! * 9, 100 + i, Math.sqrt(2 / (CH[i]! * 9))));
const BS = [0, 1, 2, 3].map((i) => randn(CH[i + 1]!, 200 + i, 0.05));
const STYLE_W = [0.3, 0.7];
const CONTENT_W = 0.05;
const TV_W = 0.01;

/** x → conv1 relu → conv2 relu (style1) → maxpool 2×2 → conv3 relu (style2) → maxpool 3×3 s2 → conv4 relu (content). */
function buildModel(): GraphBuilder {
  const b = new GraphBuilder('vgglike');
  const x = b.input('x', 'float32', [1, 3, 'H', 'W']);
  const conv = (inp: string, i: number, name: string): string => b.node('Relu', [
    b.node('Conv', [inp, b.weight(`w${i}`, [CH[i + 1]!, CH[i]!, 3, 3], WS[i]!), b.weight(`b${i}`, [CH[i + 1]!], BS[i]!)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }),
  ], {}, { outputs: [name] });
  const r1 = conv(x, 0, 'relu1');
  const r2 = conv(r1, 1, 'relu2');
  const p1 = b.node('MaxPool', [r2], { kernel_shape: [2, 2], strides: [2, 2] });
  const r3 = conv(p1, 2, 'relu3');
  const p2 = b.node('MaxPool', [r3], { kernel_shape: [3, 3], strides: [2, 2] });
  const r4 = conv(p2, 3, 'relu4');

  // Gram matrix F·Fᵀ / (C·HW) with C, HW from the runtime shape; style loss Σ(G − A)².
  const gramLoss = (act: string, c: number, target: string): string => {
    const f = b.node('Reshape', [act, b.ints([c, -1])]);
    const hw = b.node('Cast', [b.node('Gather', [b.node('Shape', [f]), b.ints([1], [])])], { to: 1 });
    const gram = b.node('Div', [b.node('MatMul', [f, b.node('Transpose', [f], { perm: [1, 0] })]), b.node('Mul', [hw, b.scalar(c)])]);
    return b.node('ReduceSumSquare', [b.node('Sub', [gram, target])], { keepdims: 0 });
  };
  const a1 = b.input('A1', 'float32', [8, 8]);
  const a2 = b.input('A2', 'float32', [16, 16]);
  const p = b.input('P', 'float32', [1, 16, 'h4', 'w4']);
  const style = b.node('Add', [
    b.node('Mul', [gramLoss(r2, 8, a1), b.scalar(STYLE_W[0]!)]), b.node('Mul', [gramLoss(r3, 16, a2), b.scalar(STYLE_W[1]!)]),
  ]);
  const content = b.node('Mul', [b.node('ReduceSumSquare', [b.node('Sub', [r4, p])], { keepdims: 0 }), b.scalar(CONTENT_W)]);
  // TV: a = (x[:, :, :-1, :-1] − x[:, :, 1:, :-1])², c = (x[:, :, :-1, :-1] − x[:, :, :-1, 1:])², Σ(a + c)^1.25.
  const big = 2 ** 31 - 1;
  const sl = (s: number[], e: number[]): string => b.node('Slice', [x, b.ints(s), b.ints(e), b.ints([2, 3])]);
  const base = sl([0, 0], [-1, -1]);
  const da = b.node('Sub', [base, sl([1, 0], [big, -1])]);
  const dc = b.node('Sub', [base, sl([0, 1], [-1, big])]);
  const tv = b.node('ReduceSum', [b.node('Pow', [b.node('Add', [b.node('Mul', [da, da]), b.node('Mul', [dc, dc])]), b.scalar(1.25)])], { keepdims: 0 });
  b.node('Add', [b.node('Add', [style, content]), b.node('Mul', [tv, b.scalar(TV_W)])], {}, { outputs: ['total'] });
  b.output('total');
  b.output('relu4');
  return b;
}

function tfLoss(x: tf.Tensor, A1: tf.Tensor, A2: tf.Tensor, P: tf.Tensor): tf.Scalar {
  const conv = (inp: tf.Tensor4D, i: number): tf.Tensor4D =>
    tf.relu(tf.add(tf.conv2d(inp, hwio(tf.tensor(WS[i]!, [CH[i + 1]!, CH[i]!, 3, 3])), 1, 'same'), tf.tensor(BS[i]!))) as tf.Tensor4D;
  const xh = toNHWC(x);
  const r2 = conv(conv(xh, 0), 1);
  const r3 = conv(tf.maxPool(r2, 2, 2, 'valid'), 2);
  const r4 = conv(tf.maxPool(r3, 3, 2, 'valid'), 3);
  const gram = (act: tf.Tensor4D, c: number): tf.Tensor => {
    const f = tf.transpose(tf.reshape(act, [-1, c])) as tf.Tensor2D; // [C, HW] in NCHW order
    return tf.div(tf.matMul(f, f, false, true), c * f.shape[1]);
  };
  const style = tf.add(tf.mul(tf.sum(tf.square(tf.sub(gram(r2, 8), A1))), STYLE_W[0]!), tf.mul(tf.sum(tf.square(tf.sub(gram(r3, 16), A2))), STYLE_W[1]!));
  const content = tf.mul(tf.sum(tf.square(tf.sub(tf.transpose(r4, [0, 3, 1, 2]), P))), CONTENT_W);
  const [, , h, w] = x.shape as number[];
  const base = tf.slice(x, [0, 0, 0, 0], [-1, -1, h! - 1, w! - 1]);
  const a = tf.square(tf.sub(base, tf.slice(x, [0, 0, 1, 0], [-1, -1, h! - 1, w! - 1])));
  const c = tf.square(tf.sub(base, tf.slice(x, [0, 0, 0, 1], [-1, -1, h! - 1, w! - 1])));
  const tv = tf.sum(tf.pow(tf.add(a, c), 1.25));
  return tf.add(tf.add(style, content), tf.mul(tv, TV_W)) as tf.Scalar;
}

describe('autodiff: VGG-like Gatys loss (style Gram + content + TV) vs tfjs', () => {
  it('one gradient model at 32×28 and 27×33', async () => {
    const grad = gradientGraph(buildModel().serialize().model, { loss: 'total', wrt: ['x'] });
    const s = await session(grad);
    let seed = 1;
    for (const [h, w] of [[32, 28], [27, 33]] as const) {
      const dims = [1, 3, h, w];
      const x = randn(prod(dims), seed++);
      // Targets: the Gram matrices / features of another random image, so the losses are of realistic size.
      const A1 = randn(64, seed++, 0.05);
      const A2 = randn(256, seed++, 0.05);
      const h4 = Math.floor((Math.floor(h / 2) - 3) / 2) + 1;
      const w4 = Math.floor((Math.floor(w / 2) - 3) / 2) + 1;
      const P = randn(16 * h4 * w4, seed++, 0.5);
      const r = await s.run({
        x: new ort.Tensor('float32', x, dims), A1: new ort.Tensor('float32', A1, [8, 8]), A2: new ort.Tensor('float32', A2, [16, 16]),
        P: new ort.Tensor('float32', P, [1, 16, h4, w4]),
      }, ['loss', 'x_grad']);
      const ref = tf.tidy(() => {
        const { value, grad: g } = tf.valueAndGrad((xx: tf.Tensor) => tfLoss(xx, tf.tensor(A1, [8, 8]), tf.tensor(A2, [16, 16]), tf.tensor(P, [1, 16, h4, w4])))(tf.tensor(x, dims));
        return { loss: value.dataSync()[0]!, grad: Float32Array.from(g.dataSync()) };
      });
      const lossErr = Math.abs(Number(r.loss!.data[0]) - ref.loss) / Math.abs(ref.loss);
      assert.ok(lossErr < TOL, `loss ${r.loss!.data[0]} vs ${ref.loss}`);
      const e = relErr(r.x_grad!.data as Float32Array, ref.grad);
      assert.ok(e < TOL, `x_grad at ${h}×${w}: rel. error ${e}`);
    }
  });
});
