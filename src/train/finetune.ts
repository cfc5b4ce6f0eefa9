// Fine-tuning an installed ImageNet base (VGG19 / InceptionV3) on a folder of images, the Keras transfer-learning
// recipe (keras-facts §8):
//
// 1. The frozen base runs on onnxruntime-node: its installed model.onnx is cut at the feature layer (block5_pool /
//    mixed10; block4_pool for --unfreeze-top) by making that value the graph output, pruning what follows and
//    inlining the external weights it still needs. Features are computed ONCE and cached (global-average-pooled
//    vectors for the head; the top block's input map for --unfreeze-top). With --augment every epoch sees new
//    random flips/crops/rotations, so the training features are recomputed every epoch (validation stays cached).
// 2. A new head — GlobalAveragePooling2D → Dense(relu) → Dropout → Dense(softmax) — is trained with TensorFlow.js
//    (Adam, categorical cross-entropy, early stopping on validation loss, best weights kept).
// 3. Optional second stage (--unfreeze-top, VGG19 only): block5_conv1…4 + block5_pool, initialised from the base,
//    trained together with the head at a low learning rate on cached block4_pool features.
// 4. Export: the head (and block 5) appended to the cut base graph = ONE ONNX model in models/NAME/ (model.onnx +
//    model.weights.bin), checked against "ORT base features → tfjs head" (≤ 1e-5) before the folder is renamed into
//    place; labels.json from the class folder names, manifest.json (provenance fine-tuned), report.json/.png.
//
// Images are decoded and resized exactly as POST /v1/classify does (decodeImage, centre crop, the base's caffe/tf
// preprocessing), so the served model sees the inputs it was trained on.
//
// Process layout: finetune() validates everything cheap (name, data folder, base model) in the caller's process,
// then runs finetuneTask() in a child process (runInChild: tfjs never loads on an HTTP thread).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { loadConfig } from '../config.js';
import { type RawImage, decodeImage } from '../image/io.js';
import { swapIntoPlace, tempDirFor } from '../models/import.js';
import { type Labels, type Manifest, readManifest, writeManifest, writeModelFiles } from '../models/manifest.js';
import { ModelRegistry } from '../models/registry.js';
import { pruneUnused } from '../onnx/autodiff.js';
import { GraphBuilder } from '../onnx/builder.js';
import { decodeModel, tensorToFloat32 } from '../onnx/proto.js';
import { materializeExternal } from '../ops/grad-session.js';
import { resizeForModel, toInputTensor } from '../ops/preprocess.js';
import { ProblemError } from '../util/problem.js';
import type { BackendSelection } from './backend.js';
import { runInChild } from './child.js';
import { type EpochRecord, EXPORT_TOLERANCE, mulberry32, perClassMetrics, reseedDropout, seededPermutation } from './mnist.js';
import { renderReportPng } from './report.js';
import { type Extracted, FeatureExtractor, type Geometry, cutBaseGraph } from './frozen-base.js';

export { cutBaseGraph, nchwToNhwc } from './frozen-base.js';
import { type DatasetScan, type SkippedFile, problem, scanDataset, validateModelName } from './dataset.js';

export { IMAGE_EXTENSIONS, scanDataset, validateModelName, type DatasetFile, type DatasetScan, type SkippedFile } from './dataset.js';

// ------------------------------------------------------------------------------------------------ options

export const FINETUNE_ARCHITECTURES = ['vgg19', 'inception_v3'] as const;
/** Feature layer the head sits on, per base architecture. */
export const FEATURE_LAYER: Record<string, string> = { vgg19: 'block5_pool', inception_v3: 'mixed10' };
/** Input of the top block trained by --unfreeze-top (VGG19 only). */
export const UNFREEZE_INPUT: Record<string, string> = { vgg19: 'block4_pool' };

export interface FinetuneOptions {
  /** Dataset folder: one sub-folder per class, or `train/` and `val/` (or `validation/`) each with class sub-folders. */
  data: string;
  /** Installed base model name (architecture vgg19 or inception_v3, with or without its top). */
  base: string;
  /** New model folder name (manifest name rules). */
  name: string;
  /** Default CONVSERVE_MODELS_DIR / ./models. */
  modelsDir?: string;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  /** Fraction of each class held out for validation (ignored with train/ + val/ folders). Default 0.2. */
  valSplit?: number;
  augment?: boolean;
  seed?: number;
  /** Second stage: the base's top block trainable at a low learning rate (VGG19 bases only). */
  unfreezeTop?: boolean;
  unfreezeEpochs?: number;
  unfreezeLearningRate?: number;
  /** Early stopping: epochs without a lower validation loss before a stage stops. Default 5. */
  patience?: number;
  /** Units of the head's hidden Dense layer (default 256) and its dropout rate (default 0.5). */
  units?: number;
  dropout?: number;
  onProgress?: (p: FinetuneProgress) => void;
  signal?: AbortSignal;
}

export type FinetuneProgress =
  | { type: 'scan'; classes: string[]; files: number; nonImages: number; layout: 'class-folders' | 'train-val-folders' }
  | { type: 'skipped'; file: string; reason: string }
  | {
    type: 'start'; backend: BackendSelection; base: string; architecture: string; cut: string; classes: string[];
    train: number; val: number; skipped: number; augment: boolean; cached: boolean; epochs: number; batchSize: number;
  }
  | { type: 'features'; what: string; done: number; total: number; seconds: number; imagesPerSecond: number; cached: boolean }
  | { type: 'stage'; stage: 1 | 2; description: string; epochs: number; steps: number; learningRate: number; trainable: number }
  | { type: 'batch'; stage: 1 | 2; epoch: number; epochs: number; step: number; steps: number; loss: number; acc: number }
  | { type: 'epoch'; stage: 1 | 2; epoch: number; epochs: number; loss: number; acc: number; val_loss: number; val_acc: number; lr: number; seconds: number; best: boolean }
  | { type: 'early-stop'; stage: 1 | 2; epoch: number; bestEpoch: number; patience: number }
  | { type: 'evaluate'; accuracy: number; loss: number; images: number }
  | { type: 'export'; dir: string; maxAbsDiff: number }
  | { type: 'done'; dir: string; valAccuracy: number; seconds: number };

export interface FinetuneEpoch extends EpochRecord {
  stage: 1 | 2;
  /** Epoch number within its stage. */
  stage_epoch: number;
  /** Seconds spent computing features for this epoch (augmentation only). */
  feature_seconds?: number;
}


export interface FinetuneResult {
  name: string;
  dir: string;
  base: string;
  architecture: string;
  classes: string[];
  backend: string;
  train: number;
  val: number;
  skipped: SkippedFile[];
  history: FinetuneEpoch[];
  bestEpoch: number;
  validation: { accuracy: number; loss: number; confusion: number[][]; perClass: { label: string; precision: number; recall: number; support: number }[] };
  featureExtraction: { images: number; seconds: number; imagesPerSecond: number; cached: boolean };
  onnxMaxAbsDiff: number;
  seconds: number;
}


interface BaseInfo {
  name: string;
  dir: string;
  modelPath: string;
  manifest: Manifest;
  architecture: string;
}

function resolveBase(modelsDir: string, base: string, unfreezeTop: boolean): BaseInfo {
  const registry = new ModelRegistry({ modelsDir });
  const entry = registry.get(base);
  if (!entry || entry.status === 'missing') {
    const bases = registry.list().filter((e) => e.status === 'ready' && FINETUNE_ARCHITECTURES.includes(e.architecture as never)).map((e) => e.name);
    const install = entry?.install ?? (FINETUNE_ARCHITECTURES.includes(base as never) ? [`convserve models fetch ${base}`, `convserve models synth ${base}`] : []);
    throw problem(404, 'base-not-installed', `base model '${base}' is not installed in ${registry.modelsDir}${install.length ? `; install it with: ${install.join('  or  ')}` : ''}${bases.length ? ` (installed bases: ${bases.join(', ')})` : ''}`, { install });
  }
  if (entry.status !== 'ready' || !entry.manifest || !entry.modelPath) {
    throw problem(409, 'base-not-ready', `base model '${base}' is ${entry.status}${entry.error ? `: ${entry.error}` : ''}`);
  }
  const arch = entry.manifest.architecture;
  if (!FINETUNE_ARCHITECTURES.includes(arch as never)) {
    throw problem(400, 'base-unsupported', `base model '${base}' is a ${arch} model; fine-tuning needs a ${FINETUNE_ARCHITECTURES.join(' or ')} base`);
  }
  if (unfreezeTop && !UNFREEZE_INPUT[arch]) {
    throw problem(400, 'unfreeze-unsupported', `--unfreeze-top is supported for VGG19 bases only (InceptionV3's top block, mixed9–10, is too heavy to train with TensorFlow.js here); drop --unfreeze-top to train the head on '${base}'`);
  }
  return { name: base, dir: entry.dir, modelPath: entry.modelPath, manifest: entry.manifest, architecture: arch };
}

function checkNumber(name: string, v: number, ok: boolean, rule: string): void {
  if (!ok || !Number.isFinite(v)) throw problem(400, 'bad-option', `${name} must be ${rule}, got ${v}`);
}

export interface FinetuneTaskArgs {
  data: DatasetScan;
  base: BaseInfo;
  name: string;
  modelsDir: string;
  target: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  valSplit: number;
  augment: boolean;
  seed: number;
  unfreezeTop: boolean;
  unfreezeEpochs: number;
  unfreezeLearningRate: number;
  patience: number;
  units: number;
  dropout: number;
}

/** Everything finetune() checks before starting the child (cheap, precise errors; nothing written). */
export function prepareFinetune(opts: FinetuneOptions): FinetuneTaskArgs {
  const modelsDir = resolve(opts.modelsDir ?? loadConfig().modelsDir);
  const target = validateModelName(opts.name, modelsDir);
  const epochs = opts.epochs ?? 20;
  const batchSize = opts.batchSize ?? 32;
  const learningRate = opts.learningRate ?? 1e-3;
  const valSplit = opts.valSplit ?? 0.2;
  const seed = opts.seed ?? 42;
  const unfreezeEpochs = opts.unfreezeEpochs ?? 10;
  const unfreezeLearningRate = opts.unfreezeLearningRate ?? 1e-5;
  const patience = opts.patience ?? 5;
  const units = opts.units ?? 256;
  const dropout = opts.dropout ?? 0.5;
  checkNumber('epochs', epochs, Number.isInteger(epochs) && epochs >= 1, 'an integer ≥ 1');
  checkNumber('batch size', batchSize, Number.isInteger(batchSize) && batchSize >= 1, 'an integer ≥ 1');
  checkNumber('learning rate', learningRate, learningRate > 0 && learningRate < 1, 'in (0, 1)');
  checkNumber('validation split', valSplit, valSplit > 0 && valSplit < 1, 'in (0, 1)');
  checkNumber('seed', seed, Number.isInteger(seed) && seed >= 0, 'a non-negative integer');
  checkNumber('unfreeze epochs', unfreezeEpochs, Number.isInteger(unfreezeEpochs) && unfreezeEpochs >= 1, 'an integer ≥ 1');
  checkNumber('unfreeze learning rate', unfreezeLearningRate, unfreezeLearningRate > 0 && unfreezeLearningRate < 1, 'in (0, 1)');
  checkNumber('patience', patience, Number.isInteger(patience) && patience >= 1, 'an integer ≥ 1');
  checkNumber('units', units, Number.isInteger(units) && units >= 1, 'an integer ≥ 1');
  checkNumber('dropout', dropout, dropout >= 0 && dropout < 1, 'in [0, 1)');
  if (opts.name === opts.base) throw problem(400, 'bad-name', `--name '${opts.name}' is the base model itself: choose a new name for the fine-tuned model`);
  const base = resolveBase(modelsDir, opts.base, opts.unfreezeTop ?? false);
  if (existsSync(target)) {
    let provenance: string | undefined;
    try { provenance = readManifest(target).weights.provenance; } catch { provenance = undefined; }
    if (provenance !== 'fine-tuned') {
      throw problem(409, 'name-taken', `models/${opts.name} already exists and is not a fine-tuned model (${provenance ? `provenance ${provenance}` : 'no valid manifest'}): choose another --name`);
    }
  }
  const data = scanDataset(opts.data);
  if (data.layout === 'class-folders') {
    const small = data.classes.filter((_, i) => data.files.filter((f) => f.cls === i).length < 2);
    if (small.length) throw problem(422, 'class-too-small', `class${small.length > 1 ? 'es' : ''} ${small.map((c) => `'${c}'`).join(', ')} ha${small.length > 1 ? 've' : 's'} a single image: each class needs at least 2 (one to train on, one to validate)`);
  }
  return {
    data, base, name: opts.name, modelsDir, target, epochs, batchSize, learningRate, valSplit, augment: opts.augment ?? false, seed,
    unfreezeTop: opts.unfreezeTop ?? false, unfreezeEpochs, unfreezeLearningRate, patience, units, dropout,
  };
}

type TaskOutcome = { ok: true; result: FinetuneResult } | { ok: false; problem: { status: number; slug: string; title: string; detail: string; extensions: Record<string, unknown> } };

/**
 * `convserve finetune`: validates, then trains and exports in a child process; resolves with the summary once
 * `models/NAME/` is in place. Errors a user can cause are ProblemErrors (`finetune-*` slugs); nothing is left in
 * the models directory when it fails.
 */
export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const args = prepareFinetune(opts);
  const moduleUrl = new URL('./finetune.js', import.meta.url);
  const out = await runInChild<FinetuneTaskArgs, FinetuneProgress, TaskOutcome>(moduleUrl, 'finetuneTask', args, { onProgress: opts.onProgress, signal: opts.signal });
  if (!out.ok) throw new ProblemError(out.problem.status, out.problem.slug, out.problem.title, out.problem.detail, out.problem.extensions);
  return out.result;
}

/** Child-process entry (see ./child.ts). ProblemErrors cross the process boundary as data. */
export async function finetuneTask(args: FinetuneTaskArgs, progress: (p: FinetuneProgress) => void): Promise<TaskOutcome> {
  try {
    return { ok: true, result: await runFinetune(args, progress) };
  } catch (e) {
    if (e instanceof ProblemError) return { ok: false, problem: { status: e.status, slug: e.slug, title: e.title, detail: e.detail, extensions: e.extensions } };
    throw e;
  }
}

// ------------------------------------------------------------------------------------------------ images


function toRgb(img: RawImage): RawImage {
  if (img.channels === 3) return img;
  const data = Buffer.alloc(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) data[i * 3] = data[i * 3 + 1] = data[i * 3 + 2] = img.data[i]!;
  return { data, width: img.width, height: img.height, channels: 3 };
}

/** Augmentation parameters: horizontal flip (p = 0.5), rotation ±10°, random crop keeping 85–100 % of the side. */
export const AUGMENT = { flip: 0.5, rotateDeg: 10, minCrop: 0.85 };
/** With --augment the decoded image is kept at this multiple of the input side (room for crops). */
const AUGMENT_MARGIN = 1.15;

/** A random flip / rotation / crop of `img` (already centre-cropped to a square ≥ the input size), then resized. */
async function augmentImage(img: RawImage, geom: Geometry, rand: () => number): Promise<RawImage> {
  const flip = rand() < AUGMENT.flip;
  const angle = (rand() * 2 - 1) * AUGMENT.rotateDeg;
  const keep = AUGMENT.minCrop + rand() * (1 - AUGMENT.minCrop);
  const ox = rand();
  const oy = rand();
  let s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
  if (flip) s = s.flop();
  s = s.rotate(angle, { background: { r: 128, g: 128, b: 128 } });
  const { data, info } = await s.raw().toBuffer({ resolveWithObject: true });
  // The largest centred square without the rotation's background corners, then a random window inside it.
  const th = (Math.abs(angle) * Math.PI) / 180;
  const safe = Math.floor(Math.min(img.width, img.height) / (Math.cos(th) + Math.sin(th)));
  const side = Math.max(8, Math.floor(safe * keep));
  const left = Math.floor((info.width - safe) / 2 + ox * (safe - side));
  const top = Math.floor((info.height - safe) / 2 + oy * (safe - side));
  const crop = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels as 3 } })
    .extract({ left: Math.max(0, left), top: Math.max(0, top), width: Math.min(side, info.width), height: Math.min(side, info.height) })
    .raw().toBuffer({ resolveWithObject: true });
  return resizeForModel({ data: crop.data, width: crop.info.width, height: crop.info.height, channels: 3 }, geom, 'crop');
}

// ------------------------------------------------------------------------------------------------ training (child)

/** Stratified, seeded split: per class, round(n × valSplit) (at least 1, at most n − 1) images go to validation. */
function stratifiedSplit(labels: number[], classes: number, valSplit: number, seed: number): { train: number[]; val: number[] } {
  const train: number[] = [];
  const val: number[] = [];
  for (let c = 0; c < classes; c++) {
    const members = labels.map((l, i) => (l === c ? i : -1)).filter((i) => i >= 0);
    const perm = seededPermutation(members.length, (seed * 31 + c) >>> 0);
    const nVal = Math.min(members.length - 1, Math.max(1, Math.round(members.length * valSplit)));
    perm.forEach((p, k) => (k < nVal ? val : train).push(members[p]!));
  }
  return { train: train.sort((a, b) => a - b), val: val.sort((a, b) => a - b) };
}

interface Evaluation { loss: number; accuracy: number; confusion: number[][] }

async function evaluateModel(tf: typeof import('@tensorflow/tfjs'), model: import('@tensorflow/tfjs').LayersModel, x: Extracted, y: Uint8Array, classes: number): Promise<Evaluation> {
  const n = y.length;
  const per = x.shape.reduce((a, b) => a * b, 1);
  const confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let lossSum = 0;
  let correct = 0;
  for (let s = 0; s < n; s += 64) {
    const e = Math.min(n, s + 64);
    const probs = tf.tidy(() => model.predict(tf.tensor(x.data.subarray(s * per, e * per), [e - s, ...x.shape])) as import('@tensorflow/tfjs').Tensor);
    const p = (await probs.data()) as Float32Array;
    probs.dispose();
    for (let i = 0; i < e - s; i++) {
      const truth = y[s + i]!;
      let best = 0;
      for (let c = 1; c < classes; c++) if (p[i * classes + c]! > p[i * classes + best]!) best = c;
      confusion[truth]![best]!++;
      if (best === truth) correct++;
      lossSum += -Math.log(Math.max(p[i * classes + truth]!, 1e-7));
    }
  }
  return { loss: lossSum / n, accuracy: correct / n, confusion };
}

const round = (v: number, d = 4) => Math.round(v * 10 ** d) / 10 ** d;

async function runFinetune(a: FinetuneTaskArgs, emit: (p: FinetuneProgress) => void): Promise<FinetuneResult> {
  const t0 = performance.now();
  const { selectBackend, tf } = await import('./backend.js');
  const { appendTfjsLayers, compareOnnxWithTfjs } = await import('./export-onnx.js');
  const backend = await selectBackend();
  const { data, base } = a;
  const K = data.classes.length;
  const arch = base.architecture;
  const featureLayer = FEATURE_LAYER[arch]!;
  const cut = a.unfreezeTop ? UNFREEZE_INPUT[arch]! : featureLayer;
  const geom: Geometry = { height: base.manifest.input.height, width: base.manifest.input.width, channels: 3 };
  const mode = base.manifest.preprocessing;
  if (mode !== 'caffe' && mode !== 'tf') throw problem(400, 'base-unsupported', `base '${base.name}' uses ${mode} preprocessing`);
  emit({ type: 'scan', classes: data.classes, files: data.files.length, nonImages: data.nonImages.length, layout: data.layout });

  // ---- decode every image (as /v1/classify does); unreadable ones are skipped and reported
  const limits = loadConfig();
  const skipped: SkippedFile[] = [...data.nonImages];
  const images: RawImage[] = [];
  const labels: number[] = [];
  const given: ('train' | 'val' | undefined)[] = [];
  const keepGeom: Geometry = a.augment
    ? { height: Math.round(geom.height * AUGMENT_MARGIN), width: Math.round(geom.width * AUGMENT_MARGIN), channels: 3 }
    : geom;
  for (const f of data.files) {
    try {
      // The same decode + resize pipeline as POST /v1/classify (ClassifyService.classifyUploads).
      images.push(toRgb(await decodeImage(readFileSync(f.path), limits, { resize: { width: keepGeom.width, height: keepGeom.height, mode: 'crop' } })));
      labels.push(f.cls);
      given.push(f.split);
    } catch (e) {
      const reason = e instanceof ProblemError ? e.detail : (e as Error).message;
      const s = { file: relative(data.root, f.path), reason: reason.split('\n')[0]!.slice(0, 300) };
      skipped.push(s);
      emit({ type: 'skipped', ...s });
    }
  }
  const usable = data.classes.map((_, c) => labels.filter((l) => l === c).length);
  const unusable = data.classes.filter((_, c) => usable[c] === 0);
  if (unusable.length) throw problem(422, 'empty-class', `no readable image in class ${unusable.map((c) => `'${c}'`).join(', ')} (${skipped.length} file(s) skipped: ${skipped.slice(0, 3).map((s) => `${s.file}: ${s.reason}`).join('; ')})`);

  let split: { train: number[]; val: number[] };
  if (data.layout === 'train-val-folders') {
    split = { train: given.flatMap((g, i) => (g === 'train' ? [i] : [])), val: given.flatMap((g, i) => (g === 'val' ? [i] : [])) };
    if (split.val.length === 0) throw problem(422, 'no-validation', 'no readable validation image');
    const noTrain = data.classes.filter((_, c) => !split.train.some((i) => labels[i] === c));
    if (noTrain.length) throw problem(422, 'empty-class', `no readable training image in class ${noTrain.join(', ')}`);
  } else {
    const small = data.classes.filter((_, c) => usable[c]! < 2);
    if (small.length) throw problem(422, 'class-too-small', `class ${small.map((c) => `'${c}'`).join(', ')} has fewer than 2 readable images (one to train on, one to validate)`);
    split = stratifiedSplit(labels, K, a.valSplit, a.seed);
  }
  const yTrain = Uint8Array.from(split.train.map((i) => labels[i]!));
  const yVal = Uint8Array.from(split.val.map((i) => labels[i]!));
  const cached = !a.augment;
  emit({
    type: 'start', backend, base: base.name, architecture: arch, cut, classes: data.classes, train: split.train.length, val: split.val.length,
    skipped: skipped.length, augment: a.augment, cached, epochs: a.epochs, batchSize: a.batchSize,
  });

  // ---- the frozen base on ORT, cut at the feature layer (and the top block's input for stage 2)
  const graphOutputs = a.unfreezeTop ? [featureLayer, cut] : [featureLayer];
  const baseGraph = cutBaseGraph(base.modelPath, graphOutputs);
  const extractor = await FeatureExtractor.create(baseGraph, featureLayer, geom, mode);
  const fetches = a.unfreezeTop ? ['pooled', cut] : ['pooled'];
  const centre = (set: number[]) => async (i: number) => (a.augment ? resizeForModel(images[set[i]!]!, geom, 'crop') : images[set[i]!]!);
  const feature = { images: 0, seconds: 0 };
  const timed = async (what: string, set: number[], image: (i: number) => Promise<RawImage>, f: string[]) => {
    const ts = performance.now();
    const r = await extractor.run(set.length, image, f, (done) => {
      const sec = (performance.now() - ts) / 1000;
      emit({ type: 'features', what, done, total: set.length, seconds: sec, imagesPerSecond: done / Math.max(sec, 1e-9), cached });
    });
    const sec = (performance.now() - ts) / 1000;
    feature.images += set.length;
    feature.seconds += sec;
    return { r, sec };
  };
  const valFeat = (await timed('validation', split.val, centre(split.val), fetches)).r;
  let trainFeat = cached ? (await timed('train', split.train, centre(split.train), fetches)).r : undefined;
  const firstExtraction = { images: feature.images, seconds: feature.seconds };
  const augRand = mulberry32((a.seed ^ 0x2545f491) >>> 0);
  const augmentedTrain = async (epoch: number, f: string[]) => {
    const { r, sec } = await timed(`train (augmented, epoch ${epoch})`, split.train, (i) => augmentImage(images[split.train[i]!]!, geom, augRand), f);
    return { r, sec };
  };

  // ---- the head: GAP → Dense(relu) → Dropout → Dense(softmax); trained on pooled vectors, exported on the map
  const C = valFeat.pooled!.shape[0]!;
  let seedK = 0;
  const init = () => tf.initializers.glorotUniform({ seed: a.seed * 97 + ++seedK });
  const gap = tf.layers.globalAveragePooling2d({ name: 'head_gap' });
  const dense = tf.layers.dense({ name: 'head_dense', units: a.units, activation: 'relu', kernelInitializer: init() });
  const drop = tf.layers.dropout({ name: 'head_dropout', rate: a.dropout, seed: 1 });
  const predictions = tf.layers.dense({ name: 'head_predictions', units: K, activation: 'softmax', kernelInitializer: init() });
  const vin = tf.input({ shape: [C], name: 'pooled' });
  const headOnPooled = tf.model({ inputs: vin, outputs: predictions.apply(drop.apply(dense.apply(vin))) as import('@tensorflow/tfjs').SymbolicTensor, name: 'head' });
  const sin = tf.input({ shape: [null, null, C], name: 'features' });
  const headOnMap = tf.model({ inputs: sin, outputs: predictions.apply(drop.apply(dense.apply(gap.apply(sin)))) as import('@tensorflow/tfjs').SymbolicTensor, name: 'head_on_map' });

  const history: FinetuneEpoch[] = [];
  const oneHot = (y: Uint8Array) => tf.tidy(() => tf.oneHot(tf.tensor1d(y, 'int32'), K).toFloat());

  /** One stage of Keras-style fit: Adam, early stopping on val_loss (patience), best weights restored. */
  const fitStage = async (stage: 1 | 2, model: import('@tensorflow/tfjs').LayersModel, epochs: number, lr: number, input: string,
    trainable: number, description: string): Promise<{ bestEpoch: number }> => {
    const steps = Math.ceil(split.train.length / a.batchSize);
    emit({ type: 'stage', stage, description, epochs, steps, learningRate: lr, trainable });
    model.compile({ optimizer: tf.train.adam(lr), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    let best: { epoch: number; valLoss: number; weights: import('@tensorflow/tfjs').Tensor[] } | undefined;
    const ys = oneHot(yTrain);
    try {
      for (let epoch = 1; epoch <= epochs; epoch++) {
        const te = performance.now();
        let featureSeconds: number | undefined;
        if (!cached) {
          const aug = await augmentedTrain(history.length + 1, [input]);
          trainFeat = aug.r;
          featureSeconds = aug.sec;
        }
        const xt = trainFeat![input]!;
        const order = seededPermutation(split.train.length, (a.seed * 1000 + stage * 100_000 + epoch) >>> 0);
        const per = xt.shape.reduce((p, q) => p * q, 1);
        const xo = new Float32Array(order.length * per);
        order.forEach((j, i) => xo.set(xt.data.subarray(j * per, (j + 1) * per), i * per));
        const xs = tf.tensor(xo, [order.length, ...xt.shape]);
        const yo = tf.tidy(() => tf.gather(ys, tf.tensor1d(Int32Array.from(order), 'int32')));
        let lossSum = 0;
        let accSum = 0;
        let seen = 0;
        try {
          await model.fit(xs, yo, {
            epochs: 1, batchSize: a.batchSize, shuffle: false, verbose: 0,
            callbacks: {
              onBatchBegin: async (batch) => { reseedDropout(model, a.seed * 100_003 + stage * 7_919 + epoch * 1009 + batch + 1); },
              onBatchEnd: async (batch, logs) => {
                const size = Math.min(a.batchSize, order.length - batch * a.batchSize);
                lossSum += (logs?.loss ?? 0) * size;
                accSum += (logs?.acc ?? logs?.accuracy ?? 0) * size;
                seen += size;
                emit({ type: 'batch', stage, epoch, epochs, step: batch + 1, steps, loss: lossSum / seen, acc: accSum / seen });
              },
            },
          });
        } finally {
          xs.dispose();
          yo.dispose();
        }
        const v = await evaluateModel(tf, model, valFeat[input]!, yVal, K);
        const improved = !best || v.loss < best.valLoss;
        if (improved) {
          best?.weights.forEach((w) => w.dispose());
          best = { epoch, valLoss: v.loss, weights: model.getWeights().map((w) => w.clone()) };
        }
        const rec: FinetuneEpoch = {
          epoch: history.length + 1, stage, stage_epoch: epoch, loss: lossSum / Math.max(seen, 1), acc: accSum / Math.max(seen, 1),
          val_loss: v.loss, val_acc: v.accuracy, lr, seconds: (performance.now() - te) / 1000,
          ...(featureSeconds !== undefined ? { feature_seconds: featureSeconds } : {}),
        };
        history.push(rec);
        emit({ type: 'epoch', stage, epoch, epochs, loss: rec.loss, acc: rec.acc, val_loss: rec.val_loss, val_acc: rec.val_acc, lr, seconds: rec.seconds, best: improved });
        if (epoch - best!.epoch >= a.patience && epoch < epochs) {
          emit({ type: 'early-stop', stage, epoch, bestEpoch: best!.epoch, patience: a.patience });
          break;
        }
      }
      model.setWeights(best!.weights);
      return { bestEpoch: history.length - (history.filter((h) => h.stage === stage).length - best!.epoch) };
    } finally {
      ys.dispose();
      best?.weights.forEach((w) => w.dispose());
    }
  };

  const stage1 = await fitStage(1, headOnPooled, a.epochs, a.learningRate, 'pooled', headOnPooled.countParams(),
    `head on the frozen ${arch} (${featureLayer} → global average pooling → dense ${a.units} → dropout ${a.dropout} → ${K}-way softmax)`);
  let bestEpoch = stage1.bestEpoch;
  let finalModel = headOnPooled;
  let exportModel: import('@tensorflow/tfjs').LayersModel = headOnMap;
  let exportLayers: import('@tensorflow/tfjs').layers.Layer[] = [gap, dense, drop, predictions];
  let evalInput = 'pooled';
  if (a.unfreezeTop) {
    // Stage 2: block5_conv1…4 + block5_pool (initialised from the base) + the trained head, on cached block4_pool maps.
    const blockLayers = topBlockLayers(tf, readBaseTensors(base.modelPath), arch);
    const min = tf.input({ shape: valFeat[cut]!.shape, name: cut });
    let x: import('@tensorflow/tfjs').SymbolicTensor = min;
    for (const l of blockLayers.layers) x = l.apply(x) as import('@tensorflow/tfjs').SymbolicTensor;
    const out = predictions.apply(drop.apply(dense.apply(gap.apply(x)))) as import('@tensorflow/tfjs').SymbolicTensor;
    const full = tf.model({ inputs: min, outputs: out, name: 'top_block_and_head' });
    blockLayers.init();
    const stage2 = await fitStage(2, full, a.unfreezeEpochs, a.unfreezeLearningRate, cut, full.countParams(),
      `top block ${blockLayers.layers.map((l) => l.name).join(', ')} + head, learning rate ${a.unfreezeLearningRate}`);
    bestEpoch = stage2.bestEpoch;
    finalModel = full;
    exportModel = full;
    exportLayers = [...blockLayers.layers, gap, dense, drop, predictions];
    evalInput = cut;
  }

  // ---- final evaluation (best weights) on the validation images
  const ev = await evaluateModel(tf, finalModel, valFeat[evalInput]!, yVal, K);
  emit({ type: 'evaluate', accuracy: ev.accuracy, loss: ev.loss, images: yVal.length });

  // ---- export: cut base + head in one graph, written to a temp folder, checked against ORT features → tfjs
  const g = GraphBuilder.fromGraph(cutBaseGraph(base.modelPath, [cut]), `${arch}_finetuned`);
  g.outputs.length = 0;
  const res = appendTfjsLayers(g, exportLayers, cut, 'NCHW');
  g.node('Identity', [res.output], {}, { outputs: ['probabilities'] });
  g.output('probabilities', 'float32', ['N', K]);
  const composed = GraphBuilder.fromGraph(pruneUnused(g.toGraph()), g.name);
  const metadata = { architecture: arch, base: base.name, provenance: 'fine-tuned', preprocessing: mode, classes: String(K) };
  const serialized = composed.serialize({ externalDataFile: 'model.weights.bin', externalThreshold: 1024, producer: 'convserve finetune', metadata });

  const labelsList: Labels = data.classes.map((c) => ({ label: c }));
  const labelsJson = JSON.stringify(labelsList, null, 1) + '\n';
  const perClass = perClassMetrics(ev.confusion, data.classes);
  const best = history[bestEpoch - 1]!;
  const epochSeconds = history.map((h) => h.seconds);
  const extractionRate = firstExtraction.images / Math.max(firstExtraction.seconds, 1e-9);
  const featureInfo = {
    images: feature.images, seconds: round(feature.seconds, 2), images_per_second: round(feature.images / Math.max(feature.seconds, 1e-9), 1),
    cached,
    note: cached
      ? 'features of the frozen base computed once (onnxruntime) and reused by every epoch'
      : '--augment: every epoch sees newly augmented training images, so their features cannot be cached and are recomputed each epoch (validation features are cached)',
  };
  const training = {
    framework: `tfjs ${tf.version.tfjs}`, backend: backend.backend, base: base.name, base_architecture: arch,
    base_provenance: base.manifest.weights.provenance, base_width: base.manifest.keras?.width ?? 1, cut_layer: cut, feature_layer: featureLayer,
    head: { global_average_pooling: true, dense_units: a.units, dropout: a.dropout, activation: 'softmax', classes: K },
    epochs: a.epochs, epochs_run: history.filter((h) => h.stage === 1).length, best_epoch: bestEpoch, batch_size: a.batchSize,
    optimizer: 'adam', learning_rate: a.learningRate, loss: 'categorical_crossentropy',
    early_stopping: { monitor: 'val_loss', patience: a.patience, restore_best_weights: true },
    unfreeze_top: a.unfreezeTop
      ? { layers: exportLayers.filter((l) => l.getClassName() === 'Conv2D' || l.name === 'block5_pool').map((l) => l.name), epochs: a.unfreezeEpochs, epochs_run: history.filter((h) => h.stage === 2).length, learning_rate: a.unfreezeLearningRate }
      : false,
    augmentation: a.augment ? { horizontal_flip: AUGMENT.flip, rotation_deg: AUGMENT.rotateDeg, crop_keep: [AUGMENT.minCrop, 1] } : false,
    features_cached: cached,
    data: relative(process.cwd(), data.root) || '.', layout: data.layout, val_split: data.layout === 'class-folders' ? a.valSplit : null,
    train_images: split.train.length, validation_images: split.val.length, skipped_files: skipped.length,
    seed: a.seed, trainable_parameters: finalModel.countParams(),
    input_resize: 'crop (short side to the input size, centre), as POST /v1/classify',
    feature_extraction_images_per_second: round(extractionRate, 1),
    seconds_per_epoch: round(epochSeconds.reduce((p, q) => p + q, 0) / epochSeconds.length, 3),
  };

  const tmp = tempDirFor(a.modelsDir, a.name);
  let parity: { maxAbsDiff: number; samples: number };
  try {
    mkdirSync(tmp, { recursive: true });
    const files: Record<string, Uint8Array | string> = { 'model.onnx': serialized.model, 'labels.json': labelsJson };
    if (serialized.externalData) files['model.weights.bin'] = serialized.externalData;
    const { sha256: hashes, sizes } = writeModelFiles(tmp, files);

    // Parity: the written model (images in) vs the ORT base features → tfjs head (best weights), ≤ 1e-5.
    const k = Math.min(16, split.val.length);
    const per = 3 * geom.height * geom.width;
    const imgs = new Float32Array(k * per);
    for (let i = 0; i < k; i++) toInputTensor(await centre(split.val)(i), mode, imgs, i * per);
    const maps = await extractor.run(k, centre(split.val), [cut]);
    const mapT = tf.tensor(maps[cut]!.data, [k, ...maps[cut]!.shape]);
    try {
      parity = await compareOnnxWithTfjs(join(tmp, 'model.onnx'), exportModel, mapT, { onnxInput: new ort.Tensor('float32', imgs, [k, 3, geom.height, geom.width]) });
    } finally {
      mapT.dispose();
    }
    if (!(parity.maxAbsDiff <= EXPORT_TOLERANCE)) {
      throw problem(500, 'export-mismatch', `the exported ONNX model differs from the tfjs model by ${parity.maxAbsDiff} (> ${EXPORT_TOLERANCE}) on ${k} validation images; nothing was written`);
    }

    const metrics = {
      val_accuracy: ev.accuracy, val_loss: ev.loss, validation_images: yVal.length,
      train_accuracy: best.acc, train_loss: best.loss, best_epoch: bestEpoch,
      onnx_max_abs_diff: parity.maxAbsDiff,
      per_class: perClass,
    };
    const report = {
      model: a.name, base: base.name, architecture: arch, classes: data.classes, seed: a.seed, backend: backend.backend,
      best_epoch: bestEpoch, history,
      validation: { accuracy: ev.accuracy, loss: ev.loss, images: yVal.length, per_class: perClass, confusion: ev.confusion },
      data: {
        root: data.root, layout: data.layout, train: split.train.length, val: split.val.length,
        per_class: data.classes.map((c, i) => ({ label: c, train: split.train.filter((j) => labels[j] === i).length, val: split.val.filter((j) => labels[j] === i).length })),
        skipped,
      },
      feature_extraction: featureInfo,
      onnx_max_abs_diff: parity.maxAbsDiff,
      training,
    };
    const png = await renderReportPng(history, ev.confusion, bestEpoch, ev.accuracy, {
      title: `${a.name} — ${base.name} fine-tuned on ${K} classes, best epoch ${bestEpoch}, validation accuracy ${(ev.accuracy * 100).toFixed(2)} %`,
      labels: data.classes, evalSet: 'validation',
    });
    writeFileSync(join(tmp, 'report.json'), JSON.stringify(report, null, 2) + '\n');
    writeFileSync(join(tmp, 'report.png'), png);
    const manifest: Manifest = {
      schema: 1, name: a.name, architecture: arch, task: 'classification',
      input: { ...base.manifest.input, name: 'input' },
      output: { name: 'probabilities', classes: K },
      preprocessing: mode,
      weights: {
        provenance: 'fine-tuned',
        source: `fine-tuned from '${base.name}' (${base.manifest.weights.provenance}) on ${basename(data.root)}: ${K} classes, ${split.train.length} training / ${split.val.length} validation images`,
        seed: a.seed,
        base: base.name,
      },
      files: { model: 'model.onnx', ...(serialized.externalData ? { weights: 'model.weights.bin' } : {}), labels: 'labels.json', sha256: hashes, sizes },
      created_at: new Date().toISOString(),
      training,
      metrics,
    };
    writeManifest(tmp, manifest);
    swapIntoPlace(tmp, a.target);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  } finally {
    await extractor.release();
  }
  emit({ type: 'export', dir: a.target, maxAbsDiff: parity.maxAbsDiff });
  const seconds = (performance.now() - t0) / 1000;
  emit({ type: 'done', dir: a.target, valAccuracy: ev.accuracy, seconds });
  headOnPooled.dispose();
  return {
    name: a.name, dir: a.target, base: base.name, architecture: arch, classes: data.classes, backend: backend.backend,
    train: split.train.length, val: split.val.length, skipped, history, bestEpoch,
    validation: { accuracy: ev.accuracy, loss: ev.loss, confusion: ev.confusion, perClass },
    featureExtraction: { images: firstExtraction.images, seconds: firstExtraction.seconds, imagesPerSecond: extractionRate, cached },
    onnxMaxAbsDiff: parity.maxAbsDiff, seconds,
  };
}

/** Float initializers of the base (external data resolved), by name — only what --unfreeze-top needs. */
function readBaseTensors(modelPath: string): Map<string, { dims: number[]; data: Float32Array }> {
  const model = decodeModel(readFileSync(modelPath));
  const wanted = (model.graph?.initializer ?? []).filter((t) => /^block5_conv\d+\/(kernel|bias)$/.test(t.name ?? ''));
  materializeExternal(wanted, dirname(modelPath));
  return new Map(wanted.map((t) => [t.name!, { dims: (t.dims ?? []).map(Number), data: tensorToFloat32(t) }]));
}

/** VGG19 block 5 as tfjs layers (3×3 same-padded ReLU convs + 2×2 max pool), weights copied from the base (OIHW → HWIO). */
function topBlockLayers(tf: typeof import('@tensorflow/tfjs'), tensors: Map<string, { dims: number[]; data: Float32Array }>, arch: string) {
  if (arch !== 'vgg19') throw problem(400, 'unfreeze-unsupported', '--unfreeze-top is supported for VGG19 bases only');
  const convs: { name: string; kernel: { dims: number[]; data: Float32Array }; bias: { dims: number[]; data: Float32Array } }[] = [];
  for (let i = 1; tensors.has(`block5_conv${i}/kernel`); i++) {
    convs.push({ name: `block5_conv${i}`, kernel: tensors.get(`block5_conv${i}/kernel`)!, bias: tensors.get(`block5_conv${i}/bias`)! });
  }
  if (convs.length === 0) throw problem(422, 'base-layer-missing', 'the base has no block5_conv weights to unfreeze');
  const layers = [
    ...convs.map((c) => tf.layers.conv2d({ name: c.name, filters: c.kernel.dims[0]!, kernelSize: [c.kernel.dims[2]!, c.kernel.dims[3]!], padding: 'same', activation: 'relu' })),
    tf.layers.maxPooling2d({ name: 'block5_pool', poolSize: 2, strides: 2, padding: 'valid' }),
  ];
  return {
    layers,
    /** Call after the layers are built (applied): copies the base's weights in. */
    init: () => convs.forEach((c, i) => {
      const [co, ci, kh, kw] = c.kernel.dims as [number, number, number, number];
      const hwio = tf.tidy(() => tf.transpose(tf.tensor4d(c.kernel.data, [co, ci, kh, kw]), [2, 3, 1, 0]));
      const b = tf.tensor1d(c.bias.data);
      layers[i]!.setWeights([hwio, b]);
      hwio.dispose();
      b.dispose();
    }),
  };
}

