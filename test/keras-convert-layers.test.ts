// Keras → ONNX converter, everything but convolutions and activations: pooling, Dense on 2-D and N-D inputs,
// Flatten/Reshape/Permute, inference identities, padding/cropping/upsampling/resizing, merges, Rescaling,
// Normalization, LayerNormalization. Oracle: tfjs-layers; direct computation (the Keras/TF definition written out
// here) where tfjs lacks the layer or option (Subtract, SpatialDropout2D, keepdims, bilinear with TF's half-pixel
// centres, Resizing, Normalization).
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { assertClose, compareWithTfjs, convertAndRun, sequentialConfig, tf, tfReady, uniform } from './helpers/tfjs-keras.js';

const L = tf.layers;
type Sym = tf.SymbolicTensor;

before(() => tfReady());

function chain(inputShape: number[], ...layers: tf.layers.Layer[]): tf.LayersModel {
  const input = tf.input({ shape: inputShape, name: 'img' });
  let x: Sym = input;
  for (const l of layers) x = l.apply(x) as Sym;
  return tf.model({ inputs: input, outputs: x });
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** One hand-written layer on an NHWC input: the converter's output. */
async function runLayer(className: string, config: Record<string, unknown>, shape: number[], x: Float32Array, weights = new Map()) {
  return (await convertAndRun(sequentialConfig(shape.slice(1), [{ class_name: className, config: { name: 'layer', ...config } }]), weights, x, shape)).output;
}

// ---- pooling --------------------------------------------------------------------------------------------

const POOLS: [string, Parameters<typeof L.maxPooling2d>[0]][] = [
  ['2×2 valid', { poolSize: 2 }],
  ['3×3 stride 2 same on odd sizes', { poolSize: 3, strides: 2, padding: 'same' }],
  ['2×2 stride 1 same (even window)', { poolSize: 2, strides: 1, padding: 'same' }],
  ['3×2 strides 2×1 valid', { poolSize: [3, 2], strides: [2, 1] }],
];
for (const [what, args] of POOLS) {
  test(`MaxPooling2D ${what} matches tfjs`, async () => {
    await compareWithTfjs(chain([9, 11, 3], L.maxPooling2d({ ...args, name: 'pool' })));
  });
  test(`AveragePooling2D ${what} matches tfjs (same: padding not counted)`, async () => {
    await compareWithTfjs(chain([9, 11, 3], L.averagePooling2d({ ...args, name: 'pool' })));
  });
}

test('GlobalAveragePooling2D and GlobalMaxPooling2D match tfjs', async () => {
  const input = tf.input({ shape: [5, 7, 4], name: 'img' });
  const avg = L.globalAveragePooling2d({ name: 'gap' }).apply(input) as Sym;
  const max = L.globalMaxPooling2d({ name: 'gmp' }).apply(input) as Sym;
  await compareWithTfjs(tf.model({ inputs: input, outputs: L.concatenate({ name: 'both' }).apply([avg, max]) as Sym }));
});

test('Global pooling with keepdims=True gives [N, 1, 1, C] with the pooled values', async () => {
  const shape = [2, 5, 7, 4];
  const x = uniform(size(shape), -1, 1, 51);
  for (const cls of ['GlobalAveragePooling2D', 'GlobalMaxPooling2D']) {
    const out = await runLayer(cls, { keepdims: true }, shape, x);
    assert.deepEqual(out.shape, [2, 1, 1, 4]);
    const want = tf.tidy(() => {
      const t = tf.tensor4d(x, shape as [number, number, number, number]);
      return (cls === 'GlobalAveragePooling2D' ? tf.mean(t, [1, 2]) : tf.max(t, [1, 2])).dataSync() as Float32Array;
    });
    assertClose(out.data, want, 1e-6, cls);
  }
});

// ---- core -----------------------------------------------------------------------------------------------

test('Dense on a 4-D input (per pixel) and on a 3-D input, Flatten, Reshape with -1 match tfjs', async () => {
  await compareWithTfjs(chain([5, 6, 3],
    L.dense({ units: 4, activation: 'tanh', name: 'dense4d' }),
    L.reshape({ targetShape: [-1, 4], name: 'to3d' }),
    L.dense({ units: 5, name: 'dense3d' }),
    L.reshape({ targetShape: [6, 5, 5], name: 'to4d' }),
    L.flatten({ name: 'flat' }),
    L.dense({ units: 3, activation: 'softmax', name: 'probs' })));
});

test('Permute of a 4-D tensor (to 4-D and through a 3-D reshape) matches tfjs', async () => {
  await compareWithTfjs(chain([4, 5, 3],
    L.permute({ dims: [2, 1, 3], name: 'swap_hw' }),
    L.permute({ dims: [3, 1, 2], name: 'channels_first' }),
    L.reshape({ targetShape: [3, 20], name: 'rows' }),
    L.permute({ dims: [2, 1], name: 'transpose' })));
});

test('Dropout, GaussianNoise, GaussianDropout, AlphaDropout are identities at inference (tfjs)', async () => {
  await compareWithTfjs(chain([4, 5, 3],
    L.dropout({ rate: 0.5, name: 'drop' }), L.gaussianNoise({ stddev: 1, name: 'noise' }),
    L.gaussianDropout({ rate: 0.3, name: 'gdrop' }), L.alphaDropout({ rate: 0.3, name: 'adrop' }),
    L.conv2d({ filters: 2, kernelSize: 1, name: 'conv' })));
});

test('SpatialDropout2D is an identity at inference', async () => {
  const shape = [2, 4, 5, 3];
  const x = uniform(size(shape), -1, 1, 52);
  assertClose((await runLayer('SpatialDropout2D', { rate: 0.5 }, shape, x)).data, x, 0, 'SpatialDropout2D', 'abs');
});

// ---- padding, cropping, resampling ------------------------------------------------------------------------

test('ZeroPadding2D, Cropping2D and UpSampling2D (nearest) match tfjs', async () => {
  await compareWithTfjs(chain([5, 6, 3],
    L.zeroPadding2d({ padding: [[1, 2], [0, 3]], name: 'pad' }),
    L.cropping2D({ cropping: [[2, 1], [1, 0]], name: 'crop' }),
    L.upSampling2d({ size: [2, 3], name: 'up' }),
    L.zeroPadding2d({ padding: 1, name: 'pad1' }),
    L.cropping2D({ cropping: [1, 2], name: 'crop2' })));
});

/** TF half-pixel sampling along one axis: (lower, upper, fraction) per output index. */
function halfPixel(inSize: number, outSize: number): [number, number, number][] {
  return Array.from({ length: outSize }, (_, o) => {
    const s = (o + 0.5) * (inSize / outSize) - 0.5;
    const f = Math.floor(s);
    return [Math.max(f, 0), Math.min(Math.ceil(s), inSize - 1), s - f];
  });
}

/** tf.image.resize(method='bilinear') (half-pixel centres, no antialias) of an NHWC tensor. */
function resizeBilinear(x: Float32Array, [n, h, w, c]: number[], oh: number, ow: number): Float32Array {
  const out = new Float32Array(n! * oh * ow * c!);
  const ys = halfPixel(h!, oh);
  const xs = halfPixel(w!, ow);
  const at = (b: number, i: number, j: number, k: number) => x[((b * h! + i) * w! + j) * c! + k]!;
  for (let b = 0; b < n!; b++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) for (let k = 0; k < c!; k++) {
    const [y0, y1, fy] = ys[i]!;
    const [x0, x1, fx] = xs[j]!;
    const top = at(b, y0, x0, k) + (at(b, y0, x1, k) - at(b, y0, x0, k)) * fx;
    const bottom = at(b, y1, x0, k) + (at(b, y1, x1, k) - at(b, y1, x0, k)) * fx;
    out[((b * oh + i) * ow + j) * c! + k] = top + (bottom - top) * fy;
  }
  return out;
}

/** tf.image.resize(method='nearest') with half-pixel centres: source index ⌊(o + ½)·in/out⌋. */
function resizeNearest(x: Float32Array, [n, h, w, c]: number[], oh: number, ow: number): Float32Array {
  const out = new Float32Array(n! * oh * ow * c!);
  const src = (o: number, inSize: number, outSize: number) => Math.min(Math.floor((o + 0.5) * (inSize / outSize)), inSize - 1);
  for (let b = 0; b < n!; b++) for (let i = 0; i < oh; i++) for (let j = 0; j < ow; j++) for (let k = 0; k < c!; k++) {
    out[((b * oh + i) * ow + j) * c! + k] = x[((b * h! + src(i, h!, oh)) * w! + src(j, w!, ow)) * c! + k]!;
  }
  return out;
}

test('UpSampling2D bilinear uses TF half-pixel centres (direct computation; tfjs uses the legacy rule)', async () => {
  const shape = [2, 4, 5, 3];
  const x = uniform(size(shape), -1, 1, 53);
  const out = await runLayer('UpSampling2D', { size: [2, 3], interpolation: 'bilinear' }, shape, x);
  assert.deepEqual(out.shape, [2, 8, 15, 3]);
  assertClose(out.data, resizeBilinear(x, shape, 8, 15), 1e-5, 'bilinear upsampling');
});

test('Resizing (bilinear up and down, nearest) follows tf.image.resize (direct computation)', async () => {
  const shape = [2, 6, 7, 3];
  const x = uniform(size(shape), -1, 1, 54);
  for (const [oh, ow, interpolation] of [[9, 10, 'bilinear'], [4, 3, 'bilinear'], [11, 5, 'nearest'], [3, 4, 'nearest']] as const) {
    const out = await runLayer('Resizing', { height: oh, width: ow, interpolation }, shape, x);
    assert.deepEqual(out.shape, [2, oh, ow, 3]);
    const want = interpolation === 'bilinear' ? resizeBilinear(x, shape, oh, ow) : resizeNearest(x, shape, oh, ow);
    assertClose(out.data, want, 1e-5, `Resizing ${interpolation} to ${oh}×${ow}`);
  }
});

test('CenterCrop (odd and even margins) matches tfjs', async () => {
  await compareWithTfjs(chain([9, 8, 3], L.centerCrop({ height: 4, width: 5, name: 'crop' })));
});

// ---- merges ---------------------------------------------------------------------------------------------

test('Concatenate on the channel, height and width axes, and of 2-D tensors, matches tfjs', async () => {
  const input = tf.input({ shape: [4, 5, 3], name: 'img' });
  const a = L.conv2d({ filters: 2, kernelSize: 1, name: 'a' }).apply(input) as Sym;
  const b = L.conv2d({ filters: 3, kernelSize: 1, name: 'b' }).apply(input) as Sym;
  const c = L.concatenate({ name: 'cat_c' }).apply([a, b, input]) as Sym;
  const h = L.concatenate({ axis: 1, name: 'cat_h' }).apply([c, c]) as Sym;
  const w = L.concatenate({ axis: 2, name: 'cat_w' }).apply([h, h]) as Sym;
  const g1 = L.globalAveragePooling2d({ name: 'g1' }).apply(w) as Sym;
  const g2 = L.globalMaxPooling2d({ name: 'g2' }).apply(a) as Sym;
  await compareWithTfjs(tf.model({ inputs: input, outputs: L.concatenate({ name: 'cat_2d' }).apply([g1, g2]) as Sym }));
});

test('Add, Multiply, Average, Maximum, Minimum (3 inputs) match tfjs', async () => {
  const input = tf.input({ shape: [5, 4, 3], name: 'img' });
  const branches = [0, 1, 2].map((i) => L.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: `conv${i}` }).apply(input) as Sym);
  const merged = [
    L.add({ name: 'add' }), L.multiply({ name: 'mul' }), L.average({ name: 'avg' }), L.maximum({ name: 'max' }), L.minimum({ name: 'min' }),
  ].map((l) => l.apply(branches) as Sym);
  await compareWithTfjs(tf.model({ inputs: input, outputs: L.concatenate({ name: 'all' }).apply(merged) as Sym }));
});

test('Subtract is x₀ − x₁ (direct computation)', async () => {
  const config = {
    class_name: 'Functional',
    config: {
      name: 'sub', input_layers: [['in', 0, 0]], output_layers: [['diff', 0, 0]],
      layers: [
        { class_name: 'InputLayer', name: 'in', config: { name: 'in', batch_input_shape: [null, 3, 4, 2] }, inbound_nodes: [] },
        { class_name: 'Cropping2D', name: 'top', config: { name: 'top', cropping: [[0, 1], [0, 0]] }, inbound_nodes: [[['in', 0, 0, {}]]] },
        { class_name: 'Cropping2D', name: 'bottom', config: { name: 'bottom', cropping: [[1, 0], [0, 0]] }, inbound_nodes: [[['in', 0, 0, {}]]] },
        { class_name: 'Subtract', name: 'diff', config: { name: 'diff' }, inbound_nodes: [[['top', 0, 0, {}], ['bottom', 0, 0, {}]]] },
      ],
    },
  };
  const shape = [2, 3, 4, 2];
  const x = uniform(size(shape), -1, 1, 55);
  const { output } = await convertAndRun(config, new Map(), x, shape);
  const want = new Float32Array(2 * 2 * 4 * 2);
  for (let b = 0; b < 2; b++) for (let i = 0; i < 2; i++) for (let j = 0; j < 8; j++) {
    want[(b * 2 + i) * 8 + j] = x[(b * 3 + i) * 8 + j]! - x[(b * 3 + i + 1) * 8 + j]!;
  }
  assert.deepEqual(output.shape, [2, 2, 4, 2]);
  assertClose(output.data, want, 1e-6, 'Subtract', 'abs');
});

// ---- preprocessing and normalisation layers ------------------------------------------------------------------

test('Rescaling (scale, offset) and LayerNormalization (last axis; H, W, C) match tfjs', async () => {
  await compareWithTfjs(chain([4, 5, 3],
    L.rescaling({ scale: 1 / 127.5, offset: -1, name: 'rescale' }),
    L.layerNormalization({ name: 'ln_c' }),
    L.layerNormalization({ axis: [1, 2, 3], epsilon: 0.01, name: 'ln_hwc' }),
    L.flatten({ name: 'flat' }),
    L.layerNormalization({ name: 'ln_2d' })), { range: [0, 255] });
});

test('Normalization: (x − mean)/max(√variance, 1e-7) from weights or config, and invert (direct computation)', async () => {
  const shape = [2, 3, 4, 3];
  const x = uniform(size(shape), 0, 255, 56);
  const mean = new Float32Array([120, 110, 100]);
  const variance = new Float32Array([3600, 2500, 0]);
  const std = Array.from(variance, (v) => Math.max(Math.sqrt(v), 1e-7));
  const want = x.map((v, i) => (v - mean[i % 3]!) / std[i % 3]!);
  const weights = new Map([['layer', [
    { name: 'mean', shape: [3], data: mean }, { name: 'variance', shape: [3], data: variance }, { name: 'count', shape: [], data: new Float32Array([50]) },
  ]]]);
  assertClose((await runLayer('Normalization', { axis: -1 }, shape, x, weights)).data, want, 1e-5, 'Normalization (weights)');
  const fromConfig = await runLayer('Normalization', { axis: [3], mean: Array.from(mean), variance: Array.from(variance) }, shape, x);
  assertClose(fromConfig.data, want, 1e-5, 'Normalization (config)');
  const inverted = await runLayer('Normalization', { axis: -1, mean: 2, variance: 9, invert: true }, shape, x);
  assertClose(inverted.data, x.map((v) => v * 3 + 2), 1e-6, 'Normalization invert');
});
