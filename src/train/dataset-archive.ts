// A fine-tune's training data as an uploaded archive: top-level class folders (optionally inside one wrapping
// folder), each holding images. Every entry name must be plain — relative, no `..`, no `.` segments, no
// backslashes or control characters — and every entry a file or a folder (links and devices are refused), each
// refusal a 422 naming the entry. Extraction never uses the archive's names on disk: image k of class c is written
// as `<dir>/<c>/<k><ext>`, so nothing the archive says can point outside `dir`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { ProblemError, unprocessable } from '../util/problem.js';
import { type ArchiveEntry, type ArchiveFormat, type ArchiveLimits, readArchive } from './archive-entries.js';
import { IMAGE_EXTENSIONS, type DatasetScan, type SkippedFile } from './dataset.js';

/** Labels are stored as bytes (./finetune-data.ts labelsOf). */
export const MAX_ARCHIVE_CLASSES = 256;
const MAX_SEGMENT = 255;

export interface ArchiveImage {
  /** The entry's name in the archive. */
  entry: string;
  cls: number;
  data: Buffer;
}

export interface ArchiveDataset {
  format: ArchiveFormat;
  classes: string[];
  images: ArchiveImage[];
  /** Files that are not images (by extension), skipped as `convserve finetune` skips them. */
  nonImages: SkippedFile[];
}

const unsafe = (name: string, why: string) => unprocessable('unsafe-archive-entry', `The training archive's entry '${name.slice(0, 300)}' ${why}; archives must hold only plain relative file and folder names.`, { entry: name.slice(0, 300) });

/** The entry's path segments (a leading `./` and a folder's trailing `/` dropped), or a 422 naming it. */
export function plainSegments(name: string): string[] {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw unsafe(name, 'has control characters in its name');
  if (name.includes('\\')) throw unsafe(name, 'has a backslash in its name');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw unsafe(name, 'is an absolute path');
  const segments = name.replace(/^(\.\/)+/, '').replace(/\/$/, '').split('/');
  if (segments.includes('..')) throw unsafe(name, "leaves its folder ('..')");
  if (segments.some((s) => s === '' || s === '.')) throw unsafe(name, 'has an empty or "." path segment');
  if (segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT)) throw unsafe(name, `has a name segment over ${MAX_SEGMENT} bytes`);
  return segments;
}

/** macOS resource forks, .DS_Store and other dot-files are not part of the data. */
const ignored = (segments: string[]) => segments[0] === '__MACOSX' || segments.some((s) => s.startsWith('.'));

const isImageName = (name: string) => IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());

/**
 * Reads the archive and sorts its images into classes (folder names, sorted as `convserve finetune` sorts them).
 * Throws a 4xx ProblemError for a limit, an unsafe entry, or a layout a classifier cannot be trained on.
 */
export function readDatasetArchive(bytes: Buffer, limits: ArchiveLimits): ArchiveDataset {
  const files: { segments: string[]; entry: ArchiveEntry }[] = [];
  const dirs: string[][] = [];
  const format = readArchive(bytes, limits, (e) => {
    const segments = plainSegments(e.name);
    if (e.type === 'link') throw unsafe(e.name, 'is a link');
    if (e.type === 'other') throw unsafe(e.name, 'is not a regular file or folder (a device, FIFO…)');
    if (ignored(segments)) return;
    if (e.type === 'directory') dirs.push(segments);
    else files.push({ segments, entry: isImageName(e.name) ? e : { name: e.name, type: e.type } });
  });
  // One wrapping folder (`photos/cats/1.jpg`): every file at least three deep under the same top folder.
  const tops = new Set(files.map((f) => f.segments[0]));
  const wrapped = files.length > 0 && tops.size === 1 && files.every((f) => f.segments.length >= 3);
  const strip = (s: string[]) => (wrapped ? s.slice(1) : s);
  const classSet = new Set<string>();
  for (const d of dirs) {
    const s = strip(d);
    if (s.length >= 1 && (!wrapped || d.length >= 2)) classSet.add(s[0]!);
  }
  const nonImages: SkippedFile[] = [];
  const placed: { cls: string; entry: ArchiveEntry }[] = [];
  for (const f of files) {
    const s = strip(f.segments);
    if (!f.entry.data) { nonImages.push({ file: f.entry.name, reason: 'not an image file (extension)' }); continue; }
    if (s.length < 2) throw unprocessable('loose-image', `The training archive's image '${f.entry.name}' is not inside a class folder: put the images of each class in its own top-level folder (cats/1.jpg, dogs/1.jpg).`, { entry: f.entry.name });
    classSet.add(s[0]!);
    placed.push({ cls: s[0]!, entry: f.entry });
  }
  const classes = [...classSet].sort();
  if (classes.length === 0) throw unprocessable('no-classes', 'The training archive has no class folders with images in it: put the images of each class in its own top-level folder (cats/1.jpg, dogs/1.jpg).');
  if (classes.length < 2) throw unprocessable('one-class', `The training archive has only one class ('${classes[0]}'): a classifier needs at least two class folders.`, { classes });
  if (classes.length > MAX_ARCHIVE_CLASSES) throw unprocessable('too-many-classes', `The training archive has ${classes.length} class folders; at most ${MAX_ARCHIVE_CLASSES} are supported.`);
  const index = new Map(classes.map((c, i) => [c, i]));
  const images = placed.map((p) => ({ entry: p.entry.name, cls: index.get(p.cls)!, data: p.entry.data! }));
  for (const [i, c] of classes.entries()) {
    const n = images.filter((im) => im.cls === i).length;
    if (n < 2) throw unprocessable('class-too-small', `The training archive's class folder '${c}' has ${n} image${n === 1 ? '' : 's'}: each class needs at least 2 (one to train on, one to validate).`, { class: c, images: n });
  }
  return { format, classes, images, nonImages };
}

/** Images per class, in class order. */
export const classCounts = (d: Pick<ArchiveDataset, 'classes' | 'images'>) => d.classes.map((_, c) => d.images.filter((im) => im.cls === c).length);

/** Adds the entry's name to a problem about one of its images (the upload is an archive, not one image). */
export function aboutEntry(e: unknown, entry: string): unknown {
  if (!(e instanceof ProblemError)) return e;
  const status = e.status === 400 ? 422 : e.status;
  return new ProblemError(status, e.slug, e.title, `The training archive's image '${entry}': ${e.detail}`, { ...e.extensions, entry });
}

/** Writes the dataset's images under `dir` with generated names; the scan `convserve finetune` would make of it. */
export function writeDataset(d: ArchiveDataset, dir: string): DatasetScan {
  const counters = d.classes.map(() => 0);
  const files = d.images.map((im) => {
    const folder = join(dir, String(im.cls));
    mkdirSync(folder, { recursive: true });
    const path = join(folder, `${counters[im.cls]!++}${extname(im.entry).toLowerCase()}`);
    writeFileSync(path, im.data);
    return { path, cls: im.cls };
  });
  return { root: dir, layout: 'class-folders', classes: d.classes, files, nonImages: d.nonImages };
}
