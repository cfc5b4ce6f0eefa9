// blur-sweep: repeatedly Gaussian-blur an image (sharp/libvips), one blur per step, with previews every k
// steps. Cheap and deterministic: the health probe of the job path and the reference kind for new ones.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { type RawImage, pipelineToRaw, rawPipeline } from '../../image/raw.js';
import { checkCheckpoint } from '../checkpoint.js';
import { defineJobKind } from '../kind.js';

export const BLUR_SWEEP_MAX_SIGMA = 50;

export interface BlurSweepParams {
  steps: number;
  sigma: number;
  /** A preview after every k-th step (0 = none). */
  preview_every: number;
}

/** The JSON of a blur-sweep checkpoint (the pixels are the buffer `pixels`, interleaved 8-bit). */
const BlurSweepCheckpoint = z.object({
  width: z.number().int().min(1),
  height: z.number().int().min(1),
  channels: z.union([z.literal(1), z.literal(3)]),
});

/** One blur step, as the kind does it (exported so tests and tools can build the same oracle). */
export async function blurOnce(img: RawImage, sigma: number): Promise<RawImage> {
  return pipelineToRaw(rawPipeline(img).blur(sigma));
}

export default defineJobKind<BlurSweepParams, RawImage>({
  name: 'blur-sweep',
  description: 'Gaussian-blur an image `steps` times (sigma each), with a preview every `preview_every` steps. A cheap probe of the job path.',
  inputs: [{ name: 'image', required: true, maxCount: 1 }],
  params: (config) => z.object({
    steps: z.coerce.number().int().min(1).max(config.maxJobIterations).default(10),
    sigma: z.coerce.number().min(0.3).max(BLUR_SWEEP_MAX_SIGMA).default(1),
    preview_every: z.coerce.number().int().min(0).max(config.maxJobIterations).optional(),
  }).strict().transform((p) => ({ ...p, preview_every: p.preview_every ?? Math.max(1, Math.ceil(p.steps / 10)) })),
  maxInputPixels: (config) => config.maxJobPixels,

  totalSteps: (p) => p.steps,
  init: (inputs) => inputs.image![0]!,
  async step(img, ctx) {
    // A slow job for tests and demos is an operator setting (CONVSERVE_BLUR_SWEEP_STEP_DELAY_MS), not a request
    // parameter: a caller must not be able to hold a job slot for the wall-clock limit with sleeps.
    if (ctx.config.blurSweepStepDelayMs > 0) await sleep(ctx.config.blurSweepStepDelayMs, undefined, { signal: ctx.signal });
    return blurOnce(img, ctx.params.sigma);
  },
  previewAt: (step, p) => p.preview_every > 0 && step % p.preview_every === 0,
  finish: (img) => img,
  serialize: (img) => ({ json: { width: img.width, height: img.height, channels: img.channels }, buffers: { pixels: img.data } }),
  deserialize: (data) => {
    const { json: j, buffer } = checkCheckpoint('blur-sweep', BlurSweepCheckpoint, data);
    return { data: buffer('pixels', j.width * j.height * j.channels), width: j.width, height: j.height, channels: j.channels };
  },
});
