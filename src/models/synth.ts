// Seeded synthetic weights for offline use and tests: Keras-like initialisers, written as a .h5 in the official
// layout and imported through the same path as real downloaded weights. Their predictions mean nothing
// (provenance `synthetic`), but every shape, name and layout step is the real one.
//
// Each weight gets its own PRNG stream, derived from (seed, layer, weight index), so a layer's values do not
// depend on which other layers are generated, or in which order (the writer generates one layer at a time).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { getArchitecture } from './architectures/index.js';
import {
  type Architecture, type ArchOptions, type KerasLayerSpec, type KerasWeights, type NamingStyle, withNamingStyle,
} from './architectures/layers.js';
import { type ImportResult, importKerasModel } from './import.js';
import { type H5WriteLayer, type H5WriteOptions, writeKerasH5 } from './keras-h5.js';
import { Prng } from '../util/prng.js';

/** FNV-1a of a string, mixed with the seed: the PRNG seed of one weight. */
function streamSeed(seed: number, layer: string, index: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  const s = `${layer}#${index}`;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return (h ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0;
}

/**
 * Rough RMS of the network input after preprocessing, used to scale the first layer so activations start near
 * unit scale: caffe-mode pixels are mean-subtracted bytes (±128), tf-mode pixels are in [−1, 1].
 */
function inputRms(arch: Architecture): number {
  return arch.preprocessing === 'caffe' ? 64 : 1;
}

/**
 * Keras-like initial values for one weight:
 * - conv / hidden dense kernels: He-uniform, limit √(6/fan_in) — keeps ReLU activations at a stable scale
 *   through 16 (VGG19) or 94 (InceptionV3) layers; the first conv is divided by the input RMS;
 * - the predictions kernel: Glorot-uniform (Keras' default) ÷ 3, so logits stay O(1) and softmax is not one-hot;
 * - biases: U(−0.05, 0.05); BN (scale=False): beta U(−0.1, 0.1), moving_mean U(−0.1, 0.1),
 *   moving_variance U(0.6, 1.4) — the statistics of the roughly unit-scale pre-BN activations.
 */
function generate(arch: Architecture, layer: KerasLayerSpec, index: number, seed: number, first: boolean): Float32Array {
  const w = layer.weights[index]!;
  const n = w.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const rng = new Prng(streamSeed(seed, layer.name, index));
  switch (w.role) {
    case 'kernel': {
      const fanOut = w.shape.at(-1)!;
      const fanIn = n / fanOut;
      // The base's ReLU features come out with an RMS of ~3 (max pools and concats raise it a little), so the
      // Glorot limit of the classifier is scaled by 1/3 to keep the logits near unit scale.
      let limit = layer.name === 'predictions' ? Math.sqrt(6 / (fanIn + fanOut)) / 3 : Math.sqrt(6 / fanIn);
      if (first) limit /= inputRms(arch);
      return rng.fillUniform(out, -limit, limit);
    }
    case 'bias': return rng.fillUniform(out, -0.05, 0.05);
    case 'gamma': return rng.fillUniform(out, 0.8, 1.2);
    case 'beta': return rng.fillUniform(out, -0.1, 0.1);
    case 'moving_mean': return rng.fillUniform(out, -0.1, 0.1);
    case 'moving_variance': return rng.fillUniform(out, 0.6, 1.4);
  }
}

export interface SynthOptions extends ArchOptions {
  seed?: number;
  includeTop?: boolean;
}

export const DEFAULT_SEED = 42;

/** The synthetic weights in memory, Keras layout (layer name → weights in `weight_names` order). */
export function synthesizeKerasWeights(arch: Architecture | string, opts: SynthOptions = {}): KerasWeights {
  const a = typeof arch === 'string' ? getArchitecture(arch) : arch;
  const seed = opts.seed ?? DEFAULT_SEED;
  const spec = a.kerasWeightSpec(opts.includeTop ?? true, { width: opts.width });
  return new Map(spec.map((l, li) => [l.name, l.weights.map((w, i) => ({ shape: w.shape, data: generate(a, l, i, seed, li === 0) }))]));
}

export interface SyntheticH5Options extends SynthOptions, H5WriteOptions {
  /** Weight-naming style; default the official one (keras1 for VGG19, keras2 for InceptionV3). */
  style?: NamingStyle;
  /** Order of `layer_names`: Keras creation order (default) or reversed (by-name matching must still work). */
  layerOrder?: 'creation' | 'reversed';
}

/** Writes the synthetic weights as a Keras .h5 in the official layout, one layer in memory at a time. */
export async function writeSyntheticKerasH5(arch: Architecture | string, path: string, opts: SyntheticH5Options = {}): Promise<{ sizeBytes: number }> {
  const a = typeof arch === 'string' ? getArchitecture(arch) : arch;
  const seed = opts.seed ?? DEFAULT_SEED;
  const includeTop = opts.includeTop ?? true;
  let spec = a.kerasWeightSpec(includeTop, { width: opts.width });
  if (opts.style) spec = withNamingStyle(spec, opts.style);
  const byName = new Map(spec.map((l, i) => [l.name, { l, first: i === 0 }]));
  let layers: H5WriteLayer[] = a.kerasLayerNames(includeTop).map((name) => {
    const entry = byName.get(name);
    if (!entry) return { name, weights: [] };
    return {
      name,
      weights: entry.l.weights.map((w, i) => ({ name: w.name, shape: w.shape, data: () => generate(a, entry.l, i, seed, entry.first) })),
    };
  });
  if (opts.layerOrder === 'reversed') layers = layers.reverse();
  // The VGG files come from Keras 1 (no keras_version/backend attributes); InceptionV3's from Keras 2.
  const keras1 = a.name === 'vgg19';
  return writeKerasH5(path, layers, {
    kerasVersion: opts.kerasVersion !== undefined ? opts.kerasVersion : keras1 ? null : '2.0.8',
    backend: opts.backend !== undefined ? opts.backend : keras1 ? null : 'tensorflow',
    fullModel: opts.fullModel,
    splitLayerNames: opts.splitLayerNames,
  });
}

export interface SynthesizeModelOptions extends SynthOptions {
  modelsDir: string;
  /** Model folder name; default the architecture name (`vgg19`, `inception_v3`). */
  name?: string;
  onProgress?: (phase: 'write-h5' | 'import', info: { elapsedMs: number }) => void;
}

export interface SynthesizeResult extends ImportResult {
  synth: { writeH5Ms: number; importMs: number; h5Bytes: number };
}

/**
 * `convserve models synth <arch>`: seeded weights → official-layout .h5 (in `<modelsDir>/.cache`) → the real
 * import path → `models/<name>/`. The intermediate .h5 is deleted afterwards.
 */
export async function synthesizeModel(arch: string, opts: SynthesizeModelOptions): Promise<SynthesizeResult> {
  const a = getArchitecture(arch);
  const seed = opts.seed ?? DEFAULT_SEED;
  const includeTop = opts.includeTop ?? true;
  // A private folder in the cache, so concurrent synths never share a file name.
  const work = join(opts.modelsDir, '.cache', `synth-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(work, { recursive: true });
  const h5 = join(work, `synthetic-${a.name}-${includeTop ? 'top' : 'notop'}-seed${seed}.h5`);
  const t0 = Date.now();
  try {
    const { sizeBytes } = await writeSyntheticKerasH5(a, h5, { seed, includeTop, width: opts.width });
    const writeH5Ms = Date.now() - t0;
    opts.onProgress?.('write-h5', { elapsedMs: writeH5Ms });
    const t1 = Date.now();
    const result = await importKerasModel({
      name: opts.name ?? (includeTop ? a.name : `${a.name}_notop`),
      arch: a.name,
      weightsFile: h5,
      modelsDir: opts.modelsDir,
      provenance: 'synthetic',
      source: `seeded random Keras-like initialisers, seed ${seed}${opts.width && opts.width !== 1 ? `, width ${opts.width}` : ''}`,
      seed,
      width: opts.width,
    });
    const importMs = Date.now() - t1;
    opts.onProgress?.('import', { elapsedMs: importMs });
    return { ...result, synth: { writeH5Ms, importMs, h5Bytes: sizeBytes } };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
