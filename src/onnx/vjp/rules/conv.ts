// Conv (any number of spatial axes): the data gradient by a flipped-weight Conv (stride 1, group 1, no
// dilation: the fast NCHWc path) or a ConvTranspose + crop (any stride / group / dilation); the weight
// gradient as one more Conv that correlates the input with the upstream gradient; the bias gradient as a sum.
import type { VjpContext } from '../context.js';
import { int64Tensor } from '../../proto.js';
import { type OpRule, type Vjp, type VjpArgs, fail, g0, list, num } from '../rule.js';
import { beginPads, inferWindow, staticBeginEnd, transposeAndCrop } from './window.js';

interface ConvGeometry {
  kernel: number[];
  /** Effective kernel extent per axis, (k − 1)·d + 1. */
  extent: number[];
  strides: number[];
  dilations: number[];
  group: number;
  autoPad: string;
  pads: number[] | undefined;
}

function geometry(args: VjpArgs): ConvGeometry {
  const { ctx, x: [, W], a } = args;
  const wd = ctx.dims(W!);
  const kernel = (a.kernel_shape as number[] | undefined) ?? (wd?.slice(2) as number[] | undefined);
  if (!kernel || kernel.some((k) => typeof k !== 'number')) fail(args, 'kernel size unknown (no kernel_shape and weight dims unknown)');
  const n = kernel!.length;
  const dilations = list(a.dilations, n, 1);
  return {
    kernel: kernel!, extent: kernel!.map((k, i) => (k - 1) * dilations[i]! + 1), strides: list(a.strides, n, 1), dilations,
    group: num(a.group, 1), autoPad: (a.auto_pad as string | undefined) ?? 'NOTSET', pads: a.pads as number[] | undefined,
  };
}

function dataGrad(ctx: VjpContext, g: string, X: string, W: string, y: string, c: ConvGeometry): string {
  const { kernel: k, strides, dilations, group, autoPad, pads } = c;
  const plain = group === 1 && strides.every((s) => s === 1) && dilations.every((d) => d === 1);
  if (plain && ctx.options.convBackward !== 'transpose') {
    const [pb, pe] = staticBeginEnd(autoPad, pads, k, strides)!;
    const pb2 = k.map((kk, i) => kk - 1 - pb[i]!);
    const pe2 = k.map((kk, i) => kk - 1 - pe[i]!);
    if ([...pb2, ...pe2].every((p) => p >= 0)) {
      // dx = Conv(dy, W′): W′ = W with in/out channels swapped and the kernel flipped; ORT folds W′ at load.
      const wf = ctx.flippedWeight(W, k);
      return ctx.op('Conv', [g, wf], { kernel_shape: k, pads: [...pb2, ...pe2] }, 'dconv');
    }
  }
  return transposeAndCrop(ctx, g, W, X, k, strides, autoPad, pads, group, y, dilations);
}

/**
 * dW[m, c, κ] = Σ over n and output positions o of dy[n, m, o] · x_pad[n, c, o·s + κ·d]: a Conv whose batch is
 * the input channels and whose weights are the upstream gradient, with the roles of stride and dilation
 * swapped. Groups: the batch N moves into the channels, group-major, so one grouped Conv computes every
 * group's block. The result can be larger than the kernel (rows the forward never reached): sliced to k.
 */
function weightGrad(ctx: VjpContext, g: string, X: string, y: string, c: ConvGeometry): string {
  const { kernel: k, extent, strides, dilations, group, autoPad, pads } = c;
  const nsp = k.length;
  const spatial = k.map((_, i) => i + 2);
  const swap01 = [1, 0, ...spatial];
  let xT: string;
  let gT: string;
  if (group === 1) {
    xT = ctx.op('Transpose', [X], { perm: swap01 });            // [C, N, H…]
    gT = ctx.op('Transpose', [g], { perm: swap01 });            // [M, N, oH…]
  } else {
    const split = (v: string): string => ctx.op('Reshape', [v, ctx.op('Concat', [
      ctx.shapeSlice(v, 0, 1), ctx.ints([group, -1]), ctx.shapeSlice(v, 2),
    ], { axis: 0 })]);                                          // [N, g, C/g, H…]
    const five = spatial.map((i) => i + 1);
    xT = ctx.op('Reshape', [ctx.op('Transpose', [split(X)], { perm: [2, 1, 0, ...five] }),
      ctx.op('Concat', [ctx.ints([0, -1]), ctx.shapeSlice(X, 2)], { axis: 0 })]);           // [C/g, g·N, H…]
    gT = ctx.op('Reshape', [ctx.op('Transpose', [split(g)], { perm: [1, 2, 0, ...five] }),
      ctx.op('Concat', [ctx.ints([-1]), ctx.shapeSlice(g, 0, 1), ctx.shapeSlice(g, 2)], { axis: 0 })]); // [M, N, oH…]
  }
  const attrs = { strides: dilations, dilations: strides, group: group === 1 ? undefined : group };
  const st = staticBeginEnd(autoPad, pads, extent, strides);
  let dwT: string;
  if (st) {
    dwT = ctx.op('Conv', [xT, gT], { ...attrs, pads: [...st[0], ...st[1]] }, 'dweight');
  } else {
    // SAME with stride > 1: the begin pads depend on the input size. The end pad extent − 1 always covers
    // the rows the forward read (total SAME padding ≤ extent − 1); extra zero rows only add outputs past k.
    const pb = beginPads(ctx, ctx.shapeSlice(X, 2), y, extent, strides, autoPad, pads);
    const padSpec = ctx.op('Concat', [ctx.ints([0, 0]), pb, ctx.ints([0, 0, ...extent.map((e) => e - 1)])], { axis: 0 });
    dwT = ctx.op('Conv', [ctx.op('Pad', [xT, padSpec]), gT], attrs, 'dweight');
  }
  const cropped = ctx.op('Slice', [dwT, ctx.ints(Array(nsp).fill(0)), ctx.ints(k), ctx.ints(spatial)]);
  return ctx.op('Transpose', [cropped], { perm: swap01 });     // [M, C/g, k…]
}

/** Most patch values per example the 'gemm' weight gradient materialises (1 MiB of floats). */
const PATCH_LIMIT = 1 << 18;

/** Static [C, H, W] of X and [M, oH, oW] of y when all are known numbers (N may be symbolic). */
function staticSpatial(ctx: VjpContext, X: string, y: string): { c: number; h: number; w: number; m: number; oh: number; ow: number } | undefined {
  const xd = ctx.dims(X);
  const yd = ctx.dims(y);
  const [, c, h, w] = xd ?? [];
  const [, m, oh, ow] = yd ?? [];
  const known = [c, h, w, m, oh, ow].every((d) => typeof d === 'number');
  return known && xd!.length === 4 && yd!.length === 4
    ? { c: c as number, h: h as number, w: w as number, m: m as number, oh: oh as number, ow: ow as number } : undefined;
}

/**
 * dW as one GEMM (convWeightGrad 'gemm'; 2-D, group 1, static C/H/W and pads): x goes channels-last
 * [N, H·W, C]; one Gather with a constant index [P, K] (P output positions, K kernel taps; padding first, by a
 * Pad) takes every patch, [N, P, K, C] = [N·P, K·C]; the upstream gradient channels-last is [N·P, M]; then
 * dW[M, K·C] = gᵀ·patches, reordered to [M, C, kh, kw]. The Conv form instead makes ORT run M×(N·P)×K GEMMs
 * with only K = kh·kw output columns, far below the GEMM kernel's speed.
 */
function gemmWeightGrad(ctx: VjpContext, g: string, X: string, y: string, c: ConvGeometry): string | undefined {
  const { kernel: k, strides, dilations, group, autoPad, pads } = c;
  const st = staticBeginEnd(autoPad, pads, c.extent, strides);
  const s = staticSpatial(ctx, X, y);
  // A narrow patch row (one input channel: K·C = 9) makes a narrow GEMM and a Gather of single floats: the
  // Conv form is faster there (conv1 of the digit net: 0.9 ms against 2.1 ms).
  // The patches are materialised: above PATCH_LIMIT floats per example (large images) the Conv form stays.
  if (k.length !== 2 || group !== 1 || !st || !s || k[0]! * k[1]! * s.c < 64 || s.oh * s.ow * k[0]! * k[1]! * s.c > PATCH_LIMIT) return undefined;
  const [pt, pl] = st[0] as [number, number];
  const [pb, pr] = st[1] as [number, number];
  const hp = s.h + pt + pb;
  const wp = s.w + pl + pr;
  const padded = pt || pl || pb || pr ? ctx.op('Pad', [X, ctx.ints([0, 0, pt, pl, 0, 0, pb, pr])]) : X;
  const xh = ctx.op('Reshape', [ctx.op('Transpose', [padded], { perm: [0, 2, 3, 1] }), ctx.ints([-1, hp * wp, s.c])]);
  const taps = k[0]! * k[1]!;
  const index: number[] = [];
  for (let i = 0; i < s.oh; i++) {
    for (let j = 0; j < s.ow; j++) {
      for (let a = 0; a < k[0]!; a++) {
        for (let b = 0; b < k[1]!; b++) index.push((i * strides[0]! + a * dilations[0]!) * wp + j * strides[1]! + b * dilations[1]!);
      }
    }
  }
  const indexName = ctx.b.fresh('grad/patch_index');
  ctx.b.initializers.push(int64Tensor(indexName, [s.oh * s.ow, taps], index));
  const patches = ctx.op('Reshape', [ctx.op('Gather', [xh, indexName], { axis: 1 }, 'patches'), ctx.ints([-1, taps * s.c])]);
  const gh = ctx.op('Reshape', [ctx.op('Transpose', [g], { perm: [0, 2, 3, 1] }), ctx.ints([-1, s.m])]);
  const dw = ctx.op('Gemm', [gh, patches], { transA: 1 }, 'dweight');                    // [M, kh·kw·C]
  const shaped = ctx.op('Reshape', [dw, ctx.ints([0, k[0]!, k[1]!, s.c])]);
  return ctx.op('Transpose', [shaped], { perm: [0, 3, 1, 2] });                          // [M, C, kh, kw]
}

const convVjp: Vjp = (args) => {
  const { ctx, x: [X, W, B], need } = args;
  const g = g0(args);
  const c = geometry(args);
  const r = c.kernel.length + 2;
  return [
    need[0] ? dataGrad(ctx, g, X!, W!, args.y[0]!, c) : undefined,
    need[1] ? (ctx.options.convWeightGrad === 'gemm' ? gemmWeightGrad(ctx, g, X!, args.y[0]!, c) : undefined) ?? weightGrad(ctx, g, X!, args.y[0]!, c) : undefined,
    B && need[2] ? ctx.reduce('ReduceSum', g, [0, ...Array.from({ length: r - 2 }, (_, i) => i + 2)], false) : undefined,
  ];
};

export const convRules: Record<string, OpRule> = {
  Conv: { infer: inferWindow, grad: { kind: 'input', vjp: convVjp } },
};
