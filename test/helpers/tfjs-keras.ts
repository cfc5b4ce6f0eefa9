// Test oracle for the Keras → ONNX converter: tfjs-layers (cpu backend) models, their Keras 2 dialect config
// (`toJSON`) and weights as a KerasImport, and a comparison of every layer's output between tfjs (Keras semantics,
// NHWC) and the converted graph run by onnxruntime-node.
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { normalizeConfig } from '../../src/models/keras/config.js';
import type { KWeight, KerasImport } from '../../src/models/keras/ir.js';
import { type ConvertOptions, type KerasOnnx, kerasToOnnx } from '../../src/models/keras/to-onnx.js';

export { tf };

let ready: Promise<void> | undefined;
export function tfReady(): Promise<void> {
  ready ??= (async () => {
    await tf.setBackend('cpu');
    await tf.ready();
  })();
  return ready;
}

export const SESSION = {
  logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } },
} as ort.InferenceSession.SessionOptions;

/** mulberry32: small seeded generator so every test run uses the same weights and inputs. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uniform(n: number, lo: number, hi: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Replaces every weight with seeded random values (variances positive), so no layer is an accidental identity. */
export function randomizeWeights(model: tf.LayersModel, seed: number, scale = 0.5): void {
  let s = seed;
  for (const layer of model.layers) {
    if (layer instanceof tf.LayersModel) {
      randomizeWeights(layer, s++ * 7919, scale);
      continue;
    }
    const values = layer.weights.map((w) => {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const role = roleOf(w.originalName);
      const data = /variance$/.test(role) ? uniform(n, 0.5, 1.5, s++) : role === 'count' ? new Float32Array(n).fill(10) : uniform(n, -scale, scale, s++);
      return tf.tensor(data, w.shape);
    });
    if (values.length) layer.setWeights(values);
  }
}

const ROLES = new Set(['kernel', 'bias', 'gamma', 'beta', 'moving_mean', 'moving_variance', 'depthwise_kernel', 'pointwise_kernel', 'alpha', 'mean', 'variance', 'count']);

/** 'conv2d_Conv2D1/kernel' → 'kernel' (tfjs may suffix duplicates: 'kernel_1'). */
function roleOf(name: string): string {
  const last = name.split('/').pop()!;
  const base = last.replace(/_\d+$/, '');
  return ROLES.has(last) ? last : ROLES.has(base) ? base : last;
}

/** The weights of every weighted layer (nested models' layers keyed `<outer>/<inner>`), in Keras variable order. */
export function kerasWeights(model: tf.LayersModel, prefix = '', out = new Map<string, KWeight[]>()): Map<string, KWeight[]> {
  for (const layer of model.layers) {
    const key = prefix + layer.name;
    if (layer instanceof tf.LayersModel) {
      kerasWeights(layer, `${key}/`, out);
    } else if (layer.weights.length) {
      out.set(key, layer.weights.map((w) => ({ name: roleOf(w.originalName), shape: [...w.shape] as number[], data: Float32Array.from(w.read().dataSync()) })));
    }
  }
  return out;
}

/** A tfjs model as the readers would hand it over: its Keras 2 dialect config, normalised, and its weights. */
export function toKerasImport(model: tf.LayersModel): KerasImport {
  return {
    format: 'tfjs-layers',
    kerasVersion: '2.x (tfjs-layers)',
    model: normalizeConfig(model.toJSON(null, false)),
    weights: kerasWeights(model),
  };
}

export function nhwcToNchw(x: Float32Array, [n, h, w, c]: number[]): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n!; b++) for (let i = 0; i < h!; i++) for (let j = 0; j < w!; j++) for (let k = 0; k < c!; k++) {
    out[((b * c! + k) * h! + i) * w! + j] = x[((b * h! + i) * w! + j) * c! + k]!;
  }
  return out;
}

export function nchwToNhwc(x: Float32Array, [n, c, h, w]: number[]): Float32Array {
  const out = new Float32Array(x.length);
  for (let b = 0; b < n!; b++) for (let k = 0; k < c!; k++) for (let i = 0; i < h!; i++) for (let j = 0; j < w!; j++) {
    out[((b * h! + i) * w! + j) * c! + k] = x[((b * c! + k) * h! + i) * w! + j]!;
  }
  return out;
}

/** Runs the converted graph on an NHWC (Keras) input; returns the named values in Keras order with Keras shapes. */
export async function runOnnx(converted: KerasOnnx, nhwc: Float32Array, kerasInputShape: number[], names: string[]): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const g = converted.graph;
  for (const n of names) if (!g.outputs.some((o) => o.name === n)) g.output(n, 'float32');
  const bytes = g.serialize().model;
  const session = await ort.InferenceSession.create(bytes, SESSION);
  try {
    const [n, h, w] = kerasInputShape as [number, number, number];
    const c = kerasInputShape.length === 4 ? kerasInputShape[3]! : 1;
    const nchw = nhwcToNchw(nhwc, [n, h, w, c]);
    const outs = await session.run({ input: new ort.Tensor('float32', nchw, [n, c, h, w]) });
    const res = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const name of names) {
      const t = outs[name]!;
      const dims = t.dims.map(Number);
      const data = t.data as Float32Array;
      res.set(name, dims.length === 4
        ? { data: nchwToNhwc(data, dims), shape: [dims[0]!, dims[2]!, dims[3]!, dims[1]!] }
        : { data, shape: dims });
    }
    return res;
  } finally {
    await session.release();
  }
}

export async function runTf(model: tf.LayersModel, nhwc: Float32Array, shape: number[], names: string[]): Promise<Map<string, { data: Float32Array; shape: number[] }>> {
  const sub = tf.model({ inputs: model.inputs, outputs: names.map((n) => model.getLayer(n).output as tf.SymbolicTensor) });
  const x = tf.tensor(nhwc, shape);
  const outs = sub.predict(x) as tf.Tensor | tf.Tensor[];
  const list = Array.isArray(outs) ? outs : [outs];
  const res = new Map<string, { data: Float32Array; shape: number[] }>();
  names.forEach((name, i) => res.set(name, { data: Float32Array.from(list[i]!.dataSync()), shape: list[i]!.shape }));
  tf.dispose([x, ...list]);
  return res;
}

/** max |a − b| and that relative to max |b|. */
export function errors(a: Float32Array, b: Float32Array): { maxAbs: number; rel: number } {
  assert.equal(a.length, b.length, 'lengths differ');
  let maxAbs = 0;
  let maxB = 0;
  for (let i = 0; i < a.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
    maxB = Math.max(maxB, Math.abs(b[i]!));
  }
  return { maxAbs, rel: maxAbs / (maxB || 1) };
}

export interface CompareOptions extends ConvertOptions {
  batch?: number;
  seed?: number;
  /** Input value range (default −1…1). */
  range?: [number, number];
  /** Relative tolerance on every non-probability output (default 1e-4); probabilities: 1e-4 absolute. */
  tolerance?: number;
}

/**
 * The converter against tfjs on one model: seeded random weights and input; every top-level layer that has an
 * ONNX value is compared (shape and values). Returns the conversion and the worst relative error.
 */
export async function compareWithTfjs(model: tf.LayersModel, opts: CompareOptions = {}): Promise<{ converted: KerasOnnx; worst: number }> {
  await tfReady();
  const seed = opts.seed ?? 1;
  randomizeWeights(model, seed);
  const converted = kerasToOnnx(toKerasImport(model), opts);
  const inputShape = [opts.batch ?? 2, ...(model.inputs[0]!.shape.slice(1) as number[])];
  const [lo, hi] = opts.range ?? [-1, 1];
  const x = uniform(inputShape.reduce((a, b) => a * b, 1), lo, hi, seed + 100);
  const topLevel = new Set(model.layers.map((l) => l.name));
  // Layers with one call (tfjs cannot name the output of a layer called twice, nor of a nested model, whose own
  // graph counts as a call).
  const names = converted.layers
    .filter((l) => !l.foldedInto && topLevel.has(l.name) && l.className !== 'InputLayer' && model.getLayer(l.name).inboundNodes.length === 1)
    .map((l) => l.name);
  const ours = await runOnnx(converted, x, inputShape, names);
  const ref = await runTf(model, x, inputShape, names);
  let worst = 0;
  for (const name of names) {
    const a = ours.get(name)!;
    const b = ref.get(name)!;
    assert.deepEqual(a.shape, b.shape, `${name}: shape`);
    const e = errors(a.data, b.data);
    const layer = model.getLayer(name);
    const probabilities = name === converted.outputs[0] && converted.outputKind === 'probabilities';
    const tol = opts.tolerance ?? 1e-4;
    if (probabilities) assert.ok(e.maxAbs <= 1e-4, `${name} (${layer.getClassName()}): max abs error ${e.maxAbs}`);
    else assert.ok(e.rel <= tol, `${name} (${layer.getClassName()}): max relative error ${e.rel} (abs ${e.maxAbs})`);
    worst = Math.max(worst, e.rel);
  }
  return { converted, worst };
}

/**
 * Converts a hand-written model (a Keras config in any dialect + weights) and runs it on an NHWC input;
 * returns the model's first output in Keras order. For layers or options tfjs lacks (direct-computation oracle).
 */
export async function convertAndRun(
  config: unknown, weights: Map<string, KWeight[]>, nhwc: Float32Array, inputShape: number[], opts: ConvertOptions & { kerasVersion?: string } = {},
): Promise<{ converted: KerasOnnx; output: { data: Float32Array; shape: number[] } }> {
  const imp: KerasImport = { format: 'keras2-h5', kerasVersion: opts.kerasVersion ?? '2.13.1', model: normalizeConfig(config), weights };
  const converted = kerasToOnnx(imp, opts);
  const name = converted.outputs[0]!;
  const out = await runOnnx(converted, nhwc, inputShape, [name]);
  return { converted, output: out.get(name)! };
}

/** A Keras 2 dialect Sequential config of the given layers ({class_name, config}) on an input of `inputShape`. */
export function sequentialConfig(inputShape: (number | null)[], layers: { class_name: string; config: Record<string, unknown> }[]): unknown {
  const [first, ...rest] = layers;
  return {
    class_name: 'Sequential',
    config: { name: 'sequential', layers: [{ ...first, config: { ...first!.config, batch_input_shape: [null, ...inputShape] } }, ...rest] },
    keras_version: '2.13.1',
    backend: 'tensorflow',
  };
}

/** Elementwise check of the converter's output against `expected` (relative to its max, or absolute). */
export function assertClose(actual: Float32Array, expected: Float32Array, tol: number, what: string, mode: 'rel' | 'abs' = 'rel'): void {
  const e = errors(actual, expected);
  assert.ok((mode === 'rel' ? e.rel : e.maxAbs) <= tol, `${what}: max ${mode} error ${mode === 'rel' ? e.rel : e.maxAbs} > ${tol}`);
}
