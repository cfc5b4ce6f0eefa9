// The resolution schedule of a style-transfer job. `fixed`: every evaluation at the output size. `progressive`:
// most evaluations at ¼ and ½ of the output size, then the rest at full size, each scale starting from the
// previous scale's result upsampled (coarse scales settle the large structures cheaply: a ¼-scale evaluation
// costs ~1/16 of a full one). The plan is a pure function of the output size, the budget and the model's
// smallest side, so a resumed job recomputes the same plan and knows which scale any step belongs to.

export type StyleSchedule = 'progressive' | 'fixed';

/** Outputs with at least this many rows (`size`) default to the progressive schedule. */
export const PROGRESSIVE_DEFAULT_MIN_SIZE = 512;

export interface ScaleShare {
  /** Fraction of the output's width and height. */
  scale: number;
  /** Fraction of the evaluation budget spent at this scale. */
  share: number;
}

/**
 * The progressive split, coarse to fine: 50 % of the evaluations at ¼, 30 % at ½, 20 % at full size (the
 * measurement behind it is in docs/dream-style.md, "Progressive schedule").
 */
export const PROGRESSIVE_SHARES: readonly ScaleShare[] = [
  { scale: 0.25, share: 0.5 },
  { scale: 0.5, share: 0.3 },
  { scale: 1, share: 0.2 },
];

/** One scale of a plan: its working size and the job steps (evaluations) spent on it. */
export interface ScaleStage {
  scale: number;
  width: number;
  height: number;
  /** Index of the first job step (0-based) evaluated at this scale. */
  firstStep: number;
  steps: number;
}

/** The default schedule for a job whose output has `size` rows. */
export function defaultSchedule(size: number): StyleSchedule {
  return size >= PROGRESSIVE_DEFAULT_MIN_SIZE ? 'progressive' : 'fixed';
}

/**
 * The stages of a job: one for `fixed`; for `progressive` the shares' scales, each with ⌊iterations·share⌋
 * evaluations and the last (full size) with the rest. A coarse scale whose image would be smaller than `minSide`
 * on a side, or that gets no evaluation, is left out and its evaluations go to the next finer scale.
 */
export function scalePlan(width: number, height: number, iterations: number, schedule: StyleSchedule, minSide: number, shares: readonly ScaleShare[] = PROGRESSIVE_SHARES): ScaleStage[] {
  const last = shares.at(-1);
  // Anything but 'progressive' (a job stored before schedules existed has none) runs at the output size.
  if (schedule !== 'progressive' || !last) return [{ scale: 1, width, height, firstStep: 0, steps: iterations }];
  if (last.scale !== 1) throw new Error('the last scale of a progressive schedule must be the output size');
  const stages: ScaleStage[] = [];
  let carried = 0;
  let used = 0;
  shares.forEach(({ scale, share }, i) => {
    const isLast = i === shares.length - 1;
    const steps = isLast ? iterations - used : Math.floor(iterations * share);
    used += steps;
    const w = Math.max(1, Math.round(width * scale));
    const h = Math.max(1, Math.round(height * scale));
    if (!isLast && (steps + carried === 0 || Math.min(w, h) < minSide)) { carried += steps; return; }
    stages.push({ scale, width: isLast ? width : w, height: isLast ? height : h, firstStep: used - steps - carried, steps: steps + carried });
    carried = 0;
  });
  return stages;
}

/** Index of the stage that evaluates job step `step` (0-based). */
export function stageAt(plan: readonly ScaleStage[], step: number): number {
  for (let i = plan.length - 1; i > 0; i--) if (step >= plan[i]!.firstStep) return i;
  return 0;
}

/** Relative cost of one evaluation at `stage` (pixels against the output's), for the job's ETA. */
export function stageCost(plan: readonly ScaleStage[], stage: number): number {
  const out = plan.at(-1)!;
  const s = plan[stage]!;
  return (s.width * s.height) / (out.width * out.height);
}
