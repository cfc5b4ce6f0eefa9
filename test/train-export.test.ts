// The tfjs → ONNX converter on layers beyond the MNIST net (what fine-tuning heads will use): 'same' padding,
// strides, average pooling, batch normalization, global average pooling, activations, dropout, and a
// feature-vector (2-D) input. Random weights; oracle = the tfjs model itself, run through onnxruntime-node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, tf } from '../src/train/backend.js';
import { compareOnnxWithTfjs, tfjsModelToOnnx } from '../src/train/export-onnx.js';

function randomizeWeights(model: tf.LayersModel, seed: number): void {
  let s = seed;
  const names = model.weights.map((v) => v.originalName);
  model.setWeights(model.getWeights().map((w, i) => {
    const isVariance = names[i]!.endsWith('moving_variance');
    return isVariance ? tf.randomUniform(w.shape, 0.5, 2, 'float32', ++s) : tf.randomNormal(w.shape, 0, 0.3, 'float32', ++s);
  }));
}

test('Conv(same, stride 2) / AvgPool / BatchNorm / GlobalAveragePooling / Dense export matches tfjs ≤ 1e-5', async () => {
  await selectBackend();
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [17, 15, 3], filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }));
  m.add(tf.layers.batchNormalization());
  m.add(tf.layers.conv2d({ filters: 6, kernelSize: [2, 3], padding: 'valid', useBias: false }));
  m.add(tf.layers.activation({ activation: 'tanh' }));
  m.add(tf.layers.averagePooling2d({ poolSize: 2, strides: 1, padding: 'same' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }));
  m.add(tf.layers.globalAveragePooling2d({}));
  m.add(tf.layers.dropout({ rate: 0.5 }));
  m.add(tf.layers.dense({ units: 5, activation: 'softmax' }));
  randomizeWeights(m, 11);
  const g = tfjsModelToOnnx(m);
  const x = tf.randomNormal([3, 17, 15, 3], 0, 1, 'float32', 5);
  const r = await compareOnnxWithTfjs(g.serialize().model, m, x);
  assert.ok(Number.isFinite(r.maxAbsDiff));
  assert.ok(m.weights.some((v) => v.originalName.endsWith('moving_variance')));
  assert.ok(g.nodes.some((n) => n.opType === 'BatchNormalization') && g.nodes.some((n) => n.opType === 'GlobalAveragePool'));
  assert.ok(r.maxAbsDiff <= 1e-5, `max |Δ| ${r.maxAbsDiff}`);
  assert.equal(r.samples, 3);
});

test('Flatten after NCHW convs keeps tfjs NHWC order (Dense rows line up)', async () => {
  await selectBackend();
  const m = tf.sequential();
  m.add(tf.layers.conv2d({ inputShape: [9, 7, 2], filters: 4, kernelSize: 3, activation: 'relu' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  m.add(tf.layers.flatten());
  m.add(tf.layers.dense({ units: 6, activation: 'sigmoid' }));
  m.add(tf.layers.reLU());
  randomizeWeights(m, 21);
  const x = tf.randomNormal([4, 9, 7, 2], 0, 1, 'float32', 6);
  const r = await compareOnnxWithTfjs(tfjsModelToOnnx(m, { outputName: 'y' }).serialize().model, m, x, { outputName: 'y' });
  assert.ok(r.maxAbsDiff <= 1e-5, `max |Δ| ${r.maxAbsDiff}`);
});

test('a feature-vector head (2-D input) exports too; unsupported layers are rejected by name', async () => {
  await selectBackend();
  const head = tf.sequential();
  head.add(tf.layers.dense({ inputShape: [12], units: 7, activation: 'relu' }));
  head.add(tf.layers.dropout({ rate: 0.2 }));
  head.add(tf.layers.dense({ units: 3, activation: 'softmax' }));
  randomizeWeights(head, 31);
  const r = await compareOnnxWithTfjs(tfjsModelToOnnx(head).serialize().model, head, tf.randomNormal([5, 12], 0, 1, 'float32', 7));
  assert.ok(r.maxAbsDiff <= 1e-5, `max |Δ| ${r.maxAbsDiff}`);

  const bad = tf.sequential();
  bad.add(tf.layers.dense({ inputShape: [4], units: 4 }));
  bad.add(tf.layers.repeatVector({ n: 2, name: 'rep' }));
  assert.throws(() => tfjsModelToOnnx(bad), /layer 'rep' of type RepeatVector is not supported/);
});
