// A small sequential network (the layers convserve trains: convs, pools, dense, dropout, batch-norm) described as
// data, with the two ONNX graphs the ONNX Runtime trainer needs, both NCHW:
//
//   trainingGraph   x, one-hot labels, every parameter and every dropout mask as graph INPUTS → loss, logits,
//                   the gradient of every parameter (src/onnx autodiff) and each batch-norm layer's batch mean
//                   and variance (for the moving averages). Parameters are inputs so that each step feeds the
//                   current weights to the same session (nothing is reloaded).
//   appendInference the inference chain (dropout gone, batch-norm on its moving statistics, softmax at the end)
//                   appended to any graph, with the parameters either as inputs (evaluation during training) or
//                   as initializers (the exported model).
import { type VjpOptions, appendGradients, pruneUnused } from '../onnx/autodiff.js';
import { GraphBuilder } from '../onnx/builder.js';
import { softmaxCrossEntropy } from '../onnx/losses.js';
import { encodeModel } from '../onnx/proto.js';
import { batchNormTraining, dropoutWithMask } from '../onnx/train-layers.js';

export type Activation = 'linear' | 'relu' | 'softmax';

export type LayerSpec =
  | { kind: 'conv'; name: string; filters: number; kernel: number; stride?: number; padding: 'valid' | 'same'; activation: Activation }
  | { kind: 'maxPool'; name: string; size: number; stride?: number }
  | { kind: 'globalAvgPool'; name: string }
  | { kind: 'flatten'; name: string }
  | { kind: 'dense'; name: string; units: number; activation: Activation }
  | { kind: 'dropout'; name: string; rate: number }
  | { kind: 'batchNorm'; name: string; epsilon: number; momentum: number };

/** A sequential classifier: `input` is the shape of one example ([C, H, W] or [F]); the last layer is a softmax dense. */
export interface NetSpec {
  input: number[];
  layers: LayerSpec[];
}

/** A tensor the network owns: trainable (kernels, biases, batch-norm scale/offset) or state (moving statistics). */
export interface ParamInfo {
  name: string;
  dims: number[];
  trainable: boolean;
  /** Fan-in / fan-out of a kernel (Glorot initialisation); absent for biases and batch-norm tensors. */
  fans?: [number, number];
  init: 'glorot' | 'zeros' | 'ones';
}

export interface NetShape {
  params: ParamInfo[];
  /** Shape of one example after each layer. */
  shapes: number[][];
  /** Dropout layers with the per-example shape of their mask. */
  masks: { name: string; shape: number[]; rate: number }[];
  classes: number;
}

/** Keras' defaults for BatchNormalization. */
export const KERAS_BN = { epsilon: 1e-3, momentum: 0.99 };

const prod = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

function convOut(size: number, k: number, s: number, padding: 'valid' | 'same'): number {
  return padding === 'same' ? Math.ceil(size / s) : Math.floor((size - k) / s) + 1;
}

/** Shapes, parameters and dropout masks of `spec` (throws on a layer that does not fit its input). */
export function describeNet(spec: NetSpec): NetShape {
  const params: ParamInfo[] = [];
  const shapes: number[][] = [];
  const masks: NetShape['masks'] = [];
  let shape = [...spec.input];
  for (const l of spec.layers) {
    switch (l.kind) {
      case 'conv': {
        if (shape.length !== 3) throw new Error(`layer ${l.name}: a conv needs a [C, H, W] input, got [${shape}]`);
        const [c, h, w] = shape as [number, number, number];
        const s = l.stride ?? 1;
        params.push({ name: `${l.name}/kernel`, dims: [l.filters, c, l.kernel, l.kernel], trainable: true, fans: [c * l.kernel * l.kernel, l.filters * l.kernel * l.kernel], init: 'glorot' });
        params.push({ name: `${l.name}/bias`, dims: [l.filters], trainable: true, init: 'zeros' });
        shape = [l.filters, convOut(h, l.kernel, s, l.padding), convOut(w, l.kernel, s, l.padding)];
        break;
      }
      case 'maxPool': {
        if (shape.length !== 3) throw new Error(`layer ${l.name}: a pool needs a [C, H, W] input, got [${shape}]`);
        const s = l.stride ?? l.size;
        shape = [shape[0]!, convOut(shape[1]!, l.size, s, 'valid'), convOut(shape[2]!, l.size, s, 'valid')];
        break;
      }
      case 'globalAvgPool':
        if (shape.length !== 3) throw new Error(`layer ${l.name}: global pooling needs a [C, H, W] input, got [${shape}]`);
        shape = [shape[0]!];
        break;
      case 'flatten':
        shape = [prod(shape)];
        break;
      case 'dense': {
        if (shape.length !== 1) throw new Error(`layer ${l.name}: a dense layer needs a flat input, got [${shape}] (add a flatten)`);
        params.push({ name: `${l.name}/kernel`, dims: [shape[0]!, l.units], trainable: true, fans: [shape[0]!, l.units], init: 'glorot' });
        params.push({ name: `${l.name}/bias`, dims: [l.units], trainable: true, init: 'zeros' });
        shape = [l.units];
        break;
      }
      case 'dropout':
        masks.push({ name: `${l.name}/mask`, shape: [...shape], rate: l.rate });
        break;
      case 'batchNorm': {
        const c = shape[0]!;
        params.push({ name: `${l.name}/gamma`, dims: [c], trainable: true, init: 'ones' });
        params.push({ name: `${l.name}/beta`, dims: [c], trainable: true, init: 'zeros' });
        params.push({ name: `${l.name}/moving_mean`, dims: [c], trainable: false, init: 'zeros' });
        params.push({ name: `${l.name}/moving_variance`, dims: [c], trainable: false, init: 'ones' });
        break;
      }
    }
    shapes.push(shape);
  }
  const last = spec.layers[spec.layers.length - 1];
  if (!last || last.kind !== 'dense' || last.activation !== 'softmax') throw new Error('the last layer of a classifier must be a softmax dense layer');
  return { params, shapes, masks, classes: last.units };
}

/** Where the parameters come from when a graph is built: graph inputs (fed every run) or initializers (exported). */
export type ParamSource = { kind: 'inputs' } | { kind: 'initializers'; values: ReadonlyMap<string, Float32Array> };

function declareParams(b: GraphBuilder, shape: NetShape, source: ParamSource, which: (p: ParamInfo) => boolean): void {
  for (const p of shape.params) {
    if (!which(p)) continue;
    if (source.kind === 'inputs') b.input(p.name, 'float32', p.dims);
    else {
      const v = source.values.get(p.name);
      if (!v) throw new Error(`no value for parameter ${p.name}`);
      b.weight(p.name, p.dims, v);
    }
  }
}

function activate(b: GraphBuilder, x: string, a: Activation, final: boolean): string {
  if (a === 'relu') return b.node('Relu', [x]);
  if (a === 'softmax') return final ? x : b.node('Softmax', [x], { axis: 1 });
  return x;
}

interface ChainOptions {
  training: boolean;
  /** Batch-norm batch statistics produced in training mode (mean, variance per layer). */
  stats?: { layer: string; mean: string; variance: string }[];
}

/** The layers after `x`; the last softmax is left out (logits) in training, applied in inference. */
function chain(b: GraphBuilder, spec: NetSpec, x: string, o: ChainOptions): string {
  let v = x;
  let rank = spec.input.length + 1;
  spec.layers.forEach((l, i) => {
    const final = i === spec.layers.length - 1;
    switch (l.kind) {
      case 'conv': {
        const s = l.stride ?? 1;
        v = b.node('Conv', [v, `${l.name}/kernel`, `${l.name}/bias`], {
          kernel_shape: [l.kernel, l.kernel], strides: [s, s], ...(l.padding === 'same' ? { auto_pad: 'SAME_UPPER' } : { pads: [0, 0, 0, 0] }),
        });
        v = activate(b, v, l.activation, false);
        break;
      }
      case 'maxPool': {
        const s = l.stride ?? l.size;
        v = b.node('MaxPool', [v], { kernel_shape: [l.size, l.size], strides: [s, s] });
        break;
      }
      case 'globalAvgPool':
        v = b.node('Flatten', [b.node('GlobalAveragePool', [v])], { axis: 1 });
        rank = 2;
        break;
      case 'flatten':
        v = b.node('Flatten', [v], { axis: 1 });
        rank = 2;
        break;
      case 'dense':
        v = activate(b, b.node('Gemm', [v, `${l.name}/kernel`, `${l.name}/bias`]), l.activation, o.training && final);
        break;
      case 'dropout':
        if (o.training && l.rate > 0) v = dropoutWithMask(b, v, `${l.name}/mask`, l.rate);
        break;
      case 'batchNorm': {
        const [gamma, beta, mean, variance] = ['gamma', 'beta', 'moving_mean', 'moving_variance'].map((s) => `${l.name}/${s}`) as [string, string, string, string];
        if (o.training) {
          const r = batchNormTraining(b, v, gamma, beta, { epsilon: l.epsilon, rank });
          o.stats?.push({ layer: l.name, mean: r.mean, variance: r.variance });
          v = r.y;
        } else {
          v = b.node('BatchNormalization', [v, gamma, beta, mean, variance], { epsilon: { float: l.epsilon } });
        }
        break;
      }
    }
  });
  return v;
}

/**
 * Appends the inference chain after `input` (a value of `b` shaped [N, ...spec.input]); returns the
 * probabilities value. The parameters are declared in `b` as `source` says.
 */
export function appendInference(b: GraphBuilder, spec: NetSpec, input: string, source: ParamSource): string {
  const shape = describeNet(spec);
  declareParams(b, shape, source, () => true);
  return chain(b, spec, input, { training: false });
}

/** The inference model: `input` [N, ...spec.input] → `probabilities` [N, classes]. */
export function inferenceModel(spec: NetSpec, source: ParamSource, name = 'net'): GraphBuilder {
  const b = new GraphBuilder(name);
  const x = b.input('input', 'float32', ['N', ...spec.input]);
  const p = appendInference(b, spec, x, source);
  b.node('Identity', [p], {}, { outputs: ['probabilities'] });
  b.output('probabilities', 'float32', ['N', describeNet(spec).classes]);
  return b;
}

export interface TrainingGraph {
  bytes: Uint8Array;
  /** Output names: the mean loss, the logits, the gradient of each trainable parameter. */
  loss: string;
  logits: string;
  grads: Record<string, string>;
  /** Batch statistics outputs of each batch-norm layer. */
  stats: { layer: string; mean: string; variance: string }[];
}

/**
 * How the trainer's graphs differentiate: conv weight gradients as one Gemm over gathered patches (the inputs are
 * small and static; the digit net's conv2 weight gradient 6.2 → 2.1 ms per step, see README "Performance").
 */
export const TRAINING_VJP: VjpOptions = { convWeightGrad: 'gemm' };

/**
 * The training graph of `spec`: inputs `x` [N, ...input], `labels` [N, classes] (one-hot, float), every
 * parameter and every dropout mask ([N, ...shape]); outputs `loss` (mean softmax cross-entropy), `logits`,
 * `<param>_grad` for every trainable parameter and the batch-norm statistics.
 */
export function trainingGraph(spec: NetSpec, vjp: VjpOptions = TRAINING_VJP): TrainingGraph {
  const shape = describeNet(spec);
  const b = new GraphBuilder('train');
  const x = b.input('x', 'float32', ['N', ...spec.input]);
  const labels = b.input('labels', 'float32', ['N', shape.classes]);
  declareParams(b, shape, { kind: 'inputs' }, (p) => p.trainable);
  for (const m of shape.masks) if (m.rate > 0) b.input(m.name, 'float32', ['N', ...m.shape]);
  const stats: TrainingGraph['stats'] = [];
  const logits = chain(b, spec, x, { training: true, stats });
  const loss = softmaxCrossEntropy(b, logits, labels, { labels: 'one-hot', name: 'loss' });
  const trainable = shape.params.filter((p) => p.trainable).map((p) => p.name);
  const grads = appendGradients(b, { ...vjp, loss, wrt: trainable });
  b.output(loss, 'float32', []);
  b.node('Identity', [logits], {}, { outputs: ['logits'] });
  b.output('logits', 'float32', ['N', shape.classes]);
  const gradOut: Record<string, string> = {};
  for (const p of trainable) {
    const name = `${p}_grad`;
    b.node('Identity', [grads[p]!], {}, { outputs: [name] });
    b.output(name, 'float32');
    gradOut[p] = name;
  }
  const statOut = stats.map((s) => {
    const mean = b.node('Identity', [s.mean], {}, { outputs: [`${s.layer}/batch_mean`] });
    const variance = b.node('Identity', [s.variance], {}, { outputs: [`${s.layer}/batch_variance`] });
    b.output(mean, 'float32');
    b.output(variance, 'float32');
    return { layer: s.layer, mean, variance };
  });
  const graph = pruneUnused(b.toGraph());
  const bytes = encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'convserve train', graph });
  return { bytes, loss, logits: 'logits', grads: gradOut, stats: statOut };
}
