// What a fine-tune writes about itself: the `training` record (manifest and report.json), report.json, the
// manifest's fields and the report.png headline — plain data built from the run's results.
import { basename, relative } from 'node:path';
import type { Manifest } from '../models/manifest.js';
import { AUGMENT } from './augment.js';
import type { FinetuneBase } from './base.js';
import type { DatasetScan, SkippedFile } from './dataset.js';
import type { ExtractionStats } from './features.js';
import type { Split } from './finetune-data.js';
import { type ClassMetrics, type Evaluation, perClassMetrics, round } from './metrics.js';
import type { FinetuneSettings } from './options.js';
import type { FinetuneEpoch } from './progress.js';
import type { StepPlan } from './schedule.js';

export interface FinetuneRun {
  name: string;
  settings: FinetuneSettings;
  base: FinetuneBase;
  data: DatasetScan;
  split: Split;
  labels: number[];
  skipped: SkippedFile[];
  /** tfjs version and the backend that trained. */
  framework: string;
  backend: string;
  cut: string;
  history: FinetuneEpoch[];
  bestEpoch: number;
  /** Validation scores of the exported (best) weights. */
  validation: Evaluation;
  trainableParameters: number;
  /** All feature extraction, and the first (validation + cached training) alone. */
  extraction: ExtractionStats;
  firstExtraction: ExtractionStats;
  /** Stage 1's schedule in steps. */
  plan: StepPlan;
  /** The verdict on the validation result (./judge.ts). */
  warnings: string[];
}

export interface FinetuneRecords {
  history: FinetuneEpoch[];
  confusion: number[][];
  bestEpoch: number;
  accuracy: number;
  title: string;
  report: Record<string, unknown>;
  manifest: Omit<Manifest, 'files'>;
  perClass: ClassMetrics[];
  warnings: string[];
}

/** Images per second of the first extraction (what the CLI prints and `training` records). */
export const extractionRate = (s: ExtractionStats) => s.images / Math.max(s.seconds, 1e-9);

function trainingRecord(r: FinetuneRun): Record<string, unknown> {
  const a = r.settings;
  const K = r.data.classes.length;
  const epochSeconds = r.history.map((h) => h.seconds);
  return {
    framework: r.framework, backend: r.backend, base: r.base.name, base_architecture: r.base.architecture,
    base_provenance: r.base.manifest.weights.provenance, base_width: r.base.manifest.keras?.width ?? 1, cut_layer: r.cut, feature_layer: r.base.featureLayer,
    head: { global_average_pooling: true, dense_units: a.units, dropout: a.dropout, activation: 'softmax', classes: K },
    epochs: a.epochs, epochs_run: r.history.filter((h) => h.stage === 1).length, best_epoch: r.bestEpoch, batch_size: a.batchSize,
    optimizer: 'adam', learning_rate: a.learningRate, loss: 'categorical_crossentropy',
    schedule: {
      unit: 'optimizer steps', steps_per_epoch: r.plan.stepsPerEpoch, planned_steps: r.plan.totalSteps, min_steps: r.plan.minSteps,
      warmup_steps: r.plan.warmupSteps, decay: 'cosine to 1 % of the learning rate', epochs_planned: r.plan.epochs,
    },
    early_stopping: { monitor: 'val_loss', patience: a.patience, patience_steps: r.plan.patienceSteps, not_before_step: r.plan.minSteps, restore_best_weights: true },
    unfreeze_top: a.unfreezeTop
      ? { layers: [...(r.base.topBlock?.layers ?? [])], epochs: a.unfreezeEpochs, epochs_run: r.history.filter((h) => h.stage === 2).length, learning_rate: a.unfreezeLearningRate }
      : false,
    augmentation: a.augment ? { horizontal_flip: AUGMENT.flip, rotation_deg: AUGMENT.rotateDeg, crop_keep: [AUGMENT.minCrop, 1] } : false,
    features_cached: !a.augment,
    data: relative(process.cwd(), r.data.root) || '.', layout: r.data.layout, val_split: r.data.layout === 'class-folders' ? a.valSplit : null,
    train_images: r.split.train.length, validation_images: r.split.val.length, skipped_files: r.skipped.length,
    seed: a.seed, trainable_parameters: r.trainableParameters,
    input_resize: 'crop (short side to the input size, centre), as POST /v1/classify',
    feature_extraction_images_per_second: round(extractionRate(r.firstExtraction), 1),
    seconds_per_epoch: round(epochSeconds.reduce((p, q) => p + q, 0) / epochSeconds.length, 3),
    warnings: r.warnings,
  };
}

export function finetuneRecords(r: FinetuneRun, maxAbsDiff: number): FinetuneRecords {
  const a = r.settings;
  const { classes } = r.data;
  const K = classes.length;
  const ev = r.validation;
  const perClass = perClassMetrics(ev.confusion, classes);
  const best = r.history[r.bestEpoch - 1]!;
  const cached = !a.augment;
  const training = trainingRecord(r);
  const report = {
    model: r.name, base: r.base.name, architecture: r.base.architecture, classes, seed: a.seed, backend: r.backend,
    best_epoch: r.bestEpoch, history: r.history, warnings: r.warnings,
    validation: { accuracy: ev.accuracy, loss: ev.loss, images: r.split.val.length, per_class: perClass, confusion: ev.confusion },
    data: {
      root: r.data.root, layout: r.data.layout, train: r.split.train.length, val: r.split.val.length,
      per_class: classes.map((c, i) => ({ label: c, train: r.split.train.filter((j) => r.labels[j] === i).length, val: r.split.val.filter((j) => r.labels[j] === i).length })),
      skipped: r.skipped,
    },
    feature_extraction: {
      images: r.extraction.images, seconds: round(r.extraction.seconds, 2), images_per_second: round(r.extraction.images / Math.max(r.extraction.seconds, 1e-9), 1),
      cached,
      note: cached
        ? 'features of the frozen base computed once (onnxruntime) and reused by every epoch'
        : '--augment: every epoch sees newly augmented training images, so their features cannot be cached and are recomputed each epoch (validation features are cached)',
    },
    onnx_max_abs_diff: maxAbsDiff,
    training,
  };
  const manifest: Omit<Manifest, 'files'> = {
    schema: 1, name: r.name, architecture: r.base.architecture, task: 'classification',
    input: { ...r.base.manifest.input },
    output: { name: 'probabilities', classes: K },
    preprocessing: r.base.manifest.preprocessing,
    weights: {
      provenance: 'fine-tuned',
      source: `fine-tuned from '${r.base.name}' (${r.base.manifest.weights.provenance}) on ${basename(r.data.root)}: ${K} classes, ${r.split.train.length} training / ${r.split.val.length} validation images`,
      seed: a.seed,
      base: r.base.name,
    },
    created_at: new Date().toISOString(),
    training,
    metrics: {
      val_accuracy: ev.accuracy, val_loss: ev.loss, validation_images: r.split.val.length,
      train_accuracy: best.acc, train_loss: best.loss, best_epoch: r.bestEpoch,
      onnx_max_abs_diff: maxAbsDiff,
      per_class: perClass,
    },
  };
  return {
    history: r.history, confusion: ev.confusion, bestEpoch: r.bestEpoch, accuracy: ev.accuracy, report, manifest, perClass, warnings: r.warnings,
    title: `${r.name} — ${r.base.name} fine-tuned on ${K} classes, best epoch ${r.bestEpoch}, validation accuracy ${(ev.accuracy * 100).toFixed(2)} %`,
  };
}
