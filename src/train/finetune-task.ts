// The training child of `convserve finetune` (started by ./finetune.ts through ./child.ts): decode the images,
// features of the frozen base on ONNX Runtime, stage 1 (the head on the feature layer, scheduled in optimizer steps:
// ./schedule.ts), optional stage 2 (the base's top block + the head on cached top-block inputs), a verdict on the
// validation result (./judge.ts), export. The framework that trains comes from ./finetune-framework.ts (ONNX
// Runtime by default; tfjs only loads with --backend tfjs).
import { ProblemError } from '../util/problem.js';
import { AUGMENT_MARGIN } from './augment.js';
import type { FinetuneBase } from './base.js';
import { type DatasetScan, type SkippedFile, problem } from './dataset.js';
import { BaseFeatures, POOLED } from './features.js';
import { type EpochSource, fit, gather } from './fit.js';
import type { Geometry } from './frozen-base.js';
import { decodeDataset, labelsOf, splitDataset } from './finetune-data.js';
import { exportFinetuned } from './finetune-export.js';
import type { FinetuneFramework, StageModel } from './finetune-framework.js';
import { extractionRate, finetuneRecords } from './finetune-records.js';
import { validationWarnings } from './judge.js';
import { type ClassMetrics, perClassMetrics } from './metrics.js';
import type { FinetuneSettings } from './options.js';
import type { FinetuneEpoch, FinetuneProgress } from './progress.js';
import { headPlan } from './schedule.js';
import type { LabelledSet } from './trainable.js';

/** What the caller validated and hands to the child (structured-clone data only). */
export interface FinetuneTaskArgs {
  data: DatasetScan;
  base: FinetuneBase;
  name: string;
  modelsDir: string;
  target: string;
  settings: FinetuneSettings;
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
  validation: { accuracy: number; loss: number; confusion: number[][]; perClass: ClassMetrics[] };
  featureExtraction: { images: number; seconds: number; imagesPerSecond: number; cached: boolean };
  onnxMaxAbsDiff: number;
  /** Loud warnings about the validation result (near chance, too few images to judge). */
  warnings: string[];
  seconds: number;
}

export type TaskOutcome = { ok: true; result: FinetuneResult } | { ok: false; problem: { status: number; slug: string; title: string; detail: string; extensions: Record<string, unknown> } };

/** Child-process entry (see ./child.ts). ProblemErrors cross the process boundary as data. */
export async function finetuneTask(args: FinetuneTaskArgs, progress: (p: FinetuneProgress) => void): Promise<TaskOutcome> {
  try {
    return { ok: true, result: await runFinetune(args, progress) };
  } catch (e) {
    if (e instanceof ProblemError) return { ok: false, problem: { status: e.status, slug: e.slug, title: e.title, detail: e.detail, extensions: e.extensions } };
    throw e;
  }
}

/** ONNX Runtime by default; tfjs (loaded only then) with --backend tfjs. */
async function frameworkFor(s: FinetuneSettings): Promise<FinetuneFramework> {
  if (s.backend === 'tfjs') return (await import('./finetune-tfjs.js')).tfjsFramework();
  return (await import('./finetune-ort.js')).ortFramework();
}

async function runFinetune(a: FinetuneTaskArgs, emit: (p: FinetuneProgress) => void): Promise<FinetuneResult> {
  const t0 = performance.now();
  const { data, base, settings: s } = a;
  const K = data.classes.length;
  const arch = base.architecture;
  const chain = base.topBlock?.chain;
  if (s.unfreezeTop && !chain) throw problem(400, 'unfreeze-unsupported', `--unfreeze-top: the top block of '${base.name}' cannot be rebuilt for training`);
  const cut = s.unfreezeTop ? base.topBlock!.input : base.featureLayer;
  const geom: Geometry = { height: base.manifest.input.height, width: base.manifest.input.width, channels: 3 };
  const mode = base.manifest.preprocessing;
  const framework = await frameworkFor(s);
  emit({ type: 'scan', classes: data.classes, files: data.files.length, nonImages: data.nonImages.length, layout: data.layout });

  // ---- every image decoded as /v1/classify does (kept larger with --augment: room for crops), then split
  const keep: Geometry = s.augment ? { height: Math.round(geom.height * AUGMENT_MARGIN), width: Math.round(geom.width * AUGMENT_MARGIN), channels: 3 } : geom;
  const decoded = await decodeDataset(data, keep, (skip) => emit({ type: 'skipped', ...skip }));
  const split = splitDataset(data, decoded, s.valSplit, s.seed);
  const yTrain = labelsOf(decoded.labels, split.train);
  const yVal = labelsOf(decoded.labels, split.val);
  const plan = headPlan(split.train.length, s);
  emit({
    type: 'start', backend: framework.info, base: base.name, architecture: arch, cut, classes: data.classes, train: split.train.length, val: split.val.length,
    skipped: decoded.skipped.length, augment: s.augment, cached: !s.augment, epochs: plan.epochs, batchSize: s.batchSize,
  });

  // ---- the frozen base's features (pooled; and the top block's input for stage 2)
  const features = await BaseFeatures.open(base, s.unfreezeTop ? [cut] : [], decoded.images, geom, mode, framework.layout, s.augment, s.seed, emit);
  const stages: StageModel[] = [];
  try {
    const fetches = s.unfreezeTop ? [POOLED, cut] : [POOLED];
    const valFeat = (await features.of('validation', split.val, fetches)).values;
    const trainFeat = features.cached ? (await features.of('train', split.train, fetches)).values : undefined;
    const firstExtraction = { ...features.stats };
    const history: FinetuneEpoch[] = [];

    /** One stage: early stopping on val_loss, best weights kept; returns the best (global) epoch. */
    const runStage = async (stage: 1 | 2, model: StageModel, lr: number, input: string, description: string): Promise<number> => {
      const steps = plan.stepsPerEpoch;
      const epochs = stage === 1 ? plan.epochs : s.unfreezeEpochs;
      const schedule = stage === 1
        ? `${plan.totalSteps} steps (floor ${plan.minSteps}): warm-up ${plan.warmupSteps} steps, then cosine; early stopping after ${plan.patienceSteps} steps without a lower validation loss, never before step ${plan.minSteps}`
        : `${epochs} epochs at a constant rate; early stopping after ${s.patience} epochs without a lower validation loss`;
      emit({ type: 'stage', stage, description, epochs, steps, learningRate: lr, trainable: model.trainable.parameters, optimizer: 'Adam', schedule });
      const offset = history.length;
      let featureSeconds: number | undefined;
      const source: EpochSource = {
        size: split.train.length,
        epoch: async (epoch, order) => {
          let x = trainFeat?.[input];
          if (!features.cached) {
            const augmented = await features.augmented(offset + epoch, split.train, input);
            x = augmented.values[input];
            featureSeconds = augmented.seconds;
          }
          return gather({ x: x!, y: yTrain }, order);
        },
      };
      const val: LabelledSet = { x: valFeat[input]!, y: yVal };
      const r = await fit(model.trainable, source, val, {
        epochs, batchSize: s.batchSize, learningRate: () => lr, monitor: 'val_loss', evalBatch: 64,
        ...(stage === 1 ? { learningRateAt: plan.learningRateAt, patienceSteps: plan.patienceSteps, minSteps: plan.minSteps } : { patience: s.patience }),
        orderSeed: (epoch) => (s.seed * 1000 + stage * 100_000 + epoch) >>> 0,
        dropoutSeed: (epoch, batch) => s.seed * 100_003 + stage * 7_919 + epoch * 1009 + batch + 1,
        onBatch: (p) => emit({ type: 'batch', stage, epoch: p.epoch, epochs, step: p.step, steps: p.steps, loss: p.loss, acc: p.acc }),
        onEpoch: (rec, best) => {
          history.push({
            epoch: offset + rec.epoch, stage, stage_epoch: rec.epoch, loss: rec.loss, acc: rec.acc, val_loss: rec.val_loss, val_acc: rec.val_acc, lr: rec.lr,
            seconds: rec.seconds, ...(featureSeconds !== undefined ? { feature_seconds: featureSeconds } : {}),
          });
          emit({ type: 'epoch', stage, epoch: rec.epoch, epochs, loss: rec.loss, acc: rec.acc, val_loss: rec.val_loss, val_acc: rec.val_acc, lr: rec.lr, seconds: rec.seconds, best });
        },
        onEarlyStop: (epoch, bestEpoch) => emit({ type: 'early-stop', stage, epoch, bestEpoch, patience: stage === 1 ? plan.patienceSteps : s.patience, unit: stage === 1 ? 'steps' : 'epochs' }),
      });
      return offset + r.bestEpoch;
    };

    const fromMap = features.featureRank === 4;
    const head = await framework.head(valFeat[POOLED]!.shape[0]!, K, fromMap, s);
    stages.push(head);
    let final = head;
    const headDescription = `${base.featureLayer}${fromMap ? ' → global average pooling' : ''} → dense ${s.units} → dropout ${s.dropout} → ${K}-way softmax`;
    let bestEpoch = await runStage(1, head, s.learningRate, POOLED, `head on the frozen ${arch} (${headDescription})`);
    let evalInput = POOLED;
    if (s.unfreezeTop && chain) {
      // Stage 2: the top block (initialised from the base) + the trained head, on cached maps of the block's input.
      final = await framework.topAndHead(base, valFeat[cut]!.shape, K, s, head);
      stages.push(final);
      bestEpoch = await runStage(2, final, s.unfreezeLearningRate, cut,
        `top block ${base.topBlock!.layers.join(', ')} + head, learning rate ${s.unfreezeLearningRate}`);
      evalInput = cut;
    }

    // ---- final evaluation (best weights) on the validation images, the verdict, then the export
    const validation = await final.trainable.evaluate({ x: valFeat[evalInput]!, y: yVal }, 64);
    emit({ type: 'evaluate', accuracy: validation.accuracy, loss: validation.loss, images: yVal.length });
    const warnings = validationWarnings(validation.accuracy, K, data.classes.map((_, c) => yVal.filter((y) => y === c).length));
    for (const message of warnings) emit({ type: 'warning', message });
    const run = {
      name: a.name, settings: s, base, data, split, labels: decoded.labels, skipped: decoded.skipped, framework: framework.info.framework,
      backend: framework.info.backend, cut, history, bestEpoch, validation, trainableParameters: final.trainable.parameters, extraction: features.stats, firstExtraction,
      plan, warnings,
    };
    const maxAbsDiff = await exportFinetuned({
      base, cut, model: final.exportable(), classes: data.classes, preprocessing: mode, checkImages: split.val, features,
      modelsDir: a.modelsDir, name: a.name, target: a.target,
    }, (diff) => finetuneRecords(run, diff));
    emit({ type: 'export', dir: a.target, maxAbsDiff });
    const seconds = (performance.now() - t0) / 1000;
    emit({ type: 'done', dir: a.target, valAccuracy: validation.accuracy, seconds });
    return {
      name: a.name, dir: a.target, base: base.name, architecture: arch, classes: data.classes, backend: framework.info.backend,
      train: split.train.length, val: split.val.length, skipped: decoded.skipped, history, bestEpoch,
      validation: { accuracy: validation.accuracy, loss: validation.loss, confusion: validation.confusion, perClass: perClassMetrics(validation.confusion, data.classes) },
      featureExtraction: { images: firstExtraction.images, seconds: firstExtraction.seconds, imagesPerSecond: extractionRate(firstExtraction), cached: features.cached },
      onnxMaxAbsDiff: maxAbsDiff, warnings, seconds,
    };
  } finally {
    for (const m of stages) await m.release();
    await features.release();
  }
}
