// `convserve models import NAME --keras FILE …`: the CLI contract (flags, --json fields, one-line errors, exit 1)
// and every import error — unreadable, unknown, truncated and corrupt files, config/weights mismatches, an
// unsupported layer, bad labels, bad preprocessing, input-size misuse, bad names and name clashes — each a 422
// `keras-import-<kind>` with nothing written in the models directory.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Command } from 'commander';
import { zipSync } from 'fflate';
import { registerModelsCommands } from '../src/cli/models.js';
import { importKerasModel } from '../src/models/import.js';
import { KerasImportError } from '../src/models/keras/errors.js';
import { tempDir } from './helpers/app.js';
import { CLI } from './helpers/server-process.js';
import { type KerasFileSpec, k2Layer, k2Sequential, writeKeras2H5, writeKerasSaveWeights, writeKerasZip } from './helpers/keras-files.js';
import { kerasWeights, randomizeWeights, tf, tfReady } from './helpers/tfjs-keras.js';

const L = tf.layers;
const work = tempDir();
const modelsDir = join(work, 'models');
let n = 0;
const fresh = () => { const d = join(work, `f${++n}`); mkdirSync(d); return d; };

let spec: KerasFileSpec;
let good: string;
before(async () => {
  await tfReady();
  const model = tf.sequential({ layers: [L.conv2d({ inputShape: [6, 5, 3], filters: 2, kernelSize: 3, name: 'conv' }), L.flatten({ name: 'flat' }), L.dense({ units: 3, activation: 'softmax', name: 'probs' })] });
  randomizeWeights(model, 3);
  spec = { config: model.toJSON(null, false) as Record<string, unknown>, weights: Object.fromEntries(kerasWeights(model)), kerasVersion: '2.3.1' };
  good = join(fresh(), 'good.h5');
  await writeKeras2H5(good, spec);
});

/** Runs `convserve models …` in this process (commander), capturing stdout. */
async function run(...args: string[]): Promise<string> {
  const program = new Command('convserve').exitOverride();
  registerModelsCommands(program);
  const lines: string[] = [];
  const log = console.log;
  const saved = process.env.CONVSERVE_MODELS_DIR;
  console.log = (...a: unknown[]) => { lines.push(a.join(' ')); };
  process.env.CONVSERVE_MODELS_DIR = modelsDir;
  try {
    await program.parseAsync(['node', 'convserve', ...args]);
  } finally {
    console.log = log;
    if (saved === undefined) delete process.env.CONVSERVE_MODELS_DIR; else process.env.CONVSERVE_MODELS_DIR = saved;
  }
  return lines.join('\n');
}

const entries = () => { try { return readdirSync(modelsDir).sort(); } catch { return []; } };

/** The import fails with keras-import-<kind>, a one-line message matching `pattern`, and writes nothing. */
async function assertFails(opts: Partial<Parameters<typeof importKerasModel>[0]> & { file: string }, kind: string, pattern: RegExp): Promise<void> {
  const before = entries();
  await assert.rejects(importKerasModel({ name: 'broken', modelsDir, ...opts }), (e: unknown) => {
    assert.ok(e instanceof KerasImportError, `a KerasImportError, got ${e instanceof Error ? e.stack : String(e)}`);
    assert.equal(e.status, 422);
    assert.equal(e.toBody().type, `https://convserve.dev/problems/keras-import-${kind}`, e.message);
    assert.ok(!e.message.includes('\n'), `one line: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
  assert.deepEqual(entries(), before, 'nothing written (no folder, no temp folder)');
}

describe('import errors', () => {
  it('files: missing, unknown format, truncated, corrupt zip, weights-only without --config', async () => {
    await assertFails({ file: join(work, 'nope.h5') }, 'not-found', /nope\.h5/);
    const text = join(fresh(), 'notes.txt');
    writeFileSync(text, 'just some notes\n');
    await assertFails({ file: text }, 'unknown-format', /not a Keras or TensorFlow\.js model/);
    const cut = join(fresh(), 'cut.h5');
    writeFileSync(cut, readFileSync(good).subarray(0, Math.floor(statSync(good).size / 2)));
    await assertFails({ file: cut }, 'truncated', /cut\.h5/);
    const zip = join(fresh(), 'm.keras');
    await writeKerasZip(zip, spec);
    truncateSync(zip, statSync(zip).size - 40);
    await assertFails({ file: zip }, 'truncated', /m\.keras/);
    const junk = join(fresh(), 'junk.keras');
    const member = (text: string) => new Uint8Array(Buffer.from(text));
    writeFileSync(junk, zipSync({ 'metadata.json': member('{"keras_version": "3.4.1"}'), 'config.json': member('{"class_name": nope}'), 'model.weights.h5': member('not hdf5') }));
    await assertFails({ file: junk }, 'corrupt', /junk\.keras/);
    const d = fresh();
    await writeKerasSaveWeights(join(d, 'w.h5'), join(d, 'm.json'), spec);
    await assertFails({ file: join(d, 'w.h5') }, 'missing-config', /--config/);
    await assertFails({ file: good, config: join(d, 'm.json') }, 'bad-config', /--config is only for weights-only/);
  });

  it('config/weights mismatch (wrong shape, missing layer, extra weights) and an unsupported layer', async () => {
    const withConfig = async (layers: Record<string, unknown>[], weights = spec.weights) => {
      const file = join(fresh(), 'm.h5');
      await writeKeras2H5(file, { config: k2Sequential('seq', layers), weights, kerasVersion: '2.3.1' });
      return file;
    };
    const conv = k2Layer('Conv2D', 'conv', { batch_input_shape: [null, 6, 5, 3], filters: 2, kernel_size: [3, 3], activation: 'linear', use_bias: true, padding: 'valid', strides: [1, 1] });
    const flat = k2Layer('Flatten', 'flat');
    const dense = (units: number, name = 'probs') => k2Layer('Dense', name, { units, activation: 'softmax', use_bias: true });
    await assertFails({ file: await withConfig([conv, flat, dense(4)]) }, 'mismatch', /'probs'.*kernel.*\[24, 3\].*\[24, 4\]/);
    const { probs: _dropped, ...noDense } = spec.weights;
    await assertFails({ file: await withConfig([conv, flat, dense(3)], noDense) }, 'mismatch', /'probs'/);
    await assertFails({ file: await withConfig([conv, flat, dense(3), k2Layer('Dropout', 'drop', { rate: 0.1 })], { ...spec.weights, drop: spec.weights.probs! }) }, 'mismatch', /'drop'/);
    await assertFails({ file: await withConfig([conv, k2Layer('Lambda', 'my_lambda', { function: 'x * 2' }), flat, dense(3)]) }, 'unsupported-layer', /'my_lambda'.*Lambda/);
  });

  it('labels, preprocessing, input size, names', async () => {
    const labels = join(fresh(), 'labels.txt');
    writeFileSync(labels, 'a\nb\n');
    await assertFails({ file: good, labels }, 'bad-labels', /2 labels, the model has 3 classes/);
    await assertFails({ file: good, labels: join(work, 'missing-labels.json') }, 'bad-labels', /cannot read labels/);
    await assertFails({ file: good, preprocess: 'rescale:0' }, 'bad-preprocessing', /non-zero/);
    await assertFails({ file: good, preprocess: 'caffee' }, 'bad-preprocessing', /unknown preprocessing 'caffee'/);
    await assertFails({ file: good, preprocess: 'mnist' }, 'bad-preprocessing', /needs 1 input channel/);
    await assertFails({ file: good, inputSize: { height: 8, width: 8 } }, 'input-size', /6×5.*only for models whose input size is open/);
    const open = tf.sequential({ layers: [L.conv2d({ inputShape: [null, null, 3] as unknown as number[], filters: 2, kernelSize: 3, name: 'conv' }), L.globalAveragePooling2d({ name: 'gap' })] });
    const openFile = join(fresh(), 'open.h5');
    await writeKeras2H5(openFile, { config: open.toJSON(null, false) as Record<string, unknown>, weights: Object.fromEntries(kerasWeights(open)) });
    await assertFails({ file: openFile }, 'input-size', /--input-size HxW/);
    await assertFails({ file: good, name: 'Bad Name' }, 'bad-name', /'Bad Name' is invalid/);
  });

  it('a name clash is an error and leaves the existing model untouched', async () => {
    await importKerasModel({ name: 'taken', file: good, modelsDir });
    const manifest = readFileSync(join(modelsDir, 'taken', 'manifest.json'), 'utf8');
    await assertFails({ file: good, name: 'taken' }, 'name-clash', /'taken' exists already/);
    assert.equal(readFileSync(join(modelsDir, 'taken', 'manifest.json'), 'utf8'), manifest);
  });
});

describe('convserve models import --keras', () => {
  it('--json prints {name, dir, format, keras_version, layers, input, outputs, preprocessing}', async () => {
    const labels = join(fresh(), 'labels.json');
    writeFileSync(labels, JSON.stringify(['x', 'y', 'z']));
    const out = JSON.parse(await run('models', 'import', 'cli-json', '--keras', good, '--labels', labels, '--preprocess', 'rescale:1/127.5:-1', '--json'));
    assert.deepEqual(Object.keys(out), ['name', 'dir', 'format', 'keras_version', 'layers', 'input', 'outputs', 'preprocessing']);
    assert.equal(out.name, 'cli-json');
    assert.equal(out.dir, join(modelsDir, 'cli-json'));
    assert.equal(out.format, 'keras2-h5');
    assert.equal(out.keras_version, '2.3.1');
    assert.deepEqual(out.layers.map((l: { name: string }) => l.name), ['conv_input', 'conv', 'flat', 'probs']);
    assert.deepEqual(out.input, { name: 'input', height: 6, width: 5, channels: 3, fixed_size: true });
    assert.equal(out.outputs, 'probabilities');
    assert.equal(out.preprocessing, 'rescale:1/127.5:-1');
    const text = await run('models', 'import', 'cli-text', '--keras', good, '--provenance', 'trained');
    assert.match(text, /^cli-text: 3-class classifier \(probabilities\) from keras2-h5 \(Keras 2\.3\.1\), 4 layers, input 6×5×3, preprocessing raw; written to /);
    assert.equal(JSON.parse(readFileSync(join(modelsDir, 'cli-text', 'manifest.json'), 'utf8')).weights.provenance, 'trained');
  });

  it('flag combinations are checked before anything is read', async () => {
    await assert.rejects(run('models', 'import', 'x', '--keras', good, '--arch', 'vgg19'), /--keras imports a whole model; drop --arch/);
    await assert.rejects(run('models', 'import', 'x', '--arch', 'vgg19', '--weights', good, '--preprocess', 'tf'), /--preprocess only go with --keras/);
    await assert.rejects(run('models', 'import', 'x'), /give --keras FILE/);
    await assert.rejects(run('models', 'import', 'x', '--keras', good, '--input-size', '12'), /input size '12' is not HxW/);
  });

  it('the real command (dist/): one-line errors on stderr, exit 1, the --json error object', () => {
    const env = { ...process.env, CONVSERVE_MODELS_DIR: modelsDir, NODE_TEST_CONTEXT: '' };
    const plain = spawnSync(process.execPath, [CLI, 'models', 'import', 'cli-json', '--keras', good], { env, encoding: 'utf8' });
    assert.equal(plain.status, 1);
    assert.equal(plain.stdout, '');
    assert.match(plain.stderr, /^convserve: a model named 'cli-json' exists already .*\n$/);
    const json = spawnSync(process.execPath, [CLI, 'models', 'import', 'y', '--keras', join(work, 'absent.keras'), '--json'], { env, encoding: 'utf8' });
    assert.equal(json.status, 1);
    const err = JSON.parse(json.stderr) as { error: { message: string; type: string } };
    assert.equal(err.error.type, 'keras-import-not-found');
    assert.match(err.error.message, /absent\.keras/);
  });
});
