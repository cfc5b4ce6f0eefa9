// The one step loop every job runs through — in the service (src/jobs/execution.ts, with persistence) and
// in-process (src/jobs/local.ts). It owns progress, previews, cancellation, checkpoints and the wall-clock
// limit; between steps it yields to the event loop (setImmediate) so HTTP stays responsive.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { RawImage } from '../image/io.js';
import { type AnyJobKind, type JobContext, type JobInputs, type JobResult, isJobDocument } from './kind.js';
import type { Progress } from './record.js';

export type { Progress } from './record.js';

export interface LoopHooks {
  onProgress?(p: Progress): void | Promise<void>;
  onPreview?(image: RawImage, step: number): void | Promise<void>;
  /** Called when a checkpoint is due (every `checkpointEverySteps` steps or `checkpointEveryMs` ms). */
  onCheckpoint?(state: unknown, step: number, runMs: number): void | Promise<void>;
}

export interface LoopOptions {
  kind: AnyJobKind;
  params: unknown;
  ctx: JobContext;
  /** Resume point: the state after `startStep` steps (else init() is called). */
  resume?: { state: unknown; step: number; runMs: number };
  inputs: JobInputs;
  checkpointEverySteps?: number;
  checkpointEveryMs?: number;
  /** Total running time allowed (counting time before a resume). */
  wallClockMs?: number;
  /** Most previews this run may still make (CONVSERVE_JOB_MAX_PREVIEWS less the ones kept); unlimited when absent. */
  previewBudget?: number;
  hooks?: LoopHooks;
}

export type LoopOutcome =
  | { outcome: 'succeeded'; result: JobResult; step: number; runMs: number }
  /** Stopped by the signal (cancel or shutdown): `state` is the state after `step` completed steps. */
  | { outcome: 'aborted'; reason: unknown; state: unknown; step: number; runMs: number }
  | { outcome: 'timed-out'; step: number; runMs: number; limitMs: number };

export class StepTimer {
  private readonly recent: number[] = [];
  constructor(private readonly window = 10) {}
  add(ms: number): void {
    this.recent.push(ms);
    if (this.recent.length > this.window) this.recent.shift();
  }
  mean(): number | undefined {
    return this.recent.length ? this.recent.reduce((a, b) => a + b, 0) / this.recent.length : undefined;
  }
}

export async function runStepLoop(opts: LoopOptions): Promise<LoopOutcome> {
  const state: { current?: unknown } = {};
  try {
    return await loop(opts, state);
  } finally {
    // Sessions and worker threads a state holds go with the loop (a checkpoint's serialize() needs none of them).
    if (state.current !== undefined) await opts.kind.release?.(state.current);
  }
}

async function loop(opts: LoopOptions, held: { current?: unknown }): Promise<LoopOutcome> {
  const { kind, params, ctx, hooks = {} } = opts;
  const total = kind.totalSteps(params);
  const signal = ctx.signal;
  const segmentStart = Date.now();
  const priorMs = opts.resume?.runMs ?? 0;
  const runMs = () => priorMs + (Date.now() - segmentStart);
  const limit = opts.wallClockMs ?? Number.POSITIVE_INFINITY;
  const timer = new StepTimer();
  /** Time per unit of step cost (kind.stepCost), for the ETA. */
  const unitTimer = new StepTimer();
  const costOf = (st: unknown, i: number): number => kind.stepCost?.(st, i) ?? 1;

  let step = opts.resume?.step ?? 0;
  let state: unknown;
  try {
    state = opts.resume ? opts.resume.state : await kind.init(opts.inputs, params, ctx);
    held.current = state;
  } catch (e) {
    if (signal.aborted) return { outcome: 'aborted', reason: signal.reason, state: undefined, step, runMs: runMs() };
    throw e;
  }
  let previewsLeft = opts.previewBudget ?? Number.POSITIVE_INFINITY;
  let lastCkptStep = step;
  let lastCkptAt = Date.now();

  while (step < total) {
    if (signal.aborted) return { outcome: 'aborted', reason: signal.reason, state, step, runMs: runMs() };
    if (runMs() > limit) return { outcome: 'timed-out', step, runMs: runMs(), limitMs: limit };
    const t0 = performance.now();
    const cost = costOf(state, step);
    try {
      state = await kind.step(state, { ...ctx, params, step, total });
      held.current = state;
    } catch (e) {
      // A step interrupted by the signal is abandoned: the state before it is still the state after `step` steps.
      if (signal.aborted) return { outcome: 'aborted', reason: signal.reason, state, step, runMs: runMs() };
      throw e;
    }
    step++;
    const ms = performance.now() - t0;
    timer.add(ms);
    unitTimer.add(ms / cost);
    const mean = timer.mean();
    let left = total - step;
    if (kind.stepCost) { left = 0; for (let i = step; i < total; i++) left += costOf(state, i); }
    const etaMs = left * unitTimer.mean()!;
    const progress: Progress = {
      step,
      total,
      fraction: total > 0 ? step / total : 1,
      message: kind.message?.(state, step, total) ?? `step ${step}/${total}`,
      metrics: kind.metrics?.(state, params) ?? {},
      ...(mean !== undefined ? { step_ms: Math.round(mean * 100) / 100, eta_s: Math.round(etaMs / 100) / 10 } : {}),
    };
    await hooks.onProgress?.(progress);
    if (hooks.onPreview && previewsLeft > 0 && kind.previewAt?.(step, params)) {
      previewsLeft--;
      const img: JobResult = kind.preview ? await kind.preview(state, ctx) : await kind.finish(state, ctx);
      if (!isJobDocument(img)) await hooks.onPreview(img, step);
    }
    if (hooks.onCheckpoint && step < total) {
      const dueBySteps = step - lastCkptStep >= (opts.checkpointEverySteps ?? Number.POSITIVE_INFINITY);
      const dueByTime = Date.now() - lastCkptAt >= (opts.checkpointEveryMs ?? Number.POSITIVE_INFINITY);
      if (dueBySteps || dueByTime) {
        await hooks.onCheckpoint(state, step, runMs());
        lastCkptStep = step;
        lastCkptAt = Date.now();
      }
    }
    await yieldToEventLoop();
  }
  if (signal.aborted) return { outcome: 'aborted', reason: signal.reason, state, step, runMs: runMs() };
  const result = await kind.finish(state, ctx);
  return { outcome: 'succeeded', result, step, runMs: runMs() };
}
