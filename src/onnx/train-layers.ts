// Training forms of layers whose inference form is a fixed map, as graph builders made of ops that all have
// VJPs, so appendGradients differentiates through them (the batch statistics included):
//   batchNormTraining   normalise with the batch mean / variance; also returns them for the moving averages
//   dropoutWithMask     x · mask / (1 − rate), the 0/1 mask a graph input the trainer fills from a seeded PRNG
import type { GraphBuilder } from './builder.js';

export interface BatchNormTrainingOptions {
  /** Added to the variance (Keras default 1e-3, ONNX default 1e-5). */
  epsilon: number;
  /** Rank of x (2: [N, C]; 4: [N, C, H, W]; any ≥ 2). */
  rank: number;
}

export interface BatchNormTrainingOutputs {
  y: string;
  /** Batch mean per channel, [C]. */
  mean: string;
  /** Batch variance per channel, [C] (biased: divided by the count, as used for normalising). */
  variance: string;
}

/**
 * y = scale · (x − μ_B) / √(σ²_B + ε) + bias with μ_B, σ²_B the mean and (biased) variance of x over every axis
 * but the channel axis 1 — BatchNormalization with training_mode=1, written out so that gradients flow
 * through the statistics.
 */
export function batchNormTraining(
  b: GraphBuilder, x: string, scale: string, bias: string, opts: BatchNormTrainingOptions,
): BatchNormTrainingOutputs {
  // ReduceMean takes its axes as an attribute up to opset 17 (the builder's).
  const axes = [0, ...Array.from({ length: opts.rank - 2 }, (_, i) => i + 2)];
  const perChannel = b.ints([-1, ...Array(opts.rank - 2).fill(1)]);
  const mean = b.node('ReduceMean', [x], { axes, keepdims: 1 });
  const centred = b.node('Sub', [x, mean]);
  const variance = b.node('ReduceMean', [b.node('Mul', [centred, centred])], { axes, keepdims: 1 });
  const normalised = b.node('Div', [centred, b.node('Sqrt', [b.node('Add', [variance, b.scalar(opts.epsilon)])])]);
  const y = b.node('Add', [b.node('Mul', [normalised, b.node('Reshape', [scale, perChannel])]), b.node('Reshape', [bias, perChannel])]);
  const flat = b.ints([-1]);
  return { y, mean: b.node('Reshape', [mean, flat]), variance: b.node('Reshape', [variance, flat]) };
}

/** Inverted dropout with an explicit mask (1 = keep, 0 = drop; any shape that broadcasts to x). */
export function dropoutWithMask(b: GraphBuilder, x: string, mask: string, rate: number): string {
  if (!(rate >= 0 && rate < 1)) throw new RangeError(`dropout rate must be in [0, 1), got ${rate}`);
  return b.node('Mul', [b.node('Mul', [x, mask]), b.scalar(1 / (1 - rate))]);
}
