// POST /v1/explain: where does the model look? A thin front over ops/explain.ts (Grad-CAM, saliency, integrated
// gradients, SmoothGrad): the heatmap over the picture as a PNG (default) or the raw map as JSON.
import { z } from 'zod';
import { decodeImage } from '../../image/io.js';
import { EXPLAIN_DEFAULTS, EXPLAIN_METHODS, explain, explanationJson } from '../../ops/explain.js';
import { renderExplanationPng } from '../../ops/explain-render.js';
import { parseParams, zNumber } from '../../util/params.js';
import type { AppContext } from '../context.js';
import { requestParams } from '../params.js';
import { type ApiRouter, route } from '../route-registry.js';
import { imageUpload } from '../upload.js';

export const ExplainParams = z.object({
  model: z.string().min(1).optional().describe('classification model (GET /v1/models); default CONVSERVE_DEFAULT_MODEL'),
  method: z.enum(EXPLAIN_METHODS).default(EXPLAIN_DEFAULTS.method).describe('gradcam: class activation map at a layer; saliency: max over channels of |d score / d input|; integrated-gradients; smoothgrad'),
  class: z.string().min(1).max(200).default('top').describe("'top', a class index, or a label"),
  layer: z.string().min(1).max(200).optional().describe('Grad-CAM layer (default: block5_conv4 for VGG19, mixed10 for InceptionV3, the last 4-D layer otherwise)'),
  steps: z.coerce.number().int().min(1).max(1024).default(EXPLAIN_DEFAULTS.steps).describe('integrated gradients: integration steps'),
  baseline: z.enum(['black', 'blur']).default(EXPLAIN_DEFAULTS.baseline).describe('integrated gradients: the baseline picture'),
  samples: z.coerce.number().int().min(1).max(256).default(EXPLAIN_DEFAULTS.samples).describe('smoothgrad: noisy copies'),
  noise: zNumber.pipe(z.number().min(0).max(1)).default(EXPLAIN_DEFAULTS.noise).describe("smoothgrad: noise σ as a fraction of the input's value range"),
  seed: z.coerce.number().int().min(0).max(2 ** 31 - 1).default(EXPLAIN_DEFAULTS.seed).describe('smoothgrad: noise seed'),
  resize: z.enum(['crop', 'squash']).default('crop').describe('as in classify'),
  format: z.enum(['png', 'json']).default('png').describe('png: the colour-mapped heatmap blended over the input at its size; json: the raw map'),
}).strict();

const ExplainResponse = z.object({
  model: z.string(),
  method: z.enum(EXPLAIN_METHODS),
  class: z.object({ index: z.number().int(), label: z.string(), probability: z.number() }),
  layer: z.string(),
  width: z.number().int(),
  height: z.number().int(),
  map: z.array(z.number()).describe('row-major, width × height; Grad-CAM: ReLU(Σ α_k A_k) at the layer resolution, not normalised'),
  max: z.number(),
  completeness: z.object({ sum: z.number(), delta: z.number() }).optional().describe('integrated gradients: Σ attributions vs score(x) − score(baseline)'),
}).meta({ id: 'Explanation' });

/** A class given as digits is an index; anything else a label (or 'top'). */
function classChoice(v: string): 'top' | number | string {
  return /^\d+$/.test(v) ? Number(v) : v;
}

export function explainRoutes(r: ApiRouter, ctx: AppContext<'engine'>): void {
  const { config, core } = ctx;
  route(r, {
    method: 'post', path: '/v1/explain', operationId: 'explain', tags: ['classify'], summary: 'Explain a classification: Grad-CAM, saliency, integrated gradients or SmoothGrad',
    description: 'Runs at interactive priority like classify. `steps × samples` above CONVSERVE_EXPLAIN_MAX_PASSES answers 422 (use a smaller request).',
    rateLimit: 'interactive',
    query: ExplainParams,
    body: { kind: 'image-upload', files: [{ name: 'image' }], fields: ExplainParams },
    responses: { 200: { description: 'The heatmap (PNG) or the map (JSON)', content: { 'image/png': 'binary', 'application/json': ExplainResponse } } },
    problems: [400, 404, 413, 415, 422, 503],
  }, imageUpload(config, { fields: [{ name: 'image', maxCount: 1 }] }), async (req, res) => {
    const p = parseParams(ExplainParams, requestParams(req));
    const image = await decodeImage(req.images![0]!.bytes, { maxInputPixels: config.maxInputPixels, decodeTimeoutMs: config.decodeTimeoutMs });
    const e = await explain({ engine: core.engine, registry: core.registry, maxPasses: config.explainMaxPasses }, {
      model: p.model ?? config.defaultModel, image, method: p.method, class: classChoice(p.class), layer: p.layer,
      steps: p.steps, baseline: p.baseline, samples: p.samples, noise: p.noise, seed: p.seed, resize: p.resize,
    });
    if (p.format === 'json') res.json(explanationJson(e) satisfies z.input<typeof ExplainResponse>);
    else res.type('image/png').send(await renderExplanationPng(image, e));
  });
}
