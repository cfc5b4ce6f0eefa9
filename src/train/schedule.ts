// The head's schedule on small data, in optimizer steps rather than epochs (issue 12 item 4): 120 images at batch 32
// are 3 steps an epoch, so "20 epochs, patience 5" meant 60 steps and a stop after 15 — far too few for a new head.
// The plan runs at least `minSteps` steps, warms the learning rate up linearly, then follows a cosine down to 1 %
// of it, and counts early-stopping patience in steps, never stopping before the floor.
import type { FinetuneSettings } from './options.js';

export interface StepPlan {
  /** Epochs to run (enough for the step budget). */
  epochs: number;
  stepsPerEpoch: number;
  totalSteps: number;
  warmupSteps: number;
  /** Early stopping: steps without a better epoch (never before minSteps). */
  patienceSteps: number;
  minSteps: number;
  /** Learning rate at 0-based step t. */
  learningRateAt(t: number): number;
}

/** Linear warm-up over `warmup` steps to `lr`, then a cosine to `floor`·lr at `total`. */
export function warmupCosine(lr: number, total: number, warmup: number, floor = 0.01): (t: number) => number {
  return (t) => {
    if (t < warmup) return (lr * (t + 1)) / warmup;
    const p = Math.min(1, (t - warmup) / Math.max(1, total - warmup));
    return lr * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p)));
  };
}

/** The stage-1 plan for `trainSize` examples under settings `s`. */
export function headPlan(trainSize: number, s: Pick<FinetuneSettings, 'epochs' | 'batchSize' | 'minSteps' | 'patience' | 'patienceSteps' | 'learningRate'>): StepPlan {
  const stepsPerEpoch = Math.max(1, Math.ceil(trainSize / s.batchSize));
  const totalSteps = Math.max(s.epochs * stepsPerEpoch, s.minSteps);
  const epochs = Math.ceil(totalSteps / stepsPerEpoch);
  const warmupSteps = Math.min(50, Math.max(1, Math.round(0.05 * totalSteps)));
  return {
    epochs, stepsPerEpoch, totalSteps: epochs * stepsPerEpoch, warmupSteps,
    patienceSteps: Math.max(s.patienceSteps, s.patience * stepsPerEpoch), minSteps: s.minSteps,
    learningRateAt: warmupCosine(s.learningRate, epochs * stepsPerEpoch, warmupSteps),
  };
}
