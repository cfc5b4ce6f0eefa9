// Keras .h5 → models/<name>/ (model.onnx + model.weights.bin + labels.json + manifest.json).
//
// 1. Read the file's layer structure (names, weight names, shapes; no data yet).
// 2. Pair file layers with the architecture's weighted layers, as Keras' load_weights would:
//    - by name when every expected layer name is in the file (the official files: their layer order is Keras 2's
//      depth-grouped `model.layers` order, not creation order — keras-facts §2 "Keras naming");
//    - otherwise topologically: weighted layers in file order against the architecture's creation order;
//      the counts must match.
//    Then every layer's weight count and every shape must match exactly.
// 3. Read the data, convert (HWIO→OIHW, BN folding, fc1 row permutation), build the graph, and write the folder
//    through a temporary sibling directory that is renamed into place at the end.
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fsyncDir, fsyncTree } from '../util/fs.js';
import { ProblemError } from '../util/problem.js';
import { ARCHITECTURES, getArchitecture } from './architectures/index.js';
import type { Architecture, KerasLayerSpec, KerasWeights } from './architectures/layers.js';
import { H5FormatError, type H5LayerInfo, KerasH5Reader } from './keras-h5.js';
import { type Labels, type Manifest, type Provenance, Labels as LabelsSchema, labelsFromKerasClassIndex, writeManifest, writeModelFiles } from './manifest.js';

export type ImportErrorKind =
  | 'not-found' | 'not-hdf5' | 'truncated' | 'not-keras' | 'corrupt'
  | 'unknown-architecture' | 'wrong-architecture' | 'layer-count' | 'missing-layer' | 'weight-count' | 'shape-mismatch'
  | 'bad-labels' | 'bad-name';

/** A precise, user-facing import failure (HTTP 422, type `…/keras-import-<kind>`). */
export class ImportError extends ProblemError {
  constructor(
    readonly kind: ImportErrorKind,
    detail: string,
    readonly info: { layer?: string; weight?: string; expected?: unknown; found?: unknown } = {},
  ) {
    super(422, `keras-import-${kind}`, 'Cannot import Keras weights', detail, { kind, ...info });
    this.name = 'ImportError';
  }
}

export interface ImportOptions {
  /** Model folder name (manifest name rules: lowercase, digits, `._-`). */
  name: string;
  arch: string;
  weightsFile: string;
  /** imagenet_class_index.json (Keras format) or a labels.json array; default placeholders `class_0`… */
  labelsFile?: string;
  modelsDir: string;
  provenance: Provenance;
  source?: string;
  seed?: number;
  /** Reduced-width test variant (filter multiplier); default 1. */
  width?: number;
  onProgress?: (phase: 'read' | 'convert' | 'write', done: number, total: number) => void;
}

export interface ImportResult {
  name: string;
  dir: string;
  manifest: Manifest;
  modelPath: string;
  weightsPath?: string;
  includeTop: boolean;
  matched: 'by-name' | 'topological';
  timings: { readMs: number; convertMs: number; writeMs: number; totalMs: number };
}

export const MODEL_FILE = 'model.onnx';
export const WEIGHTS_FILE = 'model.weights.bin';
export const LABELS_FILE = 'labels.json';

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

interface MatchPlan {
  includeTop: boolean;
  matched: 'by-name' | 'topological';
  pairs: { spec: KerasLayerSpec; file: H5LayerInfo }[];
}

const fmt = (shape: number[]) => `[${shape.join(', ')}]`;

function listNames(names: string[], max = 6): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')}, … (${names.length} in all)`;
}

/** What the file looks like, when it fits another known architecture better than the requested one. */
function detectOtherArchitecture(arch: Architecture, fileNames: Set<string>): Architecture | undefined {
  const fraction = (a: Architecture) => {
    const names = a.kerasWeightSpec(true).map((l) => l.name);
    return names.filter((n) => fileNames.has(n)).length / Math.max(1, Math.min(fileNames.size, names.length));
  };
  const own = fraction(arch);
  for (const other of Object.values(ARCHITECTURES)) {
    if (other.name === arch.name) continue;
    if (fraction(other) >= 0.9 && own < 0.5) return other;
  }
  return undefined;
}

export function planMatch(arch: Architecture, fileWeighted: H5LayerInfo[], width = 1, file = 'weights file'): MatchPlan {
  const specTop = arch.kerasWeightSpec(true, { width });
  const specNo = arch.kerasWeightSpec(false, { width });
  const fileNames = new Set(fileWeighted.map((l) => l.name));
  const byName = new Map(fileWeighted.map((l) => [l.name, l]));
  const other = detectOtherArchitecture(arch, fileNames);
  if (other) {
    throw new ImportError('wrong-architecture',
      `${file} holds ${other.displayName} weights (${fileWeighted.length} weighted layers: ${listNames(fileWeighted.map((l) => l.name), 3)}), not ${arch.displayName}; import it with --arch ${other.name}`,
      { expected: arch.name, found: other.name });
  }
  const hasTopLayer = arch.topLayers.some((n) => fileNames.has(n));

  let plan: MatchPlan | undefined;
  for (const [includeTop, spec] of [[true, specTop], [false, specNo]] as const) {
    if (!includeTop && hasTopLayer) continue;
    if (spec.every((l) => fileNames.has(l.name))) {
      if (fileWeighted.length !== spec.length) {
        const extra = fileWeighted.map((l) => l.name).filter((n) => !spec.some((l) => l.name === n));
        throw new ImportError('layer-count',
          `${file} has ${fileWeighted.length} weighted layers, ${arch.displayName}${includeTop ? '' : ' (no top)'} has ${spec.length}; unexpected layers: ${listNames(extra)}`,
          { expected: spec.length, found: fileWeighted.length });
      }
      plan = { includeTop, matched: 'by-name', pairs: spec.map((l) => ({ spec: l, file: byName.get(l.name)! })) };
      break;
    }
  }
  if (!plan) {
    const spec = fileWeighted.length === specTop.length ? specTop : fileWeighted.length === specNo.length && !hasTopLayer ? specNo : undefined;
    if (!spec) {
      // Which variant did the file try to be? The one whose names it shares most / whose count is nearest.
      const near = hasTopLayer || Math.abs(fileWeighted.length - specTop.length) < Math.abs(fileWeighted.length - specNo.length) ? specTop : specNo;
      const missing = near.map((l) => l.name).filter((n) => !fileNames.has(n));
      const overlap = near.length - missing.length;
      if (overlap >= near.length / 2 && missing.length > 0) {
        throw new ImportError('missing-layer',
          `${file} lacks ${missing.length === 1 ? 'layer' : 'layers'} ${listNames(missing)} of ${arch.displayName}${near === specTop ? '' : ' (no top)'} (file has ${fileWeighted.length} weighted layers, expected ${near.length})`,
          { layer: missing[0], expected: near.length, found: fileWeighted.length });
      }
      throw new ImportError('layer-count',
        `${file} has ${fileWeighted.length} weighted layers; ${arch.displayName} has ${specTop.length} with its top and ${specNo.length} without`,
        { expected: [specTop.length, specNo.length], found: fileWeighted.length });
    }
    plan = { includeTop: spec === specTop, matched: 'topological', pairs: spec.map((l, i) => ({ spec: l, file: fileWeighted[i]! })) };
  }

  for (const { spec, file: fl } of plan.pairs) {
    const where = fl.name === spec.name ? `layer '${spec.name}'` : `layer '${spec.name}' (file layer '${fl.name}')`;
    if (fl.weights.length !== spec.weights.length) {
      throw new ImportError('weight-count',
        `${file}: ${where} has ${fl.weights.length} weights (${fl.weights.map((w) => w.name).join(', ')}), ${spec.className} expects ${spec.weights.length} (${spec.weights.map((w) => w.role).join(', ')})`,
        { layer: spec.name, expected: spec.weights.length, found: fl.weights.length });
    }
    spec.weights.forEach((w, i) => {
      const found = fl.weights[i]!;
      if (found.shape.length !== w.shape.length || found.shape.some((d, j) => d !== w.shape[j])) {
        throw new ImportError('shape-mismatch',
          `${file}: ${where}, weight ${i} '${found.name}' (${w.role}): expected shape ${fmt(w.shape)}, found ${fmt(found.shape)}`,
          { layer: spec.name, weight: found.name, expected: w.shape, found: found.shape });
      }
    });
  }
  return plan;
}

function readLabelsFile(path: string, classes: number): Labels {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ImportError('bad-labels', `${path}: cannot read labels (${(e as Error).message})`);
  }
  let labels: Labels;
  if (Array.isArray(raw)) {
    const parsed = LabelsSchema.safeParse(raw.map((x) => (typeof x === 'string' ? { label: x } : x)));
    if (!parsed.success) throw new ImportError('bad-labels', `${path}: not a labels array (${parsed.error.issues[0]?.message})`);
    labels = parsed.data;
  } else if (raw && typeof raw === 'object') {
    try {
      labels = labelsFromKerasClassIndex(raw as Record<string, [string, string]>);
    } catch (e) {
      throw new ImportError('bad-labels', `${path}: not a Keras class index (${(e as Error).message})`);
    }
  } else {
    throw new ImportError('bad-labels', `${path}: expected imagenet_class_index.json or a JSON array of labels`);
  }
  if (labels.length !== classes) throw new ImportError('bad-labels', `${path} has ${labels.length} labels, the model has ${classes} classes`);
  return labels;
}

export function placeholderLabels(classes: number): Labels {
  return Array.from({ length: classes }, (_, i) => ({ label: `class_${i}` }));
}


/**
 * Replaces `<modelsDir>/<name>` with the finished temp folder: rename the old one aside, rename the new one in,
 * delete the old. Readers see the old folder or the new one, never a mix.
 */
export function swapIntoPlace(tmpDir: string, target: string): void {
  // Every file of the new folder reaches the disk before the folder gets its name: after a power loss the
  // name never points at a folder of empty files.
  fsyncTree(tmpDir);
  if (existsSync(target)) {
    const old = `${tmpDir}.old`;
    renameSync(target, old);
    try {
      renameSync(tmpDir, target);
    } catch (e) {
      renameSync(old, target);
      throw e;
    }
    fsyncDir(dirname(target));
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmpDir, target);
    fsyncDir(dirname(target));
  }
}

/** Temp folders are dot-prefixed so the registry never lists them. */
export function tempDirFor(modelsDir: string, name: string): string {
  return join(modelsDir, `.tmp-${name}-${process.pid}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`);
}

export async function importKerasModel(opts: ImportOptions): Promise<ImportResult> {
  const t0 = Date.now();
  if (!NAME_RE.test(opts.name)) {
    throw new ImportError('bad-name', `model name '${opts.name}' is invalid: use lowercase letters, digits, '.', '_' or '-' (max 64, starting with a letter or digit)`);
  }
  let arch: Architecture;
  try {
    arch = getArchitecture(opts.arch);
  } catch (e) {
    throw new ImportError('unknown-architecture', (e as Error).message);
  }
  const width = opts.width ?? 1;
  const file = basename(opts.weightsFile);

  let reader: KerasH5Reader;
  try {
    reader = await KerasH5Reader.open(opts.weightsFile);
  } catch (e) {
    if (e instanceof H5FormatError) throw new ImportError(e.kind, e.message);
    throw e;
  }
  let plan: MatchPlan;
  const kerasWeights: KerasWeights = new Map();
  try {
    plan = planMatch(arch, reader.weightedLayers, width, file);
    plan.pairs.forEach(({ spec, file: fl }, i) => {
      try {
        kerasWeights.set(spec.name, fl.weights.map((w, j) => ({ shape: spec.weights[j]!.shape, data: reader.read(w) })));
      } catch (e) {
        if (e instanceof H5FormatError) throw new ImportError(e.kind, e.message, { layer: spec.name });
        throw e;
      }
      opts.onProgress?.('read', i + 1, plan.pairs.length);
    });
  } finally {
    reader.close();
  }
  const readMs = Date.now() - t0;

  const t1 = Date.now();
  opts.onProgress?.('convert', 0, 1);
  const onnxWeights = arch.toOnnxWeights(kerasWeights);
  kerasWeights.clear();
  const graph = arch.build(onnxWeights, { includeTop: plan.includeTop });
  const featureLayer = arch.featureLayer;
  const metadata: Record<string, string> = {
    architecture: arch.name, include_top: String(plan.includeTop), preprocessing: arch.preprocessing, provenance: opts.provenance,
  };
  const serialized = graph.serialize({ externalDataFile: WEIGHTS_FILE, externalThreshold: 1024, producer: 'convserve keras import', metadata });
  onnxWeights.clear();
  const convertMs = Date.now() - t1;
  opts.onProgress?.('convert', 1, 1);

  const t2 = Date.now();
  const labels = plan.includeTop
    ? (opts.labelsFile ? readLabelsFile(opts.labelsFile, arch.classes) : placeholderLabels(arch.classes))
    : undefined;
  mkdirSync(opts.modelsDir, { recursive: true });
  const target = join(opts.modelsDir, opts.name);
  const tmp = tempDirFor(opts.modelsDir, opts.name);
  try {
    mkdirSync(tmp);
    const files: Record<string, Uint8Array | string> = { [MODEL_FILE]: serialized.model };
    if (serialized.externalData) files[WEIGHTS_FILE] = serialized.externalData;
    if (labels) files[LABELS_FILE] = JSON.stringify(labels, null, 1) + '\n';
    const { sha256: hashes, sizes } = writeModelFiles(tmp, files);
    const fixed = arch.name === 'vgg19' && plan.includeTop;
    const manifest: Manifest = {
      schema: 1,
      name: opts.name,
      architecture: arch.name,
      task: plan.includeTop ? 'classification' : 'features',
      input: { name: 'input', height: arch.defaultSize, width: arch.defaultSize, channels: 3, fixed_size: fixed, min_side: fixed ? arch.defaultSize : arch.minSize },
      output: plan.includeTop
        ? { name: 'probabilities', classes: arch.classes }
        : { name: featureLayer, classes: arch.featureChannels({ width }) },
      preprocessing: arch.preprocessing,
      weights: { provenance: opts.provenance, source: opts.source, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) },
      files: {
        model: MODEL_FILE,
        ...(serialized.externalData ? { weights: WEIGHTS_FILE } : {}),
        labels: LABELS_FILE,
        sha256: hashes,
        sizes,
      },
      created_at: new Date().toISOString(),
      keras: {
        include_top: plan.includeTop, width, matched: plan.matched, weights_file: file,
        keras_version: reader.info.kerasVersion, weighted_layers: plan.pairs.length,
      },
    };
    writeManifest(tmp, manifest);
    opts.onProgress?.('write', 1, 1);
    swapIntoPlace(tmp, target);
    const writeMs = Date.now() - t2;
    return {
      name: opts.name, dir: resolve(target), manifest,
      modelPath: resolve(target, MODEL_FILE),
      weightsPath: serialized.externalData ? resolve(target, WEIGHTS_FILE) : undefined,
      includeTop: plan.includeTop, matched: plan.matched,
      timings: { readMs, convertMs, writeMs, totalMs: Date.now() - t0 },
    };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
