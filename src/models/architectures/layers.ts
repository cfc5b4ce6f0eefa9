// Shared pieces of the Keras-applications architectures: the description every architecture exports, the
// weight-layout conversions (Keras HWIO/(in,out) → ONNX OIHW, BatchNormalization folding) and small
// GraphBuilder helpers that emit one Keras layer each, with the Keras layer name as the output value name.
import type { GraphBuilder } from '../../onnx/builder.js';
import type { PreprocessingMode } from '../manifest.js';

/** What a Keras weight is, independent of how the file spells its name. */
export type WeightRole = 'kernel' | 'bias' | 'gamma' | 'beta' | 'moving_mean' | 'moving_variance';

export interface KerasWeightSpec {
  /** Name exactly as the official file's `weight_names` attribute lists it (relative to the layer group). */
  name: string;
  role: WeightRole;
  shape: number[];
}

export interface KerasLayerSpec {
  name: string;
  className: 'Conv2D' | 'Dense' | 'BatchNormalization';
  weights: KerasWeightSpec[];
}

/** One weight as stored by Keras: row-major data with the Keras shape (HWIO kernels, (in,out) dense). */
export interface KerasTensor {
  shape: number[];
  data: Float32Array;
}

/** Layer name → that layer's weights, in the layer's `weight_names` order. */
export type KerasWeights = Map<string, KerasTensor[]>;

/** ONNX initializer name → dims + data (NCHW/OIHW conventions). */
export interface OnnxTensor {
  dims: number[];
  data: Float32Array;
}
export type OnnxWeights = Map<string, OnnxTensor>;

export interface ArchOptions {
  /** Filter multiplier (tests only: e.g. 1/8 for a fast reduced-width variant). Default 1. */
  width?: number;
}

export interface BuildOptions {
  includeTop: boolean;
  /** Extra values (Keras layer names) to expose as graph outputs, after the default one. */
  outputs?: string[];
}

export type ArchitectureName = 'vgg19' | 'inception_v3';

/** One layer of a top block that is a plain chain (what a trainer can rebuild layer by layer). */
export type ChainLayer =
  | { readonly kind: 'conv'; readonly name: string; readonly padding: Padding; readonly activation: 'relu' }
  | { readonly kind: 'maxPool'; readonly name: string; readonly size: number; readonly stride: number };

/**
 * The last block of the convolutional base, ending at the feature layer: what fine-tuning's --unfreeze-top
 * trains together with the new head, on cached values of the block's input.
 */
export interface TopBlock {
  /** Human name of the block ('block5', 'mixed9–10'). */
  readonly name: string;
  /** The value the block reads: the layer just before it. */
  readonly input: string;
  /** The block's Keras layers in creation order (weighted and weightless): what --unfreeze-top makes trainable. */
  readonly layers: readonly string[];
  /**
   * The block as a chain of layers; a conv's weights are the base's `<name>/kernel` (OIHW) and `<name>/bias`
   * initializers. Absent when the block branches (InceptionV3's modules): no trainer here rebuilds it.
   */
  readonly chain?: readonly ChainLayer[];
}

export interface Architecture {
  readonly name: ArchitectureName;
  /** Human name as Keras spells it. */
  readonly displayName: string;
  /** Default (and, for VGG19 with its top, required) input side. */
  readonly defaultSize: number;
  /** Smallest input side the convolutional base accepts (Keras' own check). */
  readonly minSize: number;
  readonly preprocessing: PreprocessingMode;
  readonly classes: number;
  /** Last layer of the convolutional base: the output of the notop (features) model, what a new head sits on. */
  readonly featureLayer: string;
  /** The block that ends at `featureLayer`: what fine-tuning may unfreeze. */
  readonly topBlock: TopBlock;
  /** Weighted Keras layers that only the top variant has. */
  readonly topLayers: readonly string[];
  /** Every Keras layer (weightless ones included: input, pools, activations, concats), in creation order. */
  kerasLayerNames(includeTop: boolean): string[];
  /** Weighted Keras layers in creation order, with weight names and shapes as in the official files. */
  kerasWeightSpec(includeTop: boolean, opts?: ArchOptions): KerasLayerSpec[];
  /** Keras-layout weights → ONNX initializers (transposes, BN folding, fc1 row permutation). */
  toOnnxWeights(kerasWeights: KerasWeights): OnnxWeights;
  /** NCHW graph with input `input` [N,3,H,W]; output `probabilities` (top) or the feature layer (notop). */
  build(onnxWeights: OnnxWeights, opts: BuildOptions): GraphBuilder;
  /** Channel count of the feature layer at this width. */
  featureChannels(opts?: ArchOptions): number;
}

/** Scales a filter count by the width multiplier (at least 1). */
export function scaled(filters: number, width = 1): number {
  return width === 1 ? filters : Math.max(1, Math.round(filters * width));
}

const KERAS1_ROLE: Record<WeightRole, string> = {
  kernel: 'W', bias: 'b', gamma: 'gamma', beta: 'beta', moving_mean: 'running_mean', moving_variance: 'running_std',
};

/**
 * The two weight-naming styles found in official Keras files:
 * - keras1: `block1_conv1_W_1:0` (flat, VGG files from Keras 1)
 * - keras2: `conv2d_1/kernel:0` (nested groups, InceptionV3 files from Keras 2)
 */
export type NamingStyle = 'keras1' | 'keras2';

export function weightName(layer: string, role: WeightRole, style: NamingStyle): string {
  return style === 'keras1' ? `${layer}_${KERAS1_ROLE[role]}_1:0` : `${layer}/${role}:0`;
}

/** The same spec with every weight renamed to `style`. */
export function withNamingStyle(spec: KerasLayerSpec[], style: NamingStyle): KerasLayerSpec[] {
  return spec.map((l) => ({ ...l, weights: l.weights.map((w) => ({ ...w, name: weightName(l.name, w.role, style) })) }));
}

// ---------------------------------------------------------------------------------------------------
// Weight conversions

/** Keras conv kernel (kh, kw, in, out) → ONNX (out, in, kh, kw); optional per-output-channel scale. */
export function hwioToOihw(t: KerasTensor, scale?: Float64Array): OnnxTensor {
  const [kh, kw, ci, co] = t.shape as [number, number, number, number];
  const src = t.data;
  const dst = new Float32Array(src.length);
  const hw = kh * kw;
  for (let h = 0; h < kh; h++) {
    for (let w = 0; w < kw; w++) {
      const sp = h * kw + w;
      for (let i = 0; i < ci; i++) {
        const srcBase = (sp * ci + i) * co;
        const dstBase = i * hw + sp;
        if (scale) for (let o = 0; o < co; o++) dst[o * ci * hw + dstBase] = src[srcBase + o]! * scale[o]!;
        else for (let o = 0; o < co; o++) dst[o * ci * hw + dstBase] = src[srcBase + o]!;
      }
    }
  }
  return { dims: [co, ci, kh, kw], data: dst };
}

export const BN_EPSILON = 1e-3;

/**
 * Folds an inference-mode BatchNormalization into the bias-free conv before it:
 * y = gamma·(conv(x) − mean)/sqrt(var + eps) + beta  →  conv'(x) + b' with W'[o] = W[o]·s[o], b' = beta − mean·s,
 * s = gamma/sqrt(var + eps) (gamma = 1 when scale=False). Computed in float64, stored as float32.
 */
export function foldBatchNorm(
  kernel: KerasTensor,
  bn: { gamma?: Float32Array; beta?: Float32Array; mean: Float32Array; variance: Float32Array },
  epsilon = BN_EPSILON,
): { kernel: OnnxTensor; bias: OnnxTensor } {
  const co = kernel.shape[3]!;
  const scale = new Float64Array(co);
  const bias = new Float32Array(co);
  for (let o = 0; o < co; o++) {
    const s = (bn.gamma ? bn.gamma[o]! : 1) / Math.sqrt(bn.variance[o]! + epsilon);
    scale[o] = s;
    bias[o] = (bn.beta ? bn.beta[o]! : 0) - bn.mean[o]! * s;
  }
  return { kernel: hwioToOihw(kernel, scale), bias: { dims: [co], data: bias } };
}

export function vector(t: KerasTensor): OnnxTensor {
  return { dims: [t.data.length], data: t.data };
}

export function weightOf(weights: OnnxWeights, name: string): OnnxTensor {
  const t = weights.get(name);
  if (!t) throw new Error(`ONNX weights: '${name}' is missing`);
  return t;
}

export function kerasLayer(weights: KerasWeights, layer: string, count: number): KerasTensor[] {
  const ws = weights.get(layer);
  if (!ws) throw new Error(`Keras weights: layer '${layer}' is missing`);
  if (ws.length !== count) throw new Error(`Keras weights: layer '${layer}' has ${ws.length} weights, expected ${count}`);
  return ws;
}

// ---------------------------------------------------------------------------------------------------
// Graph helpers (each emits one Keras layer; `out` is the Keras layer name)

export type Padding = 'same' | 'valid';

/** TF 'same' for stride 1: symmetric (k−1)/2 per side; ONNX pads = [top, left, bottom, right]. */
export function samePads(kh: number, kw: number): number[] {
  if (kh % 2 === 0 || kw % 2 === 0) throw new Error(`'same' padding with an even kernel (${kh}×${kw}) is asymmetric and not supported`);
  const ph = (kh - 1) / 2;
  const pw = (kw - 1) / 2;
  return [ph, pw, ph, pw];
}

export function conv2d(
  g: GraphBuilder, x: string, weights: OnnxWeights, weightPrefix: string,
  opts: { strides?: number; padding: Padding }, out: string,
): string {
  const kernelName = `${weightPrefix}/kernel`;
  const biasName = `${weightPrefix}/bias`;
  const k = weightOf(weights, kernelName);
  const b = weights.get(biasName);
  const [, , kh, kw] = k.dims as [number, number, number, number];
  const s = opts.strides ?? 1;
  if (opts.padding === 'same' && s !== 1) throw new Error(`'same' padding with stride ${s} is not used by these architectures`);
  const inputs = [x, ensureWeight(g, kernelName, k)];
  if (b) inputs.push(ensureWeight(g, biasName, b));
  return g.node('Conv', inputs, {
    kernel_shape: [kh, kw], strides: [s, s], dilations: [1, 1], group: 1,
    pads: opts.padding === 'same' ? samePads(kh, kw) : [0, 0, 0, 0],
  }, { outputs: [out] });
}

export function ensureWeight(g: GraphBuilder, name: string, t: OnnxTensor): string {
  return g.hasValue(name) ? name : g.weight(name, t.dims, t.data);
}

export function relu(g: GraphBuilder, x: string, out: string): string {
  return g.node('Relu', [x], {}, { outputs: [out] });
}

export function maxPool(g: GraphBuilder, x: string, size: number, stride: number, out: string): string {
  return g.node('MaxPool', [x], { kernel_shape: [size, size], strides: [stride, stride], pads: [0, 0, 0, 0] }, { outputs: [out] });
}

/** Keras AveragePooling2D(3, strides=1, padding='same'): padded cells are not counted (TF semantics). */
export function avgPoolSame(g: GraphBuilder, x: string, size: number, out: string): string {
  return g.node('AveragePool', [x], {
    kernel_shape: [size, size], strides: [1, 1], pads: samePads(size, size), count_include_pad: 0,
  }, { outputs: [out] });
}

export function concat(g: GraphBuilder, xs: string[], out: string): string {
  return g.node('Concat', xs, { axis: 1 }, { outputs: [out] });
}

/** Keras Dense: x·W + b (W is (in, out), as Keras stores it), then the activation. */
export function dense(
  g: GraphBuilder, x: string, weights: OnnxWeights, layer: string, activation: 'relu' | 'softmax' | 'linear',
): string {
  const k = weightOf(weights, `${layer}/kernel`);
  const b = weightOf(weights, `${layer}/bias`);
  const inputs = [x, ensureWeight(g, `${layer}/kernel`, k), ensureWeight(g, `${layer}/bias`, b)];
  if (activation === 'linear') return g.node('Gemm', inputs, {}, { outputs: [layer] });
  const pre = g.node('Gemm', inputs, {}, { outputs: [`${layer}/logits`] });
  return activation === 'relu'
    ? g.node('Relu', [pre], {}, { outputs: [layer] })
    : g.node('Softmax', [pre], { axis: -1 }, { outputs: [layer] });
}

/** Marks the default output and any requested extra ones; `probabilities` is an Identity of `predictions`. */
export function markOutputs(g: GraphBuilder, main: string, extra: string[] | undefined, classes?: number): void {
  if (main === 'probabilities') {
    g.node('Identity', ['predictions'], {}, { outputs: ['probabilities'] });
    g.output('probabilities', 'float32', ['N', classes ?? 1000]);
  } else {
    g.output(main, 'float32');
  }
  for (const name of extra ?? []) {
    if (name === main) continue;
    if (!g.hasValue(name)) throw new Error(`cannot expose '${name}' as an output: no layer of this graph has that name`);
    g.output(name, 'float32');
  }
}
