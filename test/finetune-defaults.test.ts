// Issue 12's defaults check: `finetune` with EVERY default on the typical small dataset — 40 training images per
// class of three drawn shapes (circle, square, triangle; random colours on random backgrounds, so only the shape
// tells the classes apart) — and its accuracy on held-out images, measured here with the exported model.
//
// The base is a real trained network, installed offline: the InceptionV3 of the nsfwjs package (`convserve models
// install content-moderation`); the target is ≥ 90 % held-out. The test also checks what the defaults promise
// whatever the base: the step floor, the class-balanced split, and that a result near chance carries the loud
// warning (result, report.json, manifest). A second run on noise with random labels (over a synthetic base, whose
// features separate nothing) must be flagged near chance and too small.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { toInputTensor } from '../src/image/preprocess.js';
import { decodeImage } from '../src/image/io.js';
import { readLabels, readManifest } from '../src/models/manifest.js';
import { synthesizeModel } from '../src/models/synth.js';
import { finetune } from '../src/train/finetune.js';
import { Prng } from '../src/util/prng.js';
import { tempDir, testConfig } from './helpers/app.js';

const SHAPES = ['circle', 'square', 'triangle'] as const;
const root = tempDir('convserve-ftd-');
const modelsDir = join(root, 'models');

/** A 96×96 PNG: a random-colour background, one shape of another random colour, size and place. */
function shapeSvg(shape: (typeof SHAPES)[number], rng: Prng): string {
  const colour = () => `rgb(${rng.int(256)},${rng.int(256)},${rng.int(256)})`;
  const r = 16 + rng.uniform() * 16;
  const cx = r + 4 + rng.uniform() * (88 - 2 * r);
  const cy = r + 4 + rng.uniform() * (88 - 2 * r);
  const fill = colour();
  const body = shape === 'circle' ? `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${fill}"/>`
    : shape === 'square' ? `<rect x="${cx - r}" y="${cy - r}" width="${2 * r}" height="${2 * r}" fill="${fill}"/>`
      : `<polygon points="${cx},${cy - r} ${cx + r},${cy + r} ${cx - r},${cy + r}" fill="${fill}"/>`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="96" height="96"><rect width="96" height="96" fill="${colour()}"/>${body}</svg>`;
}

async function shapes(dir: string, perClass: number, seed: number): Promise<void> {
  const rng = new Prng(seed);
  for (const s of SHAPES) {
    mkdirSync(join(dir, s), { recursive: true });
    for (let i = 0; i < perClass; i++) writeFileSync(join(dir, s, `${s}-${i}.png`), await sharp(Buffer.from(shapeSvg(s, rng))).png().toBuffer());
  }
}

/** The trained base, installed the way a user installs it. */
function installContentModeration(): string {
  const cli = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
  const env = { ...process.env, CONVSERVE_MODELS_DIR: modelsDir };
  const r = spawnSync(process.execPath, ['--import', 'tsx', cli, 'models', 'install', 'content-moderation'], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, `models install content-moderation failed: ${r.stderr}`);
  return 'content-moderation';
}

/** Accuracy of the exported model on held-out class folders, decoded as POST /v1/classify does. */
async function heldOutAccuracy(model: string, dir: string): Promise<number> {
  const folder = join(modelsDir, model);
  const m = readManifest(folder);
  const labels = readLabels(folder, m).map((l) => l.label);
  const session = await ort.InferenceSession.create(join(folder, m.files.model), { logSeverityLevel: 3 });
  const { height, width } = m.input;
  let correct = 0;
  let total = 0;
  try {
    for (const cls of labels) {
      for (let i = 0; ; i++) {
        let bytes: Buffer;
        try { bytes = readFileSync(join(dir, cls, `${cls}-${i}.png`)); } catch { break; }
        const img = await decodeImage(bytes, testConfig(), { resize: { width, height, mode: 'crop' } });
        const x = new Float32Array(3 * height * width);
        toInputTensor(img, m.preprocessing, x, 0);
        const p = (await session.run({ [m.input.name]: new ort.Tensor('float32', x, [1, 3, height, width]) }))[m.output.name]!.data as Float32Array;
        if (labels[p.indexOf(Math.max(...p))] === cls) correct++;
        total++;
      }
    }
  } finally {
    await session.release();
  }
  return correct / total;
}

describe('finetune with every default on a small dataset (issue 12)', () => {
  it('three drawn shapes, 40 training images each: held-out accuracy, step floor, balanced split, honest warnings', async (t) => {
    const data = join(root, 'shapes');
    const heldOut = join(root, 'held-out');
    await shapes(data, 50, 1); // 50 per class: the default split holds 10 out, leaving 40 to train on
    await shapes(heldOut, 15, 2);
    const base = installContentModeration();

    const r = await finetune({ data, base, name: 'shapes', modelsDir });
    const acc = await heldOutAccuracy('shapes', heldOut);
    t.diagnostic(`validation ${(r.validation.accuracy * 100).toFixed(1)} %, held-out ${(acc * 100).toFixed(1)} %, ${r.history.length} epochs, warnings: ${r.warnings.length}`);
    assert.ok(acc >= 0.9, `held-out accuracy with the defaults over a trained base: ${acc}`);

    assert.equal(r.train, 120);
    assert.deepEqual(r.validation.perClass.map((c) => c.support), [10, 10, 10], 'class-balanced validation split');
    assert.ok(r.history.length * Math.ceil(120 / 32) >= 300, `at least the 300-step floor: ${r.history.length} epochs`);
    const nearChance = r.validation.accuracy <= 1 / 3 + 0.1;
    assert.equal(r.warnings.some((w) => /points of chance/.test(w)), nearChance);
    const report = JSON.parse(readFileSync(join(modelsDir, 'shapes', 'report.json'), 'utf8'));
    assert.deepEqual(report.warnings, r.warnings);
    assert.deepEqual(readManifest(join(modelsDir, 'shapes')).training?.warnings, r.warnings);
    assert.equal(report.training.schedule.min_steps, 300);
  });

  it('noise with random labels is flagged loudly: near chance and too small to judge', async () => {
    const data = join(root, 'noise');
    const rng = new Prng(5);
    for (const c of ['a', 'b']) {
      mkdirSync(join(data, c), { recursive: true });
      for (let i = 0; i < 6; i++) {
        const px = Buffer.from(Array.from({ length: 32 * 32 * 3 }, () => rng.int(256)));
        writeFileSync(join(data, c, `${i}.png`), await sharp(px, { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer());
      }
    }
    await synthesizeModel('vgg19', { modelsDir, name: 'noise-base', width: 0.125, seed: 3 });
    const r = await finetune({ data, base: 'noise-base', name: 'noise', modelsDir, minSteps: 60 });
    assert.ok(r.warnings.some((w) => /too small to judge/.test(w)), r.warnings.join(' | '));
    assert.equal(r.warnings.some((w) => /points of chance/.test(w)), r.validation.accuracy <= 0.5 + 0.1);
    const png = await sharp(join(modelsDir, 'noise', 'report.png')).metadata();
    assert.ok((png.height ?? 0) > 600, 'report.png grows to show the warnings');
  });
});
