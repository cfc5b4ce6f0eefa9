// Normalisation and regularisation layers in inference form: BatchNormalization with running statistics (a
// per-channel affine map: gradients for the data, scale and bias) and Dropout (identity). Their training
// forms (batch statistics, seeded masks) are graph builders in src/onnx/train-layers.ts.
import { type OpRule, type Vjp, fail, g0, num } from '../rule.js';
import { passThroughVjp } from './unary.js';
import type { InferArgs } from '../static.js';

const batchNormVjp: Vjp = (args) => {
  const { ctx, x: [X, S, , M, V], a, need } = args;
  if (need[3] || need[4]) fail(args, 'gradients w.r.t. the running mean/var are not supported (they are statistics, not trained)');
  if (num(a.training_mode, 0) !== 0) fail(args, 'training_mode=1 is not supported (use batchNormTraining from src/onnx/train-layers.ts)');
  const r = ctx.rank(X!);
  if (r === undefined) fail(args, 'input rank unknown');
  const g = g0(args);
  const eps = num(a.epsilon, 1e-5);
  const perChannel = (v: string): string => ctx.op('Reshape', [v, ctx.ints([-1, ...Array(r! - 2).fill(1)])]);
  const std = ctx.op('Sqrt', [ctx.op('Add', [V!, ctx.scalar(eps)])]);
  const sumOverChannels = (v: string): string => ctx.reduce('ReduceSum', v, [0, ...Array.from({ length: r! - 2 }, (_, i) => i + 2)], false);
  return [
    need[0] ? ctx.op('Mul', [g, perChannel(ctx.op('Div', [S!, std]))]) : undefined,
    need[1] ? sumOverChannels(ctx.op('Mul', [g, ctx.op('Div', [ctx.op('Sub', [X!, perChannel(M!)]), perChannel(std)])])) : undefined,
    need[2] ? sumOverChannels(g) : undefined,
  ];
};

const inferFirstOutput = ({ dims, set }: InferArgs): void => set(0, dims(0));

export const normRules: Record<string, OpRule> = {
  BatchNormalization: { infer: inferFirstOutput, grad: { kind: 'input', vjp: batchNormVjp } },
  Dropout: { infer: inferFirstOutput, grad: { kind: 'linear', vjp: passThroughVjp } },
};
