// Pools: MaxPool (scatter back through the argmax indices), AveragePool (its adjoint as a pool or a
// ConvTranspose with a constant kernel), GlobalAveragePool; LpPool and GlobalMaxPool only for inference.
import type { VjpContext } from '../context.js';
import type { SDim } from '../dims.js';
import { type OpRule, type Vjp, fail, g0, list, num } from '../rule.js';
import type { InferArgs } from '../static.js';
import { overlappingMaxPoolGrad } from './pool-overlap.js';
import { inferWindow, staticBeginEnd, transposeAndCrop } from './window.js';

/**
 * Non-overlapping k×k/k pools without padding (VGG's 2×2/2): no Indices output (the forward keeps ORT's fast
 * NCHWc MaxPool) and no scatter. SpaceToDepth splits x into its k² window positions (row-major, each the
 * size of y); the gradient goes to the first position equal to the max — the element ORT's Indices and TF
 * pick on ties — and DepthToSpace puts the k² parts back. Rows/columns the pool never read (H or W not a
 * multiple of k) get zeros.
 */
function blockMaxPoolGrad(ctx: VjpContext, gy: string, X: string, Y: string, k: number): string {
  const kk = k * k;
  // Over a Relu output, a window whose max is 0 routes its gradient to a zero the Relu would mask: masking
  // here, at the pooled size, lets the Relu's VJP skip its full-size mask (see VjpContext.maskedBy).
  const overRelu = ctx.info.producerOp.get(X) === 'Relu';
  const g = overRelu ? ctx.op('Where', [ctx.op('Greater', [Y, ctx.scalar(0)]), gy, ctx.scalar(0)], {}, 'dmaxpool_relu') : gy;
  const covered = ctx.op('Mul', [ctx.shapeSlice(Y, 2), ctx.ints([k, k])]);
  const xc = ctx.op('Slice', [X, ctx.ints([0, 0]), covered, ctx.ints([2, 3])]);
  // Split needs num_outputs from opset 18 on, and rejects it before.
  const parts = ctx.opMulti('Split', [ctx.op('SpaceToDepth', [xc], { blocksize: k })], kk, { axis: 1, num_outputs: ctx.opset >= 18 ? kk : undefined });
  let taken: string | undefined; // window positions before this one that hold the max
  const routed = parts.map((part, i) => {
    const eq = ctx.op('Equal', [part, Y]);
    const chosen = taken ? ctx.op('And', [eq, ctx.op('Not', [taken])]) : eq;
    if (i < kk - 1) taken = taken ? ctx.op('Or', [taken, eq]) : eq;
    return ctx.op('Where', [chosen, g, ctx.scalar(0)], {}, 'dmaxpool');
  });
  const dx = ctx.op('DepthToSpace', [ctx.op('Concat', routed, { axis: 1 })], { blocksize: k, mode: 'DCR' });
  const rest = ctx.op('Sub', [ctx.shapeSlice(X, 2), covered]);
  const pads = ctx.op('Concat', [ctx.ints([0, 0, 0, 0, 0, 0]), rest], { axis: 0 });
  const out = ctx.op('Pad', [dx, pads]);
  if (overRelu) ctx.maskedBy.set(out, X);
  return out;
}

/**
 * The square window and stride of a 2-D MaxPool without padding, dilation or ceil mode (the shapes with a
 * dense backward: k×k/k blocks and 3×3/2); undefined otherwise.
 */
function plainWindow(a: Record<string, unknown>): { k: number; s: number } | undefined {
  const k = a.kernel_shape as number[] | undefined;
  if (!k || k.length !== 2 || k[0] !== k[1]) return undefined;
  const strides = list(a.strides, 2, 1);
  const pads = (a.pads as number[] | undefined) ?? [0, 0, 0, 0];
  const autoPad = (a.auto_pad as string | undefined) ?? 'NOTSET';
  const plain = (autoPad === 'NOTSET' || autoPad === 'VALID') && pads.every((p) => p === 0)
    && list(a.dilations, 2, 1).every((d) => d === 1) && num(a.ceil_mode, 0) === 0;
  return plain && strides[0] === strides[1] ? { k: k[0]!, s: strides[0]! } : undefined;
}

const maxPoolVjp: Vjp = (args) => {
  const { ctx, node, x: [X], a } = args;
  if (!args.need[0]) return [];
  if (num(a.storage_order, 0) !== 0) fail(args, 'storage_order=1 is not supported');
  const win = plainWindow(a);
  const out = node.output!;
  if (win && !out[1] && ctx.options.maxPoolBackward !== 'scatter') {
    if (win.k > 1 && win.s === win.k) return [blockMaxPoolGrad(ctx, g0(args), X!, out[0]!, win.k)];
    if (win.k === 3 && win.s === 2) return [overlappingMaxPoolGrad(ctx, g0(args), X!, out[0]!)];
  }
  // General (other overlapping windows, padding): the forward node is given its Indices output
  // (flat over N·C·H·W, padding not counted); each upstream gradient is scattered back with reduction 'add',
  // so overlapping windows accumulate correctly.
  if (!out[1]) out[1] = ctx.b.fresh(`${out[0]}_indices`);
  const idx = out[1];
  const flatIdx = ctx.op('Reshape', [idx, ctx.ints([-1])]);
  const flatG = ctx.op('Reshape', [g0(args), ctx.ints([-1])]);
  const n = ctx.op('Reshape', [ctx.op('Size', [X!]), ctx.ints([1])]);
  const zeros = ctx.op('ConstantOfShape', [n], {}, 'zeros');
  const sc = ctx.op('ScatterElements', [zeros, flatIdx, flatG], { axis: 0, reduction: 'add' });
  return [ctx.op('Reshape', [sc, ctx.shape(X!)])];
};

const averagePoolVjp: Vjp = (args) => {
  const { ctx, x: [X], a } = args;
  if (!args.need[0]) return [];
  const g = g0(args);
  if (num(a.ceil_mode, 0) !== 0) fail(args, 'ceil_mode=1 is not supported');
  const k = a.kernel_shape as number[];
  const n = k.length;
  const strides = list(a.strides, n, 1);
  const autoPad = (a.auto_pad as string | undefined) ?? 'NOTSET';
  const pads = a.pads as number[] | undefined;
  const cip = num(a.count_include_pad, 0);
  const kprod = k.reduce((s, v) => s * v, 1);
  const st = staticBeginEnd(autoPad, pads, k, strides);
  const noPadding = st !== undefined && [...st[0], ...st[1]].every((p) => p === 0);
  // With count_include_pad=0 the forward is AvgPool₁(x) / AvgPool₁(ones) (AvgPool₁ = include-pad average,
  // ones = [1,1,H,W]); the divisor is data-independent, so dx = AvgPool₁ᵀ(g / AvgPool₁(ones)).
  let gs = g;
  if (cip === 0 && !noPadding) {
    // A size-preserving pool (stride 1, k−1 pads) reads the spatial dims off the gradient: a Shape of the
    // forward input (an NCHWc activation) would cost ORT a full reorder just for its dims.
    const samePlane = st !== undefined && strides.every((s) => s === 1) && k.every((kk, i) => st[0][i]! + st[1][i]! === kk - 1);
    const spatial = samePlane ? ctx.op('Slice', [ctx.op('Shape', [g], {}, 'shape'), ctx.ints([2]), ctx.ints([2 ** 31 - 1])], {}, 'dims') : ctx.shapeSlice(X!, 2);
    const onesShape = ctx.op('Concat', [ctx.ints([1, 1]), spatial], { axis: 0 });
    const ones = ctx.onesOfShape(onesShape);
    const frac = ctx.op('AveragePool', [ones], {
      kernel_shape: k, strides, auto_pad: autoPad === 'NOTSET' ? undefined : autoPad, pads: autoPad === 'NOTSET' ? pads : undefined,
      count_include_pad: 1,
    }, 'poolcount');
    gs = ctx.op('Div', [g, frac]);
  }
  if (st && strides.every((s) => s === 1)) {
    // Stride 1: the adjoint of an include-pad average pool is the same pool with pads (k−1−pe, k−1−pb) swapped in.
    const pb2 = k.map((kk, i) => kk - 1 - st[0][i]!);
    const pe2 = k.map((kk, i) => kk - 1 - st[1][i]!);
    if ([...pb2, ...pe2].every((p) => p >= 0)) {
      return [ctx.op('AveragePool', [gs], { kernel_shape: k, pads: [...pb2, ...pe2], count_include_pad: 1 }, 'dpool')];
    }
  }
  // General: treat N·C as batch, one-channel ConvTranspose with a constant 1/k kernel, crop, reshape back.
  const gSpatial = ctx.shapeSlice(args.y[0]!, 2);
  const r = ctx.op('Reshape', [gs, ctx.op('Concat', [ctx.ints([-1, 1]), gSpatial], { axis: 0 })]);
  const kernel = ctx.floatConst('avgkernel', [1, 1, ...k], new Float32Array(kprod).fill(1 / kprod));
  const ct = transposeAndCrop(ctx, r, kernel, X!, k, strides, autoPad, pads, 1, args.y[0]!);
  return [ctx.op('Reshape', [ct, ctx.shape(X!)])];
};

const globalAveragePoolVjp: Vjp = (args) => {
  const { ctx, x: [X] } = args;
  if (!args.need[0]) return [];
  const count = ctx.castFloat(ctx.op('ReduceProd', [ctx.shapeSlice(X!, 2)], { keepdims: 1 }));
  const scaled = ctx.op('Div', [g0(args), count]);
  return [ctx.op('Expand', [scaled, ctx.shape(X!)])];
};

const inferGlobal = ({ dims, set }: InferArgs): void => {
  const x = dims(0);
  if (x) set(0, x.map((v: SDim, i) => (i < 2 ? v : 1)));
};

export const poolRules: Record<string, OpRule> = {
  // Block and 3×3/2 pools compare x with y; other overlapping ones read only the Indices output.
  MaxPool: { types: () => ['float', 'int'], infer: inferWindow, grad: { kind: 'input+output', vjp: maxPoolVjp } },
  AveragePool: { infer: inferWindow, grad: { kind: 'linear', vjp: averagePoolVjp } },
  LpPool: { infer: inferWindow },
  GlobalAveragePool: { infer: inferGlobal, grad: { kind: 'linear', vjp: globalAveragePoolVjp } },
  GlobalMaxPool: { infer: inferGlobal },
};
