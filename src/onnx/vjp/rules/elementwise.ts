// Broadcasting elementwise ops: arithmetic (gradients un-broadcast back to each operand), Where, Sum, and the
// comparisons / logical ops whose boolean outputs are constants for the autodiff.
import type { SDim } from '../dims.js';
import { broadcastDims } from '../dims.js';
import { type OpRule, type Vjp, type VjpArgs, fail, g0 } from '../rule.js';
import type { InferArgs } from '../static.js';

/** Output dims = numpy broadcast of every (present) input. */
export const inferBroadcast = ({ ins, dims, set }: InferArgs): void => {
  const all = ins.map((x, i) => (x ? dims(i) : null)).filter((d) => d !== null);
  if (all.every((d) => d !== undefined)) set(0, broadcastDims(all as SDim[][]));
};

const broadcastBinary = (f: (args: VjpArgs, g: string) => [string | undefined, string | undefined]): Vjp => (args) => {
  const { ctx, x: [A, B] } = args;
  const [da, db] = f(args, g0(args));
  return [
    da && args.need[0] ? ctx.unbroadcast(da, A!, [ctx.dims(B!)]) : undefined,
    db && args.need[1] ? ctx.unbroadcast(db, B!, [ctx.dims(A!)]) : undefined,
  ];
};

const addVjp = broadcastBinary((_args, g) => [g, g]);
const subVjp = broadcastBinary(({ ctx, need }, g) => [g, need[1] ? ctx.op('Neg', [g]) : undefined]);
const mulVjp = broadcastBinary(({ ctx, need, x: [A, B] }, g) => [
  need[0] ? ctx.op('Mul', [g, B!]) : undefined,
  need[1] ? ctx.op('Mul', [g, A!]) : undefined,
]);
// d(a/b)/da = 1/b; d(a/b)/db = −(a/b)/b.
const divVjp = broadcastBinary(({ ctx, need, x: [, B], y: [Y] }, g) => [
  need[0] ? ctx.op('Div', [g, B!]) : undefined,
  need[1] ? ctx.op('Neg', [ctx.op('Mul', [g, ctx.op('Div', [Y!, B!])])]) : undefined,
]);

const powVjp: Vjp = (args) => {
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

const whereVjp: Vjp = (args) => {
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

const sumVjp: Vjp = (args) => {
  const { ctx, x } = args;
  const g = g0(args);
  return x.map((xi, i) => (args.need[i] ? ctx.unbroadcast(g, xi, x.filter((_, j) => j !== i).map((o) => ctx.dims(o))) : undefined));
};

/** Comparisons and logic: boolean outputs, no gradient. */
const predicate: OpRule = { types: 'int', infer: inferBroadcast, grad: 'none' };

export const elementwiseRules: Record<string, OpRule> = {
  Add: { types: 'like-input', infer: inferBroadcast, grad: { kind: 'linear', vjp: addVjp } },
  Sub: { types: 'like-input', infer: inferBroadcast, grad: { kind: 'linear', vjp: subVjp } },
  Mul: { types: 'like-input', infer: inferBroadcast, grad: { kind: 'input', vjp: mulVjp } },
  Div: { types: 'like-input', infer: inferBroadcast, grad: { kind: 'input+output', vjp: divVjp } },
  Pow: { infer: inferBroadcast, grad: { kind: 'input', vjp: powVjp } },
  Where: { infer: inferBroadcast, grad: { kind: 'input', vjp: whereVjp } },
  Sum: { infer: inferBroadcast, grad: { kind: 'linear', vjp: sumVjp } },
  Max: { types: 'like-input', infer: inferBroadcast },
  Min: { types: 'like-input', infer: inferBroadcast },
  Mean: { infer: inferBroadcast },
  PRelu: { infer: inferBroadcast },
  Mod: { infer: inferBroadcast },
  Equal: predicate, Greater: predicate, Less: predicate, GreaterOrEqual: predicate, LessOrEqual: predicate,
  And: predicate, Or: predicate,
  Xor: { types: 'int', grad: 'none' },
};
