// Shape manipulation: reshapes, Transpose, Expand, Concat/Split, Slice/Pad (each other's adjoints), and the
// index ops Gather / Tile that only appear in shape arithmetic here.
import { type SDim, broadcastDims, normAxis, sliceLen } from '../dims.js';
import { type OpRule, type Vjp, fail, g0, num } from '../rule.js';
import type { InferArgs } from '../static.js';

const reshapeBackVjp: Vjp = (args) => [args.ctx.op('Reshape', [g0(args), args.ctx.shape(args.x[0]!)])];

const transposeVjp: Vjp = (args) => {
  const { ctx, a } = args;
  const perm = a.perm as number[] | undefined;
  if (!perm) return [ctx.op('Transpose', [g0(args)])];
  const inv = perm.slice();
  perm.forEach((p, i) => { inv[p] = i; });
  return [ctx.op('Transpose', [g0(args)], { perm: inv })];
};

const expandVjp: Vjp = (args) => [args.ctx.unbroadcast(g0(args), args.x[0]!, [args.ctx.constInts(args.x[1])])];

const concatVjp: Vjp = (args) => {
  const { ctx, x, a, need } = args;
  const axis = num(a.axis, 0);
  // Static sizes (the channel counts of a channel concat) keep the forward parts out of the backward: a Shape
  // of an NCHWc activation would cost ORT a full reorder back to NCHW just to read its dims.
  const rank = ctx.rank(x[0]!);
  const known = rank === undefined ? [] : x.map((xi) => ctx.dims(xi)?.[axis < 0 ? axis + rank : axis]);
  const sizes = known.length > 0 && known.every((d) => typeof d === 'number')
    ? ctx.ints(known as number[])
    : ctx.op('Concat', x.map((xi) => ctx.op('Gather', [ctx.shape(xi), ctx.ints([axis])])), { axis: 0 });
  if (need.every((v) => v)) return ctx.opMulti('Split', [g0(args), sizes], x.length, { axis });
  // Only some parts need a gradient: slice those out (a Split would compute the others as dead outputs).
  const starts = ctx.op('CumSum', [sizes, ctx.ints([0], [])], { exclusive: 1 });
  const ends = ctx.op('Add', [starts, sizes]);
  const at = (v: string, i: number): string => ctx.op('Slice', [v, ctx.ints([i]), ctx.ints([i + 1])]);
  return x.map((_, i) => (need[i] ? ctx.op('Slice', [g0(args), at(starts, i), at(ends, i), ctx.ints([axis])], {}, 'dconcat') : undefined));
};

const splitVjp: Vjp = (args) => {
  const { ctx, y, gy, a } = args;
  const parts = y.map((yi, i) => gy[i] ?? ctx.zerosLike(yi));
  return [ctx.op('Concat', parts, { axis: num(a.axis, 0) })];
};

const sliceVjp: Vjp = (args) => {
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

const padVjp: Vjp = (args) => {
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
// Static inference

const inferReshape = ({ a, dims, ints, set }: InferArgs): void => {
  const x = dims(0);
  const shape = ints(1);
  if (shape) {
    const out: SDim[] = shape.map((v, i) => (v === 0 && !a.allowzero ? (x?.[i] ?? null) : v === -1 ? null : v));
    const minus = shape.indexOf(-1);
    if (minus >= 0 && x && x.every((v) => typeof v === 'number') && out.every((v, i) => i === minus || typeof v === 'number')) {
      const total = (x as number[]).reduce((s, v) => s * v, 1);
      const rest = (out.filter((_, i) => i !== minus) as number[]).reduce((s, v) => s * v, 1);
      out[minus] = rest > 0 ? total / rest : null;
    }
    set(0, out);
  } else {
    const sd = dims(1);
    if (sd && typeof sd[0] === 'number') set(0, Array.from({ length: sd[0] }, () => null));
  }
};

const inferFlatten = ({ a, dims, set }: InferArgs): void => {
  const x = dims(0);
  if (!x) return;
  const ax = normAxis(Number(a.axis ?? 1), x.length);
  const prod = (v: SDim[]): SDim => (v.every((e) => typeof e === 'number') ? (v as number[]).reduce((s, e) => s * e, 1) : null);
  set(0, [prod(x.slice(0, ax)), prod(x.slice(ax))]);
};

const inferTranspose = ({ a, dims, set }: InferArgs): void => {
  const x = dims(0);
  if (!x) return;
  const perm = (a.perm as number[] | undefined) ?? x.map((_, i) => x.length - 1 - i);
  set(0, perm.map((p) => x[p] ?? null));
};

const inferSqueeze = ({ a, dims, ints, set }: InferArgs): void => {
  const x = dims(0);
  const axes = ints(1) ?? (a.axes as number[] | undefined);
  if (!x) return;
  if (!axes) { if (x.every((v) => v !== null)) set(0, x.filter((v) => v !== 1)); return; }
  const ax = new Set(axes.map((v) => normAxis(v, x.length)));
  set(0, x.filter((_, i) => !ax.has(i)));
};

const inferUnsqueeze = ({ a, dims, ints, set }: InferArgs): void => {
  const x = dims(0);
  const axes = ints(1) ?? (a.axes as number[] | undefined);
  if (!x || !axes) return;
  const r = x.length + axes.length;
  const ax = new Set(axes.map((v) => normAxis(v, r)));
  const out: SDim[] = [];
  let j = 0;
  for (let i = 0; i < r; i++) out.push(ax.has(i) ? 1 : x[j++] ?? null);
  set(0, out);
};

const inferExpand = ({ dims, ints, set }: InferArgs): void => {
  const x = dims(0);
  const s = ints(1);
  if (x && s) set(0, broadcastDims([x, s]));
};

const inferConcat = ({ a, ins, dims, set }: InferArgs): void => {
  const all = ins.map((_, i) => dims(i));
  if (!all.every((x) => x !== undefined) || all.length === 0) return;
  const r = all[0]!.length;
  const ax = normAxis(Number(a.axis ?? 0), r);
  const out = all[0]!.slice();
  const parts = all.map((x) => x![ax]);
  out[ax] = parts.every((p) => typeof p === 'number') ? (parts as number[]).reduce((s, v) => s + v, 0) : null;
  for (let i = 0; i < r; i++) if (i !== ax) out[i] = all.map((x) => x![i]).find((v) => typeof v === 'number') ?? out[i]!;
  set(0, out);
};

const inferSplit = ({ node, a, dims, ints, set }: InferArgs): void => {
  const x = dims(0);
  if (!x) return;
  const ax = normAxis(Number(a.axis ?? 0), x.length);
  const split = ints(1) ?? (a.split as number[] | undefined);
  (node.output ?? []).forEach((_, i) => set(i, x.map((v, j) => (j === ax ? (split ? split[i]! : null) : v))));
};

const inferSlice = ({ ins, dims, ints, set }: InferArgs): void => {
  const x = dims(0);
  if (!x) return;
  const starts = ints(1); const ends = ints(2);
  const axes = ins[3] ? ints(3) : starts?.map((_, i) => i);
  const steps = ins[4] ? ints(4) : starts?.map(() => 1);
  const out = x.slice();
  if (!axes) { set(0, x.map(() => null)); return; }
  axes.forEach((axRaw, i) => {
    const ax = normAxis(axRaw, x.length);
    const h = x[ax];
    if (typeof h === 'number' && starts && ends && steps) {
      out[ax] = sliceLen(h, starts[i]!, ends[i]!, steps[i]!);
    } else out[ax] = null;
  });
  set(0, out);
};

const inferPad = ({ ins, dims, ints, set }: InferArgs): void => {
  const x = dims(0);
  if (!x) return;
  const pads = ints(1);
  const axes = ins[3] ? ints(3) : x.map((_, i) => i);
  if (!pads || !axes) { set(0, x.map(() => null)); return; }
  const out = x.slice();
  axes.forEach((axRaw, i) => {
    const ax = normAxis(axRaw, x.length);
    const h = x[ax];
    const add = pads[i]! + pads[i + axes.length]!;
    out[ax] = add === 0 ? (h ?? null) : typeof h === 'number' ? h + add : null;
  });
  set(0, out);
};

const inferGather = ({ a, dims, set }: InferArgs): void => {
  const x = dims(0); const idx = dims(1);
  if (!x || !idx) return;
  const ax = normAxis(Number(a.axis ?? 0), x.length);
  set(0, [...x.slice(0, ax), ...idx, ...x.slice(ax + 1)]);
};

const linear = (vjp: Vjp): OpRule['grad'] => ({ kind: 'linear', vjp });

export const shapeRules: Record<string, OpRule> = {
  Reshape: { types: 'like-input', infer: inferReshape, grad: linear(reshapeBackVjp) },
  Flatten: { infer: inferFlatten, grad: linear(reshapeBackVjp) },
  Squeeze: { types: 'like-input', infer: inferSqueeze, grad: linear(reshapeBackVjp) },
  Unsqueeze: { types: 'like-input', infer: inferUnsqueeze, grad: linear(reshapeBackVjp) },
  Transpose: { infer: inferTranspose, grad: linear(transposeVjp) },
  Expand: { types: 'like-input', infer: inferExpand, grad: linear(expandVjp) },
  Concat: { types: 'like-input', infer: inferConcat, grad: linear(concatVjp) },
  Split: { infer: inferSplit, grad: linear(splitVjp) },
  Slice: { types: 'like-input', infer: inferSlice, grad: linear(sliceVjp) },
  Pad: { infer: inferPad, grad: linear(padVjp) },
  Gather: { types: 'like-input', infer: inferGather },
  Tile: { types: 'like-input' },
};
