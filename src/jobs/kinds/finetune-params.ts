// The parameters of a `finetune` job: the fields of `convserve finetune` that make sense remotely, with the CLI's
// own defaults and rules (src/train/options.ts, not copied numbers), plus what admission learns from the archive
// (`dataset`: its classes and images per class), which fixes the job's step count: one step per planned epoch.
import { z } from 'zod';
import type { Config } from '../../config.js';
import { type ArchiveLimits } from '../../train/archive-entries.js';
import { problem } from '../../train/dataset.js';
import { stratifiedSplit } from '../../train/finetune-data.js';
import { type FinetuneSettings, finetuneSettingsSchema, parseSettings } from '../../train/options.js';
import { headPlan } from '../../train/schedule.js';
import { zBool } from '../../util/params.js';

/** The CLI's defaults (`convserve finetune --help`). */
const CLI = finetuneSettingsSchema.parse({});
const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** A layer (graph value) name of the base, as --feature-layer takes it. */
const LAYER_NAME = /^[A-Za-z0-9_./:-]{1,200}$/;
export const FINETUNE_DEFAULT_BASE = 'inception_v3';
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const DatasetFacts = z.object({
  format: z.enum(['zip', 'tar', 'tar.gz']),
  classes: z.array(z.string()).min(2),
  counts: z.array(z.number().int().min(2)).min(2),
});

export type DatasetFacts = z.infer<typeof DatasetFacts>;

export function finetuneParamsSchema(config: Config) {
  return z.object({
    base: z.string().regex(MODEL_NAME, 'an installed model name').default(FINETUNE_DEFAULT_BASE),
    feature_layer: z.string().regex(LAYER_NAME, 'a layer name').optional(),
    name: z.string().regex(MODEL_NAME, "the new model's name: lowercase letters, digits, '.', '_' or '-' (max 64, starting with a letter or digit)"),
    /** Replace an earlier fine-tuned model of that name (never an imported or official one). */
    replace: zBool.default(false),
    epochs: int(1, config.maxJobIterations).default(CLI.epochs),
    min_steps: int(0, 1_000_000).default(CLI.minSteps),
    batch_size: int(1, 4096).default(CLI.batchSize),
    lr: z.coerce.number().gt(0).lt(1).default(CLI.learningRate),
    val_split: z.coerce.number().gt(0).lt(1).default(CLI.valSplit),
    augment: zBool.default(CLI.augment),
    seed: int(0, 2 ** 31 - 1).default(CLI.seed),
    units: int(1, 8192).default(CLI.units),
    dropout: z.coerce.number().min(0).lt(1).default(CLI.dropout),
    /** Set by admission from the archive (a submission cannot send it: the schema is strict without it). */
    dataset: DatasetFacts.optional(),
  }).strict();
}

export type FinetuneParams = z.infer<ReturnType<typeof finetuneParamsSchema>>;

/** The CLI settings these parameters stand for (checked by the CLI's own rules). */
export function settingsOf(p: FinetuneParams): FinetuneSettings {
  return parseSettings(finetuneSettingsSchema, {
    epochs: p.epochs, batchSize: p.batch_size, learningRate: p.lr, valSplit: p.val_split, augment: p.augment, seed: p.seed,
    units: p.units, dropout: p.dropout, minSteps: p.min_steps, featureLayer: p.feature_layer,
  }, (message) => problem(400, 'bad-option', message));
}

/** Epochs the plan runs for this dataset (the class-balanced split of the CLI, then the step floor). */
export function plannedEpochs(p: FinetuneParams): number {
  if (!p.dataset) return 1;
  const labels = p.dataset.counts.flatMap((n, c) => Array.from({ length: n }, () => c));
  const split = stratifiedSplit(labels, p.dataset.classes.length, p.val_split, p.seed);
  return headPlan(split.train.length, settingsOf(p)).epochs;
}

export const archiveLimits = (config: Config): ArchiveLimits => ({ maxEntries: config.finetuneMaxFiles, maxExtractedBytes: config.finetuneMaxExtractedBytes });
