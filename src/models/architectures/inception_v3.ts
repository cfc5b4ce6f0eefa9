// InceptionV3 as keras.applications.InceptionV3 defines it (keras-facts §2). The network is written once, in
// the order of the Keras source (`inceptionV3` below), against a tiny backend interface; one backend collects
// the weight spec and Keras layer names, the other emits the ONNX graph. conv2d_bn numbering follows the
// official weight file: conv2d_K / batch_normalization_K / activation_K with K = 1-based call order.
//
// In the graph, each conv2d_bn is one Conv (BatchNormalization folded in, eps 1e-3, scale=False) whose output
// is named `batch_normalization_K`, then a Relu named `activation_K`. Pools are `max_pooling2d_N` /
// `average_pooling2d_N`, concats `mixed0`…`mixed10`, `mixed9_0`, `mixed9_1`, `concatenate_1/2`; the top is
// `avg_pool` (GlobalAveragePooling2D, [N, C]) and `predictions` (softmax).
import { GraphBuilder } from '../../onnx/builder.js';
import {
  type Architecture, type ArchOptions, type BuildOptions, type KerasLayerSpec, type KerasWeights, type OnnxWeights, type Padding, type TopBlock,
  avgPoolSame, concat, conv2d, dense, foldBatchNorm, kerasLayer, markOutputs, maxPool, relu, scaled, vector, weightName,
} from './layers.js';

const CLASSES = 1000;

/** The operations the topology needs; `T` is whatever flows between layers (a value name, a channel count…). */
interface Backend<T> {
  convBn(x: T, k: number, filters: number, rows: number, cols: number, strides: number, padding: Padding): T;
  maxPool(x: T, name: string): T;
  avgPool(x: T, name: string): T;
  concat(xs: T[], name: string): T;
}

/** keras.applications.inception_v3.InceptionV3, include_top=False, up to mixed10. */
function inceptionV3<T>(b: Backend<T>, input: T): T {
  let convs = 0;
  let maxPools = 0;
  let avgPools = 0;
  let concats = 0;
  const conv2d_bn = (x: T, filters: number, rows: number, cols: number, strides = 1, padding: Padding = 'same') =>
    b.convBn(x, ++convs, filters, rows, cols, strides, padding);
  const maxPool3s2 = (x: T) => b.maxPool(x, `max_pooling2d_${++maxPools}`);
  const avgPool3s1 = (x: T) => b.avgPool(x, `average_pooling2d_${++avgPools}`);
  const concatenate = (xs: T[], name?: string) => b.concat(xs, name ?? `concatenate_${++concats}`);

  let x = conv2d_bn(input, 32, 3, 3, 2, 'valid');
  x = conv2d_bn(x, 32, 3, 3, 1, 'valid');
  x = conv2d_bn(x, 64, 3, 3);
  x = maxPool3s2(x);
  x = conv2d_bn(x, 80, 1, 1, 1, 'valid');
  x = conv2d_bn(x, 192, 3, 3, 1, 'valid');
  x = maxPool3s2(x);

  // mixed 0, 1, 2: 35 x 35 x 256/288/288
  for (const [i, poolFilters] of [[0, 32], [1, 64], [2, 64]] as const) {
    const branch1x1 = conv2d_bn(x, 64, 1, 1);
    let branch5x5 = conv2d_bn(x, 48, 1, 1);
    branch5x5 = conv2d_bn(branch5x5, 64, 5, 5);
    let branch3x3dbl = conv2d_bn(x, 64, 1, 1);
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3);
    let branchPool = avgPool3s1(x);
    branchPool = conv2d_bn(branchPool, poolFilters, 1, 1);
    x = concatenate([branch1x1, branch5x5, branch3x3dbl, branchPool], `mixed${i}`);
  }

  // mixed 3: 17 x 17 x 768
  {
    const branch3x3 = conv2d_bn(x, 384, 3, 3, 2, 'valid');
    let branch3x3dbl = conv2d_bn(x, 64, 1, 1);
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = conv2d_bn(branch3x3dbl, 96, 3, 3, 2, 'valid');
    const branchPool = maxPool3s2(x);
    x = concatenate([branch3x3, branch3x3dbl, branchPool], 'mixed3');
  }

  // mixed 4, 5, 6, 7: 17 x 17 x 768
  for (const [i, f] of [[4, 128], [5, 160], [6, 160], [7, 192]] as const) {
    const branch1x1 = conv2d_bn(x, 192, 1, 1);
    let branch7x7 = conv2d_bn(x, f, 1, 1);
    branch7x7 = conv2d_bn(branch7x7, f, 1, 7);
    branch7x7 = conv2d_bn(branch7x7, 192, 7, 1);
    let branch7x7dbl = conv2d_bn(x, f, 1, 1);
    branch7x7dbl = conv2d_bn(branch7x7dbl, f, 7, 1);
    branch7x7dbl = conv2d_bn(branch7x7dbl, f, 1, 7);
    branch7x7dbl = conv2d_bn(branch7x7dbl, f, 7, 1);
    branch7x7dbl = conv2d_bn(branch7x7dbl, 192, 1, 7);
    let branchPool = avgPool3s1(x);
    branchPool = conv2d_bn(branchPool, 192, 1, 1);
    x = concatenate([branch1x1, branch7x7, branch7x7dbl, branchPool], `mixed${i}`);
  }

  // mixed 8: 8 x 8 x 1280
  {
    let branch3x3 = conv2d_bn(x, 192, 1, 1);
    branch3x3 = conv2d_bn(branch3x3, 320, 3, 3, 2, 'valid');
    let branch7x7x3 = conv2d_bn(x, 192, 1, 1);
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 1, 7);
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 7, 1);
    branch7x7x3 = conv2d_bn(branch7x7x3, 192, 3, 3, 2, 'valid');
    const branchPool = maxPool3s2(x);
    x = concatenate([branch3x3, branch7x7x3, branchPool], 'mixed8');
  }

  // mixed 9, 10: 8 x 8 x 2048
  for (const i of [0, 1]) {
    const branch1x1 = conv2d_bn(x, 320, 1, 1);
    const branch3x3 = conv2d_bn(x, 384, 1, 1);
    const branch3x3_1 = conv2d_bn(branch3x3, 384, 1, 3);
    const branch3x3_2 = conv2d_bn(branch3x3, 384, 3, 1);
    const branch3x3cat = concatenate([branch3x3_1, branch3x3_2], `mixed9_${i}`);
    let branch3x3dbl = conv2d_bn(x, 448, 1, 1);
    branch3x3dbl = conv2d_bn(branch3x3dbl, 384, 3, 3);
    const branch3x3dbl_1 = conv2d_bn(branch3x3dbl, 384, 1, 3);
    const branch3x3dbl_2 = conv2d_bn(branch3x3dbl, 384, 3, 1);
    const branch3x3dblcat = concatenate([branch3x3dbl_1, branch3x3dbl_2]);
    let branchPool = avgPool3s1(x);
    branchPool = conv2d_bn(branchPool, 192, 1, 1);
    x = concatenate([branch1x1, branch3x3cat, branch3x3dblcat, branchPool], `mixed${9 + i}`);
  }
  return x;
}

/** Walks the topology with channel counts only, collecting layer names and the weight spec. */
function describe(width: number): { layerNames: string[]; spec: KerasLayerSpec[]; channels: number } {
  const layerNames = ['input_1'];
  const spec: KerasLayerSpec[] = [];
  const channels = inceptionV3<number>({
    convBn(cin, k, filters, rows, cols) {
      const cout = scaled(filters, width);
      const conv = `conv2d_${k}`;
      const bn = `batch_normalization_${k}`;
      layerNames.push(conv, bn, `activation_${k}`);
      spec.push({ name: conv, className: 'Conv2D', weights: [{ name: weightName(conv, 'kernel', 'keras2'), role: 'kernel', shape: [rows, cols, cin, cout] }] });
      spec.push({
        name: bn, className: 'BatchNormalization',
        weights: (['beta', 'moving_mean', 'moving_variance'] as const).map((role) => ({ name: weightName(bn, role, 'keras2'), role, shape: [cout] })),
      });
      return cout;
    },
    maxPool(c, name) { layerNames.push(name); return c; },
    avgPool(c, name) { layerNames.push(name); return c; },
    concat(cs, name) { layerNames.push(name); return cs.reduce((a, c) => a + c, 0); },
  }, 3);
  return { layerNames, spec, channels };
}

function kerasLayerNames(includeTop: boolean): string[] {
  const names = describe(1).layerNames;
  return includeTop ? [...names, 'avg_pool', 'predictions'] : names;
}

function kerasWeightSpec(includeTop: boolean, opts: ArchOptions = {}): KerasLayerSpec[] {
  const { spec, channels } = describe(opts.width ?? 1);
  if (includeTop) {
    spec.push({
      name: 'predictions', className: 'Dense', weights: [
        { name: weightName('predictions', 'kernel', 'keras2'), role: 'kernel', shape: [channels, CLASSES] },
        { name: weightName('predictions', 'bias', 'keras2'), role: 'bias', shape: [CLASSES] },
      ],
    });
  }
  return spec;
}

/**
 * mixed9 and mixed10 on mixed8: the "top 2 inception blocks" of Keras' fine-tuning example (every layer after
 * mixed8). Branching modules, so no chain: fine-tuning here trains a head on mixed10 only.
 */
function topBlock(): TopBlock {
  const names = describe(1).layerNames;
  return { name: 'mixed9–10', input: 'mixed8', layers: names.slice(names.indexOf('mixed8') + 1) };
}

function toOnnxWeights(kerasWeights: KerasWeights): OnnxWeights {
  const out: OnnxWeights = new Map();
  for (let k = 1; kerasWeights.has(`conv2d_${k}`); k++) {
    const [kernel] = kerasLayer(kerasWeights, `conv2d_${k}`, 1);
    const [beta, mean, variance] = kerasLayer(kerasWeights, `batch_normalization_${k}`, 3);
    const folded = foldBatchNorm(kernel!, { beta: beta!.data, mean: mean!.data, variance: variance!.data });
    out.set(`conv2d_${k}/kernel`, folded.kernel);
    out.set(`conv2d_${k}/bias`, folded.bias);
  }
  if (kerasWeights.has('predictions')) {
    const [k, b] = kerasLayer(kerasWeights, 'predictions', 2);
    out.set('predictions/kernel', { dims: [k!.shape[0]!, k!.shape[1]!], data: k!.data });
    out.set('predictions/bias', vector(b!));
  }
  return out;
}

function build(weights: OnnxWeights, opts: BuildOptions): GraphBuilder {
  const g = new GraphBuilder('inception_v3');
  const input = g.input('input', 'float32', ['N', 3, 'H', 'W']);
  let x = inceptionV3<string>({
    convBn(x, k, _filters, _rows, _cols, strides, padding) {
      const bn = conv2d(g, x, weights, `conv2d_${k}`, { strides, padding }, `batch_normalization_${k}`);
      return relu(g, bn, `activation_${k}`);
    },
    maxPool: (x, name) => maxPool(g, x, 3, 2, name),
    avgPool: (x, name) => avgPoolSame(g, x, 3, name),
    concat: (xs, name) => concat(g, xs, name),
  }, input);
  if (!opts.includeTop) {
    markOutputs(g, 'mixed10', opts.outputs);
    return g;
  }
  x = g.node('GlobalAveragePool', [x], {}, { outputs: ['avg_pool/nchw'] });
  x = g.node('Flatten', [x], { axis: 1 }, { outputs: ['avg_pool'] });
  dense(g, x, weights, 'predictions', 'softmax');
  markOutputs(g, 'probabilities', opts.outputs, CLASSES);
  return g;
}

export const INCEPTION_V3: Architecture = {
  name: 'inception_v3',
  displayName: 'InceptionV3',
  defaultSize: 299,
  minSize: 75,
  preprocessing: 'tf',
  classes: CLASSES,
  featureLayer: 'mixed10',
  topBlock: topBlock(),
  topLayers: ['predictions'],
  kerasLayerNames,
  kerasWeightSpec,
  toOnnxWeights,
  build,
  featureChannels: (opts: ArchOptions = {}) => describe(opts.width ?? 1).channels,
};
