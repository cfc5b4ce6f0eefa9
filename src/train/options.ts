// The options of `convserve finetune` and `convserve train mnist`: what a caller may pass, the defaults, and the
// rules each number must follow (zod schemas; the first broken rule is the error, in the order listed).
import { z } from 'zod';
import type { FinetuneProgress, TrainProgress } from './progress.js';
import { TRAINING_BACKENDS, type TrainingBackendName } from './training-backend.js';

/** A number option with its rule: `<label> must be <rule>, got <value>` when `ok` fails. */
function numberOption(label: string, rule: string, ok: (v: number) => boolean, fallback: number) {
  const message = (issue: { input: unknown }) => `${label} must be ${rule}, got ${String(issue.input)}`;
  return z.number({ error: message }).refine((v) => Number.isFinite(v) && ok(v), { error: message }).default(fallback);
}

const integerAtLeast1 = (v: number) => Number.isInteger(v) && v >= 1;
const nonNegativeInteger = (v: number) => Number.isInteger(v) && v >= 0;
const openUnit = (v: number) => v > 0 && v < 1;

// ------------------------------------------------------------------------------------------------ finetune

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
  /** Second stage: the base's top block trainable at a low learning rate (bases whose top block is a chain: VGG19). */
  unfreezeTop?: boolean;
  unfreezeEpochs?: number;
  unfreezeLearningRate?: number;
  /** Early stopping: epochs without a lower validation loss before a stage stops. Default 5. */
  patience?: number;
  /** Framework that trains: 'ort' (default, ONNX Runtime) or 'tfjs'. */
  backend?: TrainingBackendName;
  /** The base's layer the head is trained on (default: the architecture's; required for other bases). */
  featureLayer?: string;
  /** Floor of the head's schedule in optimizer steps (default 300): at least this many, early stopping never before. */
  minSteps?: number;
  /** Early stopping counted in steps (default 100; at least `patience` epochs' worth). */
  patienceSteps?: number;
  /** Units of the head's hidden Dense layer (default 256) and its dropout rate (default 0.5). */
  units?: number;
  dropout?: number;
  onProgress?: (p: FinetuneProgress) => void;
  signal?: AbortSignal;
}

export const finetuneSettingsSchema = z.object({
  epochs: numberOption('epochs', 'an integer ≥ 1', integerAtLeast1, 20),
  batchSize: numberOption('batch size', 'an integer ≥ 1', integerAtLeast1, 32),
  learningRate: numberOption('learning rate', 'in (0, 1)', openUnit, 1e-3),
  valSplit: numberOption('validation split', 'in (0, 1)', openUnit, 0.2),
  seed: numberOption('seed', 'a non-negative integer', nonNegativeInteger, 42),
  unfreezeEpochs: numberOption('unfreeze epochs', 'an integer ≥ 1', integerAtLeast1, 10),
  unfreezeLearningRate: numberOption('unfreeze learning rate', 'in (0, 1)', openUnit, 1e-5),
  patience: numberOption('patience', 'an integer ≥ 1', integerAtLeast1, 5),
  units: numberOption('units', 'an integer ≥ 1', integerAtLeast1, 256),
  dropout: numberOption('dropout', 'in [0, 1)', (v) => v >= 0 && v < 1, 0.5),
  minSteps: numberOption('min steps', 'a non-negative integer', nonNegativeInteger, 300),
  patienceSteps: numberOption('patience steps', 'an integer ≥ 1', integerAtLeast1, 100),
  augment: z.boolean().default(false),
  unfreezeTop: z.boolean().default(false),
  backend: z.enum(TRAINING_BACKENDS, { error: (i) => `backend must be one of ${TRAINING_BACKENDS.join(', ')}, got ${String(i.input)}` }).default('ort'),
  featureLayer: z.string().min(1, { error: 'feature layer must be a non-empty layer name' }).optional(),
});

/** The training settings of a fine-tune, defaults applied and every rule checked. */
export type FinetuneSettings = z.infer<typeof finetuneSettingsSchema>;

/** Applies the defaults and checks the rules; a broken rule throws `onError(message)`. */
export function parseSettings<S extends z.ZodType>(schema: S, opts: unknown, onError: (message: string) => Error): z.infer<S> {
  const parsed = schema.safeParse(opts);
  if (!parsed.success) throw onError(parsed.error.issues[0]?.message ?? 'invalid options');
  return parsed.data;
}

// ------------------------------------------------------------------------------------------------ mnist

export interface AugmentOptions {
  /** Max shift in pixels (uniform in ±). */
  shift: number;
  /** Max rotation in degrees (uniform in ±). */
  rotateDeg: number;
  /** Max relative zoom (scale uniform in 1 ± zoom). */
  zoom: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = { shift: 2.5, rotateDeg: 12, zoom: 0.1 };

export interface TrainMnistOptions {
  epochs?: number;
  seed?: number;
  /** Output model folder (default models/mnist-cnn). */
  out?: string;
  onProgress?: (p: TrainProgress) => void;
  /** Framework that trains: 'ort' (default, ONNX Runtime) or 'tfjs'. */
  backend?: TrainingBackendName;
  /** Use only the first `limit` training images (quick runs / tests). Validation and test sets stay whole. */
  limit?: number;
  /** Limit of the validation/test sets too (tests); default whole. */
  evalLimit?: number;
  batchSize?: number;
  learningRate?: number;
  /** Final learning rate of the exponential decay. */
  finalLearningRate?: number;
  dropout?: number;
  /** false disables augmentation. */
  augment?: AugmentOptions | false;
}

export const mnistSettingsSchema = z.object({
  epochs: numberOption('epochs', 'a positive integer', integerAtLeast1, 40),
  seed: numberOption('seed', 'a non-negative integer', nonNegativeInteger, 42),
  batchSize: z.number().default(32),
  learningRate: z.number().default(2e-3),
  finalLearningRate: z.number().default(1e-5),
  dropout: z.number().default(0.25),
  limit: z.number().optional(),
  evalLimit: z.number().optional(),
  out: z.string().default('models/mnist-cnn'),
  backend: z.enum(TRAINING_BACKENDS).default('ort'),
  augment: z.union([z.literal(false), z.object({ shift: z.number(), rotateDeg: z.number(), zoom: z.number() })]).default(DEFAULT_AUGMENT),
});

/** The settings of an MNIST run, defaults applied. */
export type MnistSettings = z.infer<typeof mnistSettingsSchema>;
