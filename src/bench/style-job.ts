// style_job_512: time to result of the progressive schedule against a fixed-resolution run. A whole default
// style job (keras recipe, L-BFGS, the default evaluation budget) on a 512×512 synthetic picture, on the
// bench's synthetic full-width VGG19, through the job kind and the job runner the service uses. The fixed run
// gives the reference: its wall time and the loss of the image it returns. The progressive run's time to
// result is the wall time (from the job's start, targets included) to its first full-size evaluation whose
// best accepted loss is at most that reference — the loss at the output size, with the output-size targets.
import { loadConfig } from '../config.js';
import { createCore } from '../app/core.js';
import type { RawImage } from '../image/raw.js';
import styleKind, { STYLE_DEFAULT_ITERATIONS } from '../jobs/kinds/style.js';
import { runStepLoop } from '../jobs/runner.js';
import { parseParams } from '../util/params.js';
import type { Logger } from '../util/logger.js';

const SIDE = 512;

/** What the workload needs of the bench's context (workloads.ts passes its own). */
export interface StyleJobBench {
  reps: number;
  threads: number;
  benchModelsDir: string;
  logger: Logger;
}

/** A deterministic picture: soft colour gradients, a few discs and a diagonal grating (structure at every scale). */
export function syntheticPicture(width: number, height: number, seed: number): RawImage {
  const data = Buffer.alloc(width * height * 3);
  const discs = [0.3, 0.7, 0.5].map((f, i) => ({ x: f * width, y: ((i + seed) % 3 + 0.5) / 3 * height, r: (0.12 + 0.05 * i) * Math.min(width, height) }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const inDisc = discs.some((d) => (x - d.x) ** 2 + (y - d.y) ** 2 < d.r * d.r);
      const grating = 0.5 + 0.5 * Math.sin((x + y * (1 + seed)) / (3 + seed));
      data[i] = Math.round(255 * (inDisc ? 0.9 : x / width) * (0.6 + 0.4 * grating));
      data[i + 1] = Math.round(255 * (inDisc ? 0.3 : y / height));
      data[i + 2] = Math.round(255 * (inDisc ? grating : 1 - x / width) * 0.8);
    }
  }
  return { data, width, height, channels: 3 };
}

interface RunTrace {
  totalMs: number;
  /** Best accepted loss at the output size after the run. */
  finalLoss: number;
  /** Per step: wall ms since the start and the best accepted full-size loss so far (NaN at a coarse scale). */
  points: { ms: number; fullSizeBest: number }[];
}

/** `reps` pairs of runs (fixed, then progressive), after one untimed evaluation that builds the sessions. */
export async function styleJob512(ctx: StyleJobBench, benchModel: () => Promise<string>): Promise<{ shape: number[]; times: number[]; extra: Record<string, unknown> }> {
  await benchModel();
  const config = loadConfig(process.env, { modelsDir: ctx.benchModelsDir, autoFetch: false, autoInstall: false, engineWorkers: 1, engineThreads: ctx.threads });
  const core = await createCore(config, ctx.logger);
  await core.started;
  const inputs = { content: [syntheticPicture(SIDE, SIDE, 0)], style: [syntheticPicture(SIDE, SIDE, 2)] };
  const run = async (schedule: 'fixed' | 'progressive', iterations = STYLE_DEFAULT_ITERATIONS): Promise<RunTrace> => {
    const params = parseParams(styleKind.params(config), { model: 'vgg19', size: SIDE, iterations, schedule, preview_every: 0 });
    const points: RunTrace['points'] = [];
    const t0 = performance.now();
    const out = await runStepLoop({
      kind: styleKind, params, inputs,
      ctx: { jobId: `bench-${schedule}`, config, signal: new AbortController().signal, logger: ctx.logger, services: core },
      hooks: {
        onProgress: (p) => {
          const atFullSize = p.metrics.scale === undefined || p.metrics.scale === 1;
          points.push({ ms: performance.now() - t0, fullSizeBest: atFullSize ? p.metrics.best ?? Number.NaN : Number.NaN });
        },
      },
    });
    if (out.outcome !== 'succeeded') throw new Error(`style_job_512: the ${schedule} run ended ${out.outcome}`);
    return { totalMs: performance.now() - t0, finalLoss: points.at(-1)!.fullSizeBest, points };
  };
  try {
    await run('fixed', 1); // builds and loads the loss and target sessions once (they serve every size)
    const times: number[] = [];
    const pairs: Record<string, number | string | null>[] = [];
    for (let r = 0; r < ctx.reps; r++) {
      const fixed = await run('fixed');
      const progressive = await run('progressive');
      const reached = progressive.points.find((q) => q.fullSizeBest <= fixed.finalLoss);
      const reachMs = reached ? reached.ms : null;
      if (reachMs !== null) times.push(reachMs);
      pairs.push({
        fixed_ms: Math.round(fixed.totalMs), fixed_loss: fixed.finalLoss,
        progressive_reach_ms: reachMs === null ? 'never reached the fixed loss' : Math.round(reachMs),
        progressive_total_ms: Math.round(progressive.totalMs), progressive_loss: progressive.finalLoss,
        ratio: reachMs === null ? null : Math.round((reachMs / fixed.totalMs) * 1000) / 1000,
      });
    }
    return { shape: [1, 3, SIDE, SIDE], times: times.length ? times : [Number.NaN], extra: { iterations: STYLE_DEFAULT_ITERATIONS, recipe: 'keras', runs: pairs } };
  } finally {
    await core.close();
  }
}
