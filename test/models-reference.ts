// Test oracle: VGG19 and InceptionV3 built from Keras layers with tfjs-layers (channels-last, HWIO kernels,
// real BatchNormalization layers with epsilon 1e-3 / scale=False, AveragePooling2D 'same', Flatten then Dense)
// and loaded with the same Keras-layout weights by layer name. Written from the Keras application source
// (keras-facts §1–2), independently of src/models/architectures.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { KerasWeights } from '../src/models/architectures/layers.js';

let backendReady: Promise<void> | undefined;
export function tfReady(): Promise<void> {
  backendReady ??= (async () => {
    await tf.setBackend('wasm');
    await tf.ready();
  })();
  return backendReady;
}

type SymT = tf.SymbolicTensor;
const L = tf.layers;

function f(n: number, width: number): number {
  return width === 1 ? n : Math.max(1, Math.round(n * width));
}

export function kerasVGG19(opts: { includeTop: boolean; width?: number; size?: number }): tf.LayersModel {
  const w = opts.width ?? 1;
  const input = tf.input({ shape: opts.includeTop ? [224, 224, 3] : [null, null, 3] as unknown as number[], name: 'input_1' });
  let x: SymT = input;
  const blocks: [number, number][] = [[2, 64], [2, 128], [4, 256], [4, 512], [4, 512]];
  blocks.forEach(([n, filters], b) => {
    for (let i = 1; i <= n; i++) {
      x = L.conv2d({ filters: f(filters, w), kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: 'zeros', name: `block${b + 1}_conv${i}` }).apply(x) as SymT;
    }
    x = L.maxPooling2d({ poolSize: 2, strides: 2, name: `block${b + 1}_pool` }).apply(x) as SymT;
  });
  if (opts.includeTop) {
    x = L.flatten({ name: 'flatten' }).apply(x) as SymT;
    x = L.dense({ units: f(4096, w), activation: 'relu', kernelInitializer: 'zeros', name: 'fc1' }).apply(x) as SymT;
    x = L.dense({ units: f(4096, w), activation: 'relu', kernelInitializer: 'zeros', name: 'fc2' }).apply(x) as SymT;
    x = L.dense({ units: 1000, activation: 'softmax', kernelInitializer: 'zeros', name: 'predictions' }).apply(x) as SymT;
  }
  return tf.model({ inputs: input, outputs: x });
}

export function kerasInceptionV3(opts: { includeTop: boolean; width?: number }): tf.LayersModel {
  const w = opts.width ?? 1;
  let k = 0;
  let maxN = 0;
  let avgN = 0;
  let catN = 0;
  const conv2d_bn = (x: SymT, filters: number, rows: number, cols: number, strides = 1, padding: 'same' | 'valid' = 'same'): SymT => {
    k++;
    x = L.conv2d({ filters: f(filters, w), kernelSize: [rows, cols], strides, padding, useBias: false, name: `conv2d_${k}` }).apply(x) as SymT;
    x = L.batchNormalization({ axis: 3, epsilon: 1e-3, scale: false, name: `batch_normalization_${k}` }).apply(x) as SymT;
    return L.activation({ activation: 'relu', name: `activation_${k}` }).apply(x) as SymT;
  };
  const maxPool = (x: SymT) => L.maxPooling2d({ poolSize: 3, strides: 2, name: `max_pooling2d_${++maxN}` }).apply(x) as SymT;
  const avgPool = (x: SymT) => L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: `average_pooling2d_${++avgN}` }).apply(x) as SymT;
  const cat = (xs: SymT[], name?: string) => L.concatenate({ axis: 3, name: name ?? `concatenate_${++catN}` }).apply(xs) as SymT;

  const input = tf.input({ shape: [null, null, 3] as unknown as number[], name: 'input_1' });
  let x = conv2d_bn(input, 32, 3, 3, 2, 'valid');
  x = conv2d_bn(x, 32, 3, 3, 1, 'valid');
  x = conv2d_bn(x, 64, 3, 3);
  x = maxPool(x);
  x = conv2d_bn(x, 80, 1, 1, 1, 'valid');
  x = conv2d_bn(x, 192, 3, 3, 1, 'valid');
  x = maxPool(x);
  for (const [i, pf] of [[0, 32], [1, 64], [2, 64]]) {
    const b1 = conv2d_bn(x, 64, 1, 1);
    const b5 = conv2d_bn(conv2d_bn(x, 48, 1, 1), 64, 5, 5);
    const b3 = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3);
    const bp = conv2d_bn(avgPool(x), pf!, 1, 1);
    x = cat([b1, b5, b3, bp], `mixed${i}`);
  }
  {
    const b3 = conv2d_bn(x, 384, 3, 3, 2, 'valid');
    const bd = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, 2, 'valid');
    x = cat([b3, bd, maxPool(x)], 'mixed3');
  }
  for (const [i, c] of [[4, 128], [5, 160], [6, 160], [7, 192]]) {
    const b1 = conv2d_bn(x, 192, 1, 1);
    const b7 = conv2d_bn(conv2d_bn(conv2d_bn(x, c!, 1, 1), c!, 1, 7), 192, 7, 1);
    let bd = conv2d_bn(x, c!, 1, 1);
    bd = conv2d_bn(bd, c!, 7, 1);
    bd = conv2d_bn(bd, c!, 1, 7);
    bd = conv2d_bn(bd, c!, 7, 1);
    bd = conv2d_bn(bd, 192, 1, 7);
    const bp = conv2d_bn(avgPool(x), 192, 1, 1);
    x = cat([b1, b7, bd, bp], `mixed${i}`);
  }
  {
    const b3 = conv2d_bn(conv2d_bn(x, 192, 1, 1), 320, 3, 3, 2, 'valid');
    let b7 = conv2d_bn(x, 192, 1, 1);
    b7 = conv2d_bn(b7, 192, 1, 7);
    b7 = conv2d_bn(b7, 192, 7, 1);
    b7 = conv2d_bn(b7, 192, 3, 3, 2, 'valid');
    x = cat([b3, b7, maxPool(x)], 'mixed8');
  }
  for (const i of [0, 1]) {
    const b1 = conv2d_bn(x, 320, 1, 1);
    const b3 = conv2d_bn(x, 384, 1, 1);
    const b3cat = cat([conv2d_bn(b3, 384, 1, 3), conv2d_bn(b3, 384, 3, 1)], `mixed9_${i}`);
    const bd = conv2d_bn(conv2d_bn(x, 448, 1, 1), 384, 3, 3);
    const bdcat = cat([conv2d_bn(bd, 384, 1, 3), conv2d_bn(bd, 384, 3, 1)]);
    const bp = conv2d_bn(avgPool(x), 192, 1, 1);
    x = cat([b1, b3cat, bdcat, bp], `mixed${9 + i}`);
  }
  if (opts.includeTop) {
    x = L.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as SymT;
    x = L.dense({ units: 1000, activation: 'softmax', kernelInitializer: 'zeros', name: 'predictions' }).apply(x) as SymT;
  }
  return tf.model({ inputs: input, outputs: x });
}

/** Loads Keras-layout weights into the model by layer name; every weighted layer must be covered. */
export function loadWeights(model: tf.LayersModel, weights: KerasWeights): void {
  for (const layer of model.layers) {
    const expected = layer.weights.length;
    if (expected === 0) continue;
    const ws = weights.get(layer.name);
    if (!ws) throw new Error(`reference: no weights for layer ${layer.name}`);
    if (ws.length !== expected) throw new Error(`reference: ${layer.name} has ${expected} weights, got ${ws.length}`);
    layer.setWeights(ws.map((w) => tf.tensor(w.data, w.shape)));
  }
}

/** Runs the model and returns the named layers' outputs (NHWC / NC) as Float32Arrays with shapes. */
export async function runLayers(model: tf.LayersModel, nhwc: Float32Array, shape: number[], names: string[]): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const sub = tf.model({ inputs: model.inputs, outputs: names.map((n) => model.getLayer(n).output as SymT) });
  const x = tf.tensor(nhwc, shape);
  const outs = sub.predict(x) as tf.Tensor | tf.Tensor[];
  const list = Array.isArray(outs) ? outs : [outs];
  const res = new Map<string, { data: Float32Array; shape: number[] }>();
  for (let i = 0; i < names.length; i++) {
    res.set(names[i]!, { data: (await list[i]!.data()) as Float32Array, shape: list[i]!.shape });
    list[i]!.dispose();
  }
  x.dispose();
  return res;
}

/** NHWC → NCHW copy. */
export function nhwcToNchw(x: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n; b++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) for (let k = 0; k < c; k++) {
    out[((b * c + k) * h + i) * w + j] = x[((b * h + i) * w + j) * c + k]!;
  }
  return out;
}

/** Max |a−b| relative to the largest |b| (for feature maps), and elementwise max |a−b|/|b| (for probabilities). */
export function errors(a: Float32Array, b: Float32Array): { maxAbs: number; relToMax: number; maxRel: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let maxAbs = 0;
  let maxB = 0;
  let maxRel = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    maxAbs = Math.max(maxAbs, d);
    maxB = Math.max(maxB, Math.abs(b[i]!));
    if (b[i] !== 0) maxRel = Math.max(maxRel, d / Math.abs(b[i]!));
  }
  return { maxAbs, relToMax: maxAbs / (maxB || 1), maxRel };
}

export { tf };
