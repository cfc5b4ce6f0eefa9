// manifest.json: the contract between whoever writes a model folder (import, synth, training, fine-tune)
// and whoever serves it (registry, engine, classify). One schema, validated on read and on write.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PreprocessingSpecSchema, parsePreprocessing, preprocessingSpecError } from '../image/preprocess.js';
import { writeAtomic } from '../onnx/builder.js';

/**
 * The Keras `preprocess_input` modes our own architectures and training produce (caffe for VGG19, tf for
 * InceptionV3, mnist for the digit CNN). A manifest may record any spec of image/preprocess.ts: these,
 * torch, raw or rescale:<scale>[:<offset>] (`PreprocessingSpecSchema`).
 */
export const PreprocessingMode = z.enum(['caffe', 'tf', 'mnist']);
export type PreprocessingMode = z.infer<typeof PreprocessingMode>;

/** Where the weights came from. `synthetic` weights are seeded random: their outputs mean nothing. */
export const Provenance = z.enum(['imagenet', 'synthetic', 'fine-tuned', 'trained', 'imported']);
export type Provenance = z.infer<typeof Provenance>;

/**
 * A file name inside the model folder: a plain basename, never a path (`../x`, `/etc/x`, `a/b`) — a manifest
 * must not make the service read or hash files outside its folder.
 */
export const FileBasename = z.string().min(1).max(255).refine((f) => !/[/\\\0]/.test(f) && f !== '.' && f !== '..', 'must be a plain file name inside the model folder (no / or \\, not . or ..)');

export const Manifest = z.object({
  schema: z.literal(1),
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/),
  architecture: z.string(),
  /**
   * - classification: `output` is [N, classes] probabilities and labels.json has one entry per class.
   * - features: a convolutional base without its classifier (a Keras `include_top=False` file). `output` names
   *   the last feature layer (e.g. block5_pool, mixed10, NCHW [N, C, h, w]) and `output.classes` is its channel
   *   count C; there is no labels file. Usable for feature extraction / fine-tuning, not for /classify.
   */
  task: z.enum(['classification', 'features']).default('classification'),
  /**
   * Input tensor `input`, float32 NCHW [N, channels, height, width]. height/width are the default (for
   * classification with a fixed-size top: the required) size; `fixed_size: false` means any side ≥ `min_side`.
   */
  input: z.object({
    name: z.string().default('input'), height: z.number().int().positive(), width: z.number().int().positive(), channels: z.union([z.literal(1), z.literal(3)]),
    fixed_size: z.boolean().optional(),
    min_side: z.number().int().positive().optional(),
  }),
  /** Output tensor with class probabilities [N, classes] (task features: the feature map, see `task`). */
  output: z.object({ name: z.string().default('probabilities'), classes: z.number().int().positive() }),
  /** How raw pixels in [0,255] become the model's input tensor (a spec of image/preprocess.ts). */
  preprocessing: PreprocessingSpecSchema,
  weights: z.object({
    provenance: Provenance,
    /** Free text: URL of the .h5, `seed 42`, training data folder… */
    source: z.string().optional(),
    seed: z.number().int().optional(),
    base: z.string().optional(),
  }),
  /** File names inside the folder, with their sha256 (hex). */
  files: z.object({
    model: FileBasename.default('model.onnx'),
    weights: FileBasename.optional(),
    labels: FileBasename.default('labels.json'),
    sha256: z.record(FileBasename, z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lower-case hex')),
    /** Byte size of each file in `sha256`: checked at every registry scan (hashes at load when size or mtime changed). */
    sizes: z.record(FileBasename, z.number().int().nonnegative()).optional(),
  }),
  /** How a Keras .h5 was imported (absent for models not imported from Keras). */
  keras: z.object({
    include_top: z.boolean(),
    /** Filter multiplier of a reduced-width test variant; 1 for the real architecture. */
    width: z.number().positive().default(1),
    /** How file layers were paired with the architecture's layers (keras-facts §4). */
    matched: z.enum(['by-name', 'topological']),
    weights_file: z.string(),
    keras_version: z.string().optional(),
    weighted_layers: z.number().int().nonnegative(),
  }).optional(),
  /**
   * What the output values mean (absent = probabilities): `logits` get a softmax at classification time (and the
   * answer says so), `sigmoid` are independent per-class probabilities (multi-label), `features` a feature map.
   */
  outputs: z.enum(['probabilities', 'logits', 'sigmoid', 'features']).optional(),
  /** Every layer of an imported model: its Keras name (= the ONNX value name), class and output shape (NHWC, null batch). */
  layers: z.array(z.object({ name: z.string(), class_name: z.string(), output_shape: z.array(z.number().int().nullable()) })).optional(),
  /** Where an imported model came from: the file layout and the Keras version that wrote it. */
  source: z.object({ format: z.string(), keras_version: z.string().nullable(), file: z.string() }).optional(),
  created_at: z.string(),
  training: z.record(z.string(), z.unknown()).optional(),
  metrics: z.record(z.string(), z.unknown()).optional(),
}).superRefine((m, ctx) => {
  // caffe and torch are defined for RGB, mnist for one grey channel: the input must agree. (zod runs this
  // even when the spec itself failed, which is reported already.)
  if (preprocessingSpecError(m.preprocessing) !== undefined) return;
  const need = parsePreprocessing(m.preprocessing).channels;
  if (need !== undefined && need !== m.input.channels) {
    ctx.addIssue({ code: 'custom', path: ['input', 'channels'], message: `'${m.preprocessing}' preprocessing needs ${need} input channel(s); the input has ${m.input.channels}` });
  }
});
export type Manifest = z.infer<typeof Manifest>;

/** labels.json: one entry per output unit, in order. */
export const Labels = z.array(z.object({ wnid: z.string().optional(), label: z.string() }));
export type Labels = z.infer<typeof Labels>;

export function readManifest(dir: string): Manifest {
  const raw = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const parsed = Manifest.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`${join(dir, 'manifest.json')}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

export function writeManifest(dir: string, manifest: Manifest): void {
  writeAtomic(join(dir, 'manifest.json'), JSON.stringify(Manifest.parse(manifest), null, 2) + '\n');
}

export function readLabels(dir: string, manifest: Manifest): Labels {
  if (manifest.task === 'features') throw new Error(`${dir}: '${manifest.name}' is a features-only model (no classifier top): it has no labels`);
  const labels = Labels.parse(JSON.parse(readFileSync(join(dir, manifest.files.labels), 'utf8')));
  if (labels.length !== manifest.output.classes) {
    throw new Error(`${dir}: labels.json has ${labels.length} entries, the model has ${manifest.output.classes} classes`);
  }
  return labels;
}

/** Converts Keras' imagenet_class_index.json ({"0": ["n01440764", "tench"], …}) to labels.json entries. */
export function labelsFromKerasClassIndex(index: Record<string, [string, string]>): Labels {
  const n = Object.keys(index).length;
  return Array.from({ length: n }, (_, i) => {
    const entry = index[String(i)];
    if (!entry) throw new Error(`class index has no entry "${i}"`);
    return { wnid: entry[0], label: entry[1] };
  });
}

export const sha256Hex = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Writes a model folder's files (into `dir`, usually a temp folder that is renamed into place afterwards) and
 * returns what the manifest records about them: `files.sha256` and `files.sizes`.
 */
export function writeModelFiles(dir: string, files: Record<string, Uint8Array | string>): { sha256: Record<string, string>; sizes: Record<string, number> } {
  const sha256: Record<string, string> = {};
  const sizes: Record<string, number> = {};
  for (const [name, bytes] of Object.entries(files)) {
    writeFileSync(join(dir, name), bytes);
    sha256[name] = sha256Hex(bytes);
    sizes[name] = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
  }
  return { sha256, sizes };
}
