// dream: DeepDream on any model by layer name (POST /v1/dream, image field `image`), in the model's own input
// space (ops/model-space.ts). One job step = one gradient-ascent iteration; octaves × iterations steps in all (an
// octave that hits max_loss skips its remaining iterations as no-op steps). A preview after each octave.
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Chw } from '../../image/chw.js';
import { type RawImage, resizeRaw, toRgb } from '../../image/raw.js';
import { fitSize } from '../../image/resize.js';
import {
  DREAM_CROP, type DreamLayer, type DreamSettings, type DreamState, checkOctaves, checkTiles, dreamImage, dreamSession, dreamStep, engineTileRunner,
  initialDreamState, octaveShapes, resolveDreamLayers,
} from '../../ops/dream.js';
import { type GradServices, gradServices, modelStamp, requireModel } from '../../ops/grad-session.js';
import { type ReadyModel, modelLayers } from '../../ops/model-layers.js';
import { type ModelSpace, modelSpace } from '../../ops/model-space.js';
import { bytesOf, floatsOf } from '../../util/float-bytes.js';
import { checkCheckpoint, invalidCheckpoint } from '../checkpoint.js';
import { type JobContext, type JobInputs, defineJobKind } from '../kind.js';

export const DREAM_MAX_LAYERS = 16;
export const DREAM_MAX_OCTAVES = 8;
export const DREAM_MAX_SIDE = 8192;
const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** `layer` or `layer:coefficient`, comma-separated. Keras layer names (`mixed4`, `block1_conv1`, `outer/inner`); whether the model has them is checked against the model (422 `unknown-layer`). */
const layerList = z.string().transform((s, c): DreamLayer[] => {
  const out: DreamLayer[] = [];
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9_./-]{1,200})(?::(-?[0-9.]+(?:e-?[0-9]+)?))?$/i.exec(part);
    if (!m) { c.addIssue({ code: 'custom', message: `'${part}': expected layer or layer:coefficient (e.g. mixed4:1.5)` }); return z.NEVER; }
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
  });
}

export type DreamParams = z.infer<ReturnType<typeof dreamParamsSchema>>;

/** The JSON of a dream checkpoint (the image itself is the buffer `img`: c × h × w float32, CHW). */
const DreamCheckpoint = z.object({
  /** The model's input channels (absent in checkpoints of RGB-only versions: 3). */
  c: z.union([z.literal(1), z.literal(3)]).default(3),
  h: z.number().int().min(1).max(DREAM_MAX_SIDE),
  w: z.number().int().min(1).max(DREAM_MAX_SIDE),
  /** −1 before the first step. */
  octave: z.number().int().min(-1).max(DREAM_MAX_OCTAVES - 1),
  stopped: z.boolean(),
  loss: z.number().nullable(),
  tiles: z.number().int().min(0),
});

interface State extends DreamState {
  original: Chw;
  settings: DreamSettings;
  space: ModelSpace;
}

/** The model, its input space and the dream layers (the requested ones, checked, or the model's defaults). */
function dreamModel(services: GradServices, p: DreamParams): { entry: ReadyModel; space: ModelSpace; layers: DreamLayer[]; minSide: number } {
  const entry = requireModel(services.registry, p.model);
  const ml = modelLayers(entry);
  const layers = resolveDreamLayers(ml, p.layers);
  // The cropped activations must not be empty: a map at most 2·crop wide gives no loss and no gradient.
  return { entry, space: modelSpace(entry), layers, minSide: ml.minSide(layers.map((l) => l.name), DREAM_CROP) };
}

/** The size the job dreams at: the input downscaled to max_size and CONVSERVE_MAX_JOB_PIXELS, never upscaled. */
const dreamSize = (width: number, height: number, p: DreamParams, config: Config) => fitSize(width, height, p.max_size ?? DREAM_MAX_SIDE, config.maxJobPixels);

function checkSize(width: number, height: number, p: DreamParams, minSide: number, layers: DreamLayer[]): void {
  checkOctaves(height, width, p.octaves, p.octave_scale, minSide, `model '${p.model}'`, layers.map((l) => l.name));
  checkTiles(height, width, p.octaves, p.octave_scale, p.tile_size, minSide, `model '${p.model}'`);
}

async function originalOf(inputs: JobInputs, p: DreamParams, ctx: JobContext, space: ModelSpace, minSide: number, layers: DreamLayer[]): Promise<Chw> {
  let img: RawImage = toRgb(inputs.image![0]!);
  const { width, height } = dreamSize(img.width, img.height, p, ctx.config);
  img = await resizeRaw(img, width, height, 'lanczos3');
  const original = space.toModel(img);
  checkSize(original.w, original.h, p, minSide, layers);
  return original;
}

/** `step` is in keras-io's units (an input range of 2, InceptionV3's [−1, 1]): scaled to the model's own range. */
function settings(p: DreamParams, original: Chw, layers: DreamLayer[], space: ModelSpace): DreamSettings {
  const oneTile = original.h <= p.tile_size && original.w <= p.tile_size;
  return {
    layers, octaves: p.octaves, octaveScale: p.octave_scale, iterations: p.iterations, step: p.step * (space.span / 2), maxLoss: p.max_loss,
    jitter: p.jitter ?? (oneTile ? 0 : 'full'), seed: p.seed, tileSize: p.tile_size,
  };
}

async function session(ctx: JobContext, model: string, layers: DreamLayer[]): Promise<{ key: string; engine: import('../../engine/engine.js').Engine }> {
  const { engine, registry } = gradServices(ctx.services);
  const entry = requireModel(registry, model);
  const key = await dreamSession(engine, entry.modelPath, modelStamp(entry), { layers: layers.map((l) => l.name), crop: DREAM_CROP });
  return { key, engine };
}

async function initial(inputs: JobInputs, p: DreamParams, ctx: JobContext): Promise<Pick<State, 'original' | 'settings' | 'space'>> {
  const { space, layers, minSide } = dreamModel(gradServices(ctx.services), p);
  const original = await originalOf(inputs, p, ctx, space, minSide, layers);
  return { original, space, settings: settings(p, original, layers, space) };
}

export default defineJobKind<DreamParams, State>({
  name: 'dream',
  description: 'DeepDream on any model by layer name (keras-io recipe on InceptionV3: mixed4..mixed7, 3 octaves × 20 iterations), in the model\'s own input space, with tiled gradients and a random roll for large images. One step = one gradient-ascent iteration; a preview after each octave.',
  inputs: [{ name: 'image', required: true, maxCount: 1 }],
  params: dreamParamsSchema,
  totalSteps: (p) => p.octaves * p.iterations,
  check(p, services) {
    // Before the job is accepted: a layer the model lacks is a 422 listing its layers. A model that is not
    // ready is left to init (the job fails saying why, as it always has).
    if (!services || services.registry.get(p.model)?.status !== 'ready') return;
    dreamModel(services, p);
  },
  checkInputs(p, images, config, services) {
    // Before the job is accepted: an image too small for the layers and octaves is a 422 naming the minimum.
    const image = images.image?.[0];
    if (!image || !services || services.registry.get(p.model)?.status !== 'ready') return;
    const { layers, minSide } = dreamModel(services, p);
    const { width, height } = dreamSize(image.width, image.height, p, config);
    checkSize(width, height, p, minSide, layers);
  },

  async init(inputs, p, ctx) {
    const start = await initial(inputs, p, ctx);
    await session(ctx, p.model, start.settings.layers); // fail early and build the session once
    return { ...initialDreamState(start.original), ...start };
  },
  async step(state, ctx) {
    const { key, engine } = await session(ctx, ctx.params.model, state.settings.layers);
    const next = await dreamStep(state, state.original, state.settings, ctx.step, engineTileRunner(engine, key, state.settings.layers, ctx.signal));
    return { ...next, original: state.original, settings: state.settings, space: state.space };
  },
  metrics: (s): Record<string, number> => (Number.isFinite(s.loss) ? { loss: s.loss, octave: s.octave + 1, tiles: s.tiles } : {}),
  message: (s, step, total) => `step ${step}/${total}, octave ${s.octave + 1} (${s.img.w}×${s.img.h})${s.stopped ? ', max_loss reached: skipping the rest of this octave' : ''}`,
  previewAt: (step, p) => step % p.iterations === 0,
  finish: (s) => s.space.fromModel(dreamImage(s, s.original, s.settings)),

  serialize: (s) => ({
    json: { c: s.img.c, h: s.img.h, w: s.img.w, octave: s.octave, stopped: s.stopped, loss: Number.isFinite(s.loss) ? s.loss : null, tiles: s.tiles },
    buffers: { img: bytesOf(s.img.data) },
  }),
  async deserialize(data, p, inputs, ctx) {
    const { json: j, buffer } = checkCheckpoint('dream', DreamCheckpoint, data);
    const start = await initial(inputs, p, ctx);
    const { original } = start;
    if (j.c !== original.c) throw invalidCheckpoint('dream', `the image has ${j.c} channel(s), model '${p.model}' takes ${original.c}`);
    // The image must be at its octave's size for these parameters and this input (a checkpoint of another job is not).
    const [eh, ew] = j.octave < 0 ? [original.h, original.w] : octaveShapes(original.h, original.w, p.octaves, p.octave_scale)[j.octave] ?? [0, 0];
    if (j.h !== eh || j.w !== ew) throw invalidCheckpoint('dream', `the image is ${j.w}×${j.h} at octave ${j.octave}, where this job works at ${ew}×${eh}`);
    const img = floatsOf(buffer('img', j.c * j.h * j.w * Float32Array.BYTES_PER_ELEMENT));
    return { img: { data: img, c: j.c, h: j.h, w: j.w }, octave: j.octave, stopped: j.stopped, loss: j.loss ?? Number.NaN, tiles: j.tiles, ...start };
  },
});
