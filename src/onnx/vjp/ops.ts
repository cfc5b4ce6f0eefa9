// The VJP table: for each supported forward op, a small function that appends the backward nodes computing
// the gradient w.r.t. each input that needs one, given the upstream gradients of the outputs
// (micrograd/tinygrad style). Every size is computed in-graph (Shape/Slice/…), so one gradient graph serves
// any input H×W. Constructions follow the measured ORT facts (docs/autodiff.md has the table).
import type { NodeProto } from '../proto.js';
import { AutodiffError, type VjpContext } from './context.js';
import { type SDim, normAxis } from './static.js';

export interface VjpArgs {
  ctx: VjpContext;
  node: NodeProto;
  /** Node inputs ('' for an omitted optional input). */
  x: string[];
  /** Node outputs. */
  y: string[];
  /** Upstream gradient of each output (undefined: the output does not reach the loss). */
  gy: (string | undefined)[];
  /** Which inputs need a gradient (they lie on a path from a `wrt` input to the loss). */
  need: boolean[];
  a: Record<string, unknown>;
}

/** Returns the gradient for each input (undefined where not needed). */
export type Vjp = (args: VjpArgs) => (string | undefined)[];

const fail = (args: VjpArgs, what: string): never => {
  throw new AutodiffError(
    `autodiff: ${args.node.opType} (node '${args.node.name ?? args.y[0]}'): ${what}`, args.node.opType ?? '', args.node.name ?? undefined,
  );
};

const num = (v: unknown, d: number): number => (v === undefined ? d : Number(v));
const list = (v: unknown, n: number, d: number): number[] => (Array.isArray(v) ? (v as number[]) : Array(n).fill(d));

/** Upstream gradient of output 0, which every single-output rule requires. */
const g0 = (args: VjpArgs): string => args.gy[0] ?? fail(args, 'missing upstream gradient');

// ---------------------------------------------------------------------------------------------------------
// Convolution and pooling

/** Static begin pads per spatial axis when they do not depend on the input size (stride 1 or explicit). */
function staticBeginEnd(autoPad: string, pads: number[] | undefined, kernel: number[], strides: number[]): [number[], number[]] | undefined {
  const n = kernel.length;
  if (autoPad === 'VALID') return [Array(n).fill(0), Array(n).fill(0)];
  if (autoPad === 'NOTSET' || autoPad === '') return [pads?.slice(0, n) ?? Array(n).fill(0), pads?.slice(n, 2 * n) ?? Array(n).fill(0)];
  if (strides.some((s) => s !== 1)) return undefined;
  const total = kernel.map((k) => k - 1);
  const pb = total.map((t) => (autoPad === 'SAME_LOWER' ? Math.ceil(t / 2) : Math.floor(t / 2)));
  return [pb, total.map((t, i) => t - pb[i]!)];
}

/**
 * The adjoint of a strided/padded "window" op (Conv or sum-pool) by ConvTranspose: a full transposed
 * convolution (no pads, output_padding = stride − 1 so the last rows are always covered) followed by a
 * Slice [pb : pb + H] per spatial axis. pb is static for explicit pads / VALID, and for SAME it is computed
 * in-graph: ⌊max((o−1)·s + k − H, 0)/2⌋ (SAME_UPPER) or ⌈…⌉ (SAME_LOWER), o = output size.
 */
function transposeAndCrop(
  ctx: VjpContext, g: string, w: string, x: string, kernel: number[], strides: number[], autoPad: string,
  pads: number[] | undefined, group: number, outRef: string,
): string {
  const nsp = kernel.length;
  const ct = ctx.op('ConvTranspose', [g, w], {
    kernel_shape: kernel, strides, group: group === 1 ? undefined : group, output_padding: strides.map((s) => s - 1),
  });
  const spatialAxes = kernel.map((_, i) => i + 2);
  const hx = ctx.shapeSlice(x, 2);
  const st = staticBeginEnd(autoPad, pads, kernel, strides);
  let starts: string;
  if (st) {
    starts = ctx.ints(st[0]);
  } else {
    const o = ctx.shapeSlice(outRef, 2);
    const s = ctx.ints(strides);
    const full = ctx.op('Add', [ctx.op('Mul', [ctx.op('Sub', [o, ctx.ints([1])]), s]), ctx.ints(kernel)]);
    const total = ctx.op('Max', [ctx.op('Sub', [full, hx]), ctx.ints(Array(nsp).fill(0))]);
    starts = autoPad === 'SAME_LOWER'
      ? ctx.op('Div', [ctx.op('Add', [total, ctx.ints([1])]), ctx.ints([2])])
      : ctx.op('Div', [total, ctx.ints([2])]);
  }
  const ends = ctx.op('Add', [starts, hx]);
  return ctx.op('Slice', [ct, starts, ends, ctx.ints(spatialAxes)]);
}

const Conv: Vjp = (args) => {
  const { ctx, x: [X, W, B], a, need } = args;
  if (need[1] || (B && need[2])) fail(args, 'gradients w.r.t. weights or bias are not supported (only w.r.t. the data input)');
  if (!need[0]) return [];
  const g = g0(args);
  const wd = ctx.dims(W!);
  const kernel = (a.kernel_shape as number[] | undefined) ?? (wd?.slice(2) as number[] | undefined);
  if (!kernel || kernel.some((k) => typeof k !== 'number')) fail(args, 'kernel size unknown (no kernel_shape and weight dims unknown)');
  const k = kernel!;
  const n = k.length;
  const strides = list(a.strides, n, 1);
  const dil = list(a.dilations, n, 1);
  if (dil.some((d) => d !== 1)) fail(args, `dilations [${dil}] are not supported (only 1)`);
  const group = num(a.group, 1);
  const autoPad = (a.auto_pad as string | undefined) ?? 'NOTSET';
  const pads = a.pads as number[] | undefined;
  if (group === 1 && strides.every((s) => s === 1) && ctx.options.convBackward !== 'transpose') {
    const [pb, pe] = staticBeginEnd(autoPad, pads, k, strides)!;
    const pb2 = k.map((kk, i) => kk - 1 - pb[i]!);
    const pe2 = k.map((kk, i) => kk - 1 - pe[i]!);
    if ([...pb2, ...pe2].every((p) => p >= 0)) {
      // dx = Conv(dy, W′): W′ = W with in/out channels swapped and the kernel flipped; ORT folds W′ at load.
      const wf = ctx.flippedWeight(W!, k);
      return [ctx.op('Conv', [g, wf], { kernel_shape: k, pads: [...pb2, ...pe2] }, 'dconv')];
    }
  }
  return [transposeAndCrop(ctx, g, W!, X!, k, strides, autoPad, pads, group, args.y[0]!)];
};

const MaxPool: Vjp = (args) => {
  const { ctx, node, x: [X], a } = args;
  if (!args.need[0]) return [];
  if (num(a.storage_order, 0) !== 0) fail(args, 'storage_order=1 is not supported');
  // The forward node is given its Indices output (flat over N·C·H·W, padding not counted); each upstream
  // gradient is scattered back with reduction 'add', so overlapping windows (3×3 s2) accumulate correctly.
  const out = node.output!;
  if (!out[1]) out[1] = ctx.b.fresh(`${out[0]}_indices`);
  const idx = out[1];
  const flatIdx = ctx.op('Reshape', [idx, ctx.ints([-1])]);
  const flatG = ctx.op('Reshape', [g0(args), ctx.ints([-1])]);
  const n = ctx.op('Reshape', [ctx.op('Size', [X!]), ctx.ints([1])]);
  const zeros = ctx.op('ConstantOfShape', [n], {}, 'zeros');
  const sc = ctx.op('ScatterElements', [zeros, flatIdx, flatG], { axis: 0, reduction: 'add' });
  return [ctx.op('Reshape', [sc, ctx.shape(X!)])];
};

const AveragePool: Vjp = (args) => {
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
    const onesShape = ctx.op('Concat', [ctx.ints([1, 1]), ctx.shapeSlice(X!, 2)], { axis: 0 });
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

const GlobalAveragePool: Vjp = (args) => {
  const { ctx, x: [X] } = args;
  if (!args.need[0]) return [];
  const count = ctx.castFloat(ctx.op('ReduceProd', [ctx.shapeSlice(X!, 2)], { keepdims: 1 }));
  const scaled = ctx.op('Div', [g0(args), count]);
  return [ctx.op('Expand', [scaled, ctx.shape(X!)])];
};

// ---------------------------------------------------------------------------------------------------------
// Elementwise

const broadcastBinary = (f: (args: VjpArgs, g: string) => [string | undefined, string | undefined]): Vjp => (args) => {
  const { ctx, x: [A, B] } = args;
  const [da, db] = f(args, g0(args));
  return [
    da && args.need[0] ? ctx.unbroadcast(da, A!, [ctx.dims(B!)]) : undefined,
    db && args.need[1] ? ctx.unbroadcast(db, B!, [ctx.dims(A!)]) : undefined,
  ];
};

const Add = broadcastBinary((_args, g) => [g, g]);
const Sub = broadcastBinary(({ ctx, need }, g) => [g, need[1] ? ctx.op('Neg', [g]) : undefined]);
const Mul = broadcastBinary(({ ctx, need, x: [A, B] }, g) => [
  need[0] ? ctx.op('Mul', [g, B!]) : undefined,
  need[1] ? ctx.op('Mul', [g, A!]) : undefined,
]);
const Div = broadcastBinary(({ ctx, need, x: [, B], y: [Y] }, g) => {
  // d(a/b)/da = 1/b; d(a/b)/db = −(a/b)/b.
  return [
    need[0] ? ctx.op('Div', [g, B!]) : undefined,
    need[1] ? ctx.op('Neg', [ctx.op('Mul', [g, ctx.op('Div', [Y!, B!])])]) : undefined,
  ];
});

const Pow: Vjp = (args) => {
  const { ctx, x: [X, E], need } = args;
  if (need[1]) fail(args, 'the exponent must be constant (not on the path from wrt to the loss)');
  if (!need[0]) return [];
  const g = g0(args);
  const ev = ctx.constFloats(E);
  let d: string;
  if (ev && ev.length === 1 && ev[0] === 2) d = ctx.op('Mul', [ctx.op('Mul', [g, ctx.scalar(2)]), X!]);
  else if (ev && ev.length === 1 && ev[0] === 1) d = g;
  else {
    const em1 = ev && ev.length === 1 ? ctx.scalar(ev[0]! - 1) : ctx.op('Sub', [E!, ctx.scalar(1)]);
    d = ctx.op('Mul', [g, ctx.op('Mul', [E!, ctx.op('Pow', [X!, em1])])]);
  }
  return [ctx.unbroadcast(d, X!, [ctx.dims(E!)])];
};

const Where: Vjp = (args) => {
  const { ctx, x: [C, A, B], need } = args;
  const g = g0(args);
  const zero = ctx.scalar(0);
  const both = [ctx.dims(C!), ctx.dims(A!), ctx.dims(B!)];
  return [
    undefined,
    need[1] ? ctx.unbroadcast(ctx.op('Where', [C!, g, zero]), A!, [both[0], both[2]]) : undefined,
    need[2] ? ctx.unbroadcast(ctx.op('Where', [C!, zero, g]), B!, [both[0], both[1]]) : undefined,
  ];
};

const Sum: Vjp = (args) => {
  const { ctx, x } = args;
  const g = g0(args);
  return x.map((xi, i) => (args.need[i] ? ctx.unbroadcast(g, xi, x.filter((_, j) => j !== i).map((o) => ctx.dims(o))) : undefined));
};

const Relu: Vjp = (args) => {
  const { ctx, y: [Y] } = args;
  // Uses the output (y > 0 ⇔ x > 0), so the pre-activation is not kept alive and Conv+Relu still fuse.
  return [ctx.op('Where', [ctx.op('Greater', [Y!, ctx.scalar(0)]), g0(args), ctx.scalar(0)], {}, 'drelu')];
};

const LeakyRelu: Vjp = (args) => {
  const { ctx, x: [X], a } = args;
  const g = g0(args);
  const alpha = num(a.alpha, 0.01);
  return [ctx.op('Where', [ctx.op('Greater', [X!, ctx.scalar(0)]), g, ctx.op('Mul', [g, ctx.scalar(alpha)])])];
};

const Abs: Vjp = (args) => [args.ctx.op('Mul', [g0(args), args.ctx.op('Sign', [args.x[0]!])])];
const Sqrt: Vjp = (args) => [args.ctx.op('Div', [args.ctx.op('Mul', [g0(args), args.ctx.scalar(0.5)]), args.y[0]!])];
const Neg: Vjp = (args) => [args.ctx.op('Neg', [g0(args)])];
const Exp: Vjp = (args) => [args.ctx.op('Mul', [g0(args), args.y[0]!])];
const Log: Vjp = (args) => [args.ctx.op('Div', [g0(args), args.x[0]!])];
const Reciprocal: Vjp = (args) => {
  const { ctx, y: [Y] } = args;
  return [ctx.op('Neg', [ctx.op('Mul', [g0(args), ctx.op('Mul', [Y!, Y!])])])];
};
const Sigmoid: Vjp = (args) => {
  const { ctx, y: [Y] } = args;
  return [ctx.op('Mul', [g0(args), ctx.op('Mul', [Y!, ctx.op('Sub', [ctx.scalar(1), Y!])])])];
};
const Tanh: Vjp = (args) => {
  const { ctx, y: [Y] } = args;
  return [ctx.op('Mul', [g0(args), ctx.op('Sub', [ctx.scalar(1), ctx.op('Mul', [Y!, Y!])])])];
};
const Identity: Vjp = (args) => [g0(args)];
const Cast: Vjp = (args) => [g0(args)]; // only float→float casts are differentiable (others cut the path)

const Softmax: Vjp = (args) => {
  const { ctx, y: [Y], a } = args;
  const g = g0(args);
  const axis = num(a.axis, -1);
  const s = ctx.reduce('ReduceSum', ctx.op('Mul', [g, Y!]), [axis], true);
  return [ctx.op('Mul', [Y!, ctx.op('Sub', [g, s])])];
};

const LogSoftmax: Vjp = (args) => {
  const { ctx, y: [Y], a } = args;
  const g = g0(args);
  const axis = num(a.axis, -1);
  const s = ctx.reduce('ReduceSum', g, [axis], true);
  return [ctx.op('Sub', [g, ctx.op('Mul', [ctx.op('Exp', [Y!]), s])])];
};

const BatchNormalization: Vjp = (args) => {
  const { ctx, x: [X, S, , , V], a, need } = args;
  if (need.slice(1).some((v) => v)) fail(args, 'gradients w.r.t. scale/bias/mean/var are not supported');
  if (num(a.training_mode, 0) !== 0) fail(args, 'training_mode=1 is not supported');
  const r = ctx.rank(X!);
  if (r === undefined) fail(args, 'input rank unknown');
  const eps = num(a.epsilon, 1e-5);
  const f = ctx.op('Div', [S!, ctx.op('Sqrt', [ctx.op('Add', [V!, ctx.scalar(eps)])])]);
  const fr = ctx.op('Reshape', [f, ctx.ints([-1, ...Array(r! - 2).fill(1)])]);
  return [ctx.op('Mul', [g0(args), fr])];
};

// ---------------------------------------------------------------------------------------------------------
// Linear algebra

function swapLast(ctx: VjpContext, v: string, r: number): string {
  const perm = Array.from({ length: r }, (_, i) => i);
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return ctx.op('Transpose', [v], { perm });
}

const MatMul: Vjp = (args) => {
  const { ctx, x: [A, B], need } = args;
  const ra = ctx.rank(A!);
  const rb = ctx.rank(B!);
  if (ra === undefined || rb === undefined) fail(args, 'operand ranks unknown (declare input shapes or reshape with a constant-length shape)');
  let g = g0(args);
  let a2 = A!;
  let b2 = B!;
  let ra2 = ra!;
  let rb2 = rb!;
  if (ra === 1) { a2 = ctx.op('Unsqueeze', [A!, ctx.ints([0])]); ra2 = 2; g = ctx.op('Unsqueeze', [g, ctx.ints([rb === 1 ? 0 : -2])]); }
  if (rb === 1) { b2 = ctx.op('Unsqueeze', [B!, ctx.ints([-1])]); rb2 = 2; g = ctx.op('Unsqueeze', [g, ctx.ints([-1])]); }
  const oneD = ra === 1 || rb === 1;
  const batchOf = (d: SDim[] | undefined, r: number): SDim[] | undefined => (d && r >= 2 ? [...d.slice(0, -2), 1, 1] : undefined);
  const out: (string | undefined)[] = [undefined, undefined];
  if (need[0]) {
    const da = ctx.op('MatMul', [g, swapLast(ctx, b2, rb2)]);
    out[0] = oneD ? ctx.unbroadcast(da, A!, [undefined]) : ctx.unbroadcast(da, A!, [batchOf(ctx.dims(B!), rb!)]);
  }
  if (need[1]) {
    const db = ctx.op('MatMul', [swapLast(ctx, a2, ra2), g]);
    out[1] = oneD ? ctx.unbroadcast(db, B!, [undefined]) : ctx.unbroadcast(db, B!, [batchOf(ctx.dims(A!), ra!)]);
  }
  return out;
};

const Gemm: Vjp = (args) => {
  const { ctx, x: [A, B, C], a, need } = args;
  const g = g0(args);
  const alpha = num(a.alpha, 1);
  const beta = num(a.beta, 1);
  const tA = num(a.transA, 0);
  const tB = num(a.transB, 0);
  const f = (v: number): { float: number } => ({ float: v });
  const out: (string | undefined)[] = [undefined, undefined, undefined];
  if (need[0]) {
    out[0] = tA
      ? ctx.op('Gemm', [B!, g], { alpha: f(alpha), transA: tB, transB: 1 })
      : ctx.op('Gemm', [g, B!], { alpha: f(alpha), transB: tB ? 0 : 1 });
  }
  if (need[1]) {
    out[1] = tB
      ? ctx.op('Gemm', [g, A!], { alpha: f(alpha), transA: 1, transB: tA })
      : ctx.op('Gemm', [A!, g], { alpha: f(alpha), transA: tA ? 0 : 1 });
  }
  if (C && need[2]) {
    const gc = beta === 1 ? g : ctx.op('Mul', [g, ctx.scalar(beta)]);
    out[2] = ctx.unbroadcast(gc, C, [ctx.dims(args.y[0]!)]);
  }
  return out;
};

// ---------------------------------------------------------------------------------------------------------
// Shape manipulation

const reshapeBack: Vjp = (args) => [args.ctx.op('Reshape', [g0(args), args.ctx.shape(args.x[0]!)])];

const Transpose: Vjp = (args) => {
  const { ctx, a } = args;
  const perm = a.perm as number[] | undefined;
  if (!perm) return [ctx.op('Transpose', [g0(args)])];
  const inv = perm.slice();
  perm.forEach((p, i) => { inv[p] = i; });
  return [ctx.op('Transpose', [g0(args)], { perm: inv })];
};

const Expand: Vjp = (args) => [args.ctx.unbroadcast(g0(args), args.x[0]!, [args.ctx.constInts(args.x[1]) ? args.ctx.constInts(args.x[1])! : undefined])];

const Concat: Vjp = (args) => {
  const { ctx, x, a } = args;
  const axis = num(a.axis, 0);
  const sizes = ctx.op('Concat', x.map((xi) => ctx.op('Gather', [ctx.shape(xi), ctx.ints([axis])])), { axis: 0 });
  const parts = ctx.opMulti('Split', [g0(args), sizes], x.length, { axis });
  return parts.map((p, i) => (args.need[i] ? p : undefined));
};

const Split: Vjp = (args) => {
  const { ctx, y, gy, a } = args;
  const parts = y.map((yi, i) => gy[i] ?? ctx.zerosLike(yi));
  return [ctx.op('Concat', parts, { axis: num(a.axis, 0) })];
};

const Slice: Vjp = (args) => {
  const { ctx, x: [X, starts, ends, axesIn, stepsIn] } = args;
  const g = g0(args);
  const r = ctx.rank(X!);
  const steps = stepsIn ? ctx.constInts(stepsIn) : undefined;
  const startsLen = ctx.dims(starts!)?.[0];
  const axes = axesIn ? ctx.constInts(axesIn) : typeof startsLen === 'number' ? Array.from({ length: startsLen }, (_, i) => i) : undefined;
  if (r !== undefined && axes && (!stepsIn || (steps && steps.every((s) => s === 1)))) {
    // Step 1: the adjoint is a zero Pad by (start, dim − end) on each sliced axis, with start/end normalised
    // (negative → +dim) and clamped to [0, dim] in-graph, so it holds for any runtime size.
    const ax = axes.map((v) => normAxis(v, r));
    const dims = ctx.op('Gather', [ctx.shape(X!), ctx.ints(ax)]);
    const norm = (v: string): string => {
      const wrapped = ctx.op('Where', [ctx.op('Less', [v, ctx.ints([0])]), ctx.op('Add', [v, dims]), v]);
      return ctx.op('Max', [ctx.op('Min', [wrapped, dims]), ctx.ints([0])]);
    };
    const st = norm(starts!);
    const en = ctx.op('Max', [norm(ends!), st]);
    const after = ctx.op('Sub', [dims, en]);
    const pads = ctx.op('ScatterElements', [
      ctx.ints(Array(2 * r).fill(0)), ctx.ints([...ax, ...ax.map((v) => v + r)]), ctx.op('Concat', [st, after], { axis: 0 }),
    ], { axis: 0 });
    return [ctx.op('Pad', [g, pads], {}, 'dslice')];
  }
  // General (any steps, dynamic axes): slice a tensor of flat indices the same way and scatter into zeros.
  const n = ctx.op('Size', [X!]);
  const idx = ctx.op('Reshape', [ctx.op('Range', [ctx.ints([0], []), n, ctx.ints([1], [])]), ctx.shape(X!)]);
  const sidx = ctx.op('Slice', [idx, starts!, ends!, ...(axesIn ? [axesIn] : stepsIn ? [''] : []), ...(stepsIn ? [stepsIn] : [])]);
  const zeros = ctx.op('ConstantOfShape', [ctx.op('Reshape', [n, ctx.ints([1])])], {}, 'zeros');
  const sc = ctx.op('ScatterElements', [zeros, ctx.op('Reshape', [sidx, ctx.ints([-1])]), ctx.op('Reshape', [g, ctx.ints([-1])])], { axis: 0 });
  return [ctx.op('Reshape', [sc, ctx.shape(X!)])];
};

const Pad: Vjp = (args) => {
  const { ctx, x: [X, pads, , axesIn], a } = args;
  if (((a.mode as string | undefined) ?? 'constant') !== 'constant') fail(args, `mode '${String(a.mode)}' is not supported (only constant)`);
  if (!pads) fail(args, 'pads given as an attribute (opset < 11) are not supported');
  const g = g0(args);
  const r = ctx.rank(X!);
  const padLen = ctx.dims(pads!)?.[0];
  let axes: number[] | undefined;
  if (axesIn) axes = ctx.constInts(axesIn)?.map((v) => (r === undefined ? v : normAxis(v, r)));
  else if (r !== undefined) axes = Array.from({ length: r }, (_, i) => i);
  else if (typeof padLen === 'number') axes = Array.from({ length: padLen / 2 }, (_, i) => i);
  if (!axes) fail(args, 'padded axes unknown (input rank unknown)');
  const k = axes!.length;
  const pv = ctx.constInts(pads);
  let g1 = g;
  if (!pv || pv.some((p) => p < 0)) {
    // Negative pads crop; their adjoint pads back with zeros before the positive part is cut out.
    const neg = ctx.op('Neg', [ctx.op('Min', [pads!, ctx.ints([0])])]);
    g1 = ctx.op('Pad', [g, neg, ...(axesIn ? ['', axesIn] : [])]);
  }
  const pb = pv ? ctx.ints(pv.slice(0, k).map((p) => Math.max(p, 0)))
    : ctx.op('Max', [ctx.op('Slice', [pads!, ctx.ints([0]), ctx.ints([k])]), ctx.ints([0])]);
  const ends = ctx.op('Add', [pb, ctx.op('Gather', [ctx.shape(X!), ctx.ints(axes!)])]);
  return [ctx.op('Slice', [g1, pb, ends, ctx.ints(axes!)], {}, 'dpad')];
};

// ---------------------------------------------------------------------------------------------------------
// Reductions

function reduceVjp(kind: 'sum' | 'mean' | 'sumsquare'): Vjp {
  return (args) => {
    const { ctx, x: [X, axesIn], y: [Y], a } = args;
    const g = g0(args);
    const keep = num(a.keepdims, 1) === 1;
    const axesConst = axesIn ? ctx.constInts(axesIn) : (a.axes as number[] | undefined);
    const noop = num(a.noop_with_empty_axes, 0) === 1;
    const empty = axesIn ? axesConst !== undefined && axesConst.length === 0 : axesConst === undefined || axesConst.length === 0;
    let gk = g;
    if (empty && noop) {
      // Identity reduction.
    } else if (!keep && !empty) {
      gk = ctx.op('Unsqueeze', [g, axesIn && !axesConst ? axesIn : ctx.ints(axesConst!)]);
    }
    if (kind === 'sumsquare') {
      return [ctx.op('Mul', [ctx.op('Mul', [gk, ctx.scalar(2)]), X!])];
    }
    if (kind === 'mean' && !(empty && noop)) {
      const ratio = ctx.op('Div', [ctx.castFloat(ctx.op('Size', [Y!])), ctx.castFloat(ctx.op('Size', [X!]))]);
      gk = ctx.op('Mul', [gk, ratio]);
    }
    return [ctx.op('Expand', [gk, ctx.shape(X!)])];
  };
}

// ---------------------------------------------------------------------------------------------------------

/** The table: forward op type → VJP rule. */
export const VJPS: Record<string, Vjp> = {
  Conv, MaxPool, AveragePool, GlobalAveragePool,
  Add, Sub, Mul, Div, Pow, Where, Sum,
  Relu, LeakyRelu, Abs, Sqrt, Neg, Exp, Log, Reciprocal, Sigmoid, Tanh, Softmax, LogSoftmax,
  Identity, Cast, Dropout: Identity, BatchNormalization,
  MatMul, Gemm,
  Reshape: reshapeBack, Flatten: reshapeBack, Squeeze: reshapeBack, Unsqueeze: reshapeBack,
  Transpose, Expand, Concat, Split, Slice, Pad,
  ReduceSum: reduceVjp('sum'), ReduceMean: reduceVjp('mean'), ReduceSumSquare: reduceVjp('sumsquare'),
};
