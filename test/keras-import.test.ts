// Keras import end to end: every file layout and both config dialects, written by test/helpers/keras-files.ts,
// imported with importKerasModel({file}) into a models folder, served by a real service and classified over HTTP.
// Oracle: tfjs-layers running the same network with the same weights (for the quantized tfjs file: tfjs' own
// loader reading that file). Also: a nested transfer-learning model, logits and sigmoid heads, a grey-input
// model, GET /v1/models/{name}, and the recognition of VGG19/InceptionV3 topologies.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import request from 'supertest';
import { ARCHITECTURES } from '../src/models/architectures/index.js';
import { importKerasModel } from '../src/models/import.js';
import type { KLayer, KWeight, KerasImport } from '../src/models/keras/ir.js';
import { recognizeTopology } from '../src/models/keras/known-topology.js';
import { readManifest } from '../src/models/manifest.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { tempDir, testConfig } from './helpers/app.js';
import {
  type KerasFileSpec, k3Functional, k3Layer, writeKeras2H5, writeKeras3LegacyH5, writeKeras3WeightsH5, writeKerasSaveWeights,
  writeKerasZip, writeTfjsModel,
} from './helpers/keras-files.js';
import { kerasWeights, randomizeWeights, rng, tf, tfReady } from './helpers/tfjs-keras.js';
import { VERIFIED_FILE } from '../src/models/integrity.js';

const L = tf.layers;
type Sym = tf.SymbolicTensor;

const work = tempDir();
const modelsDir = join(work, 'models');
let svc: RunningService<'engine' | 'models' | 'classify'>;

before(async () => {
  await tfReady();
  svc = await startService({ config: testConfig({ modelsDir }), plugins: [inferencePlugin()] });
});
after(async () => { await svc?.shutdown(); });

let fileCount = 0;
function fresh(): string {
  const d = join(work, `f${++fileCount}`);
  mkdirSync(d);
  return d;
}

/** A seeded image of the model's size: RGB or grey pixels, and its PNG. */
async function image(height: number, width: number, channels: 1 | 3, seed: number): Promise<{ raw: Buffer; png: Buffer }> {
  const r = rng(seed);
  const raw = Buffer.from(Array.from({ length: height * width * channels }, () => Math.floor(r() * 256)));
  return { raw, png: await sharp(raw, { raw: { width, height, channels } }).png().toBuffer() };
}

/** tfjs' output for the image, preprocessed as rescale:1/255. */
function tfjsPredict(model: tf.LayersModel, raw: Buffer, shape: number[]): Float32Array {
  const x = tf.tensor(Float32Array.from(raw, (v) => v / 255), [1, ...shape]);
  const y = model.predict(x) as tf.Tensor;
  const out = Float32Array.from(y.dataSync());
  tf.dispose([x, y]);
  return out;
}

/** POST /v1/classify with every class, probabilities by class index. */
async function classify(name: string, png: Buffer, classes: number): Promise<{ body: Record<string, unknown>; probs: Float32Array }> {
  await request(svc.url).post('/v1/models/reload').expect(200);
  const res = await request(svc.url).post(`/v1/classify?model=${name}&resize=squash&top=${classes}`).attach('image', png, 'x.png');
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const preds = res.body.predictions as { index: number; probability: number }[];
  const probs = new Float32Array(preds.length);
  for (const p of preds) probs[p.index] = p.probability;
  return { body: res.body, probs };
}

function assertClose(ours: Float32Array, ref: Float32Array, what: string, tol = 1e-4): void {
  assert.equal(ours.length, ref.length, `${what}: class count`);
  ours.forEach((v, i) => assert.ok(Math.abs(v - ref[i]!) <= tol, `${what}: class ${i}: ${v} vs tfjs ${ref[i]}`));
}

const specOf = (model: tf.LayersModel, kerasVersion: string): KerasFileSpec => ({
  config: model.toJSON(null, false) as Record<string, unknown>,
  weights: Object.fromEntries(kerasWeights(model)),
  kerasVersion,
});

// ---- the reference network: conv + BN (folded) + residual add + pool + flatten + dense, odd 9×7 input ---------

function residualTfjs(): tf.LayersModel {
  const input = tf.input({ shape: [9, 7, 3], name: 'image' });
  const stem = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, name: 'stem' }).apply(input) as Sym;
  const bn = L.batchNormalization({ name: 'stem_bn' }).apply(stem) as Sym;
  const relu = L.activation({ activation: 'relu', name: 'stem_relu' }).apply(bn) as Sym;
  const branch = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'branch' }).apply(relu) as Sym;
  const add = L.add({ name: 'residual_add' }).apply([relu, branch]) as Sym;
  const pool = L.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(add) as Sym;
  const flat = L.flatten({ name: 'flatten' }).apply(pool) as Sym;
  return tf.model({ inputs: input, outputs: L.dense({ units: 5, activation: 'softmax', name: 'predictions' }).apply(flat) as Sym, name: 'residual' });
}

/** The same network in the Keras 3 dialect (keras-formats §6). */
function residualKeras3Config(): Record<string, unknown> {
  const conv = { strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], groups: 1, kernel_size: [3, 3], filters: 4 };
  return k3Functional('residual', [
    k3Layer('InputLayer', 'image', { batch_shape: [null, 9, 7, 3], sparse: false }),
    k3Layer('Conv2D', 'stem', { ...conv, activation: 'linear', use_bias: false }, ['image']),
    k3Layer('BatchNormalization', 'stem_bn', { axis: -1, momentum: 0.99, epsilon: 0.001, center: true, scale: true }, ['stem']),
    k3Layer('Activation', 'stem_relu', { activation: 'relu' }, ['stem_bn']),
    k3Layer('Conv2D', 'branch', { ...conv, activation: 'relu', use_bias: true }, ['stem_relu']),
    k3Layer('Add', 'residual_add', {}, ['stem_relu', 'branch']),
    k3Layer('MaxPooling2D', 'pool', { pool_size: [2, 2], padding: 'valid', strides: [2, 2], data_format: 'channels_last' }, ['residual_add']),
    k3Layer('Flatten', 'flatten', { data_format: 'channels_last' }, ['pool']),
    k3Layer('Dense', 'predictions', { units: 5, activation: 'softmax', use_bias: true }, ['flatten']),
  ], ['image'], ['predictions']);
}

const LABELS = ['ant', 'bee', 'cat', 'dog', 'eel'];

describe('every layout and dialect imports and classifies like tfjs', () => {
  const model = residualTfjs();
  let spec2: KerasFileSpec;
  let spec3: KerasFileSpec;
  before(() => {
    randomizeWeights(model, 11);
    spec2 = specOf(model, '2.3.1');
    spec3 = { ...spec2, config: residualKeras3Config(), kerasVersion: '3.4.1' };
  });

  /** Labels in the three accepted forms, cycling through the layouts. */
  function labelsFile(i: number): string {
    const d = fresh();
    const path = join(d, ['labels.txt', 'labels.json', 'class_index.json'][i % 3]!);
    const text = [
      LABELS.join('\n') + '\n',
      JSON.stringify(LABELS),
      JSON.stringify(Object.fromEntries(LABELS.map((l, k) => [String(k), [`n0${k}`, l]]))),
    ][i % 3]!;
    writeFileSync(path, text);
    return path;
  }

  const layouts: { name: string; format: string; dialect: 2 | 3; write: (d: string) => Promise<{ file: string; config?: string }> }[] = [
    { name: 'keras2-h5', format: 'keras2-h5', dialect: 2, write: async (d) => { await writeKeras2H5(join(d, 'm.h5'), spec2); return { file: join(d, 'm.h5') }; } },
    {
      name: 'keras2-weights', format: 'keras-weights-h5', dialect: 2,
      write: async (d) => { await writeKerasSaveWeights(join(d, 'w.h5'), join(d, 'm.json'), spec2); return { file: join(d, 'w.h5'), config: join(d, 'm.json') }; },
    },
    { name: 'keras3-legacy', format: 'keras3-legacy-h5', dialect: 3, write: async (d) => { await writeKeras3LegacyH5(join(d, 'm.h5'), spec3); return { file: join(d, 'm.h5') }; } },
    { name: 'keras3-zip', format: 'keras3-zip', dialect: 3, write: async (d) => { await writeKerasZip(join(d, 'm.keras'), spec3, { deflate: true }); return { file: join(d, 'm.keras') }; } },
    {
      name: 'keras3-weights', format: 'keras-weights-h5', dialect: 3,
      write: async (d) => { await writeKeras3WeightsH5(join(d, 'm.weights.h5'), join(d, 'm.json'), spec3); return { file: join(d, 'm.weights.h5'), config: join(d, 'm.json') }; },
    },
    { name: 'tfjs', format: 'tfjs-layers', dialect: 2, write: async (d) => ({ file: writeTfjsModel(d, spec2, { shardBytes: 300 }).modelJson }) },
  ];

  layouts.forEach((layout, i) => {
    it(`${layout.name} (Keras ${layout.dialect} dialect)`, async () => {
      const { file, config } = await layout.write(fresh());
      const name = `res-${layout.name}`;
      const r = await importKerasModel({ name, file, config, labels: labelsFile(i), preprocess: 'rescale:1/255', modelsDir });
      assert.equal(r.format, layout.format);
      const m = readManifest(join(modelsDir, name));
      assert.deepEqual(m, r.manifest);
      assert.equal(m.architecture, 'keras');
      assert.equal(m.weights.provenance, 'imported');
      assert.deepEqual(m.input, { name: 'input', height: 9, width: 7, channels: 3, fixed_size: true });
      assert.deepEqual(m.output, { name: 'predictions', classes: 5 });
      assert.equal(m.outputs, 'probabilities');
      assert.equal(m.preprocessing, 'rescale:1/255');
      assert.deepEqual(m.source, { format: layout.format, keras_version: r.kerasVersion, file: file.split('/').at(-1) });
      if (layout.name !== 'keras3-weights') assert.equal(r.kerasVersion, layout.dialect === 3 ? '3.4.1' : '2.3.1');
      // The BatchNormalization folded into 'stem' carries the value; every listed layer is fetchable.
      assert.deepEqual(m.layers!.map((l) => l.name), ['image', 'stem_bn', 'stem_relu', 'branch', 'residual_add', 'pool', 'flatten', 'predictions']);
      assert.deepEqual(m.layers!.find((l) => l.name === 'pool')!.output_shape, [null, 4, 3, 4]);
      assert.deepEqual(JSON.parse(readFileSync(join(modelsDir, name, 'labels.json'), 'utf8')).map((l: { label: string }) => l.label), LABELS);

      const img = await image(9, 7, 3, 100 + i);
      const { body, probs } = await classify(name, img.png, 5);
      assert.equal(body.outputs, undefined, 'a softmax model needs no note');
      assert.deepEqual((body.weights as { provenance: string }).provenance, 'imported');
      assertClose(probs, tfjsPredict(model, img.raw, [9, 7, 3]), layout.name);
    });
  });

  it('a uint8-quantized tfjs model classifies like tfjs loading that same file', async () => {
    const d = fresh();
    const { modelJson } = writeTfjsModel(d, spec2, { quantize: (_layer, role) => (role === 'kernel' ? 'uint8' : role === 'bias' ? 'uint16' : undefined) });
    await importKerasModel({ name: 'res-quantized', file: modelJson, preprocess: 'rescale:1/255', modelsDir });
    const json = JSON.parse(readFileSync(modelJson, 'utf8')) as { modelTopology: object; weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] };
    const group = json.weightsManifest[0]!;
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(join(d, p))));
    const oracle = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology, weightSpecs: group.weights, weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
    }));
    const img = await image(9, 7, 3, 7);
    const { probs } = await classify('res-quantized', img.png, 5);
    const ref = tfjsPredict(oracle, img.raw, [9, 7, 3]);
    assertClose(probs, ref, 'quantized');
    // Quantization changed the network: the float model gives other numbers (the oracle is not the float model).
    const float = tfjsPredict(model, img.raw, [9, 7, 3]);
    assert.ok(float.some((v, k) => Math.abs(v - ref[k]!) > 1e-6), 'the quantized weights differ from the float ones');
  });
});

describe('heads, nesting and channels', () => {
  it('nested transfer-learning model Sequential([conv base, Flatten, Dense, Dense]): .h5 and tfjs', async () => {
    const input = tf.input({ shape: [12, 10, 3], name: 'base_input' });
    let x = L.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'block1_conv1' }).apply(input) as Sym;
    x = L.maxPooling2d({ poolSize: 2, name: 'block1_pool' }).apply(x) as Sym;
    x = L.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'block2_conv1' }).apply(x) as Sym;
    x = L.maxPooling2d({ poolSize: 2, name: 'block2_pool' }).apply(x) as Sym;
    const base = tf.model({ inputs: input, outputs: x, name: 'convbase' });
    const model = tf.sequential({ name: 'transfer', layers: [base, L.flatten({ name: 'flatten' }), L.dense({ units: 16, activation: 'relu', name: 'fc' }), L.dense({ units: 4, activation: 'softmax', name: 'head' })] });
    randomizeWeights(model, 5);
    const spec = specOf(model, '2.3.1');
    assert.ok(spec.weights['convbase/block1_conv1'], 'inner weights are keyed <model>/<layer>');
    const d = fresh();
    await writeKeras2H5(join(d, 't.h5'), spec);
    const tfjsFile = writeTfjsModel(fresh(), spec).modelJson;
    const img = await image(12, 10, 3, 3);
    const ref = tfjsPredict(model, img.raw, [12, 10, 3]);
    for (const [name, file] of [['transfer-h5', join(d, 't.h5')], ['transfer-tfjs', tfjsFile]] as const) {
      const r = await importKerasModel({ name, file, preprocess: 'rescale:1/255', modelsDir });
      const names = r.manifest.layers!.map((l) => l.name);
      for (const n of ['block1_conv1', 'block2_pool', 'convbase', 'fc', 'head']) assert.ok(names.includes(n), `${name}: ${n} in ${names}`);
      assert.deepEqual(JSON.parse(readFileSync(join(modelsDir, name, 'labels.json'), 'utf8')), ['class_0', 'class_1', 'class_2', 'class_3'].map((label) => ({ label })));
      assertClose((await classify(name, img.png, 4)).probs, ref, name);
    }
  });

  it('a logits head gets a softmax and says so; a sigmoid head stays independent probabilities', async () => {
    for (const [name, activation] of [['logits-model', 'linear'], ['sigmoid-model', 'sigmoid']] as const) {
      const model = tf.sequential({ layers: [L.conv2d({ inputShape: [5, 6, 3], filters: 2, kernelSize: 3, name: 'conv' }), L.flatten({ name: 'flat' }), L.dense({ units: 6, activation, name: 'out' })] });
      randomizeWeights(model, 9, 1.5);
      const d = fresh();
      await writeKeras2H5(join(d, 'm.h5'), specOf(model, '2.3.1'));
      const r = await importKerasModel({ name, file: join(d, 'm.h5'), preprocess: 'rescale:1/255', modelsDir });
      assert.equal(r.manifest.outputs, activation === 'linear' ? 'logits' : 'sigmoid');
      const img = await image(5, 6, 3, 21);
      const { body, probs } = await classify(name, img.png, 6);
      const out = tfjsPredict(model, img.raw, [5, 6, 3]);
      if (activation === 'linear') {
        assert.equal(body.outputs, 'logits');
        const max = Math.max(...out);
        const exp = Array.from(out, (v) => Math.exp(v - max));
        const sum = exp.reduce((a, b) => a + b, 0);
        assertClose(probs, Float32Array.from(exp, (e) => e / sum), name);
        assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'probabilities sum to 1');
        assert.ok(out.some((v) => v < 0 || v > 1), 'the raw outputs were logits, not probabilities');
      } else {
        assert.equal(body.outputs, 'sigmoid');
        assertClose(probs, out, name);
        assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) > 1e-3, 'independent probabilities need not sum to 1');
      }
    }
  });

  it('a one-channel model takes grey input; an open input size needs --input-size', async () => {
    const model = tf.sequential({ layers: [L.conv2d({ inputShape: [8, 6, 1], filters: 3, kernelSize: 3, activation: 'relu', name: 'conv' }), L.flatten({ name: 'flat' }), L.dense({ units: 3, activation: 'softmax', name: 'probs' })] });
    randomizeWeights(model, 4);
    const d = fresh();
    const file = writeTfjsModel(d, specOf(model, '2.2.4')).modelJson;
    const r = await importKerasModel({ name: 'grey', file, preprocess: 'rescale:1/255', modelsDir });
    assert.equal(r.manifest.input.channels, 1);
    const img = await image(8, 6, 1, 5);
    assertClose((await classify('grey', img.png, 3)).probs, tfjsPredict(model, img.raw, [8, 6, 1]), 'grey');

    // (None, None, 3) with a global-pooling head: converted size-free, classified at the given size.
    const open = tf.sequential({ layers: [L.conv2d({ inputShape: [null, null, 3] as unknown as number[], filters: 4, kernelSize: 3, name: 'conv' }), L.globalAveragePooling2d({ name: 'gap' }), L.dense({ units: 3, activation: 'softmax', name: 'probs' })] });
    randomizeWeights(open, 8);
    const openFile = writeTfjsModel(fresh(), specOf(open, '2.2.4')).modelJson;
    const o = await importKerasModel({ name: 'open-size', file: openFile, preprocess: 'rescale:1/255', inputSize: { height: 11, width: 13 }, modelsDir });
    assert.deepEqual(o.manifest.input, { name: 'input', height: 11, width: 13, channels: 3, fixed_size: false });
    const big = await image(11, 13, 3, 6);
    assertClose((await classify('open-size', big.png, 3)).probs, tfjsPredict(open, big.raw, [11, 13, 3]), 'open size');
  });
});

describe('GET /v1/models/{name}', () => {
  it('an imported model: layers with output shapes, input, outputs, preprocessing, provenance, labels; 404 for an unknown name', async () => {
    const model = tf.sequential({ layers: [L.conv2d({ inputShape: [6, 6, 3], filters: 2, kernelSize: 3, name: 'c1' }), L.maxPooling2d({ poolSize: 2, name: 'p1' }), L.flatten({ name: 'f' }), L.dense({ units: 2, name: 'logits' })] });
    randomizeWeights(model, 2);
    const d = fresh();
    await writeKeras2H5(join(d, 'm.h5'), specOf(model, '2.3.1'));
    const r = await importKerasModel({ name: 'detail-me', file: join(d, 'm.h5'), labels: ['yes', 'no'], modelsDir });
    await request(svc.url).post('/v1/models/reload').expect(200);
    const res = await request(svc.url).get('/v1/models/detail-me').expect(200);
    assert.equal(res.body.name, 'detail-me');
    assert.equal(res.body.status, 'ready');
    assert.equal(res.body.outputs, 'logits');
    assert.equal(res.body.preprocessing, 'raw', 'no --preprocess: raw');
    assert.deepEqual(res.body.input, r.manifest.input);
    assert.deepEqual(res.body.weights.provenance, 'imported');
    assert.deepEqual(res.body.source, { format: 'keras2-h5', keras_version: '2.3.1', file: 'm.h5' });
    assert.deepEqual(res.body.labels, ['yes', 'no']);
    // Shapes as Keras computes them (tfjs' own output shapes), batch as null.
    assert.deepEqual(res.body.layers.filter((l: { class_name: string }) => l.class_name !== 'InputLayer').map((l: { name: string; output_shape: unknown }) => [l.name, l.output_shape]),
      model.layers.map((l) => [l.name, l.outputShape]));

    const missing = await request(svc.url).get('/v1/models/no-such-model').expect(404);
    assert.match(String(missing.headers['content-type']), /application\/problem\+json/);
    assert.equal(missing.body.type, 'https://convserve.dev/problems/unknown-model');
    assert.match(missing.body.detail, /detail-me/);
  });
});

describe('known topologies', () => {
  /** An in-memory import with the architecture's weighted layers (shapes only) and its named layers. */
  function archImport(arch: 'vgg19' | 'inception_v3', top: boolean, rename?: (n: string) => string, extra: KLayer[] = []): KerasImport {
    const a = ARCHITECTURES[arch];
    const spec = a.kerasWeightSpec(top);
    const named = a.kerasLayerNames(top).filter((n) => !spec.some((l) => l.name === n));
    const weights = new Map<string, KWeight[]>(spec.map((l) => [rename?.(l.name) ?? l.name, l.weights.map((w) => ({ name: w.role, shape: w.shape, data: new Float32Array(0) }))]));
    for (const l of extra) weights.set(l.name, [{ name: 'kernel', shape: [8, 5], data: new Float32Array(0) }]);
    const layer = (className: string, name: string): KLayer => ({ className, name, config: {}, inbound: [] });
    const layers = [...named.map((n) => layer(/pool/.test(n) ? 'MaxPooling2D' : 'Concatenate', rename?.(n) ?? n)), ...spec.map((l) => layer(l.className, rename?.(l.name) ?? l.name)), ...extra];
    return { format: 'keras2-h5', kerasVersion: '2.3.1', model: { name: arch, layers, inputs: [], outputs: [] }, weights };
  }

  it('VGG19 and InceptionV3 with or without their top, or under a custom head, whatever the automatic names', () => {
    for (const arch of ['vgg19', 'inception_v3'] as const) {
      const withTop = recognizeTopology(archImport(arch, true));
      assert.equal(withTop?.architecture.name, arch);
      assert.deepEqual([withTop!.imagenetTop, withTop!.baseOnly], [true, false]);
      const base = recognizeTopology(archImport(arch, false));
      assert.deepEqual([base?.architecture.name, base!.imagenetTop, base!.baseOnly], [arch, false, true]);
      // Keras ≥ 2.3 names the automatic layers conv2d, conv2d_1, … — only the explicit names matter.
      const renamed = recognizeTopology(archImport(arch, false, (n) => n.replace(/^(conv2d|batch_normalization)_(\d+)$/, (_, c: string, k: string) => (k === '1' ? c : `${c}_${Number(k) - 1}`))));
      assert.equal(renamed?.architecture.name, arch);
      const head = recognizeTopology(archImport(arch, false, undefined, [{ className: 'Dense', name: 'my_head', config: {}, inbound: [] }]));
      assert.deepEqual([head?.architecture.name, head!.imagenetTop, head!.baseOnly], [arch, false, false]);
    }
    // Without its explicitly named layers, or with one layer of another shape, it is just a Keras model.
    assert.equal(recognizeTopology(archImport('vgg19', false, (n) => n.replace('block', 'stage'))), undefined);
    const wrongShape = archImport('vgg19', false);
    wrongShape.weights.get('block3_conv2')![0]!.shape = [3, 3, 256, 128];
    assert.equal(recognizeTopology(wrongShape), undefined);
  });

  it('nothing but model folders is left in the models directory (and the registry\'s integrity stamps)', () => {
    assert.deepEqual(readdirSync(modelsDir).filter((n) => n.startsWith('.') && n !== VERIFIED_FILE), []);
  });
});
