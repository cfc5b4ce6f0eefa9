// The full VGG19 with its top (143.7 M parameters, a 575 MB .h5) at 224×224: synthesized, written in the
// official layout, imported, and compared with a Keras reference: the tfjs-layers convolutional base, then
// Keras' Flatten (channels-last order) and the three Dense layers computed directly in JS (tfjs-layers' own
// Dense costs ~10 s here for packing the 25088×4096 kernel; the reduced-width fidelity test covers it).
// Heavy (~3 GB RSS): the one test that exercises the real fc1 Flatten-order permutation at full size.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { addOutputsToFile } from '../src/models/graph-outputs.js';
import { importKerasModel } from '../src/models/import.js';
import type { KerasTensor } from '../src/models/architectures/layers.js';
import { synthesizeKerasWeights, writeSyntheticKerasH5 } from '../src/models/synth.js';
import { Prng } from '../src/util/prng.js';
import { errors, kerasVGG19, loadWeights, nhwcToNchw, runLayers, tfReady } from './models-reference.js';

const dir = mkdtempSync(join(tmpdir(), 'convserve-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Keras Dense on one sample: y = x·W + b with W (in, out) row-major, accumulated in float64. */
function dense(x: Float32Array, [k, b]: KerasTensor[], activation: 'relu' | 'softmax'): Float32Array {
  const [nIn, nOut] = k!.shape as [number, number];
  const acc = new Float64Array(nOut);
  for (let i = 0; i < nIn; i++) {
    const xi = x[i]!;
    if (xi === 0) continue;
    const row = i * nOut;
    for (let o = 0; o < nOut; o++) acc[o] = acc[o]! + xi * k!.data[row + o]!;
  }
  for (let o = 0; o < nOut; o++) acc[o] = acc[o]! + b!.data[o]!;
  if (activation === 'relu') return Float32Array.from(acc, (v) => Math.max(0, v));
  const m = Math.max(...acc);
  const e = acc.map((v) => Math.exp(v - m));
  const sum = e.reduce((a, v) => a + v, 0);
  return Float32Array.from(e, (v) => v / sum);
}

test('VGG19 with top, full width, 224×224: ONNX matches the Keras reference', async (t) => {
  await tfReady();
  const h5 = join(dir, 'vgg19.h5');
  let t0 = Date.now();
  await writeSyntheticKerasH5('vgg19', h5, { seed: 11, includeTop: true });
  t.diagnostic(`wrote ${(statSync(h5).size / 1e6).toFixed(0)} MB .h5 in ${Date.now() - t0} ms`);
  t0 = Date.now();
  const imported = await importKerasModel({ name: 'vgg19', arch: 'vgg19', weightsFile: h5, modelsDir: join(dir, 'models'), provenance: 'synthetic', seed: 11 });
  t.diagnostic(`imported in ${Date.now() - t0} ms (${JSON.stringify(imported.timings)})`);
  rmSync(h5);
  assert.equal(imported.includeTop, true);
  assert.equal(imported.manifest.task, 'classification');

  const rng = new Prng(99);
  const nhwc = rng.fillUniform(new Float32Array(224 * 224 * 3), -123.68, 151.061);

  t0 = Date.now();
  const weights = synthesizeKerasWeights('vgg19', { seed: 11, includeTop: true });
  const reference = kerasVGG19({ includeTop: false });
  loadWeights(reference, weights);
  const ref = await runLayers(reference, nhwc, [1, 224, 224, 3], ['block5_pool']);
  reference.dispose();
  // Keras Flatten of the NHWC (1, 7, 7, 512) map is exactly its row-major data; then Dense = x·W + b.
  const flat = ref.get('block5_pool')!.data;
  const fc1 = dense(flat, weights.get('fc1')!, 'relu');
  const fc2 = dense(fc1, weights.get('fc2')!, 'relu');
  const predictions = dense(fc2, weights.get('predictions')!, 'softmax');
  ref.set('fc1', { data: fc1, shape: [1, fc1.length] });
  ref.set('predictions', { data: predictions, shape: [1, predictions.length] });
  t.diagnostic(`reference in ${Date.now() - t0} ms`);

  const session = await ort.InferenceSession.create(addOutputsToFile(imported.modelPath, ['block5_pool', 'fc1']), {
    logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } },
  } as ort.InferenceSession.SessionOptions);
  const outs = await session.run({ input: new ort.Tensor('float32', nhwcToNchw(nhwc, 1, 224, 224, 3), [1, 3, 224, 224]) });
  await session.release();

  const p = errors(outs.probabilities!.data as Float32Array, ref.get('predictions')!.data);
  t.diagnostic(`probabilities max relative error ${p.maxRel.toExponential(2)}`);
  assert.ok(p.maxRel <= 1e-4, `probabilities max relative error ${p.maxRel}`);
  const fc1Err = errors(outs.fc1!.data as Float32Array, ref.get('fc1')!.data);
  assert.ok(fc1Err.relToMax <= 1e-4, `fc1 error ${fc1Err.relToMax}`);
  const r = ref.get('block5_pool')!;
  const pool = errors(outs.block5_pool!.data as Float32Array, nhwcToNchw(r.data, 1, 7, 7, r.shape[3]!));
  assert.ok(pool.relToMax <= 1e-4, `block5_pool error ${pool.relToMax}`);
});
