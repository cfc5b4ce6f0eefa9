// Converts a trained TensorFlow.js layers model (a chain of layers) to ONNX with GraphBuilder.
//
// tfjs works in NHWC; our ONNX models take NCHW (`input` [N, C, H, W]). Inside the graph 4-D values stay NCHW
// and the converter keeps track of the layout: Conv kernels are transposed [kh, kw, ci, co] → [co, ci, kh, kw],
// channel-axis ops use axis 1, and Flatten first transposes back to NHWC so the flattened order — and hence the
// following Dense kernel rows — are exactly tfjs's.
//
// Supported layers: InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
// GlobalMaxPooling2D, Flatten, Dense, Dropout/SpatialDropout (inference no-ops), Activation, ReLU, Softmax,
// BatchNormalization, and nested Sequential models. Anything else is rejected with the layer's name.
import * as ort from 'onnxruntime-node';
import * as tf from '@tensorflow/tfjs';
import { GraphBuilder } from '../onnx/builder.js';
import { ORT_SESSION_OPTIONS } from './export-session.js';

/** Layout of the current value: 4-D channels-first, or 2-D [N, features]. */
export type Layout = 'NCHW' | 'flat';

export interface AppendResult {
  output: string;
  layout: Layout;
}

export interface OnnxExportOptions {
  graphName?: string;
  /** Graph input name (default 'input'). */
  inputName?: string;
  /** Graph output name (default 'probabilities'). */
  outputName?: string;
  /** Symbolic batch dimension name (default 'N'). */
  batchDim?: string;
}

type AnyConfig = Record<string, unknown>;

const asPair = (v: unknown, what: string): [number, number] => {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((n) => typeof n === 'number')) return [v[0] as number, v[1] as number];
  throw new Error(`export-onnx: cannot read ${what} ${JSON.stringify(v)}`);
};

/** [kh, kw, ci, co] (tfjs) → [co, ci, kh, kw] (ONNX). */
function convKernelToOnnx(kernel: tf.Tensor): { dims: number[]; data: Float32Array } {
  const [kh, kw, ci, co] = kernel.shape as [number, number, number, number];
  const t = tf.tidy(() => tf.transpose(kernel, [3, 2, 0, 1]));
  const data = t.dataSync() as Float32Array;
  t.dispose();
  return { dims: [co, ci, kh, kw], data: Float32Array.from(data) };
}

/** A value name not yet used in `g` (GraphBuilder.fresh() would claim it, and weight() claims it again). */
function uniqueName(g: GraphBuilder, base: string): string {
  let name = base;
  for (let i = 1; g.hasValue(name); i++) name = `${base}_${i}`;
  return name;
}

function weightData(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync() as Float32Array);
}

function autoPad(padding: unknown, layer: string): string {
  if (padding === 'same') return 'SAME_UPPER'; // TF puts the odd extra pixel at the end, like SAME_UPPER
  if (padding === 'valid') return 'VALID';
  throw new Error(`export-onnx: layer '${layer}' has unsupported padding ${JSON.stringify(padding)}`);
}

function checkChannelsLast(cfg: AnyConfig, layer: string): void {
  if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') {
    throw new Error(`export-onnx: layer '${layer}' uses dataFormat ${String(cfg.dataFormat)}; only channelsLast is supported`);
  }
}

function activationName(a: unknown): string {
  if (a === undefined || a === null) return 'linear';
  if (typeof a === 'string') return a;
  if (typeof a === 'object' && a && 'className' in a) return String((a as { className: unknown }).className);
  return String(a);
}

/** Appends an activation (by Keras/tfjs name); both layouts keep channels/features on axis 1. */
function appendActivation(g: GraphBuilder, x: string, act: unknown, layer: string): string {
  const name = activationName(act).toLowerCase();
  switch (name) {
    case 'linear': return x;
    case 'relu': return g.node('Relu', [x]);
    case 'sigmoid': return g.node('Sigmoid', [x]);
    case 'tanh': return g.node('Tanh', [x]);
    case 'softmax': return g.node('Softmax', [x], { axis: 1 });
    case 'elu': return g.node('Elu', [x], { alpha: { float: 1 } });
    case 'selu': return g.node('Selu', [x]);
    case 'softplus': return g.node('Softplus', [x]);
    case 'hardsigmoid': case 'hard_sigmoid': return g.node('HardSigmoid', [x], { alpha: { float: 0.2 }, beta: { float: 0.5 } });
    case 'relu6': return g.node('Clip', [x, g.scalar(0), g.scalar(6)]);
    default: throw new Error(`export-onnx: layer '${layer}' has unsupported activation '${name}'`);
  }
}

function flattenLayers(layers: tf.layers.Layer[]): tf.layers.Layer[] {
  const out: tf.layers.Layer[] = [];
  for (const l of layers) {
    const nested = (l as unknown as { layers?: tf.layers.Layer[] }).layers;
    if (Array.isArray(nested) && l instanceof tf.LayersModel) out.push(...flattenLayers(nested));
    else out.push(l);
  }
  return out;
}

/**
 * Appends the layers of `model` (or a list of layers) to `g`, starting from value `input` in `layout`.
 * The layers must form a chain (each layer consumes the previous one's output).
 */
export function appendTfjsLayers(
  g: GraphBuilder, model: tf.LayersModel | tf.layers.Layer[], input: string, layout: Layout,
): AppendResult {
  const layers = flattenLayers(Array.isArray(model) ? model : model.layers);
  let x = input;
  let lay = layout;
  for (const layer of layers) {
    const cls = layer.getClassName();
    const cfg = layer.getConfig() as AnyConfig;
    const name = layer.name;
    const weights = layer.getWeights();
    const need4d = () => { if (lay !== 'NCHW') throw new Error(`export-onnx: layer '${name}' (${cls}) needs a 4-D input`); };
    switch (cls) {
      case 'InputLayer':
      case 'Dropout':
      case 'SpatialDropout1D':
      case 'SpatialDropout2D':
      case 'GaussianNoise':
      case 'GaussianDropout':
      case 'AlphaDropout':
        break;
      case 'Conv2D': {
        need4d();
        checkChannelsLast(cfg, name);
        const [kernel, bias] = weights;
        if (!kernel) throw new Error(`export-onnx: layer '${name}' has no kernel`);
        const k = convKernelToOnnx(kernel);
        const inputs = [x, g.weight(uniqueName(g, `${name}_W`), k.dims, k.data)];
        if (cfg.useBias !== false && bias) inputs.push(g.weight(uniqueName(g, `${name}_B`), bias.shape, weightData(bias)));
        const kernelSize = asPair(cfg.kernelSize, 'kernelSize');
        const y = g.node('Conv', inputs, {
          kernel_shape: kernelSize,
          strides: asPair(cfg.strides ?? 1, 'strides'),
          dilations: asPair(cfg.dilationRate ?? 1, 'dilationRate'),
          auto_pad: autoPad(cfg.padding, name),
        }, { name });
        x = appendActivation(g, y, cfg.activation, name);
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        need4d();
        checkChannelsLast(cfg, name);
        const pool = asPair(cfg.poolSize, 'poolSize');
        x = g.node(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [x], {
          kernel_shape: pool,
          strides: asPair(cfg.strides ?? cfg.poolSize, 'strides'),
          auto_pad: autoPad(cfg.padding, name),
        }, { name });
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        need4d();
        checkChannelsLast(cfg, name);
        const p = g.node(cls === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', [x], {}, { name });
        x = g.node('Flatten', [p], { axis: 1 });
        lay = 'flat';
        break;
      }
      case 'Flatten': {
        if (lay === 'NCHW') {
          // tfjs flattens NHWC: go back to channels-last first so the Dense rows line up.
          x = g.node('Transpose', [x], { perm: [0, 2, 3, 1] });
        }
        x = g.node('Flatten', [x], { axis: 1 }, { name });
        lay = 'flat';
        break;
      }
      case 'Dense': {
        if (lay !== 'flat') throw new Error(`export-onnx: Dense layer '${name}' on a ${lay} value is not supported (add Flatten or global pooling)`);
        const [kernel, bias] = weights;
        if (!kernel) throw new Error(`export-onnx: layer '${name}' has no kernel`);
        const w = g.weight(uniqueName(g, `${name}_W`), kernel.shape, weightData(kernel));
        const inputs = [x, w];
        if (cfg.useBias !== false && bias) inputs.push(g.weight(uniqueName(g, `${name}_B`), bias.shape, weightData(bias)));
        const y = g.node('Gemm', inputs, {}, { name });
        x = appendActivation(g, y, cfg.activation, name);
        break;
      }
      case 'Activation':
        x = appendActivation(g, x, cfg.activation, name);
        break;
      case 'ReLU': {
        if (typeof cfg.maxValue === 'number') x = g.node('Clip', [x, g.scalar(0), g.scalar(cfg.maxValue)], {}, { name });
        else x = g.node('Relu', [x], {}, { name });
        break;
      }
      case 'Softmax': {
        const axis = cfg.axis ?? -1;
        if (axis !== -1 && !(lay === 'flat' && axis === 1)) throw new Error(`export-onnx: Softmax layer '${name}' with axis ${String(axis)} is not supported`);
        x = g.node('Softmax', [x], { axis: 1 }, { name });
        break;
      }
      case 'BatchNormalization': {
        const axis = cfg.axis ?? -1;
        if (axis !== -1 && !(lay === 'NCHW' && axis === 3) && !(lay === 'flat' && axis === 1)) {
          throw new Error(`export-onnx: BatchNormalization '${name}' on axis ${String(axis)} is not supported`);
        }
        const byName = (suffix: string) => weights.find((_, i) => layer.weights[i]?.originalName.endsWith(suffix));
        const gamma = byName('gamma');
        const beta = byName('beta');
        const mean = byName('moving_mean');
        const variance = byName('moving_variance');
        if (!mean || !variance) throw new Error(`export-onnx: BatchNormalization '${name}' has no moving statistics`);
        const c = mean.shape[0]!;
        const ones = new Float32Array(c).fill(1);
        const scale = g.weight(uniqueName(g, `${name}_gamma`), [c], gamma ? weightData(gamma) : ones);
        const shift = g.weight(uniqueName(g, `${name}_beta`), [c], beta ? weightData(beta) : new Float32Array(c));
        const m = g.weight(uniqueName(g, `${name}_mean`), [c], weightData(mean));
        const v = g.weight(uniqueName(g, `${name}_var`), [c], weightData(variance));
        x = g.node('BatchNormalization', [x, scale, shift, m, v], { epsilon: { float: Number(cfg.epsilon ?? 1e-3) } }, { name });
        break;
      }
      default:
        throw new Error(`export-onnx: layer '${name}' of type ${cls} is not supported`);
    }
  }
  return { output: x, layout: lay };
}

/**
 * A complete ONNX graph for a tfjs model whose input is an image [N, H, W, C] (exported as NCHW `input`
 * [N, C, H, W] float32) or a feature vector [N, F]; the final value is renamed to `outputName`.
 */
export function tfjsModelToOnnx(model: tf.LayersModel, opts: OnnxExportOptions = {}): GraphBuilder {
  const inputName = opts.inputName ?? 'input';
  const outputName = opts.outputName ?? 'probabilities';
  const batch = opts.batchDim ?? 'N';
  const shape = model.inputs[0]?.shape;
  if (!shape || model.inputs.length !== 1) throw new Error('export-onnx: the model must have exactly one input');
  const g = new GraphBuilder(opts.graphName ?? model.name);
  let layout: Layout;
  if (shape.length === 4) {
    const [, h, w, c] = shape;
    if (c == null) throw new Error('export-onnx: the channel dimension of the input must be known');
    g.input(inputName, 'float32', [batch, c, h ?? 'H', w ?? 'W']);
    layout = 'NCHW';
  } else if (shape.length === 2) {
    if (shape[1] == null) throw new Error('export-onnx: the feature dimension of the input must be known');
    g.input(inputName, 'float32', [batch, shape[1]]);
    layout = 'flat';
  } else {
    throw new Error(`export-onnx: unsupported input rank ${shape.length}`);
  }
  const res = appendTfjsLayers(g, model, inputName, layout);
  const out = g.node('Identity', [res.output], {}, { outputs: [outputName] });
  const outShape = model.outputs[0]?.shape;
  g.output(out, 'float32', res.layout === 'flat' && outShape?.length === 2 && outShape[1] != null ? [batch, outShape[1]] : undefined);
  return g;
}

/** NHWC Float32Array → NCHW Float32Array. */
export function nhwcToNchw(data: Float32Array, n: number, h: number, w: number, c: number): Float32Array {
  if (c === 1) return data.slice();
  const out = new Float32Array(data.length);
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let ch = 0; ch < c; ch++) out[((b * c + ch) * h + y) * w + x] = data[((b * h + y) * w + x) * c + ch]!;
  return out;
}

export { ORT_SESSION_OPTIONS };

export interface ParityResult {
  maxAbsDiff: number;
  samples: number;
}

/**
 * Runs the serialized ONNX model in onnxruntime-node and the tfjs model on the same NHWC batch and returns the
 * largest absolute difference of their outputs.
 */
export async function compareOnnxWithTfjs(
  onnxModel: Uint8Array | string, model: tf.LayersModel, batchNhwc: tf.Tensor,
  opts: {
    inputName?: string; outputName?: string;
    /**
     * Feed for the ONNX model when it does not take the tfjs model's input: e.g. a fine-tuned model composed of a
     * frozen base and a tfjs head gets the images (NCHW) while the tfjs head gets the base's features.
     */
    onnxInput?: ort.Tensor;
  } = {},
): Promise<ParityResult> {
  const session = await ort.InferenceSession.create(onnxModel as Uint8Array, ORT_SESSION_OPTIONS);
  try {
    const expected = tf.tidy(() => model.predict(batchNhwc) as tf.Tensor);
    const want = (await expected.data()) as Float32Array;
    expected.dispose();
    let feed: ort.Tensor;
    if (opts.onnxInput) {
      feed = opts.onnxInput;
    } else if (batchNhwc.rank === 4) {
      const [n, h, w, c] = batchNhwc.shape as [number, number, number, number];
      feed = new ort.Tensor('float32', nhwcToNchw((await batchNhwc.data()) as Float32Array, n, h, w, c), [n, c, h, w]);
    } else {
      feed = new ort.Tensor('float32', Float32Array.from((await batchNhwc.data()) as Float32Array), batchNhwc.shape);
    }
    const out = await session.run({ [opts.inputName ?? 'input']: feed });
    const got = out[opts.outputName ?? 'probabilities']!.data as Float32Array;
    if (got.length !== want.length) throw new Error(`export-onnx: ONNX output has ${got.length} values, tfjs ${want.length}`);
    let maxAbsDiff = 0;
    for (let i = 0; i < got.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i]! - want[i]!));
    return { maxAbsDiff, samples: batchNhwc.shape[0]! };
  } finally {
    await session.release();
  }
}
