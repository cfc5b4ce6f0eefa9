// dream: DeepDream on an InceptionV3-architecture model (POST /v1/dream, image field `image`). One job step =
// one gradient-ascent iteration; octaves × iterations steps in all (an octave that hits max_loss skips its
// remaining iterations as no-op steps). A preview after each octave.
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Chw } from '../../image/chw.js';
import { deprocess, preprocess } from '../../image/preprocess.js';
import { type RawImage, resizeRaw, toRgb } from '../../image/raw.js';
import { fitSize } from '../../image/resize.js';
import { getArchitecture } from '../../models/architectures/index.js';
import {
  type DreamLayer, type DreamSettings, type DreamState, KERAS_DREAM_LAYERS, checkOctaves, dreamImage, dreamLayerNames,
  dreamSession, dreamStep, engineTileRunner, initialDreamState,
} from '../../ops/dream.js';
import { gradServices, modelStamp, requireModel } from '../../ops/grad-session.js';
import { bytesOf, floatsOf } from '../../util/float-bytes.js';
import { type JobContext, type JobInputs, defineJobKind } from '../kind.js';

export const DREAM_MAX_LAYERS = 16;
export const DREAM_MAX_OCTAVES = 8;
export const DREAM_MAX_SIDE = 8192;
const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const layerList = z.string().transform((s, c): DreamLayer[] => {
  const allowed = new Set(dreamLayerNames());
  const out: DreamLayer[] = [];
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^([a-z0-9_]+)(?::(-?[0-9.]+(?:e-?[0-9]+)?))?$/i.exec(part);
    if (!m) { c.addIssue({ code: 'custom', message: `'${part}': expected layer or layer:coefficient (e.g. mixed4:1.5)` }); return z.NEVER; }
    if (!allowed.has(m[1]!)) {
      c.addIssue({ code: 'custom', message: `'${m[1]}' is not an InceptionV3 layer (e.g. mixed0…mixed10, activation_K, batch_normalization_K)` });
      return z.NEVER;
    }
    const coeff = m[2] === undefined ? 1 : Number(m[2]);
    if (!Number.isFinite(coeff) || Math.abs(coeff) > 1000) { c.addIssue({ code: 'custom', message: `'${part}': coefficient must be a number in [−1000, 1000]` }); return z.NEVER; }
    out.push({ name: m[1]!, coeff });
  }
  if (out.length === 0 || out.length > DREAM_MAX_LAYERS) { c.addIssue({ code: 'custom', message: `between 1 and ${DREAM_MAX_LAYERS} layers` }); return z.NEVER; }
  if (new Set(out.map((l) => l.name)).size !== out.length) { c.addIssue({ code: 'custom', message: 'a layer is listed twice' }); return z.NEVER; }
  return out;
});

export function dreamParamsSchema(config: Config) {
  return z.object({
    model: z.string().regex(MODEL_NAME, 'a model name').default('inception_v3'),
    layers: layerList.optional(),
    octaves: z.coerce.number().int().min(1).max(DREAM_MAX_OCTAVES).default(3),
    octave_scale: z.coerce.number().min(1).max(4).default(1.4),
    iterations: z.coerce.number().int().min(1).max(config.maxJobIterations).default(20),
    step: z.coerce.number().positive().max(100).default(0.01),
    max_loss: z.coerce.number().positive().max(1e30).default(15),
    /** Max random roll (px) per iteration; default: none when the image fits one tile (exact keras-io), a full random roll otherwise. */
    jitter: z.union([z.literal('full'), z.coerce.number().int().min(0).max(DREAM_MAX_SIDE)]).optional(),
    seed: z.coerce.number().int().min(0).max(2 ** 31 - 1).default(0),
    /** Longest output side (the input is downscaled to fit; never upscaled); CONVSERVE_MAX_JOB_PIXELS caps the pixel count. */
    max_size: z.coerce.number().int().min(75).max(DREAM_MAX_SIDE).optional(),
    tile_size: z.coerce.number().int().min(160).max(4096).default(512),
  }).strict().superRefine((p, c) => {
    if (p.octaves * p.iterations > config.maxJobIterations) {
      c.addIssue({ code: 'custom', path: ['iterations'], message: `octaves × iterations = ${p.octaves * p.iterations} exceeds ${config.maxJobIterations} (CONVSERVE_MAX_JOB_ITERATIONS)` });
    }
  }).transform((p) => ({ ...p, layers: p.layers ?? KERAS_DREAM_LAYERS }));
}

export type DreamParams = z.infer<ReturnType<typeof dreamParamsSchema>>;

interface State extends DreamState {
  original: Chw;
  settings: DreamSettings;
}

async function originalOf(inputs: JobInputs, p: DreamParams, ctx: JobContext): Promise<Chw> {
  let img: RawImage = toRgb(inputs.image![0]!);
  const { width, height } = fitSize(img.width, img.height, p.max_size ?? DREAM_MAX_SIDE, ctx.config.maxJobPixels);
  img = await resizeRaw(img, width, height, 'lanczos3');
  const original = preprocess(img, 'tf');
  checkOctaves(original.h, original.w, p.octaves, p.octave_scale, getArchitecture('inception_v3').minSize);
  return original;
}

function settings(p: DreamParams, original: Chw): DreamSettings {
  const oneTile = original.h <= p.tile_size && original.w <= p.tile_size;
  return {
    layers: p.layers, octaves: p.octaves, octaveScale: p.octave_scale, iterations: p.iterations, step: p.step, maxLoss: p.max_loss,
    jitter: p.jitter ?? (oneTile ? 0 : 'full'), seed: p.seed, tileSize: p.tile_size,
  };
}

async function session(ctx: JobContext, p: DreamParams): Promise<{ key: string; engine: import('../../engine/engine.js').Engine }> {
  const { engine, registry } = gradServices(ctx.services);
  const entry = requireModel(registry, p.model, 'inception_v3');
  const key = await dreamSession(engine, entry.modelPath, modelStamp(entry), { layers: p.layers.map((l) => l.name), crop: 2 });
  return { key, engine };
}

export default defineJobKind<DreamParams, State>({
  name: 'dream',
  description: 'DeepDream (keras-io recipe: mixed4..mixed7, 3 octaves × 20 iterations) on an InceptionV3 model, with tiled gradients and a random roll for large images. One step = one gradient-ascent iteration; a preview after each octave.',
  inputs: [{ name: 'image', required: true, maxCount: 1 }],
  params: dreamParamsSchema,
  totalSteps: (p) => p.octaves * p.iterations,

  async init(inputs, p, ctx) {
    const original = await originalOf(inputs, p, ctx);
    await session(ctx, p); // fail early (model missing, wrong architecture) and build the session once
    return { ...initialDreamState(original), original, settings: settings(p, original) };
  },
  async step(state, ctx) {
    const p = ctx.params;
    const { key, engine } = await session(ctx, p);
    const next = await dreamStep(state, state.original, state.settings, ctx.step, engineTileRunner(engine, key, p.layers, ctx.signal));
    return { ...next, original: state.original, settings: state.settings };
  },
  metrics: (s): Record<string, number> => (Number.isFinite(s.loss) ? { loss: s.loss, octave: s.octave + 1, tiles: s.tiles } : {}),
  message: (s, step, total) => `step ${step}/${total}, octave ${s.octave + 1} (${s.img.w}×${s.img.h})${s.stopped ? ', max_loss reached: skipping the rest of this octave' : ''}`,
  previewAt: (step, p) => step % p.iterations === 0,
  finish: (s) => deprocess(dreamImage(s, s.original, s.settings), 'tf'),

  serialize: (s) => ({
    json: { h: s.img.h, w: s.img.w, octave: s.octave, stopped: s.stopped, loss: Number.isFinite(s.loss) ? s.loss : null, tiles: s.tiles },
    buffers: { img: bytesOf(s.img.data) },
  }),
  async deserialize(data, p, inputs, ctx) {
    const j = data.json as { h: number; w: number; octave: number; stopped: boolean; loss: number | null; tiles: number };
    const original = await originalOf(inputs, p, ctx);
    return { img: { data: floatsOf(data.buffers!.img!), c: 3, h: j.h, w: j.w }, octave: j.octave, stopped: j.stopped, loss: j.loss ?? Number.NaN, tiles: j.tiles, original, settings: settings(p, original) };
  },
});

