// Normalisation and regularisation layers in inference form: BatchNormalization with running statistics
// (a per-channel affine map) and Dropout (identity).
import { type OpRule, type Vjp, fail, g0, num } from '../rule.js';
import { passThroughVjp } from './unary.js';
import type { InferArgs } from '../static.js';

const batchNormVjp: Vjp = (args) => {
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

const inferFirstOutput = ({ dims, set }: InferArgs): void => set(0, dims(0));

export const normRules: Record<string, OpRule> = {
  BatchNormalization: { infer: inferFirstOutput, grad: { kind: 'input', vjp: batchNormVjp } },
  Dropout: { infer: inferFirstOutput, grad: { kind: 'linear', vjp: passThroughVjp } },
};
