// VGG19 as keras.applications.VGG19 defines it (keras-facts §1): 16 conv 3×3 'same' + ReLU in five blocks,
// each block closed by a 2×2/2 'valid' max pool; the top is Flatten → fc1 4096 → fc2 4096 → predictions 1000.
// ONNX values carry the Keras layer names (block1_conv1 = conv+relu, block1_pool, …, flatten, fc1, fc2,
// predictions). Official weight names are Keras-1 style: `block1_conv1_W_1:0` / `block1_conv1_b_1:0`.
import { GraphBuilder } from '../../onnx/builder.js';
import {
  type Architecture, type ArchOptions, type BuildOptions, type ChainLayer, type KerasLayerSpec, type KerasWeights, type OnnxWeights,
  type TopBlock, conv2d, dense, hwioToOihw, kerasLayer, markOutputs, maxPool, relu, scaled, vector, weightName,
} from './layers.js';

/** [block, convs in block, filters] */
const BLOCKS: [number, number, number][] = [[1, 2, 64], [2, 2, 128], [3, 4, 256], [4, 4, 512], [5, 4, 512]];
const TOP = ['fc1', 'fc2', 'predictions'] as const;
const FC_UNITS = 4096;
const CLASSES = 1000;
/** block5_pool side for the 224×224 input the top requires. */
const TOP_SIDE = 7;

function convLayers(): { name: string; filters: number }[] {
  return BLOCKS.flatMap(([b, n, f]) => Array.from({ length: n }, (_, i) => ({ name: `block${b}_conv${i + 1}`, filters: f })));
}

function kerasLayerNames(includeTop: boolean): string[] {
  const names = ['input_1'];
  for (const [b, n] of BLOCKS) {
    for (let i = 1; i <= n; i++) names.push(`block${b}_conv${i}`);
    names.push(`block${b}_pool`);
  }
  if (includeTop) names.push('flatten', ...TOP);
  return names;
}

function kerasWeightSpec(includeTop: boolean, opts: ArchOptions = {}): KerasLayerSpec[] {
  const w = opts.width ?? 1;
  const spec: KerasLayerSpec[] = [];
  let cin = 3;
  for (const { name, filters } of convLayers()) {
    const cout = scaled(filters, w);
    spec.push({
      name, className: 'Conv2D', weights: [
        { name: weightName(name, 'kernel', 'keras1'), role: 'kernel', shape: [3, 3, cin, cout] },
        { name: weightName(name, 'bias', 'keras1'), role: 'bias', shape: [cout] },
      ],
    });
    cin = cout;
  }
  if (includeTop) {
    const fc = scaled(FC_UNITS, w);
    const dims: [string, number, number][] = [['fc1', TOP_SIDE * TOP_SIDE * cin, fc], ['fc2', fc, fc], ['predictions', fc, CLASSES]];
    for (const [name, i, o] of dims) {
      spec.push({
        name, className: 'Dense', weights: [
          { name: weightName(name, 'kernel', 'keras1'), role: 'kernel', shape: [i, o] },
          { name: weightName(name, 'bias', 'keras1'), role: 'bias', shape: [o] },
        ],
      });
    }
  }
  return spec;
}

/**
 * Keras flattens block5_pool (7×7×C, channels-last) in (h, w, c) order; our graph flattens NCHW in (c, h, w)
 * order. Row (c·49 + h·7 + w) of the ONNX fc1 matrix = row ((h·7 + w)·C + c) of the Keras one.
 */
export function permuteFc1Rows(kernel: Float32Array, channels: number, side: number, units: number): Float32Array {
  const out = new Float32Array(kernel.length);
  const hw = side * side;
  for (let c = 0; c < channels; c++) {
    for (let p = 0; p < hw; p++) {
      const src = (p * channels + c) * units;
      out.set(kernel.subarray(src, src + units), (c * hw + p) * units);
    }
  }
  return out;
}

function toOnnxWeights(kerasWeights: KerasWeights): OnnxWeights {
  const out: OnnxWeights = new Map();
  for (const { name } of convLayers()) {
    const [k, b] = kerasLayer(kerasWeights, name, 2);
    out.set(`${name}/kernel`, hwioToOihw(k!));
    out.set(`${name}/bias`, vector(b!));
  }
  if (kerasWeights.has('fc1')) {
    for (const name of TOP) {
      const [k, b] = kerasLayer(kerasWeights, name, 2);
      let data = k!.data;
      if (name === 'fc1') {
        const channels = k!.shape[0]! / (TOP_SIDE * TOP_SIDE);
        if (!Number.isInteger(channels)) throw new Error(`fc1 kernel has ${k!.shape[0]} rows, not a multiple of ${TOP_SIDE * TOP_SIDE}`);
        data = permuteFc1Rows(data, channels, TOP_SIDE, k!.shape[1]!);
      }
      out.set(`${name}/kernel`, { dims: [k!.shape[0]!, k!.shape[1]!], data });
      out.set(`${name}/bias`, vector(b!));
    }
  }
  return out;
}

/** Block 5 (its convs and pool, on block4_pool): the block Keras' fine-tuning guide unfreezes. */
function topBlock(): TopBlock {
  const [b, n] = BLOCKS[BLOCKS.length - 1]!;
  const chain: ChainLayer[] = [
    ...Array.from({ length: n }, (_, i): ChainLayer => ({ kind: 'conv', name: `block${b}_conv${i + 1}`, padding: 'same', activation: 'relu' })),
    { kind: 'maxPool', name: `block${b}_pool`, size: 2, stride: 2 },
  ];
  return { name: `block${b}`, input: `block${b - 1}_pool`, layers: chain.map((l) => l.name), chain };
}

function build(weights: OnnxWeights, opts: BuildOptions): GraphBuilder {
  const g = new GraphBuilder('vgg19');
  let x = g.input('input', 'float32', ['N', 3, 'H', 'W']);
  for (const [b, n] of BLOCKS) {
    for (let i = 1; i <= n; i++) {
      const name = `block${b}_conv${i}`;
      x = relu(g, conv2d(g, x, weights, name, { padding: 'same' }, `${name}/conv`), name);
    }
    x = maxPool(g, x, 2, 2, `block${b}_pool`);
  }
  if (!opts.includeTop) {
    markOutputs(g, 'block5_pool', opts.outputs);
    return g;
  }
  // NCHW flatten, (c, h, w) order: fc1's rows were permuted to match (see permuteFc1Rows).
  x = g.node('Flatten', [x], { axis: 1 }, { outputs: ['flatten'] });
  x = dense(g, x, weights, 'fc1', 'relu');
  x = dense(g, x, weights, 'fc2', 'relu');
  dense(g, x, weights, 'predictions', 'softmax');
  markOutputs(g, 'probabilities', opts.outputs, CLASSES);
  return g;
}

export const VGG19: Architecture = {
  name: 'vgg19',
  displayName: 'VGG19',
  defaultSize: 224,
  minSize: 32,
  preprocessing: 'caffe',
  classes: CLASSES,
  featureLayer: 'block5_pool',
  topBlock: topBlock(),
  topLayers: TOP,
  kerasLayerNames,
  kerasWeightSpec,
  toOnnxWeights,
  build,
  featureChannels: (opts: ArchOptions = {}) => scaled(512, opts.width ?? 1),
};
