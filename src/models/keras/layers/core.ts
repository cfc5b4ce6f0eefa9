// Core layers: Dense (on 2-D and N-D inputs), Flatten (Keras' channels-last order), Reshape, Permute, and the
// layers that are identities at inference (dropouts, noise, activity regularisation).
import { activate } from './activations.js';
import { type EmitContext, type KTensor, type Shape, unsupported } from './context.js';

export function emitIdentity(_ctx: EmitContext, [x]: KTensor[]): KTensor {
  return x!;
}

/**
 * Dense: x·W + b on the last Keras axis. On a 2-D input a Gemm; on a rank-4 input (NCHW in the graph, Keras'
 * last axis = channels) a 1×1 convolution; on other ranks MatMul + Add.
 */
export function emitDense(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const rank = x!.shape.length;
  const inDim = ctx.known(x!, -1, 'last dimension');
  const units = ctx.num('units', 0);
  const useBias = ctx.bool('use_bias', true);
  const w = ctx.weights(useBias
    ? [{ role: 'kernel', shape: [inDim, units] }, { role: 'bias', shape: [units] }]
    : [{ role: 'kernel', shape: [inDim, units] }]);
  const kernel = w.get('kernel')!.data;
  const bias = useBias ? w.get('bias')!.data : new Float32Array(units);
  let y: string;
  if (rank === 2) {
    y = ctx.node('Gemm', [x!.value, ctx.constant('kernel', [inDim, units], kernel), ctx.constant('bias', [units], bias)]);
  } else if (rank === 4) {
    const oihw = new Float32Array(kernel.length);
    for (let i = 0; i < inDim; i++) for (let o = 0; o < units; o++) oihw[o * inDim + i] = kernel[i * units + o]!;
    y = ctx.node('Conv', [x!.value, ctx.constant('kernel', [units, inDim, 1, 1], oihw), ctx.constant('bias', [units], bias)], { kernel_shape: [1, 1] });
  } else {
    y = ctx.node('Add', [ctx.node('MatMul', [x!.value, ctx.constant('kernel', [inDim, units], kernel)]), ctx.constant('bias', [units], bias)]);
  }
  const shape: Shape = [...x!.shape.slice(0, -1), units];
  return { value: activate(ctx, y, shape, ctx.config.activation), shape };
}

const product = (dims: Shape) => dims.reduce<number | null>((a, b) => (a === null || b === null ? null : a * b), 1);

/** Flatten in Keras (H, W, C) order: a rank-4 tensor is transposed back to NHWC first. */
export function emitFlatten(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const f = ctx.config.data_format;
  if (f === 'channels_first') throw unsupported(ctx.layer, "data_format 'channels_first' is not supported");
  if (x!.shape.length <= 2) return x!;
  return { value: ctx.node('Flatten', [ctx.toKerasOrder(x!)], { axis: 1 }), shape: [x!.shape[0]!, product(x!.shape.slice(1))] };
}

export function emitReshape(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const target = ctx.config.target_shape;
  if (!Array.isArray(target) || !target.every((d) => typeof d === 'number' || d === null)) {
    throw unsupported(ctx.layer, `target_shape ${JSON.stringify(target)} is not a list of ints`);
  }
  const dims = (target as (number | null)[]).map((d) => (d === null ? -1 : d));
  if (dims.filter((d) => d === -1).length > 1) throw unsupported(ctx.layer, 'more than one unknown dimension in target_shape');
  const total = product(x!.shape.slice(1));
  const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  const shape: Shape = [x!.shape[0]!, ...dims.map((d) => (d === -1 ? (total === null ? null : total / known) : d))];
  if (total !== null && shape.slice(1).every((d) => d !== null) && product(shape.slice(1)) !== total) {
    throw unsupported(ctx.layer, `cannot reshape ${JSON.stringify(x!.shape.slice(1))} to ${JSON.stringify(target)}`);
  }
  const reshaped = ctx.node('Reshape', [ctx.toKerasOrder(x!), ctx.g.ints([0, ...dims])]);
  return { value: ctx.fromKerasOrder(reshaped, shape.length), shape };
}

/** Position of each Keras axis in the ONNX layout, for a given rank. */
const positions = (rank: number): number[] => (rank === 4 ? [0, 2, 3, 1] : Array.from({ length: rank }, (_, i) => i));
/** Keras axis held by each ONNX position. */
const holders = (rank: number): number[] => (rank === 4 ? [0, 3, 1, 2] : Array.from({ length: rank }, (_, i) => i));

/** Permute(dims): Keras output axis j (1-based dims) = input axis dims[j−1]; one Transpose in the ONNX layout. */
export function emitPermute(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const dims = ctx.config.dims;
  const rank = x!.shape.length;
  if (!Array.isArray(dims) || dims.length !== rank - 1 || [...dims].sort().some((d, i) => d !== i + 1)) {
    throw unsupported(ctx.layer, `dims ${JSON.stringify(dims)} is not a permutation of 1…${rank - 1}`);
  }
  const kerasPerm = [0, ...(dims as number[])];
  const inPos = positions(rank);
  const perm = holders(rank).map((kerasOut) => inPos[kerasPerm[kerasOut]!]!);
  const shape = kerasPerm.map((a) => x!.shape[a]!);
  return { value: ctx.node('Transpose', [x!.value], { perm }), shape };
}
