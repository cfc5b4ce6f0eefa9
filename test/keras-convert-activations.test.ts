// Keras → ONNX converter, activations: one test per activation (as an Activation layer and as a layer's
// `activation` argument) and the activation layers. Oracle: tfjs-layers where it has the activation; where it does
// not (leaky_relu, silu, Keras 3 hard_sigmoid/hard_silu, exponential, log_softmax, ReLU threshold/negative_slope),
// the Keras definition computed directly in the test.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { assertClose, compareWithTfjs, convertAndRun, sequentialConfig, tf, tfReady, uniform } from './helpers/tfjs-keras.js';

const L = tf.layers;
type Sym = tf.SymbolicTensor;

before(() => tfReady());

/** input (odd-sized image) → Conv2D with the activation → Activation layer with it → Dense head. */
function activationModel(activation: string): tf.LayersModel {
  const input = tf.input({ shape: [5, 7, 3], name: 'img' });
  const conv = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: activation as 'relu', name: 'conv' }).apply(input) as Sym;
  const act = L.activation({ activation: activation as 'relu', name: 'act' }).apply(conv) as Sym;
  const flat = L.flatten({ name: 'flat' }).apply(act) as Sym;
  const out = L.dense({ units: 3, activation: activation as 'relu', name: 'head' }).apply(flat) as Sym;
  return tf.model({ inputs: input, outputs: out });
}

const TFJS_ACTIVATIONS = ['relu', 'relu6', 'elu', 'selu', 'gelu', 'gelu_new', 'swish', 'sigmoid', 'hardSigmoid', 'tanh', 'softmax', 'softplus', 'softsign', 'mish', 'linear'];

for (const activation of TFJS_ACTIVATIONS) {
  test(`activation '${activation}' matches tfjs (Activation layer, conv and dense arguments)`, async () => {
    const { converted } = await compareWithTfjs(activationModel(activation), { range: [-3, 3] });
    const expectedKind = activation === 'softmax' ? 'probabilities' : activation === 'sigmoid' ? 'sigmoid' : activation === 'linear' ? 'logits' : 'features';
    assert.equal(converted.outputKind, expectedKind);
  });
}

// ---- activations tfjs lacks: the Keras definitions, computed directly ---------------------------------

const SHAPE = [2, 3, 5, 4];

function rowwise(x: Float32Array, c: number, f: (row: Float32Array) => Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i += c) out.set(f(x.subarray(i, i + c)), i);
  return out;
}
const logSoftmax = (row: Float32Array) => {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
  return row.map((v) => v - lse);
};
const clip01 = (v: number) => Math.min(1, Math.max(0, v));

const DIRECT: Record<string, (x: Float32Array) => Float32Array> = {
  leaky_relu: (x) => x.map((v) => (v >= 0 ? v : 0.2 * v)),
  silu: (x) => x.map((v) => v / (1 + Math.exp(-v))),
  exponential: (x) => x.map((v) => Math.exp(v)),
  log_softmax: (x) => rowwise(x, SHAPE[3]!, logSoftmax),
  hard_silu: (x) => x.map((v) => v * clip01(v / 6 + 0.5)),
};

async function runActivation(activation: string, x: Float32Array, kerasVersion = '2.13.1') {
  const config = sequentialConfig(SHAPE.slice(1), [{ class_name: 'Activation', config: { name: 'act', activation } }]);
  return (await convertAndRun(config, new Map(), x, SHAPE, { kerasVersion })).output.data;
}

for (const [activation, f] of Object.entries(DIRECT)) {
  test(`activation '${activation}' matches its Keras definition`, async () => {
    const x = uniform(SHAPE.reduce((a, b) => a * b), -5, 5, 7);
    assertClose(await runActivation(activation, x), f(x), 1e-5, activation);
  });
}

test("hard_sigmoid has the file's dialect: Keras 2/tfjs clip(0.2x+0.5) vs Keras 3 relu6(x+3)/6", async () => {
  const x = uniform(SHAPE.reduce((a, b) => a * b), -5, 5, 8);
  assertClose(await runActivation('hard_sigmoid', x, '2.13.1'), x.map((v) => clip01(0.2 * v + 0.5)), 1e-6, 'keras2', 'abs');
  assertClose(await runActivation('hard_sigmoid', x, '3.4.1'), x.map((v) => Math.min(6, Math.max(0, v + 3)) / 6), 1e-6, 'keras3', 'abs');
  // The two really differ on this input (otherwise the test could not tell them apart).
  assert.ok(x.some((v) => Math.abs(clip01(0.2 * v + 0.5) - clip01(v / 6 + 0.5)) > 0.05));
});

test('an unknown activation is a 422 naming the layer', async () => {
  const config = sequentialConfig(SHAPE.slice(1), [{ class_name: 'Activation', config: { name: 'weird_act', activation: 'my_custom_fn' } }]);
  await assert.rejects(convertAndRun(config, new Map(), new Float32Array(SHAPE.reduce((a, b) => a * b)), SHAPE), (e: Error & { status?: number; slug?: string }) => {
    assert.equal(e.status, 422);
    assert.equal(e.slug, 'keras-import-unsupported-layer');
    assert.match(e.message, /weird_act/);
    assert.match(e.message, /my_custom_fn/);
    return true;
  });
});

// ---- activation layers ---------------------------------------------------------------------------------

test('ReLU(max_value), LeakyReLU, ELU, Softmax, ThresholdedReLU layers match tfjs', async () => {
  const input = tf.input({ shape: [6, 5, 4], name: 'img' });
  const conv = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'conv' }).apply(input) as Sym;
  const relu = L.reLU({ maxValue: 0.4, name: 'relu_capped' }).apply(conv) as Sym;
  const leaky = L.leakyReLU({ alpha: 0.15, name: 'leaky' }).apply(conv) as Sym;
  const elu = L.elu({ name: 'elu' }).apply(conv) as Sym;
  const thr = L.thresholdedReLU({ theta: 0.2, name: 'thresholded' }).apply(conv) as Sym;
  const sum = L.add({ name: 'sum' }).apply([relu, leaky, elu, thr]) as Sym;
  const soft = L.softmax({ axis: -1, name: 'soft_c' }).apply(sum) as Sym;
  await compareWithTfjs(tf.model({ inputs: input, outputs: soft }), { range: [-2, 2] });
});

test('PReLU (per-element alpha, and alpha shared over H and W) matches tfjs', async () => {
  const input = tf.input({ shape: [4, 5, 3], name: 'img' });
  const a = L.prelu({ name: 'prelu_full' }).apply(input) as Sym;
  const b = L.prelu({ sharedAxes: [1, 2], name: 'prelu_shared' }).apply(a) as Sym;
  await compareWithTfjs(tf.model({ inputs: input, outputs: b }));
});

test('ELU(alpha=0.7) follows the Keras definition (tfjs only supports alpha=1)', async () => {
  const x = uniform(SHAPE.reduce((a, b) => a * b), -3, 3, 10);
  const config = sequentialConfig(SHAPE.slice(1), [{ class_name: 'ELU', config: { name: 'elu', alpha: 0.7 } }]);
  const got = (await convertAndRun(config, new Map(), x, SHAPE)).output.data;
  assertClose(got, x.map((v) => (v > 0 ? v : 0.7 * (Math.exp(v) - 1))), 1e-6, 'ELU', 'abs');
});

test('Softmax(axis=2) normalises over the width axis (Keras definition; tfjs only supports the last axis)', async () => {
  const x = uniform(SHAPE.reduce((a, b) => a * b), -3, 3, 11);
  const config = sequentialConfig(SHAPE.slice(1), [{ class_name: 'Softmax', config: { name: 'soft', axis: 2 } }]);
  const got = (await convertAndRun(config, new Map(), x, SHAPE)).output.data;
  const [n, h, w, c] = SHAPE as [number, number, number, number];
  const want = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let i = 0; i < h; i++) for (let k = 0; k < c; k++) {
    const idx = (j: number) => ((b * h + i) * w + j) * c + k;
    const sum = Array.from({ length: w }, (_, j) => Math.exp(x[idx(j)]!)).reduce((s, v) => s + v, 0);
    for (let j = 0; j < w; j++) want[idx(j)] = Math.exp(x[idx(j)]!) / sum;
  }
  assertClose(got, want, 1e-6, 'Softmax axis 2', 'abs');
});

test('ReLU with threshold and negative_slope follows the Keras definition', async () => {
  const x = uniform(SHAPE.reduce((a, b) => a * b), -3, 3, 9);
  for (const { max_value, negative_slope, threshold } of [
    { max_value: null, negative_slope: 0.1, threshold: 0 },
    { max_value: 1.5, negative_slope: 0.2, threshold: 0.5 },
    { max_value: null, negative_slope: 0, threshold: 0.7 },
  ]) {
    const config = sequentialConfig(SHAPE.slice(1), [{ class_name: 'ReLU', config: { name: 'relu', max_value, negative_slope, threshold } }]);
    const got = (await convertAndRun(config, new Map(), x, SHAPE)).output.data;
    // Keras: max_value if x ≥ max_value; x if threshold ≤ x < max_value; negative_slope·(x − threshold) otherwise.
    const want = x.map((v) => (max_value !== null && v >= max_value ? max_value : v >= threshold ? v : negative_slope * (v - threshold)));
    assertClose(got, want, 1e-6, `ReLU ${JSON.stringify({ max_value, negative_slope, threshold })}`, 'abs');
  }
});
