// Keras .h5 import: both weight-naming styles, full-model files, split layer_names, by-name and topological
// matching, and the precise errors (shape mismatch, missing layer, wrong architecture, truncated / non-HDF5
// file) — with nothing half-written left in the models directory.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { getArchitecture } from '../src/models/architectures/index.js';
import { type KerasLayerSpec, withNamingStyle } from '../src/models/architectures/layers.js';
import { ImportError, type ImportOptions, importKerasModel } from '../src/models/import.js';
import { type H5WriteLayer, type H5WriteOptions, KerasH5Reader, writeKerasH5 } from '../src/models/keras-h5.js';
import { readLabels, readManifest } from '../src/models/manifest.js';
import { synthesizeKerasWeights, writeSyntheticKerasH5 } from '../src/models/synth.js';

const root = mkdtempSync(join(tmpdir(), 'convserve-'));
after(() => rmSync(root, { recursive: true, force: true }));
const W = 1 / 8;
let n = 0;
const fresh = () => { const d = join(root, `m${++n}`); mkdirSync(d); return d; };
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** Writes the architecture's synthetic weights with an editable spec (rename, drop, reshape layers). */
async function writeCustom(
  arch: string, path: string, includeTop: boolean,
  edit: (spec: KerasLayerSpec[]) => KerasLayerSpec[] = (s) => s, opts: H5WriteOptions = {},
): Promise<void> {
  const a = getArchitecture(arch);
  const weights = synthesizeKerasWeights(a, { seed: 3, includeTop, width: W });
  // Edits spread the layer objects, so `orig` (the official name) survives renames.
  const spec = edit(a.kerasWeightSpec(includeTop, { width: W }).map((l) => ({ ...l, orig: l.name }))) as (KerasLayerSpec & { orig: string })[];
  const layers: H5WriteLayer[] = spec.map((l) => ({
    name: l.name,
    weights: l.weights.map((w, i) => {
      const orig = weights.get(l.orig)?.[i];
      const size = w.shape.reduce((x, y) => x * y, 1);
      return { name: w.name, shape: w.shape, data: orig && orig.data.length === size ? orig.data : new Float32Array(size).fill(0.01) };
    }),
  }));
  await writeKerasH5(path, [{ name: 'input_1', weights: [] }, ...layers], opts);
}

function base(dir: string, weightsFile: string, arch = 'vgg19'): ImportOptions {
  return { name: 'm', arch, weightsFile, modelsDir: join(dir, 'models'), provenance: 'synthetic', width: W };
}

/** The models dir after a failed import: nothing at all (no model folder, no temp folder). */
function assertNothingWritten(dir: string): void {
  const models = join(dir, 'models');
  const left = existsSync(models) ? readdirSync(models) : [];
  assert.deepEqual(left, [], `left in models dir: ${left.join(', ')}`);
}

async function importError(opts: ImportOptions): Promise<ImportError> {
  try {
    await importKerasModel(opts);
  } catch (e) {
    assert.ok(e instanceof ImportError, `expected ImportError, got ${(e as Error).stack}`);
    return e;
  }
  assert.fail('import should have failed');
}

test('VGG19 with top, official Keras-1 names: imports by name into a complete model folder', async () => {
  const dir = fresh();
  const h5 = join(dir, 'w.h5');
  await writeSyntheticKerasH5('vgg19', h5, { seed: 3, includeTop: true, width: W });
  const reader = await KerasH5Reader.open(h5);
  assert.equal(reader.info.kerasVersion, undefined, 'VGG files come from Keras 1: no keras_version');
  assert.deepEqual(reader.weightedLayers[0]!.weights.map((w) => w.name), ['block1_conv1_W_1:0', 'block1_conv1_b_1:0']);
  assert.equal(reader.info.layers.length, 26); // input_1 … predictions, weightless layers included
  reader.close();

  const labels = join(dir, 'labels.json');
  writeFileSync(labels, JSON.stringify(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [String(i), [`n${i}`, `thing_${i}`]]))));
  const r = await importKerasModel({ ...base(dir, h5), name: 'vgg19', labelsFile: labels, source: 'test', seed: 3 });
  assert.equal(r.matched, 'by-name');
  assert.equal(r.includeTop, true);
  assert.deepEqual(readdirSync(join(dir, 'models')), ['vgg19']);
  assert.deepEqual(readdirSync(r.dir).sort(), ['labels.json', 'manifest.json', 'model.onnx', 'model.weights.bin']);
  const m = readManifest(r.dir);
  assert.equal(m.task, 'classification');
  assert.equal(m.preprocessing, 'caffe');
  assert.deepEqual(m.output, { name: 'probabilities', classes: 1000 });
  assert.equal(m.input.fixed_size, true);
  assert.equal(m.weights.provenance, 'synthetic');
  assert.equal(m.keras?.weighted_layers, 19);
  for (const [f, h] of Object.entries(m.files.sha256)) assert.equal(sha(join(r.dir, f)), h, f);
  assert.deepEqual(readLabels(r.dir, m)[3], { wnid: 'n3', label: 'thing_3' });
});

test('the same weights in Keras-2 naming, as a full-model file with split layer_names, give identical ONNX weights', async () => {
  const dir = fresh();
  const a = join(dir, 'a.h5');
  const b = join(dir, 'b.h5');
  await writeSyntheticKerasH5('vgg19', a, { seed: 3, includeTop: false, width: W });
  await writeSyntheticKerasH5('vgg19', b, { seed: 3, includeTop: false, width: W, style: 'keras2', fullModel: true, splitLayerNames: 3 });
  const reader = await KerasH5Reader.open(b);
  assert.equal(reader.info.fullModel, true);
  assert.deepEqual(reader.weightedLayers[0]!.weights.map((w) => w.name), ['block1_conv1/kernel:0', 'block1_conv1/bias:0']);
  reader.close();
  const ra = await importKerasModel({ ...base(dir, a), name: 'a' });
  const rb = await importKerasModel({ ...base(dir, b), name: 'b' });
  assert.equal(ra.includeTop, false);
  assert.equal(sha(ra.weightsPath!), sha(rb.weightsPath!));
  const m = readManifest(rb.dir);
  assert.equal(m.task, 'features');
  assert.deepEqual(m.output, { name: 'block5_pool', classes: 64 });
  assert.ok(!existsSync(join(rb.dir, 'labels.json')), 'a features model has no labels');
  assert.throws(() => readLabels(rb.dir, m), /features-only/);
});

test('InceptionV3 in Keras-1 naming with layer_names in another order imports by name; renamed layers import topologically', async () => {
  const dir = fresh();
  const official = join(dir, 'official.h5');
  const keras1 = join(dir, 'keras1.h5');
  const renamed = join(dir, 'renamed.h5');
  await writeSyntheticKerasH5('inception_v3', official, { seed: 3, includeTop: true, width: W });
  await writeSyntheticKerasH5('inception_v3', keras1, { seed: 3, includeTop: true, width: W, style: 'keras1', layerOrder: 'reversed', kerasVersion: null, backend: null });
  // Keras 3 / tf.keras names: conv2d, conv2d_1, … (0-based) — names do not match, positions do.
  await writeCustom('inception_v3', renamed, true, (spec) => spec.map((l) => ({
    ...l, name: l.name.replace(/_(\d+)$/, (_, k) => (k === '1' ? '' : `_${Number(k) - 1}`)).replace('predictions', 'predictions_1'),
  })));
  const r1 = await importKerasModel({ ...base(dir, official, 'inception_v3'), name: 'official' });
  const r2 = await importKerasModel({ ...base(dir, keras1, 'inception_v3'), name: 'keras1' });
  const r3 = await importKerasModel({ ...base(dir, renamed, 'inception_v3'), name: 'renamed' });
  assert.equal(r1.matched, 'by-name');
  assert.equal(r2.matched, 'by-name');
  assert.equal(r3.matched, 'topological');
  assert.equal(sha(r1.weightsPath!), sha(r2.weightsPath!));
  // writeCustom fills the same synthetic values (same seed and width) into the renamed layers.
  assert.equal(sha(r1.weightsPath!), sha(r3.weightsPath!));
  assert.equal(readManifest(r1.dir).preprocessing, 'tf');
});

test('shape mismatch names the layer, the weight, and both shapes', async () => {
  const dir = fresh();
  const h5 = join(dir, 'w.h5');
  await writeCustom('vgg19', h5, false, (spec) => spec.map((l) => (l.name !== 'block3_conv2' ? l : {
    ...l, weights: [{ ...l.weights[0]!, shape: [3, 3, 32, 16] }, { ...l.weights[1]!, shape: [16] }],
  })));
  const e = await importError(base(dir, h5));
  assert.equal(e.kind, 'shape-mismatch');
  assert.equal(e.status, 422);
  assert.match(e.detail, /layer 'block3_conv2', weight 0 'block3_conv2_W_1:0' \(kernel\): expected shape \[3, 3, 32, 32\], found \[3, 3, 32, 16\]/);
  assertNothingWritten(dir);

  // A reduced-width file imported as the real architecture fails at the first layer.
  const e2 = await importError({ ...base(dir, h5), width: 1 });
  assert.equal(e2.kind, 'shape-mismatch');
  assert.match(e2.detail, /block1_conv1.*expected shape \[3, 3, 3, 64\], found \[3, 3, 3, 8\]/);
  assertNothingWritten(dir);
});

test('a missing layer is named', async () => {
  const dir = fresh();
  const h5 = join(dir, 'w.h5');
  await writeCustom('vgg19', h5, true, (spec) => spec.filter((l) => l.name !== 'block4_conv3'));
  const e = await importError(base(dir, h5));
  assert.equal(e.kind, 'missing-layer');
  assert.match(e.detail, /lacks layer block4_conv3 of VGG19 \(file has 18 weighted layers, expected 19\)/);
  assertNothingWritten(dir);
});

test('an InceptionV3 file given as vgg19 (and the reverse) is recognised as the wrong architecture', async () => {
  const dir = fresh();
  const inc = join(dir, 'inc.h5');
  const vgg = join(dir, 'vgg.h5');
  await writeSyntheticKerasH5('inception_v3', inc, { seed: 3, includeTop: false, width: W });
  await writeSyntheticKerasH5('vgg19', vgg, { seed: 3, includeTop: true, width: W, style: 'keras2' });
  const e = await importError(base(dir, inc, 'vgg19'));
  assert.equal(e.kind, 'wrong-architecture');
  assert.match(e.detail, /holds InceptionV3 weights .* not VGG19; import it with --arch inception_v3/);
  const e2 = await importError(base(dir, vgg, 'inception_v3'));
  assert.equal(e2.kind, 'wrong-architecture');
  assert.match(e2.detail, /--arch vgg19/);
  assertNothingWritten(dir);
});

test('truncated, empty, non-HDF5 and non-Keras files each say what is wrong', async () => {
  const dir = fresh();
  const h5 = join(dir, 'w.h5');
  await writeSyntheticKerasH5('vgg19', h5, { seed: 3, includeTop: false, width: W });
  const size = readFileSync(h5).length;
  truncateSync(h5, Math.floor(size / 2));
  const e = await importError(base(dir, h5));
  assert.equal(e.kind, 'truncated');
  assert.match(e.detail, /is truncated: .* says the file is \d+ bytes, it has \d+/);

  const html = join(dir, 'page.h5');
  writeFileSync(html, '<html>404 Not Found</html>');
  assert.equal((await importError(base(dir, html))).kind, 'not-hdf5');
  const empty = join(dir, 'empty.h5');
  writeFileSync(empty, '');
  assert.match((await importError(base(dir, empty))).detail, /empty file/);
  assert.equal((await importError(base(dir, join(dir, 'nope.h5')))).kind, 'not-found');

  const notKeras = join(dir, 'plain.h5');
  await writeKerasH5(notKeras, [], {});
  const e3 = await importError(base(dir, notKeras));
  assert.equal(e3.kind, 'layer-count');
  assertNothingWritten(dir);
});

test('re-importing replaces the folder atomically; bad labels fail before anything is written', async () => {
  const dir = fresh();
  const h5 = join(dir, 'w.h5');
  await writeSyntheticKerasH5('vgg19', h5, { seed: 3, includeTop: true, width: W });
  const first = await importKerasModel({ ...base(dir, h5), name: 'v' });
  const created = readManifest(first.dir).created_at;
  const badLabels = join(dir, 'labels.json');
  writeFileSync(badLabels, JSON.stringify(['a', 'b']));
  const e = await importError({ ...base(dir, h5), name: 'v', labelsFile: badLabels });
  assert.equal(e.kind, 'bad-labels');
  assert.equal(readManifest(first.dir).created_at, created, 'the failed import left the old model alone');
  await new Promise((r) => setTimeout(r, 5));
  const second = await importKerasModel({ ...base(dir, h5), name: 'v' });
  assert.notEqual(readManifest(second.dir).created_at, created);
  assert.deepEqual(readdirSync(join(dir, 'models')), ['v'], 'no temp or old folders left');
});

test('weight names follow the official spelling in each style', () => {
  const vgg = getArchitecture('vgg19').kerasWeightSpec(true);
  assert.deepEqual(vgg.at(-1)!.weights.map((w) => [w.name, w.shape]), [['predictions_W_1:0', [4096, 1000]], ['predictions_b_1:0', [1000]]]);
  const inc = getArchitecture('inception_v3').kerasWeightSpec(true);
  assert.deepEqual(inc[1]!.weights.map((w) => w.name), ['batch_normalization_1/beta:0', 'batch_normalization_1/moving_mean:0', 'batch_normalization_1/moving_variance:0']);
  assert.deepEqual(withNamingStyle(inc.slice(0, 1), 'keras1')[0]!.weights.map((w) => w.name), ['conv2d_1_W_1:0']);
  assert.deepEqual(inc.at(-1)!.weights.map((w) => w.name), ['predictions/kernel:0', 'predictions/bias:0']);
});
