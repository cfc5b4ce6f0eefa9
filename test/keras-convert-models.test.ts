// Keras → ONNX converter, whole models: nested transfer-learning models (Sequential and Functional around a
// conv base), the Keras 3 config dialect (normalizeConfig gives the same KModel as the tfjs/Keras 2 dialect of
// the same network), shared layers, inputs of unknown size and rank 3, output kinds, the 422 errors
// (unsupported layer, config/weights mismatch, broken config) and differentiability by src/onnx/autodiff.
// Oracle: tfjs-layers; central finite differences for the gradient.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { gradientGraph } from '../src/onnx/autodiff.js';
import { normalizeConfig } from '../src/models/keras/config.js';
import type { KModel, KWeight, KerasImport } from '../src/models/keras/ir.js';
import { kerasToOnnx } from '../src/models/keras/to-onnx.js';
import {
  SESSION, assertClose, compareWithTfjs, kerasWeights, randomizeWeights, runOnnx, runTf, tf, tfReady, toKerasImport, uniform,
} from './helpers/tfjs-keras.js';

const L = tf.layers;
type Sym = tf.SymbolicTensor;

before(() => tfReady());

/** A small VGG-like conv base (a Functional model of its own), as keras.applications would give. */
function convBase(): tf.LayersModel {
  const input = tf.input({ shape: [12, 10, 3], name: 'base_input' });
  let x = L.conv2d({ filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'block1_conv1' }).apply(input) as Sym;
  x = L.maxPooling2d({ poolSize: 2, name: 'block1_pool' }).apply(x) as Sym;
  x = L.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'block2_conv1' }).apply(x) as Sym;
  x = L.maxPooling2d({ poolSize: 2, name: 'block2_pool' }).apply(x) as Sym;
  return tf.model({ inputs: input, outputs: x, name: 'convbase' });
}

test('Sequential([conv base, Flatten, Dense, Dense]) transfer-learning model matches tfjs, inner layers by name', async () => {
  const base = convBase();
  const model = tf.sequential({
    name: 'transfer',
    layers: [base, L.flatten({ name: 'flatten' }), L.dense({ units: 16, activation: 'relu', name: 'fc' }), L.dense({ units: 4, activation: 'softmax', name: 'predictions' })],
  });
  const { converted } = await compareWithTfjs(model);
  assert.equal(converted.outputKind, 'probabilities');
  assert.deepEqual(converted.input, { name: 'input', height: 12, width: 10, channels: 3, fixed: true });
  const names = converted.layers.map((l) => l.name);
  for (const n of ['block1_conv1', 'block2_pool', 'convbase', 'flatten', 'fc', 'predictions']) assert.ok(names.includes(n), `${n} in ${names}`);
  assert.deepEqual(converted.layers.find((l) => l.name === 'block2_pool')!.outputShape, [null, 3, 2, 8]);
  // The inner layers' values equal the conv base's own outputs (the base run alone by tfjs).
  const x = uniform(2 * 12 * 10 * 3, -1, 1, 61);
  const ours = await runOnnx(converted, x, [2, 12, 10, 3], ['block1_conv1', 'block2_conv1']);
  const ref = await runTf(base, x, [2, 12, 10, 3], ['block1_conv1', 'block2_conv1']);
  for (const n of ['block1_conv1', 'block2_conv1']) assertClose(ours.get(n)!.data, ref.get(n)!.data, 1e-5, n);
});

test('a Functional model calling a nested Functional conv base (node index 1) matches tfjs', async () => {
  const base = convBase();
  const input = tf.input({ shape: [12, 10, 3], name: 'image' });
  const features = base.apply(input) as Sym;
  const pooled = L.globalAveragePooling2d({ name: 'gap' }).apply(features) as Sym;
  const logits = L.dense({ units: 3, name: 'logits' }).apply(pooled) as Sym;
  const model = tf.model({ inputs: input, outputs: logits });
  const json = JSON.stringify(model.toJSON(null, false));
  assert.match(json, /\["convbase",1,0/, 'tfjs refers to the nested model as node 1');
  const { converted } = await compareWithTfjs(model);
  assert.equal(converted.outputKind, 'logits');
});

test('a layer shared by two calls is converted once per call', async () => {
  const input = tf.input({ shape: [6, 7, 3], name: 'img' });
  const shared = L.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'tanh', name: 'shared' });
  const twice = shared.apply(shared.apply(input) as Sym) as Sym;
  const out = L.globalAveragePooling2d({ name: 'gap' }).apply(twice) as Sym;
  const model = tf.model({ inputs: input, outputs: out });
  randomizeWeights(model, 5);
  const converted = kerasToOnnx(toKerasImport(model));
  assert.deepEqual(converted.layers.filter((l) => l.className === 'Conv2D').map((l) => l.name), ['shared', 'shared/call1']);
  const x = uniform(2 * 6 * 7 * 3, -1, 1, 62);
  const ours = (await runOnnx(converted, x, [2, 6, 7, 3], ['gap'])).get('gap')!;
  const ref = (await runTf(model, x, [2, 6, 7, 3], ['gap'])).get('gap')!;
  assertClose(ours.data, ref.data, 1e-5, 'shared conv');
});

test('a rank-3 input (H, W) becomes a 1-channel NCHW input; sigmoid head → sigmoid outputs', async () => {
  const model = tf.sequential({ layers: [L.flatten({ inputShape: [6, 7], name: 'flat' }), L.dense({ units: 5, activation: 'sigmoid', name: 'multi' })] });
  const { converted } = await compareWithTfjs(model);
  assert.equal(converted.outputKind, 'sigmoid');
  assert.equal(converted.input.channels, 1);
});

test('an input of unknown size runs at any size, or at the given inputSize; a 4-D output means features', async () => {
  const input = tf.input({ shape: [null, null, 3] as unknown as number[], name: 'img' });
  const conv = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'conv' }).apply(input) as Sym;
  const model = tf.model({ inputs: input, outputs: L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'pool' }).apply(conv) as Sym });
  randomizeWeights(model, 6);
  const free = kerasToOnnx(toKerasImport(model));
  assert.equal(free.outputKind, 'features');
  assert.deepEqual(free.input, { name: 'input', height: null, width: null, channels: 3, fixed: false });
  for (const [h, w] of [[9, 11], [8, 8]] as const) {
    const x = uniform(h * w * 3, -1, 1, h * w);
    const ours = (await runOnnx(kerasToOnnx(toKerasImport(model)), x, [1, h, w, 3], ['pool'])).get('pool')!;
    const ref = (await runTf(model, x, [1, h, w, 3], ['pool'])).get('pool')!;
    assert.deepEqual(ours.shape, ref.shape);
    assertClose(ours.data, ref.data, 1e-5, `pool at ${h}×${w}`);
  }
  const sized = kerasToOnnx(toKerasImport(model), { inputSize: { height: 9, width: 7 } });
  assert.deepEqual(sized.input, { name: 'input', height: 9, width: 7, channels: 3, fixed: false });
  assert.deepEqual(sized.layers.find((l) => l.name === 'pool')!.outputShape, [null, 3, 2, 4]);
});

test('Dropout after the softmax still reads as probabilities; Dense relu head as features', async () => {
  const probs = tf.sequential({ layers: [L.dense({ inputShape: [4, 4, 2], units: 3, name: 'px' }), L.flatten({ name: 'f' }), L.dense({ units: 3, activation: 'softmax', name: 'sm' }), L.dropout({ rate: 0.2, name: 'drop' })] });
  assert.equal((await compareWithTfjs(probs)).converted.outputKind, 'probabilities');
  const feats = tf.sequential({ layers: [L.flatten({ inputShape: [4, 4, 2], name: 'f' }), L.dense({ units: 3, activation: 'relu', name: 'emb' })] });
  assert.equal((await compareWithTfjs(feats)).converted.outputKind, 'features');
});

// ---- Keras 3 dialect ----------------------------------------------------------------------------------------

const policy = { module: 'keras', class_name: 'DTypePolicy', config: { name: 'float32' }, registered_name: null };
const initializer = { module: 'keras.initializers', class_name: 'GlorotUniform', config: { seed: null }, registered_name: null };
const tensor = (layer: string, shape: (number | null)[]) => ({ class_name: '__keras_tensor__', config: { shape, dtype: 'float32', keras_history: [layer, 0, 0] } });
function k3(className: string, config: Record<string, unknown>, inbound: unknown[] | null, inputShape?: (number | null)[]): Record<string, unknown> {
  return {
    module: 'keras.layers', class_name: className, config: { trainable: true, dtype: policy, ...config }, registered_name: null,
    ...(inputShape ? { build_config: { input_shape: inputShape } } : {}),
    name: config.name, inbound_nodes: inbound ? [{ args: inbound, kwargs: {} }] : [],
  };
}

/** The network of `residualTfjs`, written as Keras 3 saves it (keras-formats §6). */
function residualKeras3(): unknown {
  return {
    module: 'keras.src.models.functional', class_name: 'Functional', registered_name: 'Functional',
    config: {
      name: 'residual', trainable: true,
      layers: [
        { module: 'keras.layers', class_name: 'InputLayer', config: { batch_shape: [null, 8, 9, 3], dtype: 'float32', sparse: false, name: 'image' }, registered_name: null, name: 'image', inbound_nodes: [] },
        k3('Conv2D', { name: 'stem', filters: 4, kernel_size: [3, 3], strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], groups: 1, activation: 'linear', use_bias: false, kernel_initializer: initializer, kernel_regularizer: null }, [tensor('image', [null, 8, 9, 3])], [null, 8, 9, 3]),
        k3('BatchNormalization', { name: 'stem_bn', axis: -1, momentum: 0.99, epsilon: 0.001, center: true, scale: true, beta_initializer: initializer }, [tensor('stem', [null, 8, 9, 4])], [null, 8, 9, 4]),
        k3('Activation', { name: 'stem_relu', activation: 'relu' }, [tensor('stem_bn', [null, 8, 9, 4])]),
        k3('Conv2D', { name: 'branch', filters: 4, kernel_size: [3, 3], strides: [1, 1], padding: 'same', data_format: 'channels_last', dilation_rate: [1, 1], groups: 1, activation: 'relu', use_bias: true }, [tensor('stem_relu', [null, 8, 9, 4])], [null, 8, 9, 4]),
        k3('Add', { name: 'residual_add' }, [[tensor('stem_relu', [null, 8, 9, 4]), tensor('branch', [null, 8, 9, 4])]]),
        k3('MaxPooling2D', { name: 'pool', pool_size: [2, 2], padding: 'valid', strides: [2, 2], data_format: 'channels_last' }, [tensor('residual_add', [null, 8, 9, 4])]),
        k3('Flatten', { name: 'flatten', data_format: 'channels_last' }, [tensor('pool', [null, 4, 4, 4])]),
        k3('Dense', { name: 'predictions', units: 5, activation: 'softmax', use_bias: true, kernel_initializer: initializer }, [tensor('flatten', [null, 64])], [null, 64]),
      ],
      input_layers: ['image', 0, 0],
      output_layers: ['predictions', 0, 0],
    },
    build_config: { input_shape: [null, 8, 9, 3] },
  };
}

function residualTfjs(): tf.LayersModel {
  const input = tf.input({ shape: [8, 9, 3], name: 'image' });
  const stem = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', useBias: false, name: 'stem' }).apply(input) as Sym;
  const bn = L.batchNormalization({ name: 'stem_bn' }).apply(stem) as Sym;
  const relu = L.activation({ activation: 'relu', name: 'stem_relu' }).apply(bn) as Sym;
  const branch = L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'branch' }).apply(relu) as Sym;
  const add = L.add({ name: 'residual_add' }).apply([relu, branch]) as Sym;
  const pool = L.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(add) as Sym;
  const flat = L.flatten({ name: 'flatten' }).apply(pool) as Sym;
  return tf.model({ inputs: input, outputs: L.dense({ units: 5, activation: 'softmax', name: 'predictions' }).apply(flat) as Sym });
}

/** What the converter reads of a KModel: structure and the inference-relevant options. */
function essentials(m: KModel): unknown {
  const keys = ['filters', 'kernel_size', 'strides', 'padding', 'activation', 'use_bias', 'units', 'pool_size', 'batch_shape', 'epsilon', 'axis', 'center', 'scale', 'groups', 'dilation_rate'];
  return {
    inputs: m.inputs, outputs: m.outputs,
    layers: m.layers.map((l) => ({
      className: l.className, name: l.name, inbound: l.inbound,
      config: Object.fromEntries(keys.filter((k) => l.config[k] !== undefined && !(k === 'groups' && l.config[k] === 1)).map((k) => [k, l.config[k]])),
    })),
  };
}

test('Keras 3 dialect: normalizeConfig gives the same model as the Keras 2/tfjs dialect, and it converts identically', async () => {
  const model = residualTfjs();
  randomizeWeights(model, 7);
  const fromTfjs = normalizeConfig(model.toJSON(null, false));
  const fromKeras3 = normalizeConfig(residualKeras3());
  assert.deepEqual(essentials(fromKeras3), essentials(fromTfjs));
  assert.equal(fromKeras3.layers.find((l) => l.name === 'stem')!.config.kernel_initializer, undefined, 'initializers are dropped');
  assert.equal(fromKeras3.layers.find((l) => l.name === 'stem')!.config.dtype, 'float32', 'DTypePolicy → string');
  const imp: KerasImport = { format: 'keras3-zip', kerasVersion: '3.4.1', model: fromKeras3, weights: kerasWeights(model) };
  const converted = kerasToOnnx(imp);
  const x = uniform(2 * 8 * 9 * 3, -1, 1, 63);
  const ours = (await runOnnx(converted, x, [2, 8, 9, 3], ['predictions'])).get('predictions')!;
  const ref = (await runTf(model, x, [2, 8, 9, 3], ['predictions'])).get('predictions')!;
  assertClose(ours.data, ref.data, 1e-4, 'Keras 3 config, tfjs weights', 'abs');
});

test('Keras 3 Sequential without an InputLayer gets one from build_input_shape; a Keras 2 list-form Sequential too', () => {
  const dense = (name: string, units: number) => k3('Dense', { name, units, activation: 'relu' }, null);
  const k3seq = normalizeConfig({
    module: 'keras', class_name: 'Sequential', registered_name: null,
    config: { name: 'seq', trainable: true, dtype: policy, layers: [k3('Flatten', { name: 'flatten' }, null), dense('d1', 4)], build_input_shape: [null, 5, 5, 1] },
  });
  const k2list = normalizeConfig({ class_name: 'Sequential', config: [{ class_name: 'Flatten', config: { name: 'flatten', batch_input_shape: [null, 5, 5, 1] } }, { class_name: 'Dense', config: { name: 'd1', units: 4, activation: 'relu' } }] });
  for (const m of [k3seq, k2list]) {
    assert.deepEqual(m.layers.map((l) => [l.className, l.name]), [['InputLayer', 'flatten_input'], ['Flatten', 'flatten'], ['Dense', 'd1']]);
    assert.deepEqual(m.layers[0]!.config.batch_shape, [null, 5, 5, 1]);
    assert.deepEqual(m.layers[2]!.inbound, [[{ layer: 'flatten', node: 0, tensor: 0 }]]);
    assert.deepEqual(m.inputs, [{ layer: 'flatten_input', node: 0, tensor: 0 }]);
    assert.deepEqual(m.outputs, [{ layer: 'd1', node: 0, tensor: 0 }]);
  }
});

// ---- errors --------------------------------------------------------------------------------------------------

interface Problem { status: number; slug: string; message: string }
function assertProblem(fn: () => unknown, slug: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: Problem) => {
    assert.equal(e.status, 422);
    assert.equal(e.slug, slug);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

function smallImport(): KerasImport {
  const model = tf.sequential({ layers: [L.conv2d({ inputShape: [5, 5, 2], filters: 3, kernelSize: 3, name: 'conv' }), L.flatten({ name: 'flat' }), L.dense({ units: 2, name: 'dense' })] });
  return toKerasImport(model);
}

test('an unsupported layer (Lambda, custom) is a 422 naming its class and name', () => {
  const imp = smallImport();
  imp.model.layers.splice(2, 0, { className: 'Lambda', name: 'my_lambda', config: {}, inbound: [[{ layer: 'conv', node: 0, tensor: 0 }]] });
  imp.model.layers[3]!.inbound = [[{ layer: 'my_lambda', node: 0, tensor: 0 }]];
  assertProblem(() => kerasToOnnx(imp), 'keras-import-unsupported-layer', /my_lambda/, /Lambda/);
  const custom = smallImport();
  custom.model.layers[1]!.className = 'MyFancyConv';
  assertProblem(() => kerasToOnnx(custom), 'keras-import-unsupported-layer', /'conv'/, /MyFancyConv/);
});

test('config/weights mismatches are 422 keras-import-mismatch with the layer, weight and shapes', () => {
  const missing = smallImport();
  missing.weights.delete('dense');
  assertProblem(() => kerasToOnnx(missing), 'keras-import-mismatch', /'dense' \(Dense\) has no weights/, /kernel \[27, 2\]/);

  const extra = smallImport();
  extra.weights.set('ghost', [{ name: 'kernel', shape: [1], data: new Float32Array(1) }]);
  assertProblem(() => kerasToOnnx(extra), 'keras-import-mismatch', /'ghost'/);

  const shape = smallImport();
  const [k, b] = shape.weights.get('conv')! as [KWeight, KWeight];
  shape.weights.set('conv', [{ name: 'kernel', shape: [3, 3, 2, 4], data: new Float32Array(72) }, b]);
  assertProblem(() => kerasToOnnx(shape), 'keras-import-mismatch', /'conv'/, /kernel/, /\[3, 3, 2, 4\]/, /\[3, 3, 2, 3\]/);

  const count = smallImport();
  count.weights.set('conv', [k]);
  assertProblem(() => kerasToOnnx(count), 'keras-import-mismatch', /'conv' \(Conv2D\) has 1 weights/, /needs 2/);
});

test('a config that refers to an unknown layer, or is not a model, is a 422 keras-import-bad-config', () => {
  const config = { class_name: 'Functional', config: { name: 'm', layers: [{ class_name: 'InputLayer', name: 'in', config: { batch_input_shape: [null, 4, 4, 1] }, inbound_nodes: [] }, { class_name: 'Flatten', name: 'f', config: {}, inbound_nodes: [[['nowhere', 0, 0, {}]]] }], input_layers: [['in', 0, 0]], output_layers: [['f', 0, 0]] } };
  assertProblem(() => normalizeConfig(config), 'keras-import-bad-config', /unknown layer 'nowhere'/);
  assertProblem(() => normalizeConfig({ class_name: 'Conv2D', config: {} }), 'keras-import-bad-config', /Conv2D/);
  assertProblem(() => normalizeConfig('{not json'), 'keras-import-bad-config', /JSON/);
});

// ---- differentiability ------------------------------------------------------------------------------------

test('a converted model is differentiable by the project autodiff (DeepDream/style): input gradient = finite differences', async () => {
  const input = tf.input({ shape: [8, 8, 3], name: 'img' });
  let x = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'c1' }).apply(input) as Sym;
  x = L.batchNormalization({ name: 'bn' }).apply(x) as Sym;
  x = L.activation({ activation: 'relu6', name: 'r6' }).apply(x) as Sym;
  x = L.depthwiseConv2d({ kernelSize: 3, padding: 'same', activation: 'elu', name: 'dw' }).apply(x) as Sym;
  const a = L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'avg' }).apply(x) as Sym;
  const s = L.separableConv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'swish', name: 'sep' }).apply(x) as Sym;
  x = L.add({ name: 'add' }).apply([a, s]) as Sym;
  x = L.prelu({ name: 'prelu' }).apply(x) as Sym;
  x = L.layerNormalization({ name: 'ln' }).apply(x) as Sym;
  x = L.dense({ units: 3, activation: 'hardSigmoid', name: 'px' }).apply(x) as Sym;
  const model = tf.model({ inputs: input, outputs: x });
  randomizeWeights(model, 8);
  const converted = kerasToOnnx(toKerasImport(model));
  converted.graph.node('ReduceSumSquare', ['px'], { keepdims: 0 }, { outputs: ['objective'] });
  converted.graph.output('objective', 'float32');
  const forward = converted.graph.serialize().model;
  const gradSession = await ort.InferenceSession.create(gradientGraph(forward, { loss: 'objective', wrt: ['input'] }), SESSION);
  const fwdSession = await ort.InferenceSession.create(forward, SESSION);
  const dims = [1, 3, 8, 8];
  const x0 = uniform(3 * 64, -1, 1, 64);
  const feed = (data: Float32Array) => ({ input: new ort.Tensor('float32', data, dims) });
  const grad = (await gradSession.run(feed(x0))).input_grad!.data as Float32Array;
  const objective = async (data: Float32Array) => ((await fwdSession.run(feed(data))).objective!.data as Float32Array)[0]!;
  const eps = 1e-2;
  for (const i of [5, 77, 130, 191]) {
    const plus = Float32Array.from(x0); plus[i]! += eps;
    const minus = Float32Array.from(x0); minus[i]! -= eps;
    const fd = ((await objective(plus)) - (await objective(minus))) / (2 * eps);
    assert.ok(Math.abs(fd - grad[i]!) <= 2e-2 * Math.max(1, Math.abs(fd)), `d objective/d input[${i}]: autodiff ${grad[i]} vs finite differences ${fd}`);
  }
  await gradSession.release();
  await fwdSession.release();
});
