// Shared helpers for the autodiff tests: a real onnxruntime-node session per model, deterministic random
// data, tfjs (pure-JS CPU backend) as gradient oracle, and a max-norm relative error.
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { gradientGraph, type GradientModelOptions } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import type { Dim } from '../src/onnx/proto.js';

export { tf, ort };

let tfReady: Promise<void> | undefined;
export function tfCpu(): Promise<void> {
  tfReady ??= (async () => {
    await tf.setBackend('cpu');
    await tf.ready();
  })();
  return tfReady;
}

export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  logSeverityLevel: 3,
  intraOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

export function session(model: Uint8Array | string): Promise<ort.InferenceSession> {
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, SESSION_OPTIONS)
    : ort.InferenceSession.create(model, SESSION_OPTIONS);
}

/** mulberry32 → roughly normal values (sum of 3 uniforms), deterministic per seed. */
export function randn(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  let s = seed >>> 0;
  const u = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + scale * (u() + u() + u() - 1.5) * 2;
  return out;
}

export const prod = (d: readonly number[]): number => d.reduce((a, b) => a * b, 1);

/** max |a − b| / max |b| (the oracle is b). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return den === 0 ? num : num / den;
}

export interface InputSpec {
  name: string;
  dims: Dim[];
}

export interface OpCase {
  /** Graph inputs (float32). The first is `x`; all of them are differentiated unless `wrt` says otherwise. */
  inputs: InputSpec[];
  wrt?: string[];
  /** Builds y from the inputs. */
  build: (b: GraphBuilder, inputs: string[]) => string;
  options?: Partial<GradientModelOptions>;
}

/**
 * Builds `loss = Σ y·G` (G a random graph input shaped like y), differentiates it with gradientGraph, and
 * returns a runner: given concrete input data it returns y, the loss and each gradient from ORT.
 */
export async function prepare(c: OpCase): Promise<{
  run: (data: Record<string, { data: Float32Array; dims: number[] }>, seed: number) => Promise<{
    y: ort.Tensor; G: Float32Array; loss: number; grads: Record<string, Float32Array>;
  }>;
  gradModel: Uint8Array;
}> {
  const fwd = new GraphBuilder('fwd');
  const ins = c.inputs.map((s) => fwd.input(s.name, 'float32', s.dims));
  const y = c.build(fwd, ins);
  fwd.output(y);
  const fwdSession = await session(fwd.serialize().model);

  const b = new GraphBuilder('loss');
  const ins2 = c.inputs.map((s) => b.input(s.name, 'float32', s.dims));
  const y2 = c.build(b, ins2);
  const G = b.input('G', 'float32', []);
  // G is declared without a shape (any rank).
  b.inputs[b.inputs.length - 1]!.type!.tensorType!.shape = undefined;
  const loss = b.node('ReduceSum', [b.node('Mul', [y2, G])], { keepdims: 0 });
  b.output(loss);
  const wrt = c.wrt ?? c.inputs.map((s) => s.name);
  const gradModel = gradientGraph(b.serialize().model, { loss, wrt, ...c.options });
  const gradSession = await session(gradModel);
  return {
    gradModel,
    run: async (data, seed) => {
      const feeds: Record<string, ort.Tensor> = {};
      for (const [k, v] of Object.entries(data)) feeds[k] = new ort.Tensor('float32', v.data, v.dims);
      const yOut = (await fwdSession.run(feeds))[y]!;
      const Gd = randn(prod(yOut.dims as number[]), seed);
      feeds.G = new ort.Tensor('float32', Gd, yOut.dims as number[]);
      const out = await gradSession.run(feeds, ['loss', ...wrt.map((w) => `${w}_grad`)]);
      const grads: Record<string, Float32Array> = {};
      for (const w of wrt) grads[w] = out[`${w}_grad`]!.data as Float32Array;
      return { y: yOut, G: Gd, loss: Number((out.loss!.data as Float32Array)[0]), grads };
    },
  };
}

/** tfjs gradient of Σ f(inputs)·G w.r.t. each input, plus f's value. */
export function tfGrads(
  f: (...xs: tf.Tensor[]) => tf.Tensor, inputs: { data: Float32Array; dims: number[] }[], G: Float32Array, yDims: number[],
): { y: Float32Array; grads: Float32Array[] } {
  return tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.data, i.dims));
    const g = tf.tensor(G, yDims);
    const y = f(...xs).dataSync() as Float32Array;
    const gradFn = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(f(...a), g)));
    const grads = gradFn(xs).map((t) => t.dataSync() as Float32Array);
    return { y: Float32Array.from(y), grads: grads.map((d) => Float32Array.from(d)) };
  });
}

/** NCHW ↔ NHWC helpers for tfjs oracles. */
export const toNHWC = (x: tf.Tensor): tf.Tensor4D => tf.transpose(x as tf.Tensor4D, [0, 2, 3, 1]);
export const toNCHW = (x: tf.Tensor): tf.Tensor4D => tf.transpose(x as tf.Tensor4D, [0, 3, 1, 2]);
/** OIHW weight (ONNX) as an HWIO tfjs filter. */
export const hwio = (w: tf.Tensor): tf.Tensor4D => tf.transpose(w as tf.Tensor4D, [2, 3, 1, 0]);

/** Central finite differences of a float64 scalar function (exact enough for piecewise-linear/smooth f). */
export function fdGrad(f: (x: Float64Array) => number, x: Float64Array, h = 1e-4): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    x[i] = v + h;
    const fp = f(x);
    x[i] = v - h;
    const fm = f(x);
    x[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}
