// Reductions: the gradient is the upstream gradient broadcast back over the reduced axes (scaled for the
// mean, times 2x for the sum of squares). The other Reduce* ops are only inferred.
import { normAxis } from '../dims.js';
import { type GradKind, type OpRule, type Vjp, g0, num } from '../rule.js';
import type { InferArgs } from '../static.js';

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

const inferReduce = ({ a, ins, dims, ints, set }: InferArgs): void => {
  const x = dims(0);
  if (!x) return;
  const axes = ins[1] ? ints(1) : (a.axes as number[] | undefined);
  if (ins[1] && !axes) return;
  const keep = a.keepdims === undefined ? true : Boolean(a.keepdims);
  if (!axes || axes.length === 0) {
    if (axes && a.noop_with_empty_axes) { set(0, x); return; }
    set(0, keep ? x.map(() => 1) : []);
    return;
  }
  const ax = new Set(axes.map((v) => normAxis(v, x.length)));
  set(0, keep ? x.map((v, i) => (ax.has(i) ? 1 : v)) : x.filter((_, i) => !ax.has(i)));
};

const reduce = (kind: GradKind, vjp: Vjp, extra: Partial<OpRule> = {}): OpRule => ({ infer: inferReduce, grad: { kind, vjp }, ...extra });

export const reduceRules: Record<string, OpRule> = {
  ReduceSum: reduce('linear', reduceVjp('sum'), { types: 'like-input' }),
  ReduceMean: reduce('linear', reduceVjp('mean')),
  ReduceSumSquare: reduce('input', reduceVjp('sumsquare')),
  ReduceMax: { types: 'like-input', infer: inferReduce },
  ReduceMin: { types: 'like-input', infer: inferReduce },
  ReduceProd: { types: 'like-input', infer: inferReduce },
  ReduceL1: { infer: inferReduce },
  ReduceL2: { infer: inferReduce },
  ReduceLogSumExp: { infer: inferReduce },
};
