// Unary elementwise ops (activations and math functions, shape-preserving) and the axis-wise normalisations
// Softmax / LogSoftmax. Rules that read the forward output instead of the input keep only y alive.
import { isFloatType } from '../dims.js';
import { type GradKind, type OpRule, type Vjp, fail, g0, num } from '../rule.js';
import type { InferArgs } from '../static.js';

/** Output 0 has the dims of input 0. */
export const inferSame = ({ dims, set }: InferArgs): void => set(0, dims(0));

const reluVjp: Vjp = (args) => {
  const { ctx, y: [Y] } = args;
  const g = g0(args);
  if (ctx.maskedBy.get(g) === Y) return [g]; // already zero where y = 0 (a block max-pool applied the mask)
  // Uses the output (y > 0 ⇔ x > 0), so the pre-activation is not kept alive and Conv+Relu still fuse.
  return [ctx.op('Where', [ctx.op('Greater', [Y!, ctx.scalar(0)]), g, ctx.scalar(0)], {}, 'drelu')];
};

const leakyReluVjp: Vjp = (args) => {
  const { ctx, x: [X], a } = args;
  const g = g0(args);
  const alpha = num(a.alpha, 0.01);
  return [ctx.op('Where', [ctx.op('Greater', [X!, ctx.scalar(0)]), g, ctx.op('Mul', [g, ctx.scalar(alpha)])])];
};

const absVjp: Vjp = (args) => [args.ctx.op('Mul', [g0(args), args.ctx.op('Sign', [args.x[0]!])])];
const sqrtVjp: Vjp = (args) => [args.ctx.op('Div', [args.ctx.op('Mul', [g0(args), args.ctx.scalar(0.5)]), args.y[0]!])];
const negVjp: Vjp = (args) => [args.ctx.op('Neg', [g0(args)])];
const expVjp: Vjp = (args) => [args.ctx.op('Mul', [g0(args), args.y[0]!])];
const logVjp: Vjp = (args) => [args.ctx.op('Div', [g0(args), args.x[0]!])];
const reciprocalVjp: Vjp = (args) => {
  const { ctx, y: [Y] } = args;
  return [ctx.op('Neg', [ctx.op('Mul', [g0(args), ctx.op('Mul', [Y!, Y!])])])];
};
const sigmoidVjp: Vjp = (args) => {
  const { ctx, y: [Y] } = args;
  return [ctx.op('Mul', [g0(args), ctx.op('Mul', [Y!, ctx.op('Sub', [ctx.scalar(1), Y!])])])];
};
const tanhVjp: Vjp = (args) => {
  const { ctx, y: [Y] } = args;
  return [ctx.op('Mul', [g0(args), ctx.op('Sub', [ctx.scalar(1), ctx.op('Mul', [Y!, Y!])])])];
};
// Like tf.clipByValue: the gradient passes where min ≤ x ≤ max (bounds included), else 0.
const clipVjp: Vjp = (args) => {
  const { ctx, x: [X, lo, hi], a, need } = args;
  if (need[1] || need[2]) fail(args, 'the bounds must be constant (not on the path from wrt to the loss)');
  const bound = (input: string | undefined, attr: unknown): string | undefined =>
    input ? input : attr === undefined ? undefined : ctx.scalar(Number(attr));
  const min = bound(lo, a.min);
  const max = bound(hi, a.max);
  const tests = [
    ...(min ? [ctx.op('GreaterOrEqual', [X!, min])] : []),
    ...(max ? [ctx.op('LessOrEqual', [X!, max])] : []),
  ];
  if (tests.length === 0) return [g0(args)];
  const inside = tests.length === 2 ? ctx.op('And', tests) : tests[0]!;
  return [ctx.op('Where', [inside, g0(args), ctx.scalar(0)], {}, 'dclip')];
};

/** Identity-like ops (Identity, float→float Cast, inference Dropout): the gradient passes through. */
export const passThroughVjp: Vjp = (args) => [g0(args)];

const softmaxVjp: Vjp = (args) => {
  const { ctx, y: [Y], a } = args;
  const g = g0(args);
  const s = ctx.reduce('ReduceSum', ctx.op('Mul', [g, Y!]), [num(a.axis, -1)], true);
  return [ctx.op('Mul', [Y!, ctx.op('Sub', [g, s])])];
};

const logSoftmaxVjp: Vjp = (args) => {
  const { ctx, y: [Y], a } = args;
  const g = g0(args);
  const s = ctx.reduce('ReduceSum', g, [num(a.axis, -1)], true);
  return [ctx.op('Sub', [g, ctx.op('Mul', [ctx.op('Exp', [Y!]), s])])];
};

const unary = (kind: GradKind, vjp: Vjp, extra: Partial<OpRule> = {}): OpRule => ({ infer: inferSame, grad: { kind, vjp }, ...extra });
/** Shape-preserving ops without a VJP (an error on a gradient path). */
const inferOnly: OpRule = { infer: inferSame };
/** Piecewise-constant functions: zero gradient almost everywhere, treated as constants. */
const stepFunction: OpRule = { infer: inferSame, grad: 'none' };

export const unaryRules: Record<string, OpRule> = {
  Relu: unary('output', reluVjp),
  LeakyRelu: unary('input', leakyReluVjp),
  Abs: unary('input', absVjp, { types: 'like-input' }),
  Sqrt: unary('output', sqrtVjp),
  Neg: unary('linear', negVjp, { types: 'like-input' }),
  Exp: unary('output', expVjp),
  Log: unary('input', logVjp),
  Reciprocal: unary('output', reciprocalVjp),
  Sigmoid: unary('output', sigmoidVjp),
  Tanh: unary('output', tanhVjp),
  Softmax: unary('output', softmaxVjp),
  LogSoftmax: unary('output', logSoftmaxVjp),
  Identity: unary('linear', passThroughVjp, { types: 'like-input' }),
  // Only float→float casts are differentiable; a cast to an integer type yields a constant.
  Cast: unary('linear', passThroughVjp, { types: (a) => [isFloatType(Number(a.to)) ? 'float' : 'int'] }),
  Clip: unary('input', clipVjp),
  Erf: inferOnly, Elu: inferOnly, Softplus: inferOnly, LRN: inferOnly,
  Sign: stepFunction, Floor: stepFunction, Ceil: stepFunction, Round: stepFunction,
  Not: { types: 'int', infer: inferSame, grad: 'none' },
  IsNaN: { types: 'int', grad: 'none' },
  IsInf: { types: 'int', grad: 'none' },
};
