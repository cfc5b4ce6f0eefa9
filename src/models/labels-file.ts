// Class labels for an imported model, from what people actually have at hand: a JSON array (of strings or of
// {label, wnid}), Keras' imagenet_class_index.json ({"0": ["n01440764", "tench"], …}), or a text file with one
// label per line. The count must equal the model's classes; anything else is a 422 `keras-import-bad-labels`.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KerasImportError } from './keras/errors.js';
import { type Labels, Labels as LabelsSchema, labelsFromKerasClassIndex, readManifest } from './manifest.js';

function badLabels(detail: string, file?: string): KerasImportError {
  return new KerasImportError('bad-labels', detail, file);
}

/** Parses the text of a labels file (any of the three forms); `where` names it in errors. */
export function parseLabels(text: string, where: string): Labels {
  const trimmed = text.replace(/^\uFEFF/, '').trim();
  if (trimmed === '') throw badLabels(`${where} is empty`, where);
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    let raw: unknown;
    try {
      raw = JSON.parse(trimmed);
    } catch (e) {
      throw badLabels(`${where}: not valid JSON (${(e as Error).message})`, where);
    }
    if (Array.isArray(raw)) {
      const parsed = LabelsSchema.safeParse(raw.map((x) => (typeof x === 'string' ? { label: x } : x)));
      if (!parsed.success) throw badLabels(`${where}: not a labels array (${parsed.error.issues[0]?.message}); expected strings or {label, wnid} objects`, where);
      return parsed.data;
    }
    try {
      return labelsFromKerasClassIndex(raw as Record<string, [string, string]>);
    } catch (e) {
      throw badLabels(`${where}: not a Keras class index (${(e as Error).message})`, where);
    }
  }
  // One label per line; blank lines at the end (an editor's final newline) do not count.
  return trimmed.split(/\r?\n/).map((line) => ({ label: line.trim() }));
}

/** The labels for a model with `classes` outputs, from a file path or a list given in code. */
export function loadLabels(source: string | readonly string[], classes: number): Labels {
  let labels: Labels;
  let where: string;
  if (typeof source === 'string') {
    where = source;
    let text: string;
    try {
      text = readFileSync(source, 'utf8');
    } catch (e) {
      throw badLabels(`cannot read labels file ${source} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, source);
    }
    labels = parseLabels(text, source);
  } else {
    where = 'the labels';
    labels = source.map((label) => ({ label }));
  }
  const empty = labels.findIndex((l) => l.label === '');
  if (empty >= 0) throw badLabels(`${where}: label ${empty} is empty`, typeof source === 'string' ? source : undefined);
  if (labels.length !== classes) {
    throw badLabels(`${where} has ${labels.length} labels, the model has ${classes} classes`, typeof source === 'string' ? source : undefined);
  }
  return labels;
}

/**
 * The ImageNet labels already on this machine (an installed official model's labels.json, or the class index a
 * fetch left in `<models>/.cache`), for a model recognised as VGG19/InceptionV3 with its 1000-class top.
 */
export function localImagenetLabels(modelsDir: string, names: readonly string[]): Labels | undefined {
  const cached = join(modelsDir, '.cache', 'imagenet_class_index.json');
  if (existsSync(cached)) {
    try {
      return loadLabels(cached, 1000);
    } catch { /* a damaged cache file: try the installed models */ }
  }
  for (const name of names) {
    const dir = join(modelsDir, name);
    try {
      const m = readManifest(dir);
      if (m.weights.provenance !== 'imagenet' || m.task !== 'classification' || m.output.classes !== 1000) continue;
      return LabelsSchema.parse(JSON.parse(readFileSync(join(dir, m.files.labels), 'utf8')));
    } catch { /* not installed, or unreadable: next */ }
  }
  return undefined;
}
