// The training data of `convserve finetune`: the folder layout (one sub-folder per class, or train/ and val/
// with class sub-folders), which files are images, and the checks that run before anything is trained — each
// failure a precise ProblemError (`finetune-*`), nothing written anywhere.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { ProblemError } from '../util/problem.js';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif', '.heic', '.heif'];
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface SkippedFile { file: string; reason: string }

export function problem(status: number, slug: string, detail: string, ext: Record<string, unknown> = {}): ProblemError {
  const title = status === 404 ? 'Not found' : status === 409 ? 'Conflict' : status === 422 ? 'Unusable training data' : status >= 500 ? 'Fine-tuning failed' : 'Bad request';
  return new ProblemError(status, `finetune-${slug}`, title, detail, ext);
}

// ------------------------------------------------------------------------------------------------ validation (parent)

/** Checks `name` against the manifest name rule and that `<modelsDir>/<name>` stays inside the models directory. */
export function validateModelName(name: string, modelsDir: string): string {
  if (typeof name !== 'string' || name.length === 0) throw problem(400, 'bad-name', 'a model name is required (--name)');
  if (isAbsolute(name) || name.includes('/') || name.includes('\\') || name.split(/[\\/]/).includes('..')) {
    throw problem(400, 'bad-name', `model name '${name}' would leave the models directory: give a plain folder name (lowercase letters, digits, '.', '_' or '-')`);
  }
  if (!NAME_RE.test(name)) {
    throw problem(400, 'bad-name', `model name '${name}' is invalid: use lowercase letters, digits, '.', '_' or '-' (max 64, starting with a letter or digit)`);
  }
  const root = resolve(modelsDir);
  const target = resolve(root, name);
  if (dirname(target) !== root) throw problem(400, 'bad-name', `model name '${name}' would leave the models directory ${root}`);
  return target;
}

export interface DatasetFile { path: string; cls: number; split?: 'train' | 'val' }

export interface DatasetScan {
  root: string;
  layout: 'class-folders' | 'train-val-folders';
  classes: string[];
  files: DatasetFile[];
  /** Files without an image extension (skipped). */
  nonImages: SkippedFile[];
}

const isHidden = (n: string) => n.startsWith('.');

function listImages(dir: string, root: string, nonImages: SkippedFile[]): string[] {
  const out: string[] = [];
  for (const d of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (isHidden(d.name)) continue;
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...listImages(p, root, nonImages));
    else if (d.isFile() || d.isSymbolicLink()) {
      if (IMAGE_EXTENSIONS.includes(extname(d.name).toLowerCase())) out.push(p);
      else nonImages.push({ file: relative(root, p), reason: 'not an image file (extension)' });
    }
  }
  return out;
}

function classDirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory() && !isHidden(d.name)).map((d) => d.name).sort();
}

/**
 * Lists the dataset: class names (sorted folder names, as Keras' image_dataset_from_directory) and image files.
 * Throws precise errors for a missing/empty folder, a single class, or a class without images.
 */
export function scanDataset(dataDir: string): DatasetScan {
  const root = resolve(dataDir);
  if (!existsSync(root)) throw problem(400, 'data-not-found', `data folder ${root} does not exist`);
  if (!statSync(root).isDirectory()) throw problem(400, 'data-not-found', `${root} is not a folder: --data needs a folder with one sub-folder per class`);
  const top = classDirs(root);
  const nonImages: SkippedFile[] = [];
  const files: DatasetFile[] = [];
  let classes: string[];
  let layout: DatasetScan['layout'];
  const valName = top.includes('val') ? 'val' : top.includes('validation') ? 'validation' : undefined;
  if (top.includes('train') && valName) {
    layout = 'train-val-folders';
    classes = classDirs(join(root, 'train'));
    const valClasses = classDirs(join(root, valName));
    const unknown = valClasses.filter((c) => !classes.includes(c));
    if (unknown.length) throw problem(422, 'class-mismatch', `${valName}/ has class folders that train/ does not: ${unknown.join(', ')}`);
    for (const [split, sub] of [['train', 'train'], ['val', valName]] as const) {
      classes.forEach((c, i) => {
        const dir = join(root, sub, c);
        if (!existsSync(dir)) return;
        for (const p of listImages(dir, root, nonImages)) files.push({ path: p, cls: i, split });
      });
    }
  } else {
    layout = 'class-folders';
    classes = top;
    classes.forEach((c, i) => { for (const p of listImages(join(root, c), root, nonImages)) files.push({ path: p, cls: i }); });
  }
  if (classes.length === 0) {
    const loose = readdirSync(root).filter((n) => !isHidden(n)).length;
    throw problem(422, 'no-classes', loose === 0
      ? `data folder ${root} is empty: put one sub-folder of images per class in it (e.g. ${join(root, 'cats')}/, ${join(root, 'dogs')}/)`
      : `data folder ${root} has no class sub-folders (only files): put the images of each class in its own sub-folder`);
  }
  const counts = classes.map((_, i) => files.filter((f) => f.cls === i).length);
  if (files.length === 0) throw problem(422, 'no-images', `no image files under ${root} (classes ${classes.join(', ')}; accepted: ${IMAGE_EXTENSIONS.join(' ')})`);
  if (classes.length < 2) throw problem(422, 'one-class', `only one class ('${classes[0]}') in ${root}: a classifier needs at least two class sub-folders`);
  const empty = classes.filter((_, i) => counts[i] === 0);
  if (empty.length) throw problem(422, 'empty-class', `class folder${empty.length > 1 ? 's' : ''} ${empty.map((c) => `'${c}'`).join(', ')} in ${root} ha${empty.length > 1 ? 've' : 's'} no images`);
  if (layout === 'train-val-folders') {
    for (const split of ['train', 'val'] as const) {
      const missing = classes.filter((_, i) => !files.some((f) => f.cls === i && f.split === split));
      if (split === 'train' && missing.length) throw problem(422, 'empty-class', `train/ has no images of class ${missing.join(', ')}`);
      if (split === 'val' && missing.length === classes.length) throw problem(422, 'no-validation', `${valName}/ has no images`);
    }
  }
  return { root, layout, classes, files, nonImages };
}
