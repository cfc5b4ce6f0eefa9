// Merge layers: Concatenate (Keras axis → ONNX axis), Add, Subtract, Multiply, Average, Maximum, Minimum.
import { type EmitContext, type KTensor, type Shape, physicalAxis, unsupported } from './context.js';

function sameRank(ctx: EmitContext, xs: KTensor[], min = 2): number {
  if (xs.length < min) throw unsupported(ctx.layer, `it has ${xs.length} input(s); it needs at least ${min}`);
  const rank = xs[0]!.shape.length;
  if (xs.some((x) => x.shape.length !== rank)) {
    throw unsupported(ctx.layer, `inputs of different ranks (${xs.map((x) => JSON.stringify(x.shape)).join(', ')}) are not supported`);
  }
  return rank;
}

/** Elementwise result shape: per axis the known size (Keras requires equal or broadcastable sizes). */
function mergedShape(xs: KTensor[]): Shape {
  return xs[0]!.shape.map((_, i) => {
    const dims = xs.map((x) => x.shape[i]!).filter((d): d is number => d !== null);
    return dims.length ? Math.max(...dims) : null;
  });
}

export function emitConcatenate(ctx: EmitContext, xs: KTensor[]): KTensor {
  const rank = sameRank(ctx, xs, 1);
  const axis = ctx.num('axis', -1);
  const a = axis < 0 ? axis + rank : axis;
  if (a <= 0 || a >= rank) throw unsupported(ctx.layer, `axis ${axis} is not a non-batch axis of rank-${rank} inputs`);
  const shape = mergedShape(xs);
  const sizes = xs.map((x) => x.shape[a]!);
  shape[a] = sizes.some((d) => d === null) ? null : sizes.reduce((p, d) => p! + d!, 0);
  return { value: ctx.node('Concat', xs.map((x) => x.value), { axis: physicalAxis(a, rank) }), shape };
}

/** A left fold of a binary op over the inputs. */
function chain(ctx: EmitContext, op: string, xs: KTensor[]): string {
  return xs.slice(1).reduce((acc, x) => ctx.node(op, [acc, x.value]), xs[0]!.value);
}

export function emitAdd(ctx: EmitContext, xs: KTensor[]): KTensor {
  sameRank(ctx, xs);
  return { value: chain(ctx, 'Add', xs), shape: mergedShape(xs) };
}

export function emitSubtract(ctx: EmitContext, xs: KTensor[]): KTensor {
  sameRank(ctx, xs);
  if (xs.length !== 2) throw unsupported(ctx.layer, `Subtract takes exactly 2 inputs, got ${xs.length}`);
  return { value: ctx.node('Sub', [xs[0]!.value, xs[1]!.value]), shape: mergedShape(xs) };
}

export function emitMultiply(ctx: EmitContext, xs: KTensor[]): KTensor {
  sameRank(ctx, xs);
  return { value: chain(ctx, 'Mul', xs), shape: mergedShape(xs) };
}

export function emitAverage(ctx: EmitContext, xs: KTensor[]): KTensor {
  sameRank(ctx, xs);
  return { value: ctx.node('Mul', [chain(ctx, 'Add', xs), ctx.g.scalar(1 / xs.length)]), shape: mergedShape(xs) };
}

export function emitMaximum(ctx: EmitContext, xs: KTensor[]): KTensor {
  sameRank(ctx, xs);
  return { value: ctx.node('Max', xs.map((x) => x.value)), shape: mergedShape(xs) };
}

export function emitMinimum(ctx: EmitContext, xs: KTensor[]): KTensor {
  sameRank(ctx, xs);
  return { value: ctx.node('Min', xs.map((x) => x.value)), shape: mergedShape(xs) };
}
