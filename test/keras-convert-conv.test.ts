// Keras → ONNX converter, convolutions and BatchNormalization: one test per layer type and option (odd input
// sizes, strides, same/valid with TF's bottom/right extra pixel, dilation, even kernels, depth multipliers,
// transposed convolutions with k < s and k ≥ s, BatchNormalization folded and not). Oracle: tfjs-layers; for
// Conv2D groups (tfjs has no `groups`), tfjs core ops computing each group's convolution separately.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { assertClose, compareWithTfjs, convertAndRun, sequentialConfig, tf, tfReady, uniform } from './helpers/tfjs-keras.js';

const L = tf.layers;
type Sym = tf.SymbolicTensor;

before(() => tfReady());

function single(inputShape: number[], layer: tf.layers.Layer): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'img' });
  return tf.model({ inputs: input, outputs: layer.apply(input) as Sym });
}

type ConvArgs = Parameters<typeof L.conv2d>[0];
const CONV_CASES: [string, ConvArgs][] = [
  ['3×3 stride 1 same', { filters: 5, kernelSize: 3, padding: 'same' }],
  ['3×3 stride 2 same on odd sizes', { filters: 4, kernelSize: 3, strides: 2, padding: 'same' }],
  ['4×4 (even) stride 2 same', { filters: 4, kernelSize: 4, strides: 2, padding: 'same' }],
  ['2×2 (even) stride 1 same', { filters: 3, kernelSize: 2, padding: 'same' }],
  ['5×5 stride 3 valid', { filters: 6, kernelSize: 5, strides: 3, padding: 'valid' }],
  ['2×3 kernel, strides 1×2, valid', { filters: 4, kernelSize: [2, 3], strides: [1, 2], padding: 'valid' }],
  ['3×3 dilation 2 same', { filters: 4, kernelSize: 3, dilationRate: 2, padding: 'same' }],
  ['3×3 dilation 2 valid', { filters: 4, kernelSize: 3, dilationRate: [2, 2], padding: 'valid' }],
  ['no bias, relu', { filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: false, activation: 'relu' }],
];

for (const [what, args] of CONV_CASES) {
  test(`Conv2D ${what} matches tfjs`, async () => {
    await compareWithTfjs(single([9, 11, 3], L.conv2d({ ...args, name: 'conv' })));
  });
}

test('Conv2D groups=2 equals per-group convolutions (tfjs core ops)', async () => {
  await tfReady();
  const [n, h, w, cin, filters, groups] = [2, 7, 8, 4, 6, 2];
  const x = uniform(n * h * w * cin, -1, 1, 21);
  const kernel = uniform(3 * 3 * (cin / groups) * filters, -0.5, 0.5, 22);
  const bias = uniform(filters, -0.5, 0.5, 23);
  const config = sequentialConfig([h, w, cin], [{
    class_name: 'Conv2D',
    config: { name: 'gconv', filters, kernel_size: [3, 3], strides: [2, 2], padding: 'same', dilation_rate: [1, 1], groups, use_bias: true, activation: 'linear' },
  }]);
  const weights = new Map([['gconv', [{ name: 'kernel', shape: [3, 3, cin / groups, filters], data: kernel }, { name: 'bias', shape: [filters], data: bias }]]]);
  const { output } = await convertAndRun(config, weights, x, [n, h, w, cin]);
  const want = tf.tidy(() => {
    const xs = tf.split(tf.tensor4d(x, [n, h, w, cin]), groups, 3);
    const ks = tf.split(tf.tensor4d(kernel, [3, 3, cin / groups, filters]), groups, 3);
    const ys = xs.map((xi, g) => tf.conv2d(xi, ks[g]!, 2, 'same'));
    return tf.add(tf.concat(ys, 3), tf.tensor1d(bias)).dataSync() as Float32Array;
  });
  assert.deepEqual(output.shape, [n, 4, 4, filters]);
  assertClose(output.data, want, 1e-5, 'grouped conv');
});

type DepthArgs = Parameters<typeof L.depthwiseConv2d>[0];
const DEPTHWISE_CASES: [string, DepthArgs][] = [
  ['3×3 same', { kernelSize: 3, padding: 'same' }],
  ['3×3 multiplier 2 stride 2 same', { kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same' }],
  ['3×2 valid no bias', { kernelSize: [3, 2], padding: 'valid', useBias: false }],
  ['3×3 same, relu6', { kernelSize: 3, padding: 'same', activation: 'relu6' }],
];
for (const [what, args] of DEPTHWISE_CASES) {
  test(`DepthwiseConv2D ${what} matches tfjs`, async () => {
    await compareWithTfjs(single([9, 10, 3], L.depthwiseConv2d({ ...args, name: 'dw' })));
  });
}

test('DepthwiseConv2D with dilation 2 equals tfjs core depthwiseConv2d (the tfjs layer ignores dilation_rate)', async () => {
  const [n, h, w, c, m] = [2, 9, 10, 3, 2];
  const x = uniform(n * h * w * c, -1, 1, 31);
  const kernel = uniform(3 * 3 * c * m, -0.5, 0.5, 32);
  const config = sequentialConfig([h, w, c], [{
    class_name: 'DepthwiseConv2D',
    config: { name: 'dw', kernel_size: [3, 3], strides: [1, 1], padding: 'same', depth_multiplier: m, dilation_rate: [2, 2], use_bias: false, activation: 'linear' },
  }]);
  const weights = new Map([['dw', [{ name: 'depthwise_kernel', shape: [3, 3, c, m], data: kernel }]]]);
  const { output } = await convertAndRun(config, weights, x, [n, h, w, c]);
  const want = tf.tidy(() => tf.depthwiseConv2d(tf.tensor4d(x, [n, h, w, c]), tf.tensor4d(kernel, [3, 3, c, m]), 1, 'same', 'NHWC', 2).dataSync() as Float32Array);
  assert.deepEqual(output.shape, [n, h, w, c * m]);
  assertClose(output.data, want, 1e-5, 'dilated depthwise conv');
});

type SepArgs = Parameters<typeof L.separableConv2d>[0];
const SEPARABLE_CASES: [string, SepArgs][] = [
  ['3×3 multiplier 2 same', { filters: 5, kernelSize: 3, depthMultiplier: 2, padding: 'same' }],
  ['3×3 stride 2 valid', { filters: 4, kernelSize: 3, strides: 2, padding: 'valid' }],
  ['3×3 stride 2 same, no bias', { filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: false }],
];
for (const [what, args] of SEPARABLE_CASES) {
  test(`SeparableConv2D ${what} matches tfjs`, async () => {
    await compareWithTfjs(single([9, 11, 3], L.separableConv2d({ ...args, name: 'sep' })));
  });
}

type TransposeArgs = Parameters<typeof L.conv2dTranspose>[0];
const TRANSPOSE_CASES: [string, TransposeArgs][] = [
  ['3×3 stride 2 same', { filters: 4, kernelSize: 3, strides: 2, padding: 'same' }],
  ['3×3 stride 2 valid', { filters: 4, kernelSize: 3, strides: 2, padding: 'valid' }],
  ['4×4 stride 2 same', { filters: 3, kernelSize: 4, strides: 2, padding: 'same' }],
  ['2×2 stride 3 valid (kernel smaller than stride)', { filters: 3, kernelSize: 2, strides: 3, padding: 'valid' }],
  ['2×2 stride 3 same (kernel smaller than stride)', { filters: 3, kernelSize: 2, strides: 3, padding: 'same' }],
  ['3×3 stride 1 same, relu', { filters: 5, kernelSize: 3, padding: 'same', activation: 'relu' }],
];
for (const [what, args] of TRANSPOSE_CASES) {
  test(`Conv2DTranspose ${what} matches tfjs`, async () => {
    await compareWithTfjs(single([5, 7, 3], L.conv2dTranspose({ ...args, name: 'deconv' })));
  });
}

// ---- BatchNormalization ----------------------------------------------------------------------------------

function convBn(bn: Parameters<typeof L.batchNormalization>[0], convActivation: 'linear' | 'relu' = 'linear'): tf.LayersModel {
  const input = tf.input({ shape: [7, 9, 3], name: 'img' });
  const conv = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', useBias: false, activation: convActivation, name: 'conv' }).apply(input) as Sym;
  const norm = L.batchNormalization({ ...bn, name: 'bn' }).apply(conv) as Sym;
  const act = L.activation({ activation: 'relu', name: 'act' }).apply(norm) as Sym;
  const dw = L.depthwiseConv2d({ kernelSize: 3, padding: 'same', name: 'dw' }).apply(act) as Sym;
  const bn2 = L.batchNormalization({ epsilon: 0.01, name: 'bn2' }).apply(dw) as Sym;
  const flat = L.flatten({ name: 'flat' }).apply(bn2) as Sym;
  const dense = L.dense({ units: 6, name: 'dense' }).apply(flat) as Sym;
  const bn3 = L.batchNormalization({ name: 'bn3' }).apply(dense) as Sym;
  return tf.model({ inputs: input, outputs: bn3 });
}

test('BatchNormalization after a linear conv / depthwise conv is folded, and matches tfjs', async () => {
  const { converted } = await compareWithTfjs(convBn({}));
  const folded = converted.layers.filter((l) => l.foldedInto).map((l) => `${l.name}→${l.foldedInto}`);
  assert.deepEqual(folded, ['conv→bn', 'dw→bn2']);
  assert.ok(!converted.graph.hasValue('conv'), 'a folded conv has no value of its own');
});

test('BatchNormalization with scale=False and center=False (InceptionV3 style) matches tfjs', async () => {
  await compareWithTfjs(convBn({ scale: false, epsilon: 1e-3 }));
  await compareWithTfjs(convBn({ center: false }), { seed: 2 });
});

test('BatchNormalization unfolded (foldBatchNorm: false, or after a conv with an activation) matches tfjs', async () => {
  const a = await compareWithTfjs(convBn({}), { foldBatchNorm: false });
  assert.equal(a.converted.layers.filter((l) => l.foldedInto).length, 0);
  const b = await compareWithTfjs(convBn({}, 'relu'), { seed: 3 });
  assert.deepEqual(b.converted.layers.filter((l) => l.foldedInto).map((l) => l.name), ['dw']);
});

test('BatchNormalization on the height axis (axis=1) follows the definition (tfjs is wrong for axis=1)', async () => {
  const [n, h, w, c] = [2, 5, 6, 3];
  const x = uniform(n * h * w * c, -1, 1, 41);
  const p = (seed: number, lo = -1, hi = 1) => uniform(h, lo, hi, seed);
  const [gamma, beta, mean, variance] = [p(42), p(43), p(44), p(45, 0.5, 1.5)];
  const config = sequentialConfig([h, w, c], [{ class_name: 'BatchNormalization', config: { name: 'bn_h', axis: [1], epsilon: 0.002, center: true, scale: true } }]);
  const weights = new Map([['bn_h', [
    { name: 'gamma', shape: [h], data: gamma }, { name: 'beta', shape: [h], data: beta },
    { name: 'moving_mean', shape: [h], data: mean }, { name: 'moving_variance', shape: [h], data: variance },
  ]]]);
  const { output } = await convertAndRun(config, weights, x, [n, h, w, c]);
  const want = x.map((v, i) => {
    const row = Math.floor(i / (w * c)) % h;
    return gamma[row]! * (v - mean[row]!) / Math.sqrt(variance[row]! + 0.002) + beta[row]!;
  });
  assertClose(output.data, want, 1e-5, 'BatchNormalization axis 1');
});
