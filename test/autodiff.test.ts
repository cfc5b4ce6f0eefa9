// The public contract of src/onnx/autodiff.ts: gradientGraph(Uint8Array) → Uint8Array on hand-built models,
// outputs and naming, pruning, dynamic sizes from one model, external-data initializers passed through,
// non-differentiable shape paths, errors, and the lower-level appendGradients API.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AutodiffError, SUPPORTED_OPS, appendGradients, gradientGraph } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { DataType, decodeModel, onnx } from '../src/onnx/proto.js';
import { hwio, ort, prod, randn, relErr, session, tf, tfCpu, toNCHW, toNHWC } from './autodiff-util.js';

const TOL = 1e-4;
const W1 = randn(4 * 3 * 3 * 3, 21, 0.4);
const B1 = randn(4, 22, 0.1);
const FC = randn(10 * 4, 23, 0.3);
let dir: string;

before(async () => {
  await tfCpu();
  dir = mkdtempSync(join(tmpdir(), 'convserve-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** conv3×3(3→4)+relu ("feat") → maxpool → classifier top ("probs"); loss "dream" = mean(feat²) + mean(pool). */
function handBuilt(): GraphBuilder {
  const b = new GraphBuilder('hand');
  const x = b.input('x', 'float32', [1, 3, 'H', 'W']);
  const feat = b.node('Relu', [b.node('Conv', [x, b.weight('w1', [4, 3, 3, 3], W1), b.weight('b1', [4], B1)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })], {}, { outputs: ['feat'] });
  const pool = b.node('MaxPool', [feat], { kernel_shape: [3, 3], strides: [2, 2] });
  const dream = b.node('Add', [b.node('ReduceMean', [b.node('Mul', [feat, feat])], { keepdims: 0 }), b.node('ReduceMean', [pool], { keepdims: 0 })], {}, { outputs: ['dream'] });
  const gap = b.node('Flatten', [b.node('GlobalAveragePool', [pool])]);
  const probs = b.node('Softmax', [b.node('Gemm', [gap, b.weight('fc_w', [10, 4], FC)], { transB: 1 })], {}, { outputs: ['probs'] });
  b.output(feat);
  b.output(probs);
  b.output(dream);
  return b;
}

function tfDream(xx: tf.Tensor): tf.Scalar {
  const feat = tf.relu(tf.add(tf.conv2d(toNHWC(xx), hwio(tf.tensor(W1, [4, 3, 3, 3])), 1, 'same'), tf.tensor(B1)));
  const pool = tf.maxPool(feat as tf.Tensor4D, 3, 2, 'valid');
  return tf.add(tf.mean(tf.square(feat)), tf.mean(pool)) as tf.Scalar;
}

function tfRef(x: Float32Array, dims: number[]): { loss: number; grad: Float32Array } {
  return tf.tidy(() => {
    const xt = tf.tensor(x, dims);
    const { value, grad } = tf.valueAndGrad(tfDream)(xt);
    return { loss: value.dataSync()[0]!, grad: Float32Array.from(grad.dataSync()) };
  });
}

describe('autodiff: gradientGraph contract', () => {
  it('Uint8Array in/out: forward outputs on the loss path, loss, x_grad; classifier top pruned; runs at two sizes', async () => {
    const bytes = handBuilt().serialize().model;
    const out = gradientGraph(bytes, { loss: 'dream', wrt: ['x'] });
    assert.ok(out instanceof Uint8Array);
    const m = decodeModel(out);
    const g = m.graph!;
    assert.deepEqual(g.input!.map((v) => v.name), ['x']);
    assert.deepEqual(g.output!.map((v) => v.name).sort(), ['dream', 'feat', 'loss', 'x_grad']);
    const ops = new Set(g.node!.map((n) => n.opType));
    for (const pruned of ['Gemm', 'Softmax', 'GlobalAveragePool', 'Flatten']) assert.ok(!ops.has(pruned), `${pruned} should be pruned`);
    assert.ok(!g.initializer!.some((t) => t.name === 'fc_w'), 'unused initializer fc_w should be dropped');
    assert.ok(g.initializer!.some((t) => t.name === 'w1'));
    assert.ok(!ops.has('ScatterElements') && ops.has('SpaceToDepth'), 'the 3×3/2 max-pool uses the parity split, not ScatterElements');
    assert.ok(!ops.has('ConvTranspose'), 'stride-1 conv uses the flipped-weight Conv');
    assert.ok(Number(m.opsetImport!.find((o) => !o.domain)!.version) >= 16);

    const s = await session(out);
    for (const [h, w] of [[16, 20], [13, 11]] as const) {
      const dims = [1, 3, h, w];
      const x = randn(prod(dims), h * w);
      const r = await s.run({ x: new ort.Tensor('float32', x, dims) }, ['loss', 'x_grad']);
      assert.deepEqual(r.x_grad!.dims, dims);
      const ref = tfRef(x, dims);
      assert.ok(Math.abs(Number(r.loss!.data[0]) - ref.loss) / Math.abs(ref.loss) < TOL);
      const e = relErr(r.x_grad!.data as Float32Array, ref.grad);
      assert.ok(e < TOL, `x_grad at ${h}×${w}: rel. error ${e}`);
    }
  });

  it("keepOutputs 'all' keeps the classifier top", () => {
    const m = decodeModel(gradientGraph(handBuilt().serialize().model, { loss: 'dream', wrt: ['x'], keepOutputs: 'all' }));
    assert.ok(m.graph!.output!.some((o) => o.name === 'probs'));
    assert.ok(m.graph!.node!.some((n) => n.opType === 'Gemm'));
  });

  it('a node after the loss is not in the result', () => {
    const b = new GraphBuilder('after');
    const x = b.input('x', 'float32', [1, 2, 'H', 'W']);
    const loss = b.node('ReduceSumSquare', [x], { keepdims: 0 }, { outputs: ['loss'] });
    const later = b.node('Sqrt', [loss], {}, { outputs: ['after_loss'], name: 'node_after_loss' });
    b.output(later);
    const m = decodeModel(gradientGraph(b.serialize().model, { loss: 'loss', wrt: ['x'] }));
    assert.ok(!m.graph!.node!.some((n) => n.name === 'node_after_loss' || n.opType === 'Sqrt'));
    assert.deepEqual(m.graph!.output!.map((o) => o.name), ['loss', 'x_grad']);
    assert.ok(!m.graph!.node!.some((n) => (n.output ?? []).includes('after_loss')));
  });

  it('unsupported op on the path fails with an Error naming the op and the node; off the path it is fine', () => {
    const b = new GraphBuilder('unsupported');
    const x = b.input('x', 'float32', [1, 'N']);
    const y = b.input('y', 'float32', [1, 'N']);
    const e = b.node('Erf', [x], {}, { name: 'my_erf' });
    const off = b.node('Erf', [y], {}, { name: 'erf_off_path' });
    b.node('ReduceSum', [b.node('Add', [e, off])], { keepdims: 0 }, { outputs: ['loss'] });
    b.output('loss');
    assert.throws(() => gradientGraph(b.serialize().model, { loss: 'loss', wrt: ['x'] }), (err: unknown) => {
      assert.ok(err instanceof Error && err instanceof AutodiffError);
      assert.match(err.message, /unsupported op 'Erf'/);
      assert.match(err.message, /my_erf/);
      assert.equal(err.opType, 'Erf');
      return true;
    });
    // Differentiating w.r.t. nothing that passes through Erf works (y only feeds the non-differentiated branch).
    const b2 = new GraphBuilder('offpath');
    const x2 = b2.input('x', 'float32', [1, 'N']);
    const y2 = b2.input('y', 'float32', [1, 'N']);
    b2.node('ReduceSum', [b2.node('Mul', [x2, b2.node('Erf', [y2])])], { keepdims: 0 }, { outputs: ['loss'] });
    b2.output('loss');
    assert.doesNotThrow(() => gradientGraph(b2.serialize().model, { loss: 'loss', wrt: ['x'] }));
    assert.ok(SUPPORTED_OPS.includes('Conv') && !SUPPORTED_OPS.includes('Erf'));
  });

  it('bad arguments: unknown loss, wrt that is neither a graph input nor an initializer', () => {
    const bytes = handBuilt().serialize().model;
    assert.throws(() => gradientGraph(bytes, { loss: 'nope', wrt: ['x'] }), /loss 'nope'/);
    assert.throws(() => gradientGraph(bytes, { loss: 'dream', wrt: ['feat'] }), /wrt 'feat' is neither a graph input nor an initializer/);
  });

  it('shape-only paths (Shape/Gather/Cast) are constants; an unused wrt input gets a zero gradient', async () => {
    const b = new GraphBuilder('shapes');
    const x = b.input('x', 'float32', [1, 2, 'H', 'W']);
    const z = b.input('z', 'float32', [3]);
    const shp = b.node('Shape', [x]);
    const hw = b.node('Cast', [b.node('Mul', [b.node('Gather', [shp, b.ints([2], [])]), b.node('Gather', [shp, b.ints([3], [])])])], { to: DataType.FLOAT });
    b.node('Div', [b.node('ReduceSumSquare', [x], { keepdims: 0 }), hw], {}, { outputs: ['loss'] });
    b.output('loss');
    const s = await session(gradientGraph(b.serialize().model, { loss: 'loss', wrt: ['x', 'z'] }));
    const dims = [1, 2, 5, 6];
    const xd = randn(prod(dims), 5);
    const r = await s.run({ x: new ort.Tensor('float32', xd, dims), z: new ort.Tensor('float32', new Float32Array(3), [3]) });
    const expect = xd.map((v) => (2 * v) / 30);
    assert.ok(relErr(r.x_grad!.data as Float32Array, expect) < TOL);
    assert.deepEqual(Array.from(r.z_grad!.data as Float32Array), [0, 0, 0]);
  });

  it('external-data initializers are passed through untouched and still resolve', async () => {
    const b = handBuilt();
    const { modelPath } = b.save(join(dir, 'fwd.onnx'), { externalDataFile: 'fwd.bin', externalThreshold: 64 });
    const fwd = decodeModel(readFileSync(modelPath));
    assert.equal(fwd.graph!.initializer!.find((t) => t.name === 'w1')!.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL);
    const out = gradientGraph(readFileSync(modelPath), { loss: 'dream', wrt: ['x'] });
    const w1 = decodeModel(out).graph!.initializer!.find((t) => t.name === 'w1')!;
    assert.equal(w1.dataLocation, onnx.TensorProto.DataLocation.EXTERNAL);
    assert.equal(w1.rawData?.length ?? 0, 0);
    assert.deepEqual(w1.externalData!.map((e) => e.key), ['location', 'offset', 'length']);
    const gradPath = join(dir, 'grad.onnx');
    writeFileSync(gradPath, out);
    const s = await session(gradPath);
    const dims = [1, 3, 10, 9];
    const x = randn(prod(dims), 77);
    const r = await s.run({ x: new ort.Tensor('float32', x, dims) }, ['x_grad']);
    assert.ok(relErr(r.x_grad!.data as Float32Array, tfRef(x, dims).grad) < TOL);
  });

  it('no dead outputs: every node output of a gradient graph is consumed or a graph output', () => {
    const b = new GraphBuilder('dead');
    const x = b.input('x', 'float32', [1, 3, 'H', 'W']);
    const feat = b.node('Relu', [b.node('Conv', [x, b.weight('w1', [4, 3, 3, 3], W1)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
    const pooled = b.node('MaxPool', [feat], { kernel_shape: [2, 2], strides: [2, 2] });
    const overlapping = b.node('MaxPool', [feat], { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' });
    const zeros = b.node('ConstantOfShape', [b.node('Shape', [pooled])]);
    const cat = b.node('Concat', [zeros, pooled, overlapping], { axis: 1 });
    b.node('ReduceSumSquare', [cat], { keepdims: 0 }, { outputs: ['loss'] });
    b.output('loss');
    const g = decodeModel(gradientGraph(b.serialize().model, { loss: 'loss', wrt: ['x', 'w1'] })).graph!;
    const used = new Set([...g.node!.flatMap((n) => n.input ?? []), ...g.output!.map((o) => o.name)]);
    const dead = g.node!.flatMap((n) => (n.output ?? []).filter((o) => o && !used.has(o)).map((o) => `${n.opType} → ${o}`));
    assert.deepEqual(dead, []);
  });

  it('lower-level appendGradients on a GraphBuilder (as the loss builders use it)', async () => {
    const b = handBuilt();
    b.outputs.length = 0;
    const grads = appendGradients(b, { loss: 'dream', wrt: ['x'] });
    b.output('dream');
    b.node('Identity', [grads.x!], {}, { outputs: ['g'] });
    b.output('g');
    const s = await session(b.serialize().model);
    const dims = [1, 3, 12, 7];
    const x = randn(prod(dims), 78);
    const r = await s.run({ x: new ort.Tensor('float32', x, dims) }, ['g']);
    assert.ok(relErr(r.g!.data as Float32Array, tfRef(x, dims).grad) < TOL);
  });
});
