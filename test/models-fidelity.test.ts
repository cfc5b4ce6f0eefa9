// Fidelity: seeded Keras-layout weights → official-layout .h5 → importKerasModel → ONNX in onnxruntime-node,
// against an independent Keras-semantics reference (tfjs-layers, NHWC, real BatchNormalization / Flatten /
// AveragePooling2D 'same') loaded with the same weights. Probabilities must agree to 1e-4 relative error, and
// intermediate layers fetched by their Keras names must agree too.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { addOutputsToFile } from '../src/models/graph-outputs.js';
import { importKerasModel } from '../src/models/import.js';
import { synthesizeKerasWeights, writeSyntheticKerasH5 } from '../src/models/synth.js';
import { Prng } from '../src/util/prng.js';
import { errors, kerasInceptionV3, kerasVGG19, loadWeights, nhwcToNchw, runLayers, tf, tfReady } from './models-reference.js';

let dir: string;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'convserve-'));
  await tfReady();
});
after(() => rmSync(dir, { recursive: true, force: true }));

const SESSION: ort.InferenceSession.SessionOptions = {
  logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } },
} as ort.InferenceSession.SessionOptions;

interface Case {
  arch: 'vgg19' | 'inception_v3';
  includeTop: boolean;
  width: number;
  size: number;
  batch: number;
  seed: number;
  layers: string[];
}

async function compare(c: Case, log: (msg: string) => void): Promise<void> {
  const t0 = Date.now();
  const name = `${c.arch}-${c.includeTop ? 'top' : 'notop'}-${c.size}-${String(c.width).replace('.', 'p')}`;
  const h5 = join(dir, `${name}.h5`);
  await writeSyntheticKerasH5(c.arch, h5, { seed: c.seed, includeTop: c.includeTop, width: c.width });
  const imported = await importKerasModel({ name, arch: c.arch, weightsFile: h5, modelsDir: join(dir, 'models'), provenance: 'synthetic', seed: c.seed, width: c.width });
  rmSync(h5);
  assert.equal(imported.includeTop, c.includeTop);
  const tImport = Date.now() - t0;

  // Input: caffe-like values for VGG19, [-1, 1] for InceptionV3.
  const rng = new Prng(c.seed + 1000);
  const nhwc = new Float32Array(c.batch * c.size * c.size * 3);
  if (c.arch === 'vgg19') rng.fillUniform(nhwc, -123.68, 151.061); else rng.fillUniform(nhwc, -1, 1);

  const reference = c.arch === 'vgg19' ? kerasVGG19({ includeTop: c.includeTop, width: c.width }) : kerasInceptionV3({ includeTop: c.includeTop, width: c.width });
  loadWeights(reference, synthesizeKerasWeights(c.arch, { seed: c.seed, includeTop: c.includeTop, width: c.width }));
  const t1 = Date.now();
  const ref = await runLayers(reference, nhwc, [c.batch, c.size, c.size, 3], c.layers);
  reference.dispose();
  const tRef = Date.now() - t1;

  const modelPath = addOutputsToFile(imported.modelPath, c.layers);
  const session = await ort.InferenceSession.create(modelPath, SESSION);
  const feeds = { input: new ort.Tensor('float32', nhwcToNchw(nhwc, c.batch, c.size, c.size, 3), [c.batch, 3, c.size, c.size]) };
  const outs = await session.run(feeds);
  await session.release();

  if (c.includeTop) {
    const probs = outs.probabilities!.data as Float32Array;
    const e = errors(probs, ref.get('predictions')!.data);
    log(`${name}: probabilities max relative error ${e.maxRel.toExponential(2)} (synth+import ${tImport} ms, tfjs ${tRef} ms)`);
    assert.ok(e.maxRel <= 1e-4, `${name}: probabilities max relative error ${e.maxRel}`);
    // Synthetic weights must still give a non-degenerate softmax (otherwise the comparison is weak).
    assert.ok(Math.max(...probs) < 0.5 && Math.min(...probs) > 1e-7, `${name}: degenerate probabilities`);
  }
  for (const layer of c.layers) {
    const r = ref.get(layer)!;
    const ours = outs[layer];
    assert.ok(ours, `${name}: ONNX output ${layer} missing`);
    const expected = r.shape.length === 4 ? nhwcToNchw(r.data, r.shape[0]!, r.shape[1]!, r.shape[2]!, r.shape[3]!) : r.data;
    const dims = r.shape.length === 4 ? [r.shape[0], r.shape[3], r.shape[1], r.shape[2]] : r.shape;
    assert.deepEqual(ours.dims, dims, `${name}: ${layer} dims`);
    const e = errors(ours.data as Float32Array, expected);
    log(`${name}: ${layer} max abs error ${e.maxAbs.toExponential(2)} = ${e.relToMax.toExponential(2)} of max`);
    assert.ok(e.relToMax <= 1e-4, `${name}: ${layer} max abs error ${e.maxAbs} (${e.relToMax} of max)`);
  }
}

test('VGG19 full width, no top, 64×64, batch 2 (official keras1 weight names)', async (t) => {
  await compare({ arch: 'vgg19', includeTop: false, width: 1, size: 64, batch: 2, seed: 7, layers: ['block1_conv1', 'block3_conv4', 'block4_pool', 'block5_pool'] }, (m) => t.diagnostic(m));
});

test('VGG19 reduced width with top at 224: Flatten order honoured through the fc1 row permutation', async (t) => {
  await compare({ arch: 'vgg19', includeTop: true, width: 1 / 8, size: 224, batch: 1, seed: 8, layers: ['block5_pool', 'fc1', 'fc2', 'predictions'] }, (m) => t.diagnostic(m));
});

test('InceptionV3 full width with top at 75×75 (folded BN, same-avg-pools, all concats)', async (t) => {
  await compare({
    arch: 'inception_v3', includeTop: true, width: 1, size: 75, batch: 1, seed: 9,
    layers: ['batch_normalization_1', 'activation_3', 'max_pooling2d_2', 'average_pooling2d_1', 'mixed0', 'mixed3', 'mixed7', 'mixed8', 'mixed9_0', 'concatenate_1', 'mixed9_1', 'concatenate_2', 'mixed10', 'avg_pool', 'predictions'],
  }, (m) => t.diagnostic(m));
});

test('InceptionV3 reduced width with top at 139×139, batch 2 (odd spatial sizes at every stage)', async (t) => {
  await compare({ arch: 'inception_v3', includeTop: true, width: 1 / 4, size: 139, batch: 2, seed: 10, layers: ['mixed2', 'mixed6', 'mixed10', 'predictions'] }, (m) => t.diagnostic(m));
});

test('tfjs reference backend is the fast wasm one', () => {
  assert.equal(tf.getBackend(), 'wasm');
});
