// style: neural style transfer on any model by layer name (POST /v1/style, fields `content` (one) and
// `style` (one or more)), in the model's own input space (ops/model-space.ts); VGG19's layers by default. One job step = one loss+gradient evaluation (for L-BFGS a line-search trial; an
// L-BFGS iteration takes one evaluation when the unit step is accepted, which is the usual case after the
// first few). Style targets (Gram matrices) and the content target are computed by a forward-only session once
// per scale (in init(), then when a step enters the next scale) and kept in the job state (checkpoints carry
// them: resume does not recompute them). schedule=progressive (default from 512 rows) spends most evaluations
// at ¼ and ½ of the output size (ops/style-schedule.ts); each scale restarts the optimiser from the previous
// scale's result upsampled, with the targets recomputed at that scale.
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Chw } from '../../image/chw.js';
import { keepChroma } from '../../image/colour.js';
import { type RawImage, resizeRaw, toRgb } from '../../image/raw.js';
import { type GradServices, gradServices, modelStamp, requireModel } from '../../ops/grad-session.js';
import { modelLayers } from '../../ops/model-layers.js';
import { type ModelSpace, modelSpace } from '../../ops/model-space.js';
import { ADAM_DEFAULT_LR, type Optimizer, SGD_DEFAULT_LR, createOptimizer, deserializeOptimizer } from '../../ops/optim.js';
import {
  RECIPES, type StyleLossSpec, type StyleTargets, blendLossOffset, computeTargets, evaluateStyle, perLayerStyleWeight,
  resolveStyleSpec, styleSessions,
} from '../../ops/style.js';
import { type ScaleStage, defaultSchedule, scalePlan, stageAt, stageCost } from '../../ops/style-schedule.js';
import { type FullSizeImages, carryOver, stageImages } from '../../ops/style-stage.js';
import { bytesOf, floatsOf } from '../../util/float-bytes.js';
import { zBool } from '../../util/params.js';
import { Prng } from '../../util/prng.js';
import { badRequest, tooLarge, unprocessable } from '../../util/problem.js';
import { checkCheckpoint, invalidCheckpoint } from '../checkpoint.js';
import { type JobContext, type JobInputs, defineJobKind } from '../kind.js';

export const STYLE_MAX_IMAGES = 8;
/**
 * Default evaluations: 40 keeps the default job (400 px rows, VGG19, L-BFGS) under 3 minutes on the shared
 * 2-core machine (measured 2.4–3.3 s per evaluation at 400×600 under other developers' load; ≈1 s idle).
 */
export const STYLE_DEFAULT_ITERATIONS = 40;
export const STYLE_MAX_SIZE = 2048;
export const STYLE_MIN_SIZE = 32;
const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const STYLE_MAX_LAYERS = 16;
/** A Keras layer name (`block1_conv1`, `conv2d_3`, `outer/inner`); whether the model has it is checked against the model. */
const LAYER_NAME = /^[A-Za-z0-9_./-]{1,200}$/;
const weight = z.coerce.number().min(0).max(1e12);

const numberList = z.string().transform((s, c) => {
  const xs = s.split(',').map((x) => Number(x.trim()));
  if (xs.length === 0 || xs.length > STYLE_MAX_IMAGES || xs.some((x) => !Number.isFinite(x) || x < 0)) {
    c.addIssue({ code: 'custom', message: `1 to ${STYLE_MAX_IMAGES} non-negative numbers, comma-separated` });
    return z.NEVER;
  }
  if (xs.every((x) => x === 0)) { c.addIssue({ code: 'custom', message: 'at least one weight must be positive' }); return z.NEVER; }
  return xs;
});

const layerNames = z.string().transform((s, c) => {
  const names = s.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = names.find((n) => !LAYER_NAME.test(n));
  if (bad !== undefined) { c.addIssue({ code: 'custom', message: `'${bad}' is not a layer name` }); return z.NEVER; }
  if (names.length === 0 || names.length > STYLE_MAX_LAYERS) { c.addIssue({ code: 'custom', message: `between 1 and ${STYLE_MAX_LAYERS} layers, comma-separated` }); return z.NEVER; }
  if (new Set(names).size !== names.length) { c.addIssue({ code: 'custom', message: 'a layer is listed twice' }); return z.NEVER; }
  return names;
});

export function styleParamsSchema(config: Config) {
  return z.object({
    model: z.string().regex(MODEL_NAME, 'a model name').default('vgg19'),
    recipe: z.enum(['keras', 'gatys']).default('keras'),
    /** Style (Gram) layers; default the recipe's VGG19 layers when the model has them, else evenly spaced feature maps. */
    style_layers: layerNames.optional(),
    /** Content layer; default the recipe's (VGG19), else the feature map at 3/4 of the depth. */
    content_layer: z.string().regex(LAYER_NAME, 'a layer name').optional(),
    content_weight: weight.optional(),
    style_weight: weight.optional(),
    tv_weight: weight.optional(),
    /** Loss+gradient evaluations (job steps). */
    iterations: z.coerce.number().int().min(1).max(config.maxJobIterations).default(STYLE_DEFAULT_ITERATIONS),
    /** Rows of the working image (keras-io img_nrows); columns = int(width·size/height). */
    size: z.coerce.number().int().min(STYLE_MIN_SIZE).max(STYLE_MAX_SIZE).default(400),
    init: z.enum(['content', 'noise']).default('content'),
    seed: z.coerce.number().int().min(0).max(2 ** 31 - 1).default(0),
    optimizer: z.enum(['lbfgs', 'adam', 'sgd']).default('lbfgs'),
    /** adam (default 5, caffe pixel units) / sgd (default 100, decayed 0.96 per 100 steps as keras-io). */
    lr: z.coerce.number().positive().max(1e6).optional(),
    style_weights: numberList.optional(),
    /** Style images are resized to style_scale × the working size (keras-io: 1, the same size). */
    style_scale: z.coerce.number().min(0.1).max(4).default(1),
    preserve_color: zBool.default(false),
    preview_every: z.coerce.number().int().min(0).max(config.maxJobIterations).default(10),
    /** progressive: most evaluations at ¼ and ½ of the output size, then full size; default from 512 rows on. */
    schedule: z.enum(['progressive', 'fixed']).optional(),
  }).strict().transform((p) => ({
    ...p,
    schedule: p.schedule ?? defaultSchedule(p.size),
    content_weight: p.content_weight ?? RECIPES[p.recipe].weights.content,
    style_weight: p.style_weight ?? RECIPES[p.recipe].weights.style,
    tv_weight: p.tv_weight ?? RECIPES[p.recipe].weights.tv,
  }));
}

export type StyleParams = z.infer<ReturnType<typeof styleParamsSchema>>;

const dims = z.array(z.number().int().min(1)).min(1);

/**
 * The JSON of a style checkpoint. Buffers: `opt_*` (the optimiser's, `opt_x` = the image, c × h × w float32),
 * `content_target` and `gram_<i>` (float32, sized by their dims).
 */
const StyleCheckpoint = z.object({
  /** The model's input channels (absent in checkpoints of RGB-only versions: 3). */
  c: z.union([z.literal(1), z.literal(3)]).default(3),
  h: z.number().int().min(1),
  w: z.number().int().min(1),
  /** The optimiser's own JSON (ops/optim.ts reads the rest). */
  opt: z.looseObject({ optimizer: z.enum(['lbfgs', 'adam', 'sgd']) }),
  offset: z.number(),
  last: z.object({ loss: z.number(), content: z.number(), style: z.number(), tv: z.number() }).nullable(),
  preserve_color: z.boolean(),
  /** The stage of the schedule the image and targets belong to (absent in checkpoints before schedules: 0). */
  stage: z.number().int().min(0).default(0),
  targets: z.object({ content_dims: dims, gram_dims: z.array(dims).min(1), blend_const: z.array(z.number()) }),
});

interface State {
  c: 1 | 3;
  h: number;
  w: number;
  opt: Optimizer;
  targets: StyleTargets;
  /** The content image at the working size (for preserve_color). */
  content: RawImage;
  offset: number;
  last: { loss: number; content: number; style: number; tv: number } | null;
  preserveColor: boolean;
  space: ModelSpace;
  spec: StyleLossSpec;
  /** The scales of the schedule and the one being optimised (h × w are its size). */
  plan: ScaleStage[];
  stage: number;
  /** The images at the output size, which every scale is made from. */
  full: FullSizeImages;
  weights: number[];
  minSide: number;
}

/** keras-io: nrows = size, ncols = int(width·size/height); capped by CONVSERVE_MAX_JOB_PIXELS (aspect kept). */
export function workingSize(width: number, height: number, size: number, maxPixels: number): { width: number; height: number } {
  let rows = size;
  let cols = Math.trunc((width * rows) / height);
  if (rows * cols > maxPixels) {
    const s = Math.sqrt(maxPixels / (rows * cols));
    rows = Math.floor(rows * s);
    cols = Math.trunc((width * rows) / height);
  }
  if (cols < STYLE_MIN_SIZE || rows < STYLE_MIN_SIZE) {
    throw tooLarge('image-aspect', `The working image would be ${cols}×${rows}; style transfer needs at least ${STYLE_MIN_SIZE} px per side (very elongated image?).`);
  }
  return { width: cols, height: rows };
}

/** The model, its input space, the loss layers (checked: 422 `unknown-layer`) and the smallest side they accept. */
function styleModel(services: GradServices, p: StyleParams) {
  const entry = requireModel(services.registry, p.model);
  const ml = modelLayers(entry);
  const spec = resolveStyleSpec(ml, p.recipe, p.content_layer, p.style_layers);
  return { entry, spec, space: modelSpace(entry), minSide: ml.minSide([spec.contentLayer, ...spec.styleLayers]) };
}

function checkSide(width: number, height: number, minSide: number, what: string, model: string): void {
  if (Math.min(width, height) < minSide) {
    throw unprocessable('image-too-small', `The ${what} would be ${width}×${height}; the layers of model '${model}' need at least ${minSide}×${minSide}.`);
  }
}

async function prepare(inputs: JobInputs, p: StyleParams, ctx: JobContext, minSide: number): Promise<{ full: FullSizeImages; weights: number[] }> {
  const contentIn = toRgb(inputs.content![0]!);
  const { width, height } = workingSize(contentIn.width, contentIn.height, p.size, ctx.config.maxJobPixels);
  checkSide(width, height, minSide, 'working image', p.model);
  // keras-io loads both with load_img(target_size=(nrows, ncols)): nearest-neighbour resampling.
  const content = await resizeRaw(contentIn, width, height, 'nearest');
  const styleIn = inputs.style ?? [];
  if (styleIn.length === 0) throw badRequest('missing-image', "Style transfer needs at least one 'style' image.");
  const weights = p.style_weights ?? styleIn.map(() => 1);
  if (weights.length !== styleIn.length) {
    throw badRequest('invalid-parameter', `style_weights has ${weights.length} value(s) for ${styleIn.length} style image(s).`, { errors: [{ parameter: 'style_weights', message: 'one weight per style image' }] });
  }
  const sw = Math.max(STYLE_MIN_SIZE, Math.round(width * p.style_scale));
  const sh = Math.max(STYLE_MIN_SIZE, Math.round(height * p.style_scale));
  if (sw * sh > ctx.config.maxJobPixels) throw tooLarge('image-too-many-pixels', `style_scale ${p.style_scale} makes the style images ${sw}×${sh}, over CONVSERVE_MAX_JOB_PIXELS (${ctx.config.maxJobPixels}).`);
  checkSide(sw, sh, minSide, 'style images', p.model);
  const styles = await Promise.all(styleIn.map((s) => resizeRaw(toRgb(s), sw, sh, 'nearest')));
  return { full: { content, styles }, weights };
}

async function sessions(ctx: JobContext, p: StyleParams, spec: StyleLossSpec) {
  const { engine, registry } = gradServices(ctx.services);
  const entry = requireModel(registry, p.model);
  return { engine, ...(await styleSessions(engine, entry.modelPath, modelStamp(entry), spec)) };
}

function noise(h: number, w: number, seed: number, space: ModelSpace): Chw {
  const rng = new Prng(seed ^ 0x5eed);
  const raw = Buffer.alloc(h * w * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = rng.nextU32() & 255;
  return space.toModel({ data: raw, width: w, height: h, channels: 3 });
}

/** adam and sgd step sizes are in pixel levels (0…255, caffe's units): scaled to the model's input range. */
function learningRate(p: StyleParams, space: ModelSpace): number | undefined {
  if (p.optimizer === 'lbfgs') return p.lr;
  return (p.lr ?? (p.optimizer === 'adam' ? ADAM_DEFAULT_LR : SGD_DEFAULT_LR)) * (space.span / 255);
}

/** The image; with preserve_color the content's chroma (a grey model's result is its luma). */
function render(s: State): RawImage {
  const img = s.space.fromModel({ data: s.opt.current(), c: s.c, h: s.h, w: s.w });
  return s.preserveColor ? keepChroma(toRgb(img), s.content) : img;
}

/** The image at the output size (a coarse scale's image is upsampled, for previews). */
async function renderOutput(s: State): Promise<RawImage> {
  const out = s.plan.at(-1)!;
  return resizeRaw(render(s), out.width, out.height, 'linear');
}

type StageSetup = Pick<State, 'c' | 'h' | 'w' | 'targets' | 'content' | 'offset' | 'stage'> & { contentX: Chw };

/** The images and targets of stage `k` (forward runs at job priority). */
async function setUpStage(s: Pick<State, 'plan' | 'full' | 'weights' | 'space' | 'spec' | 'minSide'>, k: number, p: StyleParams, ctx: JobContext): Promise<StageSetup> {
  const stage = s.plan[k]!;
  const { content, contentX, styles } = await stageImages(s.full, stage, s.space, s.minSide);
  const { engine, targets: fwd } = await sessions(ctx, p, s.spec);
  const { layerSizes, ...targets } = await computeTargets(engine, fwd, s.spec, contentX, styles, s.weights, ctx.signal);
  return {
    c: s.space.channels, h: contentX.h, w: contentX.w, targets, content, contentX, stage: k,
    offset: blendLossOffset(p.recipe, targets, perLayerStyleWeight(s.spec, p.style_weight), contentX, layerSizes),
  };
}

/** Enters stage `k`: targets at its scale, the optimiser restarted from the current image upsampled. */
async function enterStage(s: State, k: number, p: StyleParams, ctx: JobContext): Promise<State> {
  const next = await setUpStage(s, k, p, ctx);
  const x0 = carryOver(s.opt.current(), s, s.plan[k]!);
  const { contentX: _unused, ...rest } = next;
  return { ...s, ...rest, opt: createOptimizer(p.optimizer, x0, learningRate(p, s.space)), last: null };
}

export default defineJobKind<StyleParams, State>({
  name: 'style',
  description: 'Neural style transfer (keras-io recipe or Gatys et al.) on any model by layer name (VGG19 by default) with L-BFGS, Adam or SGD; several style images with blend weights; optional colour preservation; a fixed or progressive (¼ → ½ → full size) resolution schedule. One step = one loss+gradient evaluation.',
  inputs: [{ name: 'content', required: true, maxCount: 1 }, { name: 'style', required: true, maxCount: STYLE_MAX_IMAGES }],
  params: styleParamsSchema,
  totalSteps: (p) => p.iterations,

  check(p, services) {
    // Before the job is accepted: a layer the model lacks is a 422 listing its layers (a model that is not
    // ready is left to init, which fails the job saying why).
    if (!services || services.registry.get(p.model)?.status !== 'ready') return;
    styleModel(services, p);
  },

  async init(inputs, p, ctx) {
    const { spec, space, minSide } = styleModel(gradServices(ctx.services), p);
    const { full, weights } = await prepare(inputs, p, ctx, minSide);
    const plan = scalePlan(full.content.width, full.content.height, p.iterations, p.schedule, minSide);
    const base = { plan, full, weights, space, spec, minSide };
    const { contentX, ...first } = await setUpStage(base, 0, p, ctx);
    const x0 = p.init === 'content' ? contentX : noise(contentX.h, contentX.w, p.seed, space);
    return { ...base, ...first, opt: createOptimizer(p.optimizer, x0.data, learningRate(p, space)), last: null, preserveColor: p.preserve_color };
  },
  async step(state, ctx) {
    const p = ctx.params;
    const k = stageAt(state.plan, ctx.step);
    // The first step of a scale sets it up (deterministic, so a resume at a scale boundary does the same).
    const s = k > state.stage ? await enterStage(state, k, p, ctx) : state;
    const { engine, grad } = await sessions(ctx, p, s.spec);
    const e = await evaluateStyle(engine, grad, s.opt.point(), s.h, s.w, s.targets,
      { content: p.content_weight, style: p.style_weight, tv: p.tv_weight }, perLayerStyleWeight(s.spec, p.style_weight), ctx.signal);
    // The optimiser is the only mutable part; it is updated after the evaluation succeeded.
    s.opt.tell(e.loss, e.grad);
    return { ...s, last: { loss: e.loss + s.offset, content: e.content, style: e.style + s.offset, tv: e.tv } };
  },
  stepCost: (s, step) => stageCost(s.plan, stageAt(s.plan, step)),
  metrics: (s): Record<string, number> => {
    if (!s.last) return {};
    const best = s.opt.currentLoss();
    return {
      loss: s.last.loss, content: s.last.content, style: s.last.style, tv: s.last.tv, ...(Number.isFinite(best) ? { best: best + s.offset } : {}), iterations: s.opt.iterations,
      ...(s.plan.length > 1 ? { scale: s.plan[s.stage]!.scale } : {}),
    };
  },
  message: (s, step, total) => (s.plan.length > 1 ? `scale ${s.stage + 1}/${s.plan.length} (${s.w}×${s.h}): step ${step}/${total}` : `step ${step}/${total}`),
  previewAt: (step, p) => p.preview_every > 0 && step % p.preview_every === 0,
  preview: (s) => renderOutput(s),
  finish: (s) => renderOutput(s),

  serialize(s) {
    const o = s.opt.serialize();
    const buffers: Record<string, Buffer> = {};
    for (const [k, v] of Object.entries(o.buffers ?? {})) buffers[`opt_${k}`] = v;
    buffers.content_target = bytesOf(s.targets.content.data);
    s.targets.grams.forEach((g, i) => { buffers[`gram_${i}`] = bytesOf(g.data); });
    return {
      json: {
        c: s.c, h: s.h, w: s.w, opt: o.json, offset: s.offset, last: s.last, preserve_color: s.preserveColor, stage: s.stage,
        targets: { content_dims: s.targets.content.dims, gram_dims: s.targets.grams.map((g) => g.dims), blend_const: s.targets.blendConst },
      },
      buffers,
    };
  },
  async deserialize(data, p, inputs, ctx) {
    const ckpt = checkCheckpoint('style', StyleCheckpoint, data);
    const j = ckpt.json;
    const { spec, space, minSide } = styleModel(gradServices(ctx.services), p);
    const { full, weights } = await prepare(inputs, p, ctx, minSide);
    const plan = scalePlan(full.content.width, full.content.height, p.iterations, p.schedule, minSide);
    if (j.c !== space.channels) throw invalidCheckpoint('style', `the image has ${j.c} channel(s), model '${p.model}' takes ${space.channels}`);
    if (j.targets.gram_dims.length !== spec.styleLayers.length) throw invalidCheckpoint('style', `${j.targets.gram_dims.length} Gram targets for ${spec.styleLayers.length} style layers`);
    const stage = plan[j.stage];
    if (!stage) throw invalidCheckpoint('style', `it is at scale ${j.stage + 1}, where this job's schedule has ${plan.length}`);
    if (j.h !== stage.height || j.w !== stage.width) throw invalidCheckpoint('style', `the image is ${j.w}×${j.h}, where this job works at ${stage.width}×${stage.height}`);
    if (j.opt.optimizer !== p.optimizer) throw invalidCheckpoint('style', `it was written by the ${j.opt.optimizer} optimiser, this job uses ${p.optimizer}`);
    const floats = (name: string, dims: number[]) => floatsOf(ckpt.buffer(name, dims.reduce((a, b) => a * b, 1) * Float32Array.BYTES_PER_ELEMENT));
    if (j.targets.blend_const.length !== j.targets.gram_dims.length) throw invalidCheckpoint('style', `${j.targets.gram_dims.length} Gram targets but ${j.targets.blend_const.length} blend constants`);
    floats('opt_x', [j.c, j.h, j.w]); // the optimiser's point is the image being optimised
    const { content } = await stageImages(full, stage, space, minSide);
    return {
      c: j.c, h: j.h, w: j.w, opt: deserializeOptimizer({ json: j.opt, buffers: ckpt.buffersWithPrefix('opt_') }), content, offset: j.offset, last: j.last, preserveColor: j.preserve_color,
      space, spec, plan, stage: j.stage, full, weights, minSide,
      targets: {
        content: { dims: j.targets.content_dims, data: floats('content_target', j.targets.content_dims) },
        grams: j.targets.gram_dims.map((dims, i) => ({ dims, data: floats(`gram_${i}`, dims) })),
        blendConst: j.targets.blend_const,
      },
    };
  },
});
