// The images of a fine-tune, in memory: every dataset file decoded and resized as POST /v1/classify does
// (unreadable ones skipped and reported), then split into training and validation sets — the given train/ + val/
// folders, or a stratified seeded split of the class folders.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { loadConfig } from '../config.js';
import { type RawImage, decodeImage } from '../image/io.js';
import { ProblemError } from '../util/problem.js';
import { type DatasetScan, type SkippedFile, problem } from './dataset.js';
import type { Geometry } from './frozen-base.js';
import { toRgb } from '../image/raw.js';
import { Prng } from '../util/prng.js';

export interface DecodedDataset {
  /** Decoded RGB images at the size asked for, with their class and (train/ + val/ layout) their folder. */
  images: RawImage[];
  labels: number[];
  given: ('train' | 'val' | undefined)[];
  /** Non-image files and unreadable images. */
  skipped: SkippedFile[];
}

export interface Split { train: number[]; val: number[] }

/** Decodes every image of the scan, centre-cropped to `size`; a class without one readable image is an error. */
export async function decodeDataset(data: DatasetScan, size: Geometry, onSkipped: (s: SkippedFile) => void): Promise<DecodedDataset> {
  const limits = loadConfig();
  const out: DecodedDataset = { images: [], labels: [], given: [], skipped: [...data.nonImages] };
  for (const f of data.files) {
    try {
      // The same decode + resize pipeline as POST /v1/classify (ClassifyService.classifyUploads).
      out.images.push(toRgb(await decodeImage(readFileSync(f.path), limits, { resize: { width: size.width, height: size.height, mode: 'crop' } })));
      out.labels.push(f.cls);
      out.given.push(f.split);
    } catch (e) {
      const reason = e instanceof ProblemError ? e.detail : e instanceof Error ? e.message : String(e);
      const s = { file: relative(data.root, f.path), reason: reason.split('\n')[0]!.slice(0, 300) };
      out.skipped.push(s);
      onSkipped(s);
    }
  }
  const unusable = data.classes.filter((_, c) => !out.labels.includes(c));
  if (unusable.length) {
    throw problem(422, 'empty-class', `no readable image in class ${unusable.map((c) => `'${c}'`).join(', ')} (${out.skipped.length} file(s) skipped: ${out.skipped.slice(0, 3).map((s) => `${s.file}: ${s.reason}`).join('; ')})`);
  }
  return out;
}

/**
 * Class-balanced, seeded split: every class gives the same number of images to validation — round(n × valSplit)
 * of the smallest class (at least 1, and never a class's last training image) — so the validation accuracy weighs
 * the classes equally and compares with chance (1 / classes).
 */
export function stratifiedSplit(labels: number[], classes: number, valSplit: number, seed: number): Split {
  const train: number[] = [];
  const val: number[] = [];
  const counts = Array.from({ length: classes }, (_, c) => labels.filter((l) => l === c).length);
  const perClass = Math.max(1, Math.round(Math.min(...counts) * valSplit));
  for (let c = 0; c < classes; c++) {
    const members = labels.map((l, i) => (l === c ? i : -1)).filter((i) => i >= 0);
    const perm = new Prng((seed * 31 + c) >>> 0).permutation(members.length);
    const nVal = Math.min(members.length - 1, perClass);
    perm.forEach((p, k) => (k < nVal ? val : train).push(members[p]!));
  }
  return { train: train.sort((a, b) => a - b), val: val.sort((a, b) => a - b) };
}

/** Training and validation indices into the decoded images, with the checks that need readable images. */
export function splitDataset(data: DatasetScan, decoded: DecodedDataset, valSplit: number, seed: number): Split {
  const { labels, given } = decoded;
  if (data.layout === 'train-val-folders') {
    const split = { train: given.flatMap((g, i) => (g === 'train' ? [i] : [])), val: given.flatMap((g, i) => (g === 'val' ? [i] : [])) };
    if (split.val.length === 0) throw problem(422, 'no-validation', 'no readable validation image');
    const noTrain = data.classes.filter((_, c) => !split.train.some((i) => labels[i] === c));
    if (noTrain.length) throw problem(422, 'empty-class', `no readable training image in class ${noTrain.join(', ')}`);
    return split;
  }
  const small = data.classes.filter((_, c) => labels.filter((l) => l === c).length < 2);
  if (small.length) throw problem(422, 'class-too-small', `class ${small.map((c) => `'${c}'`).join(', ')} has fewer than 2 readable images (one to train on, one to validate)`);
  return stratifiedSplit(labels, data.classes.length, valSplit, seed);
}

/** The labels of a set of image indices. */
export const labelsOf = (labels: number[], set: number[]) => Uint8Array.from(set.map((i) => labels[i]!));
