// Keras / TensorFlow.js file readers: every layout written by test/helpers/keras-files.ts (the structure real
// Keras writes) is detected from its content and read back to the stored config and every weight (exact values;
// tfjs dequantisation against direct computation from the stored integers), nested models included.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { zipSync } from 'fflate';
import { detectKerasFile } from '../src/models/keras/detect.js';
import { KerasImportError } from '../src/models/keras/errors.js';
import type { KWeight } from '../src/models/keras/ir.js';
import { nsfwjsInceptionV3Path, readNsfwjsInceptionV3 } from '../src/models/keras/nsfwjs.js';
import { rawModelTree } from '../src/models/keras/raw-config.js';
import { readKerasFile } from '../src/models/keras/read.js';
import {
  type KerasFileSpec, type KerasWeightSpec, k2Layer, kerasVarsGroups, k2Sequential, k3Functional, k3Layer, k3Sequential,
  writeKeras2H5, writeKeras3LegacyH5, writeKeras3WeightsH5, writeKerasSaveWeights, writeKerasZip, writeTfjsModel,
} from './helpers/keras-files.js';
import { ProblemError } from '../src/util/problem.js';

const root = mkdtempSync(join(tmpdir(), 'convserve-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => { const d = join(root, `t${++n}`); mkdirSync(d); return d; };

/** Deterministic pseudo-random weights (LCG), distinct per call. */
let seed = 12345;
function rand(shape: number[]): KerasWeightSpec['data'] {
  const size = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: size }, () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 30 - 1;
  });
}
const w = (name: string, shape: number[]): KerasWeightSpec => ({ name, shape, data: rand(shape) });

/** A convnet using every weighted layer type whose variable order matters. `names` maps the Keras 2 names. */
function layerWeights(names: (k: string) => string): Record<string, KerasWeightSpec[]> {
  return {
    [names('conv2d_1')]: [w('kernel', [3, 3, 3, 4]), w('bias', [4])],
    [names('batch_normalization_1')]: [w('beta', [4]), w('moving_mean', [4]), w('moving_variance', [4])],
    [names('depthwise_conv2d_1')]: [w('depthwise_kernel', [3, 3, 4, 2]), w('bias', [8])],
    [names('separable_conv2d_1')]: [w('depthwise_kernel', [3, 3, 8, 1]), w('pointwise_kernel', [1, 1, 8, 5]), w('bias', [5])],
    [names('conv2d_transpose_1')]: [w('kernel', [2, 2, 6, 5])],
    [names('conv2d_2')]: [w('kernel', [1, 1, 6, 3]), w('bias', [3])],
    [names('layer_normalization_1')]: [w('gamma', [3]), w('beta', [3])],
    [names('batch_normalization_2')]: [w('gamma', [3]), w('beta', [3]), w('moving_mean', [3]), w('moving_variance', [3])],
    [names('p_re_lu_1')]: [w('alpha', [1, 1, 3])],
    [names('dense_1')]: [w('kernel', [27, 7]), w('bias', [7])],
    [names('dense_2')]: [w('kernel', [7, 2])],
  };
}

const LAYERS: [string, string, Record<string, unknown>][] = [
  ['Conv2D', 'conv2d_1', { filters: 4, kernel_size: [3, 3], padding: 'same', use_bias: true }],
  ['BatchNormalization', 'batch_normalization_1', { scale: false, center: true, epsilon: 0.001 }],
  ['MaxPooling2D', 'max_pooling2d_1', { pool_size: [2, 2] }],
  ['DepthwiseConv2D', 'depthwise_conv2d_1', { kernel_size: [3, 3], depth_multiplier: 2, padding: 'same', use_bias: true }],
  ['SeparableConv2D', 'separable_conv2d_1', { filters: 5, kernel_size: [3, 3], padding: 'same', use_bias: true }],
  ['Conv2DTranspose', 'conv2d_transpose_1', { filters: 6, kernel_size: [2, 2], use_bias: false }],
  ['Conv2D', 'conv2d_2', { filters: 3, kernel_size: [1, 1], use_bias: true }],
  ['LayerNormalization', 'layer_normalization_1', { axis: [3], scale: true, center: true }],
  ['BatchNormalization', 'batch_normalization_2', { scale: true, center: true }],
  ['PReLU', 'p_re_lu_1', { shared_axes: [1, 2] }],
  ['Flatten', 'flatten_1', {}],
  ['Dropout', 'dropout_1', { rate: 0.5 }],
  ['Dense', 'dense_1', { units: 7, use_bias: true, activation: 'relu' }],
  ['Dense', 'dense_2', { units: 2, use_bias: false, activation: 'softmax' }],
];

/** Keras 2 dialect Sequential (names conv2d_1, …), as Keras 2.x and tfjs store it. */
function keras2Spec(): KerasFileSpec {
  const layers = LAYERS.map(([c, name, cfg], i) => k2Layer(c, name, i === 0 ? { ...cfg, batch_input_shape: [null, 6, 6, 3] } : cfg));
  return { config: k2Sequential('sequential_1', layers), weights: layerWeights((k) => k), kerasVersion: '2.3.1' };
}

/** Keras 3 dialect Sequential with Keras 3 names (conv2d, conv2d_1, …, shifted by one). */
const k3Name = (k: string) => k.replace(/_(\d+)$/, (_, d: string) => (d === '1' ? '' : `_${Number(d) - 1}`));
function keras3Spec(): KerasFileSpec {
  const layers = [
    k3Layer('InputLayer', 'input_layer', { batch_shape: [null, 6, 6, 3] }),
    ...LAYERS.map(([c, name, cfg]) => k3Layer(c, k3Name(name), cfg)),
  ];
  return { config: k3Sequential('sequential', layers), weights: layerWeights(k3Name), kerasVersion: '3.12.1' };
}

/** The reader's weights equal the spec's: same layers, roles, shapes and values. */
function assertWeights(actual: Map<string, KWeight[]>, expected: Record<string, KerasWeightSpec[]>): void {
  assert.deepEqual([...actual.keys()].sort(), Object.keys(expected).sort());
  for (const [layer, ws] of Object.entries(expected)) {
    const got = actual.get(layer)!;
    assert.deepEqual(got.map((x) => x.name), ws.map((x) => x.name), `roles of ${layer}`);
    ws.forEach((e, i) => {
      assert.deepEqual(got[i]!.shape, e.shape, `${layer}/${e.name} shape`);
      assert.deepEqual(got[i]!.data, e.data, `${layer}/${e.name} values`);
    });
  }
}

test('Keras 2 full-model .h5 (bytes attributes): detected, config as stored, every weight by role', async () => {
  const dir = fresh();
  const spec = keras2Spec();
  const path = join(dir, 'model.bin'); // the extension is irrelevant
  await writeKeras2H5(path, spec);
  assert.deepEqual(await detectKerasFile(path), { format: 'keras2-h5', needsConfig: false });
  const raw = await readKerasFile(path);
  assert.equal(raw.format, 'keras2-h5');
  assert.equal(raw.kerasVersion, '2.3.1');
  assert.deepEqual(raw.config, spec.config);
  assertWeights(raw.weights, spec.weights);
  assert.deepEqual(readdirSync(dir), ['model.bin'], 'the reader writes nothing');
});

test('Keras 2 .h5 with layer_names split in 3 attributes, str attributes and no keras_version', async () => {
  const spec = keras2Spec();
  const path = join(fresh(), 'm.h5');
  await writeKeras2H5(path, spec, { splitLayerNames: 3, strings: 'str', noVersion: true });
  const raw = await readKerasFile(path);
  assert.equal(raw.format, 'keras2-h5', "decided by the ':0' weight names");
  assert.equal(raw.kerasVersion, null);
  assertWeights(raw.weights, spec.weights);
});

test('Keras 3 legacy .h5: plain weight names (3.0–3.4) and path names (≥ 3.5), version or layout decides', async () => {
  const spec = keras3Spec();
  for (const weightNames of ['role', 'path'] as const) {
    const path = join(fresh(), 'm.h5');
    await writeKeras3LegacyH5(path, spec, { weightNames });
    const raw = await readKerasFile(path);
    assert.equal(raw.format, 'keras3-legacy-h5');
    assert.equal(raw.kerasVersion, '3.12.1');
    assert.deepEqual(raw.config, spec.config);
    // Keras 3 names DepthwiseConv2D's variable 'kernel'; the reader reports the dialect-free 'depthwise_kernel'.
    const dw = { ...spec, weights: { ...spec.weights, depthwise_conv2d: spec.weights.depthwise_conv2d!.map((x, i) => (i === 0 ? { ...x, name: 'kernel' } : x)) } };
    const p2 = join(fresh(), 'dw.h5');
    await writeKeras3LegacyH5(p2, dw, { weightNames, noVersion: true });
    const raw2 = await readKerasFile(p2);
    assert.equal(raw2.format, 'keras3-legacy-h5', 'decided by the Keras 3 config');
    assertWeights(raw.weights, spec.weights);
    assertWeights(raw2.weights, spec.weights);
  }
});

test('save_weights .h5 + model.to_json(): needs --config, then reads; --config on a full model is refused', async () => {
  const dir = fresh();
  const spec = { ...keras2Spec(), kerasVersion: '2.8.0' };
  const weights = join(dir, 'w.h5');
  const config = join(dir, 'model.json');
  await writeKerasSaveWeights(weights, config, spec);
  assert.deepEqual(await detectKerasFile(weights), { format: 'keras-weights-h5', needsConfig: true });
  await assertImportError(readKerasFile(weights), 'missing-config', weights);
  const raw = await readKerasFile(weights, { configPath: config });
  assert.equal(raw.format, 'keras-weights-h5');
  assert.equal(raw.kerasVersion, '2.8.0');
  assert.deepEqual(raw.config, { ...spec.config, keras_version: '2.8.0', backend: 'tensorflow' }, 'the to_json() object as stored');
  assertWeights(raw.weights, spec.weights);

  const full = join(dir, 'full.h5');
  await writeKeras2H5(full, spec);
  await assertImportError(readKerasFile(full, { configPath: config }), 'bad-config', full);
  writeFileSync(join(dir, 'not-a-model.json'), JSON.stringify({ hello: 1 }));
  await assertImportError(readKerasFile(weights, { configPath: join(dir, 'not-a-model.json') }), 'bad-config', 'not-a-model.json');
});

test('Keras 3 .weights.h5 (layers/<class>/vars/<i>) + config', async () => {
  const dir = fresh();
  const spec = keras3Spec();
  await writeKeras3WeightsH5(join(dir, 'm.weights.h5'), join(dir, 'config.json'), spec);
  assert.deepEqual(await detectKerasFile(join(dir, 'm.weights.h5')), { format: 'keras-weights-h5', needsConfig: true });
  const raw = await readKerasFile(join(dir, 'm.weights.h5'), { configPath: join(dir, 'config.json') });
  assertWeights(raw.weights, spec.weights);
});

test('.keras archive, stored and deflated: version from metadata.json, weights by class counter and variable order', async () => {
  const spec = keras3Spec();
  // An adapted Normalization stores mean, variance and an int64 count.
  (spec.config.config as { layers: unknown[] }).layers.splice(1, 0, k3Layer('Normalization', 'normalization', { axis: [-1], mean: null, variance: null }));
  spec.weights.normalization = [w('mean', [3]), w('variance', [3]), { name: 'count', shape: [], data: Float32Array.of(60) }];
  for (const deflate of [false, true]) {
    const dir = fresh();
    const path = join(dir, 'm.keras');
    await writeKerasZip(path, spec, { deflate });
    assert.deepEqual(await detectKerasFile(path), { format: 'keras3-zip', needsConfig: false });
    const raw = await readKerasFile(path);
    assert.equal(raw.format, 'keras3-zip');
    assert.equal(raw.kerasVersion, '3.12.1');
    assert.deepEqual(raw.config, spec.config);
    assertWeights(raw.weights, spec.weights);
    assert.deepEqual(readdirSync(dir), ['m.keras']);
  }
});

test('.keras groups are class counters, not layer names (the observed Keras 3.13.2 layout, written by hand)', async () => {
  const layers = [
    k3Layer('InputLayer', 'input_layer_4', { batch_shape: [null, 8, 8, 1] }),
    k3Layer('Conv2D', 'conv2d_12', { filters: 2, kernel_size: [3, 3] }),
    k3Layer('MaxPooling2D', 'max_pooling2d_6', {}),
    k3Layer('Conv2D', 'conv2d_13', { filters: 3, kernel_size: [1, 1], use_bias: false }),
    k3Layer('BatchNormalization', 'batch_normalization_7', { center: false }),
    k3Layer('Flatten', 'flatten_2', {}),
    k3Layer('Dense', 'dense_2', { units: 4 }),
  ];
  const spec: KerasFileSpec = {
    config: k3Sequential('sequential_3', layers),
    weights: {
      conv2d_12: [w('kernel', [3, 3, 1, 2]), w('bias', [2])],
      conv2d_13: [w('kernel', [1, 1, 2, 3])],
      batch_normalization_7: [w('gamma', [3]), w('moving_mean', [3]), w('moving_variance', [3])],
      dense_2: [w('kernel', [27, 4]), w('bias', [4])],
    },
  };
  const groups = new Map([
    ['conv2d_12', 'layers/conv2d'], ['max_pooling2d_6', 'layers/max_pooling2d'], ['conv2d_13', 'layers/conv2d_1'],
    ['batch_normalization_7', 'layers/batch_normalization'], ['flatten_2', 'layers/flatten'], ['dense_2', 'layers/dense'],
  ]);
  const path = join(fresh(), 'm.keras');
  await writeKerasZip(path, spec, { groups });
  assertWeights((await readKerasFile(path)).weights, spec.weights);
});

/** The classic transfer-learning file: Sequential([base model, Flatten, Dense, Dense]). */
function nestedSpec(dialect: 2 | 3): KerasFileSpec {
  const L = dialect === 2 ? k2Layer : k3Layer;
  const baseLayers = [
    L('InputLayer', 'input_1', { [dialect === 2 ? 'batch_input_shape' : 'batch_shape']: [null, 5, 5, 3] }),
    L('Conv2D', 'block1_conv1', { filters: 4, kernel_size: [3, 3] }, ['input_1']),
    L('BatchNormalization', 'block1_bn', {}, ['block1_conv1']),
    L('Conv2D', 'block1_conv2', { filters: 2, kernel_size: [1, 1] }, ['block1_bn']),
  ];
  const base = dialect === 2
    ? { class_name: 'Functional', config: { name: 'vgg', layers: baseLayers, input_layers: [['input_1', 0, 0]], output_layers: [['block1_conv2', 0, 0]] } }
    : k3Functional('vgg', baseLayers, ['input_1'], ['block1_conv2']);
  const head = [L('Flatten', 'flatten', {}), L('Dense', 'dense', { units: 3 }), L('Dense', 'dense_1', { units: 2, activation: 'softmax' })];
  const config = dialect === 2 ? k2Sequential('sequential', [base, ...head]) : k3Sequential('sequential', [base, ...head]);
  return {
    config,
    kerasVersion: dialect === 2 ? '2.8.0' : '3.4.1',
    weights: {
      'vgg/block1_conv1': [w('kernel', [3, 3, 3, 4]), w('bias', [4])],
      'vgg/block1_bn': [w('gamma', [4]), w('beta', [4]), w('moving_mean', [4]), w('moving_variance', [4])],
      'vgg/block1_conv2': [w('kernel', [1, 1, 4, 2]), w('bias', [2])],
      dense: [w('kernel', [18, 3]), w('bias', [3])],
      dense_1: [w('kernel', [3, 2]), w('bias', [2])],
    },
  };
}

test('nested model: Keras 2 .h5, tfjs, Keras 3 legacy .h5 and .keras all key inner layers as <model>/<layer>', async () => {
  const k2 = nestedSpec(2);
  const h5 = join(fresh(), 'tl.h5');
  await writeKeras2H5(h5, k2); // the nested group lists trainable weights first, then the BN moving statistics
  assertWeights((await readKerasFile(h5)).weights, k2.weights);
  const tfjs = writeTfjsModel(fresh(), k2); // the converter names inner weights by the inner layer only
  assertWeights((await readKerasFile(tfjs.modelJson)).weights, k2.weights);
  const tfjsFull = writeTfjsModel(fresh(), k2, { fullPaths: true });
  assertWeights((await readKerasFile(tfjsFull.modelJson)).weights, k2.weights);

  const k3 = nestedSpec(3);
  const legacy = join(fresh(), 'tl3.h5');
  await writeKeras3LegacyH5(legacy, k3, { weightNames: 'path' });
  assertWeights((await readKerasFile(legacy)).weights, k3.weights);
  // .keras: the Functional base is `layers/functional`, its children (InputLayer included) below it.
  const groups = new Map([
    ['vgg', 'layers/functional'], ['vgg/input_1', 'layers/functional/layers/input_layer'],
    ['vgg/block1_conv1', 'layers/functional/layers/conv2d'], ['vgg/block1_bn', 'layers/functional/layers/batch_normalization'],
    ['vgg/block1_conv2', 'layers/functional/layers/conv2d_1'], ['flatten', 'layers/flatten'], ['dense', 'layers/dense'], ['dense_1', 'layers/dense_1'],
  ]);
  const zip = join(fresh(), 'tl.keras');
  await writeKerasZip(zip, k3, { groups });
  const raw = await readKerasFile(zip);
  assert.equal(raw.kerasVersion, '3.4.1');
  assertWeights(raw.weights, k3.weights);
});

test('tfjs layers: float32 over several shards; uint8/uint16 dequantised as min + scale·q; float16 decoded', async () => {
  const spec = keras2Spec();
  const plain = writeTfjsModel(fresh(), spec, { shardBytes: 500 });
  assert.ok(readdirSync(join(plain.modelJson, '..')).filter((f) => f.endsWith('.bin')).length > 3, 'several shards');
  assert.deepEqual(await detectKerasFile(plain.modelJson), { format: 'tfjs-layers', needsConfig: false, container: 'json' });
  const raw = await readKerasFile(plain.modelJson);
  assert.equal(raw.format, 'tfjs-layers');
  assert.equal(raw.kerasVersion, '2.3.1');
  assert.deepEqual(raw.config, spec.config);
  assertWeights(raw.weights, spec.weights);

  // Values exactly representable in binary16 (normal, subnormal, max) must decode exactly.
  spec.weights.dense_2 = [{ name: 'kernel', shape: [7, 2], data: Float32Array.from([0.5, -2, 1 / 1024, 65504, 2 ** -24, -(2 ** -20), 0, 3.75, -0.125, 1.5, 2 ** -14, 100, -7, 0.25]) }];
  const kinds = ['uint8', 'uint16', 'float16'] as const;
  let next = 0;
  const quantize = (layer: string) => (layer === 'dense_2' ? 'float16' : kinds[next++ % 3]);
  const quantized = writeTfjsModel(fresh(), spec, { shardBytes: 777, quantize });
  const used = [...quantized.stored.values()].map((s) => s.quantization!.dtype);
  for (const k of kinds) assert.ok(used.filter((u) => u === k).length >= 3, `${k} used`);
  const got = (await readKerasFile(quantized.modelJson)).weights;
  let checked = 0;
  for (const [layer, ws] of Object.entries(spec.weights)) {
    ws.forEach((orig, i) => {
      const stored = quantized.stored.get(`${layer}/${orig.name}`)!;
      const q = stored.quantization!;
      const actual = got.get(layer)![i]!.data;
      // Oracle: direct computation from the stored integers / half floats.
      const expected = q.dtype === 'float16'
        ? Float32Array.from(stored.stored, halfOracle)
        : Float32Array.from(stored.stored, (v) => q.min! + q.scale! * v);
      actual.forEach((v, j) => assert.ok(Math.abs(v - expected[j]!) <= 1e-6 * Math.max(1, Math.abs(expected[j]!)), `${layer}/${orig.name}[${j}] ${v} vs ${expected[j]}`));
      // And close to the original float32 weights: half a quantisation step, or float16's relative precision.
      const tol = q.dtype === 'float16' ? (x: number) => Math.abs(x) * 2 ** -11 + 2 ** -25 : () => q.scale! / 2 + 1e-6;
      orig.data.forEach((x, j) => assert.ok(Math.abs(actual[j]! - x) <= tol(x), `${layer}/${orig.name}[${j}] ${actual[j]} vs original ${x}`));
      if (layer === 'dense_2') assert.deepEqual(actual, orig.data, 'exactly representable halves decode exactly');
      checked++;
    });
  }
  assert.equal(checked, Object.values(spec.weights).flat().length);
});

/** binary16 → number by its definition (the test's own decoder). */
function halfOracle(bits: number): number {
  const s = bits >> 15 ? -1 : 1;
  const e = (bits >> 10) & 31;
  const f = bits & 1023;
  return e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
}

/** A KerasImportError, HTTP 422, type keras-import-<kind>, one line mentioning `mentions` (the file). */
async function assertImportError(p: Promise<unknown>, kind: string, mentions: string): Promise<KerasImportError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KerasImportError, `expected KerasImportError, got ${e instanceof Error ? e.stack : String(e)}`);
    assert.ok(e instanceof ProblemError);
    assert.equal(e.kind, kind, e.message);
    assert.equal(e.status, 422);
    assert.equal(e.toBody().type, `https://convserve.dev/problems/keras-import-${kind}`);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    assert.ok(e.message.includes(mentions), `"${e.message}" mentions ${mentions}`);
    return e;
  }
  assert.fail(`expected keras-import-${kind}`);
}

test("the nsfwjs package's InceptionV3 bundle reads as tfjs layers, without running the package's code", async () => {
  const path = nsfwjsInceptionV3Path();
  assert.deepEqual(await detectKerasFile(path), { format: 'tfjs-layers', needsConfig: false, container: 'js-bundle' });
  const raw = await readNsfwjsInceptionV3();
  assert.equal(raw.format, 'tfjs-layers');
  assert.equal(raw.kerasVersion, '2.2.4');
  const tree = rawModelTree(raw.config, 'nsfwjs');
  const names = tree.layers.map((l) => l.name);
  for (let i = 0; i <= 10; i++) assert.ok(names.includes(`mixed${i}`), `mixed${i}`);

  // Official InceptionV3 names: 94 convs (kernel only), 94 BN with scale=False, then the package's dense head.
  const expected = new Map<string, string[]>();
  for (let k = 1; k <= 94; k++) {
    expected.set(`conv2d_${k}`, ['kernel']);
    expected.set(`batch_normalization_${k}`, ['beta', 'moving_mean', 'moving_variance']);
  }
  for (const d of ['dense_1', 'dense_2', 'dense_3']) expected.set(d, ['kernel', 'bias']);
  assert.deepEqual(new Map([...raw.weights].map(([k, ws]) => [k, ws.map((x) => x.name)])), expected);
  assert.equal([...raw.weights.values()].flat().length, 382);
  assert.deepEqual(raw.weights.get('dense_3')!.map((x) => x.shape), [[128, 5], [5]], 'five moderation classes');

  // Oracle: the package's own modules, loaded the way nsfwjs does (require), decoded with Buffer and the manifest.
  const require = createRequire(import.meta.url);
  const modelJson: { weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; quantization: { min: number; scale: number } }[] }[] } = require(path);
  const group = modelJson.weightsManifest[0]!;
  const bytes = Buffer.concat(group.paths.map((p) => Buffer.from(require(join(path, '..', `${p}.min.js`)) as string, 'base64')));
  let offset = 0;
  for (const spec of group.weights) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const [layer, role] = spec.name.split('/') as [string, string];
    const got = raw.weights.get(layer)!.find((x) => x.name === role)!;
    assert.deepEqual(got.shape, spec.shape);
    for (let j = 0; j < size; j++) {
      const want = Math.fround(bytes[offset + j]! * spec.quantization.scale + spec.quantization.min);
      if (got.data[j] !== want) assert.fail(`${spec.name}[${j}]: ${got.data[j]} vs ${want}`);
    }
    offset += size;
  }
  assert.equal(offset, bytes.length);
});

test('errors: unreadable, unknown, truncated and corrupt files, missing shards and config, weights that fit no layer', async () => {
  const dir = fresh();
  const at = (name: string) => join(dir, name);
  const tempDirs = () => readdirSync(tmpdir()).filter((f) => f.startsWith('convserve-keras-'));
  const tempBefore = new Set(tempDirs());
  await assertImportError(readKerasFile(at('nope.h5')), 'not-found', 'nope.h5');
  writeFileSync(at('empty.h5'), '');
  await assertImportError(readKerasFile(at('empty.h5')), 'unknown-format', 'empty.h5 is empty');
  writeFileSync(at('photo.keras'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6]));
  await assertImportError(readKerasFile(at('photo.keras')), 'unknown-format', 'photo.keras');
  writeFileSync(at('config.json'), JSON.stringify(keras2Spec().config));
  assert.match((await assertImportError(readKerasFile(at('config.json')), 'unknown-format', 'config.json')).message, /--config/);
  writeFileSync(at('graph.json'), JSON.stringify({ format: 'graph-model', modelTopology: {}, weightsManifest: [] }));
  assert.match((await assertImportError(readKerasFile(at('graph.json')), 'unknown-format', 'graph.json')).message, /graph model/);
  writeFileSync(at('other.zip'), zipSync({ 'readme.txt': Buffer.from('hi') }));
  await assertImportError(readKerasFile(at('other.zip')), 'unknown-format', 'other.zip');

  // HDF5: cut in half, or damaged inside.
  const h5 = at('m.h5');
  await writeKeras2H5(h5, keras2Spec());
  const full = readFileSync(h5);
  writeFileSync(at('cut.h5'), full.subarray(0, full.length >> 1));
  assert.match((await assertImportError(readKerasFile(at('cut.h5')), 'truncated', 'cut.h5')).message, /incomplete download/);
  const damaged = Buffer.from(full);
  damaged.fill(0xa5, 96, 2048);
  await assertImportError(readKerasFile(writeTo(at('damaged.h5'), damaged)), 'corrupt', 'damaged.h5');

  // .keras: cut (no end record), or a flipped byte inside the stored weights (CRC).
  const zip = at('m.keras');
  await writeKerasZip(zip, keras3Spec());
  const z = readFileSync(zip);
  await assertImportError(readKerasFile(writeTo(at('cut.keras'), z.subarray(0, z.length - 200))), 'truncated', 'cut.keras');
  const flipped = Buffer.from(z);
  flipped[z.indexOf('HDF') + 4000]! ^= 0xff;
  assert.match((await assertImportError(readKerasFile(writeTo(at('flip.keras'), flipped)), 'corrupt', 'flip.keras')).message, /CRC-32/);

  // .keras whose config and weights disagree: a config layer without stored weights; stored weights of no layer.
  const extra = keras3Spec();
  (extra.config.config as { layers: unknown[] }).layers.push(k3Layer('Dense', 'dense_3', { units: 2 }));
  await writeKerasZip(at('short.keras'), { ...extra, weights: keras3Spec().weights });
  assert.match((await assertImportError(readKerasFile(at('short.keras')), 'weights-layout', 'short.keras')).message, /'dense_3' \(Dense\).*layers\/dense_2\/vars: expected 2 \(kernel, bias\), found 0/);
  const fewer = keras3Spec();
  const layers = (fewer.config.config as { layers: { class_name: string }[] }).layers;
  layers.splice(layers.findIndex((l) => l.class_name === 'PReLU'), 1);
  await writeKerasZip(at('stray.keras'), fewer, { groups: kerasVarsGroups(keras3Spec()) });
  assert.match((await assertImportError(readKerasFile(at('stray.keras')), 'weights-layout', 'stray.keras')).message, /layers\/p_re_lu belong to no layer/);

  // tfjs: truncated model.json, a missing shard, shards of the wrong size.
  const tdir = fresh();
  const { modelJson } = writeTfjsModel(tdir, keras2Spec(), { shardBytes: 1024 });
  const text = readFileSync(modelJson, 'utf8');
  await assertImportError(readKerasFile(writeTo(join(tdir, 'cut.json'), text.slice(0, 300))), 'truncated', 'cut.json');
  const shard2 = join(tdir, 'group1-shard2of3.bin');
  const shardBytes = readFileSync(shard2);
  writeFileSync(shard2, Buffer.concat([shardBytes, Buffer.alloc(4)]));
  assert.match((await assertImportError(readKerasFile(modelJson), 'shard-size', 'model.json')).message, /has \d+ bytes in 3 shard\(s\), its 23 weights need \d+/);
  rmSync(shard2);
  assert.match((await assertImportError(readKerasFile(modelJson), 'missing-shard', 'group1-shard2of3.bin')).message, /weights group 1/);
  assert.deepEqual(tempDirs().filter((f) => !tempBefore.has(f)), [], 'no temporary files left');
});

function writeTo(path: string, data: string | Uint8Array): string {
  writeFileSync(path, data);
  return path;
}
