// Fine-tuning end to end (issue #6 parts 2–4; on ONNX Runtime since issue 12): a generated folder dataset (3 colour
// classes of random shapes, plus an unreadable image and a non-image file), a synthetic reduced-width VGG19 base,
// `finetune()` → models/NAME, a
// running service that serves it after POST /v1/models/reload, held-out accuracy through HTTP, the exported ONNX
// against an independent computation (ORT base features + the head's Dense layers in plain JS), report
// consistency; then --augment --unfreeze-top, and every bad-data case (clear error, nothing written).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { readLabels, readManifest } from '../src/models/manifest.js';
import { VERIFIED_FILE } from '../src/models/integrity.js';
import { addOutputsToFile } from '../src/models/graph-outputs.js';
import { synthesizeModel } from '../src/models/synth.js';
import { decodeModel, tensorToFloat32 } from '../src/onnx/proto.js';
import { materializeExternal } from '../src/ops/grad-session.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { type FinetuneOptions, type FinetuneResult, finetune } from '../src/train/finetune.js';
import { Prng } from '../src/util/prng.js';
import { ProblemError } from '../src/util/problem.js';
import { tempDir, testConfig } from './helpers/app.js';

const EPOCHS = 20; // the default: 6 steps an epoch here, so the 300-step floor makes it 50 epochs
const COLOURS: Record<string, [number, number, number]> = { blue: [40, 70, 220], green: [40, 200, 60], red: [220, 40, 40] };

/** A 64×64 PNG: grey background of random brightness, one circle/square/triangle of the class colour at a random place. */
async function shapeImage(rgb: [number, number, number], rand: () => number): Promise<Buffer> {
  const bg = Math.round(70 + rand() * 110);
  const cx = 18 + rand() * 28;
  const cy = 18 + rand() * 28;
  const r = 14 + rand() * 8;
  const jitter = rgb.map((v) => Math.max(0, Math.min(255, Math.round(v + (rand() - 0.5) * 40))));
  const fill = `rgb(${jitter.join(',')})`;
  const kind = Math.floor(rand() * 3);
  const shape = kind === 0 ? `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${fill}"/>`
    : kind === 1 ? `<rect x="${cx - r}" y="${cy - r}" width="${2 * r}" height="${2 * r}" fill="${fill}"/>`
      : `<polygon points="${cx},${cy - r} ${cx + r},${cy + r} ${cx - r},${cy + r}" fill="${fill}"/>`;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="rgb(${bg},${bg},${bg})"/>${shape}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

async function makeDataset(dir: string, perClass: number, seed: number, classes = Object.keys(COLOURS)): Promise<void> {
  const rand = new Prng(seed).asFunction();
  for (const cls of classes) {
    mkdirSync(join(dir, cls), { recursive: true });
    for (let i = 0; i < perClass; i++) writeFileSync(join(dir, cls, `${cls}-${i}.png`), await shapeImage(COLOURS[cls]!, rand));
  }
}

/** Entries of the models dir (to prove failures leave nothing behind, not even temp folders). */
// The models folder as the registry sees it: model folders and leftovers; the cache and the integrity stamps are the service's own.
const listing = (dir: string) => readdirSync(dir).filter((n) => n !== '.cache' && n !== VERIFIED_FILE).sort();

async function expectProblem(p: Promise<unknown>, slug: string, detail: RegExp): Promise<ProblemError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ProblemError, `expected a ProblemError, got ${String(e)}`);
    assert.equal(e.slug, slug, e.detail);
    assert.match(e.detail, detail);
    return e;
  }
  assert.fail(`expected ${slug}`);
}

describe('convserve finetune (synthetic reduced-width VGG19 base)', () => {
  const root = tempDir('convserve-ft-');
  const modelsDir = join(root, 'models');
  const data = join(root, 'data');
  const heldOut = join(root, 'held-out');
  let svc: RunningService;
  let result: FinetuneResult;
  const base = (o: Partial<FinetuneOptions> = {}): FinetuneOptions => ({ data, base: 'vgg19', name: 'colours', modelsDir, seed: 1, ...o });

  before(async () => {
    await synthesizeModel('vgg19', { modelsDir, name: 'vgg19', width: 0.125, seed: 3 });
    await makeDataset(data, 20, 11);
    await makeDataset(heldOut, 15, 12345);
    writeFileSync(join(data, 'red', 'broken.png'), 'this is not a PNG');        // unreadable image: skipped, reported
    writeFileSync(join(data, 'green', 'notes.txt'), 'not an image either');     // non-image file: skipped
    svc = await startService({ config: testConfig({ modelsDir, maxFilesPerRequest: 64, maxBatch: 16 }), plugins: [inferencePlugin()] });
    for (let i = 0; i < 300 && !svc.ctx.readiness.status().ready; i++) await new Promise((r) => setTimeout(r, 100));
  });
  after(async () => { await svc?.shutdown(); });

  async function classifyHeldOut(model: string): Promise<{ correct: number; total: number; body: any }> {
    const form = new FormData();
    const truth: string[] = [];
    for (const cls of Object.keys(COLOURS)) {
      for (const f of readdirSync(join(heldOut, cls)).sort()) {
        form.append('image', new Blob([readFileSync(join(heldOut, cls, f))], { type: 'image/png' }), f);
        truth.push(cls);
      }
    }
    const res = await fetch(`${svc.url}/v1/classify?model=${model}&top=1`, { method: 'POST', body: form });
    const body = await res.json() as any;
    assert.equal(res.status, 200, JSON.stringify(body));
    const correct = body.results.filter((r: any, i: number) => r.predictions[0].label === truth[i]).length;
    return { correct, total: truth.length, body };
  }

  it('fine-tunes, exports one model folder, and a running server serves it after POST /v1/models/reload', async (t) => {
    const before404 = await fetch(`${svc.url}/v1/classify?model=colours`, { method: 'POST', body: readFileSync(join(heldOut, 'red', 'red-0.png')), headers: { 'Content-Type': 'image/png' } });
    assert.equal(before404.status, 404);

    const events: string[] = [];
    result = await finetune(base({ epochs: EPOCHS, learningRate: 1e-2, batchSize: 8, onProgress: (p) => events.push(p.type) }));
    for (const e of ['scan', 'skipped', 'start', 'features', 'stage', 'batch', 'epoch', 'evaluate', 'export', 'done']) assert.ok(events.includes(e), `progress event ${e}`);
    t.diagnostic(`validation accuracy ${result.validation.accuracy}, features ${result.featureExtraction.imagesPerSecond.toFixed(1)} img/s, ${result.history.length} epochs, ONNX vs the trained model ${result.onnxMaxAbsDiff}`);
    assert.ok(result.history.length * 6 >= 300, 'the 300-step floor: at least 50 epochs of 6 steps');
    assert.ok(result.onnxMaxAbsDiff <= 1e-5);

    // the folder
    const dir = join(modelsDir, 'colours');
    assert.deepEqual(readdirSync(dir).sort(), ['labels.json', 'manifest.json', 'model.onnx', 'model.weights.bin', 'report.json', 'report.png']);
    assert.deepEqual(listing(modelsDir), ['colours', 'vgg19'], 'no temp folders left');
    const m = readManifest(dir);
    const bm = readManifest(join(modelsDir, 'vgg19'));
    assert.equal(m.task, 'classification');
    assert.equal(m.architecture, 'vgg19');
    assert.equal(m.weights.provenance, 'fine-tuned');
    assert.equal(m.weights.base, 'vgg19');
    assert.deepEqual(m.input, bm.input);
    assert.equal(m.preprocessing, 'caffe');
    assert.deepEqual(m.output, { name: 'probabilities', classes: 3 });
    assert.deepEqual(readLabels(dir, m).map((l) => l.label), ['blue', 'green', 'red']);
    assert.equal(m.training?.epochs, EPOCHS);
    assert.equal(m.training?.features_cached, true);
    assert.equal(m.metrics?.val_accuracy, result.validation.accuracy);

    // served without a restart
    const reload = await fetch(`${svc.url}/v1/models/reload`, { method: 'POST' });
    const rb = await reload.json() as any;
    assert.equal(reload.status, 200);
    assert.deepEqual(rb.added, ['colours']);
    assert.equal(rb.models.find((x: any) => x.name === 'colours').engine.state, 'loaded');
    const { correct, total, body } = await classifyHeldOut('colours');
    assert.equal(body.weights.provenance, 'fine-tuned');
    t.diagnostic(`held-out accuracy through HTTP: ${correct}/${total}`);
    assert.ok(correct / total >= 0.8, `held-out accuracy ${correct}/${total} (chance: 1/3)`);
  });

  it('the exported ONNX equals an independent computation: ORT base features → GAP → the head in plain JS (≤ 1e-5)', async () => {
    const dir = join(modelsDir, 'colours');
    const model = decodeModel(readFileSync(join(dir, 'model.onnx')));
    const inits = model.graph!.initializer!;
    materializeExternal(inits, dir);
    const w = (prefix: string) => {
      const t = inits.find((x) => x.name?.startsWith(prefix))!;
      return { dims: t.dims!.map(Number), data: tensorToFloat32(t) };
    };
    const [d1W, d1B, d2W, d2B] = [w('head_dense/kernel'), w('head_dense/bias'), w('head_predictions/kernel'), w('head_predictions/bias')];
    // The base's block5_pool on the same input, by the base's own model file.
    const basePath = addOutputsToFile(join(modelsDir, 'vgg19', 'model.onnx'), ['block5_pool'], 'model.test-outputs.onnx');
    const baseSession = await ort.InferenceSession.create(basePath, { logSeverityLevel: 3 });
    const ftSession = await ort.InferenceSession.create(join(dir, 'model.onnx'), { logSeverityLevel: 3 });
    const n = 3;
    const x = new Float32Array(n * 3 * 224 * 224);
    const rand = new Prng(99).asFunction();
    for (let i = 0; i < x.length; i++) x[i] = (rand() - 0.5) * 200;
    const input = new ort.Tensor('float32', x, [n, 3, 224, 224]);
    const feat = (await baseSession.run({ input }, ['block5_pool'])).block5_pool!;
    const got = (await ftSession.run({ input })).probabilities!.data as Float32Array;
    const [, c, h, wd] = feat.dims.map(Number) as [number, number, number, number];
    const f = feat.data as Float32Array;
    let maxDiff = 0;
    for (let b = 0; b < n; b++) {
      const pooled = new Float64Array(c);
      for (let ch = 0; ch < c; ch++) { let s = 0; for (let p = 0; p < h * wd; p++) s += f[(b * c + ch) * h * wd + p]!; pooled[ch] = s / (h * wd); }
      const [inD, units] = d1W.dims as [number, number];
      assert.equal(inD, c);
      const hid = new Float64Array(units);
      for (let u = 0; u < units; u++) { let s = d1B.data[u]!; for (let i = 0; i < c; i++) s += pooled[i]! * d1W.data[i * units + u]!; hid[u] = Math.max(0, s); }
      const k = d2W.dims[1]!;
      const logits = Array.from({ length: k }, (_, j) => { let s = d2B.data[j]!; for (let u = 0; u < units; u++) s += hid[u]! * d2W.data[u * k + j]!; return s; });
      const mx = Math.max(...logits);
      const ex = logits.map((l) => Math.exp(l - mx));
      const sum = ex.reduce((p, q) => p + q, 0);
      ex.forEach((e, j) => { maxDiff = Math.max(maxDiff, Math.abs(e / sum - got[b * k + j]!)); });
    }
    await baseSession.release();
    await ftSession.release();
    assert.ok(maxDiff <= 1e-5, `max |Δ| ${maxDiff}`);
  });

  it('report.json and report.png are consistent (confusion total = validation count, accuracy = trace/total)', async () => {
    const dir = join(modelsDir, 'colours');
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    const m = readManifest(dir);
    const conf = report.validation.confusion as number[][];
    const total = conf.flat().reduce((a, b) => a + b, 0);
    const trace = conf.reduce((a, r, i) => a + r[i]!, 0);
    assert.equal(total, report.validation.images);
    assert.equal(total, report.data.val);
    assert.equal(report.data.train + report.data.val, 60, '20 per class, the unreadable image skipped');
    assert.ok(Math.abs(report.validation.accuracy - trace / total) < 1e-12);
    assert.equal(report.validation.accuracy, m.metrics?.val_accuracy);
    assert.deepEqual(report.classes, ['blue', 'green', 'red']);
    report.validation.per_class.forEach((pc: any, i: number) => {
      assert.equal(pc.label, report.classes[i]);
      const col = conf.reduce((a, r) => a + r[i]!, 0);
      assert.equal(pc.support, conf[i]!.reduce((a, b) => a + b, 0));
      assert.ok(Math.abs(pc.recall - conf[i]![i]! / pc.support) < 1e-12);
      assert.ok(Math.abs(pc.precision - (col ? conf[i]![i]! / col : 0)) < 1e-12);
    });
    assert.equal(report.history.length, m.training?.epochs_run);
    assert.ok(report.best_epoch >= 1 && report.best_epoch <= report.history.length);
    const bestLoss = Math.min(...report.history.map((h: any) => h.val_loss));
    assert.equal(report.history[report.best_epoch - 1].val_loss, bestLoss, 'best epoch = lowest validation loss');
    assert.ok(report.onnx_max_abs_diff <= 1e-5);
    const skipped = report.data.skipped.map((s: any) => s.file).sort();
    assert.deepEqual(skipped, [join('green', 'notes.txt'), join('red', 'broken.png')]);
    assert.match(report.data.skipped.find((s: any) => s.file.endsWith('broken.png')).reason, /not a recognisable image/);
    assert.equal(report.feature_extraction.cached, true);
    const png = await sharp(readFileSync(join(dir, 'report.png'))).metadata();
    assert.equal(png.format, 'png');
    assert.ok(png.width! >= 1200 && png.height! >= 600);
  });

  it('--augment --unfreeze-top: features recomputed per epoch, block5 trained on ORT, export matches, served after reload', async (t) => {
    const r = await finetune(base({ name: 'colours-top', epochs: 3, minSteps: 0, unfreezeEpochs: 2, learningRate: 1e-2, batchSize: 16, augment: true, unfreezeTop: true }));
    t.diagnostic(`stage 2 epochs: ${r.history.filter((h) => h.stage === 2).map((h) => h.seconds.toFixed(2)).join(', ')} s; ONNX vs the trained model ${r.onnxMaxAbsDiff}`);
    assert.ok(r.onnxMaxAbsDiff <= 1e-5);
    assert.deepEqual(r.history.map((h) => h.stage), [1, 1, 1, 2, 2]);
    assert.ok(r.history.every((h) => (h.feature_seconds ?? 0) > 0), 'training features recomputed every epoch');
    const m = readManifest(join(modelsDir, 'colours-top'));
    assert.equal(m.training?.features_cached, false);
    assert.equal(m.training?.cut_layer, 'block4_pool');
    assert.deepEqual((m.training?.unfreeze_top as any).layers, ['block5_conv1', 'block5_conv2', 'block5_conv3', 'block5_conv4', 'block5_pool']);
    const report = JSON.parse(readFileSync(join(modelsDir, 'colours-top', 'report.json'), 'utf8'));
    assert.match(report.feature_extraction.note, /cannot be cached/);
    const rb = await (await fetch(`${svc.url}/v1/models/reload`, { method: 'POST' })).json() as any;
    assert.deepEqual(rb.added, ['colours-top']);
    const { total, body } = await classifyHeldOut('colours-top');
    assert.equal(body.results.length, total);
  });

  it('bad data and bad names: precise errors, nothing written to the models directory', async () => {
    const bad = join(root, 'bad');
    const before = listing(modelsDir);
    // empty folder
    mkdirSync(join(bad, 'empty'), { recursive: true });
    await expectProblem(finetune(base({ data: join(bad, 'empty') })), 'finetune-no-classes', /is empty/);
    await expectProblem(finetune(base({ data: join(bad, 'nope') })), 'finetune-data-not-found', /does not exist/);
    // one class only
    await makeDataset(join(bad, 'one'), 3, 5, ['red']);
    await expectProblem(finetune(base({ data: join(bad, 'one') })), 'finetune-one-class', /only one class \('red'\)/);
    // only non-image files
    for (const c of ['a', 'b']) { mkdirSync(join(bad, 'text', c), { recursive: true }); writeFileSync(join(bad, 'text', c, 'x.txt'), 'hi'); }
    await expectProblem(finetune(base({ data: join(bad, 'text') })), 'finetune-no-images', /no image files/);
    // a class with one image
    await makeDataset(join(bad, 'tiny'), 1, 6, ['red', 'blue']);
    await expectProblem(finetune(base({ data: join(bad, 'tiny') })), 'finetune-class-too-small', /single image/);
    // names that would escape the models directory or break the manifest name rule
    for (const name of ['../x', '/tmp/evil', '..', 'a/b', 'Bad Name', '', '.hidden', 'x'.repeat(65)]) {
      await expectProblem(finetune(base({ name })), 'finetune-bad-name', /model name|name is required/);
    }
    await expectProblem(finetune(base({ name: 'vgg19' })), 'finetune-bad-name', /is the base model itself/);
    await synthesizeModel('inception_v3', { modelsDir, name: 'incep', width: 0.125, seed: 4 });
    await expectProblem(finetune(base({ name: 'incep', base: 'vgg19' })), 'finetune-name-taken', /not a fine-tuned model/);
    await expectProblem(finetune(base({ base: 'incep', unfreezeTop: true })), 'finetune-unfreeze-unsupported', /VGG19 bases only/);
    await expectProblem(finetune(base({ base: 'inception_v3' })), 'finetune-base-not-installed', /models (fetch|synth) inception_v3/);
    await expectProblem(finetune(base({ base: 'vgg19', valSplit: 1.5 })), 'finetune-bad-option', /validation split/);
    // every image of a class unreadable: found in the training child, reported as a problem, nothing written
    await makeDataset(join(bad, 'broken'), 3, 8, ['red', 'blue']);
    for (const f of readdirSync(join(bad, 'broken', 'blue'))) writeFileSync(join(bad, 'broken', 'blue', f), 'garbage');
    const e = await expectProblem(finetune(base({ data: join(bad, 'broken'), name: 'broken' })), 'finetune-empty-class', /no readable image in class 'blue'/);
    assert.equal(e.status, 422);
    assert.deepEqual(listing(modelsDir), [...before, 'incep'].sort(), 'nothing half-written');
    assert.ok(!existsSync(join(modelsDir, 'broken')));
  });
});
