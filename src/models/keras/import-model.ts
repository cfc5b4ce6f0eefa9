// Any Keras / TensorFlow.js model file → a model folder (model.onnx + model.weights.bin + labels.json +
// manifest.json): read (format detected from the content), normalise the config, convert to ONNX, decide the
// input geometry, output kind, labels and preprocessing, then write the folder atomically. Every failure is a
// one-line 422 KerasImportError (`keras-import-<kind>`) and leaves nothing behind.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parsePreprocessing } from '../../image/preprocess.js';
import { ProblemError } from '../../util/problem.js';
import { localImagenetLabels, loadLabels } from '../labels-file.js';
import { type Labels, type Manifest, Manifest as ManifestSchema, type Provenance, writeManifest, writeModelFiles } from '../manifest.js';
import { LABELS_FILE, MODEL_FILE, WEIGHTS_FILE, modelNameError, placeholderLabels, swapIntoPlace, tempDirFor } from '../model-folder.js';
import { normalizeConfig } from './config.js';
import { KerasImportError } from './errors.js';
import { type InputSize, convertsSizeFree, declaredInputSize, relaxInputSize } from './input-size.js';
import type { KerasFileFormat, KerasImport } from './ir.js';
import { type KnownTopology, recognizeTopology } from './known-topology.js';
import type { RawKerasFile } from './raw.js';
import { readKerasFile } from './read.js';
import { type KerasOnnx, kerasToOnnx } from './to-onnx.js';

export interface KerasModelImportOptions {
  /** Model folder name (lowercase, digits, `._-`). */
  name: string;
  /** A .h5, .keras or tfjs model.json (its shards beside it), or a tfjs JS bundle. */
  file: string;
  /** The `model.to_json()` file of a weights-only .h5 (`model.save_weights`). */
  config?: string;
  /** A labels file (JSON array, imagenet_class_index.json or one per line), or the labels themselves. */
  labels?: string | readonly string[];
  /** A preprocessing spec (image/preprocess.ts); default the known architecture's, else `raw`. */
  preprocess?: string;
  /** Only for a model whose input size is open (None): the size to classify at. */
  inputSize?: InputSize;
  /** Default `imported`. */
  provenance?: Provenance;
  /** Free text for the manifest's weights.source (default: the file name). */
  source?: string;
  modelsDir: string;
  /** Replace an existing folder of that name (otherwise a name clash is an error). */
  replace?: boolean;
  /** Reads the file (default readKerasFile); the bundled model passes its own reader. */
  read?: (file: string, configPath?: string) => Promise<RawKerasFile>;
}

export interface KerasModelImportResult {
  name: string;
  dir: string;
  manifest: Manifest;
  format: KerasFileFormat;
  kerasVersion: string | null;
  /** The architecture convserve recognised in the model, if any (vgg19, inception_v3). */
  knownArchitecture?: string;
  timings: { readMs: number; convertMs: number; writeMs: number; totalMs: number };
}

type Geometry = { height: number; width: number; channels: 1 | 3; fixed: boolean; minSide?: number };

function checkTarget(opts: KerasModelImportOptions): string {
  const bad = modelNameError(opts.name);
  if (bad) throw new KerasImportError('bad-name', bad);
  const target = join(opts.modelsDir, opts.name);
  if (!opts.replace && existsSync(target)) {
    throw new KerasImportError('name-clash', `a model named '${opts.name}' exists already (${resolve(target)}): choose another name, or remove that folder first`);
  }
  return target;
}

/** The channel count a spec requires (undefined: 1 or 3), or a 422 `keras-import-bad-preprocessing`. */
function specChannels(spec: string): 1 | 3 | undefined {
  try {
    return parsePreprocessing(spec).channels;
  } catch (e) {
    throw new KerasImportError('bad-preprocessing', e instanceof ProblemError ? e.detail : String(e));
  }
}

function checkPreprocessing(spec: string, channels: 1 | 3): Manifest['preprocessing'] {
  const need = specChannels(spec);
  if (need !== undefined && need !== channels) {
    throw new KerasImportError('bad-preprocessing', `'${spec}' preprocessing needs ${need} input channel(s); the model's input has ${channels}`);
  }
  return ManifestSchema.shape.preprocessing.parse(spec);
}

/**
 * Converts at the declared size when the model has one (then, when the conversion is exact at every size, the
 * graph input's height/width become symbolic: classification stays at the declared size, dream and style may use
 * others). An open size is kept open when the model converts that way (global pooling heads), otherwise the
 * model is converted at --input-size.
 */
function convert(imp: KerasImport, opts: KerasModelImportOptions, known: KnownTopology | undefined): { converted: KerasOnnx; geometry: Geometry } {
  const declared = declaredInputSize(imp.model);
  const open = declared.height === null || declared.width === null;
  if (!open && opts.inputSize) {
    throw new KerasImportError('input-size', `the model's input is ${declared.height}×${declared.width}; --input-size is only for models whose input size is open`);
  }
  const fallback = known ? { height: known.architecture.defaultSize, width: known.architecture.defaultSize } : undefined;
  const size = open ? (opts.inputSize ?? fallback) : { height: declared.height!, width: declared.width! };
  if (!size) throw new KerasImportError('input-size', "the model's input size is open (None); give the size to classify at with --input-size HxW");
  let converted: KerasOnnx;
  let fixed: boolean;
  if (open) {
    try {
      converted = kerasToOnnx(imp);
      fixed = false;
    } catch (e) {
      if (!(e instanceof KerasImportError)) throw e;
      converted = kerasToOnnx(imp, { inputSize: size }); // a layer needs the size (Flatten → Dense): convert at it
      fixed = true;
    }
  } else {
    converted = kerasToOnnx(imp);
    fixed = true;
  }
  const channels = converted.input.channels;
  if (channels !== 1 && channels !== 3) {
    throw new KerasImportError('unsupported-input', `the model's input has ${channels} channels; convserve models take grey (1) or RGB (3) images`);
  }
  const relaxed = fixed && convertsSizeFree(imp.model);
  if (relaxed) relaxInputSize(converted.graph, channels);
  const minSide = known?.architecture.minSize;
  // fixed_size: the outputs need exactly this size (a Flatten/Reshape head), or the graph only takes it.
  return { converted, geometry: { ...size, channels, fixed: fixed && (!relaxed || hasSizedHead(converted)), ...(minSide ? { minSide } : {}) } };
}

/** True when a Flatten or Reshape turns a spatial map into a vector of fixed length (its size then matters). */
function hasSizedHead(c: KerasOnnx): boolean {
  return c.layers.some((l) => (l.className === 'Flatten' || l.className === 'Reshape') && l.outputShape.slice(1).every((d) => d !== null));
}

function chooseLabels(opts: KerasModelImportOptions, classes: number, known: KnownTopology | undefined): Labels {
  if (opts.labels !== undefined) return loadLabels(opts.labels, classes);
  if (known?.imagenetTop) return localImagenetLabels(opts.modelsDir, ['vgg19', 'inception_v3']) ?? placeholderLabels(classes);
  return placeholderLabels(classes);
}

export async function importKerasFile(opts: KerasModelImportOptions): Promise<KerasModelImportResult> {
  const t0 = Date.now();
  const target = checkTarget(opts);
  if (opts.preprocess !== undefined) specChannels(opts.preprocess); // a typo fails before the file is read
  const raw = await (opts.read ?? ((f, c) => readKerasFile(f, { configPath: c })))(opts.file, opts.config);
  const imp: KerasImport = { format: raw.format, kerasVersion: raw.kerasVersion, model: normalizeConfig(raw.config), weights: raw.weights };
  const readMs = Date.now() - t0;

  const t1 = Date.now();
  const known = recognizeTopology(imp);
  const { converted, geometry } = convert(imp, opts, known);
  const outputName = converted.outputs[0]!;
  const outLayer = converted.layers.find((l) => l.name === outputName);
  const outShape = outLayer?.outputShape ?? [];
  const last = outShape[outShape.length - 1];
  if (typeof last !== 'number') throw new KerasImportError('unsupported-input', `the model's output '${outputName}' has an unknown size ${JSON.stringify(outShape)}`);
  const features = outShape.length !== 2 || converted.outputKind === 'features';
  const preprocessing = checkPreprocessing(opts.preprocess ?? (known ? known.architecture.preprocessing : 'raw'), geometry.channels);
  if (features && opts.labels !== undefined) {
    throw new KerasImportError('bad-labels', `the model's output '${outputName}' ${JSON.stringify(outShape)} is a feature map, not class scores: it takes no labels`);
  }
  const labels = features ? undefined : chooseLabels(opts, last, known);
  const architecture = known?.architecture.name ?? 'keras';
  const serialized = converted.graph.serialize({
    externalDataFile: WEIGHTS_FILE, externalThreshold: 1024, producer: 'convserve keras import',
    metadata: { architecture, preprocessing, provenance: opts.provenance ?? 'imported', source_format: imp.format },
  });
  const convertMs = Date.now() - t1;

  const t2 = Date.now();
  mkdirSync(opts.modelsDir, { recursive: true });
  const tmp = tempDirFor(opts.modelsDir, opts.name);
  try {
    mkdirSync(tmp);
    const files: Record<string, Uint8Array | string> = { [MODEL_FILE]: serialized.model };
    if (serialized.externalData) files[WEIGHTS_FILE] = serialized.externalData;
    if (labels) files[LABELS_FILE] = JSON.stringify(labels, null, 1) + '\n';
    const { sha256, sizes } = writeModelFiles(tmp, files);
    const manifest: Manifest = {
      schema: 1,
      name: opts.name,
      architecture,
      task: features ? 'features' : 'classification',
      input: {
        name: 'input', height: geometry.height, width: geometry.width, channels: geometry.channels, fixed_size: geometry.fixed,
        ...(geometry.minSide ? { min_side: geometry.minSide } : {}),
      },
      output: { name: outputName, classes: last },
      preprocessing,
      weights: { provenance: opts.provenance ?? 'imported', source: opts.source ?? basename(opts.file) },
      files: { model: MODEL_FILE, ...(serialized.externalData ? { weights: WEIGHTS_FILE } : {}), labels: LABELS_FILE, sha256, sizes },
      outputs: features ? 'features' : converted.outputKind,
      // Convolutions folded into their BatchNormalization have no value of their own: only layers one can fetch.
      layers: converted.layers.filter((l) => !l.foldedInto).map((l) => ({ name: l.name, class_name: l.className, output_shape: l.outputShape })),
      source: { format: imp.format, keras_version: imp.kerasVersion, file: basename(opts.file) },
      created_at: new Date().toISOString(),
    };
    writeManifest(tmp, manifest);
    if (!opts.replace && existsSync(target)) checkTarget(opts); // another import took the name meanwhile
    swapIntoPlace(tmp, target);
    const writeMs = Date.now() - t2;
    return {
      name: opts.name, dir: resolve(target), manifest, format: imp.format, kerasVersion: imp.kerasVersion,
      ...(known ? { knownArchitecture: known.architecture.name } : {}),
      timings: { readMs, convertMs, writeMs, totalMs: Date.now() - t0 },
    };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
