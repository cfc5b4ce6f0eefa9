// Fine-tuning an installed ImageNet base (VGG19 / InceptionV3) on a folder of images, the Keras transfer-learning
// recipe (keras-facts §8):
//
// 1. The frozen base runs on onnxruntime-node, cut at its feature layer (./base.ts: the architecture's
//    featureLayer; the top block's input for --unfreeze-top). Features are computed ONCE and cached; with --augment
//    the training features are recomputed every epoch from new random flips/crops/rotations (./features.ts).
// 2. A new head — GlobalAveragePooling2D → Dense(relu) → Dropout → Dense(softmax) (./head.ts) — is trained with
//    TensorFlow.js (Adam, categorical cross-entropy, early stopping on validation loss, best weights kept: ./fit.ts).
// 3. Optional second stage (--unfreeze-top, bases whose top block is a chain: VGG19's block 5): the top block,
//    initialised from the base (./top-block.ts), trained together with the head at a low learning rate.
// 4. Export: the head (and top block) appended to the cut base graph = ONE ONNX model in models/NAME/, checked
//    against "ORT base features → tfjs" (≤ 1e-5) before the folder is renamed into place (./finetune-export.ts).
//
// This module is the caller's side: finetune() validates everything cheap (options, name, data folder, base) in
// the caller's process, then runs ./finetune-task.ts in a child process (tfjs never loads on an HTTP thread).
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../config.js';
import { readManifest } from '../models/manifest.js';
import { ProblemError } from '../util/problem.js';
import { resolveBase } from './base.js';
import { runInChild } from './child.js';
import { problem, scanDataset, validateModelName } from './dataset.js';
import type { FinetuneResult, FinetuneTaskArgs, TaskOutcome } from './finetune-task.js';
import { type FinetuneOptions, finetuneSettingsSchema, parseSettings } from './options.js';
import type { FinetuneProgress } from './progress.js';

export type { FinetuneBase } from './base.js';
export { IMAGE_EXTENSIONS, scanDataset, validateModelName, type DatasetFile, type DatasetScan, type SkippedFile } from './dataset.js';
export type { FinetuneResult, FinetuneTaskArgs } from './finetune-task.js';
export type { FinetuneOptions } from './options.js';
export type { FinetuneEpoch, FinetuneProgress } from './progress.js';

/** Everything finetune() checks before starting the child (cheap, precise errors; nothing written). */
export function prepareFinetune(opts: FinetuneOptions): FinetuneTaskArgs {
  const modelsDir = resolve(opts.modelsDir ?? loadConfig().modelsDir);
  const target = validateModelName(opts.name, modelsDir);
  const settings = parseSettings(finetuneSettingsSchema, opts, (message) => problem(400, 'bad-option', message));
  if (opts.name === opts.base) throw problem(400, 'bad-name', `--name '${opts.name}' is the base model itself: choose a new name for the fine-tuned model`);
  const base = resolveBase(modelsDir, opts.base, settings.unfreezeTop, settings.featureLayer);
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
  return { data, base, name: opts.name, modelsDir, target, settings };
}

/**
 * `convserve finetune`: validates, then trains and exports in a child process; resolves with the summary once
 * `models/NAME/` is in place. Errors a user can cause are ProblemErrors (`finetune-*` slugs); nothing is left in
 * the models directory when it fails.
 */
export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const args = prepareFinetune(opts);
  const moduleUrl = new URL('./finetune-task.js', import.meta.url);
  const out = await runInChild<FinetuneTaskArgs, FinetuneProgress, TaskOutcome>(moduleUrl, 'finetuneTask', args, { onProgress: opts.onProgress, signal: opts.signal });
  if (!out.ok) throw new ProblemError(out.problem.status, out.problem.slug, out.problem.title, out.problem.detail, out.problem.extensions);
  return out.result;
}
