// A converted Keras model (kerasToOnnx) written as a model folder the registry serves, the way an import writes
// one: model.onnx + model.weights.bin (external data), labels.json for a classifier, and a manifest with the
// imported model's `layers`, `outputs`, `source` and provenance `imported`. (The importer CLI's own writer may
// replace this helper; it only uses the public manifest functions.)
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KerasOnnx } from '../../src/models/keras/to-onnx.js';
import { type Manifest, writeManifest, writeModelFiles } from '../../src/models/manifest.js';
import type { PreprocessingSpec } from '../../src/image/preprocess.js';

export interface ModelFolderOptions {
  name: string;
  preprocessing: PreprocessingSpec;
  /** Default side recorded for a model that accepts any size (default 64). */
  defaultSide?: number;
  /** Leave the `layers` list out of the manifest (as a model folder written before imports recorded it). */
  withoutLayers?: boolean;
}

/** Writes `<modelsDir>/<name>/` for `converted`; returns the manifest. */
export function writeConvertedModel(modelsDir: string, converted: KerasOnnx, opts: ModelFolderOptions): Manifest {
  const dir = join(modelsDir, opts.name);
  mkdirSync(dir, { recursive: true });
  const { model, externalData } = converted.graph.serialize({ externalDataFile: 'model.weights.bin', externalThreshold: 0 });
  const features = converted.outputKind === 'features';
  const outShape = converted.layers.find((l) => l.name === converted.outputs[0])!.outputShape;
  const classes = Number(outShape.at(-1));
  const files: Record<string, Uint8Array | string> = { 'model.onnx': model };
  if (externalData) files['model.weights.bin'] = externalData;
  if (!features) files['labels.json'] = JSON.stringify(Array.from({ length: classes }, (_, i) => ({ label: `class_${i}` })));
  const { sha256, sizes } = writeModelFiles(dir, files);
  const side = opts.defaultSide ?? 64;
  const { input } = converted;
  const manifest: Manifest = {
    schema: 1,
    name: opts.name,
    architecture: 'keras',
    task: features ? 'features' : 'classification',
    input: {
      name: 'input', height: input.height ?? side, width: input.width ?? side, channels: input.channels === 1 ? 1 : 3,
      fixed_size: input.fixed,
    },
    output: { name: converted.outputs[0]!, classes },
    preprocessing: opts.preprocessing,
    weights: { provenance: 'imported', source: 'tfjs-layers test model' },
    files: { model: 'model.onnx', ...(externalData ? { weights: 'model.weights.bin' } : {}), labels: 'labels.json', sha256, sizes },
    outputs: converted.outputKind,
    ...(opts.withoutLayers ? {} : {
      layers: converted.layers.map((l) => ({ name: l.name, class_name: l.className, output_shape: l.outputShape.map((d) => d ?? null) })),
    }),
    source: { format: 'tfjs-layers', keras_version: null, file: 'model.json' },
    created_at: new Date().toISOString(),
  };
  writeManifest(dir, manifest);
  return manifest;
}

/**
 * A small non-VGG/non-Inception convnet in tfjs-layers with seeded weights: c1 (conv 3×3 same, linear) → r1 (ReLU)
 * → c2 (conv 3×3 same, relu) → p1 (max-pool 2) → c3 (conv 3×3 valid, tanh). RGB: any input size, features out.
 * Grey: a fixed 24×24×1 input and a classifier top (f: Flatten, d: Dense softmax).
 */
export function tinyConvNet(tf: typeof import('@tensorflow/tfjs'), channels: 1 | 3): import('@tensorflow/tfjs').Sequential {
  const m = tf.sequential({ name: channels === 3 ? 'tiny_rgb' : 'tiny_grey' });
  m.add(tf.layers.conv2d({ inputShape: channels === 3 ? [null, null, 3] : [24, 24, 1], filters: 6, kernelSize: 3, padding: 'same', name: 'c1' }));
  m.add(tf.layers.reLU({ name: 'r1' }));
  m.add(tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'c2' }));
  m.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'p1' }));
  m.add(tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'valid', activation: 'tanh', name: 'c3' }));
  if (channels === 1) {
    m.add(tf.layers.flatten({ name: 'f' }));
    m.add(tf.layers.dense({ units: 4, activation: 'softmax', name: 'd' }));
  }
  return m;
}
