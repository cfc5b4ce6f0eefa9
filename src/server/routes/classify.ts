import { z } from 'zod';
import type { AppContext } from '../context.js';
import { ClassifyResponse } from '../api-schemas.js';
import { type ApiRouter, route } from '../route-registry.js';
import { requestParams } from '../params.js';
import { parseParams } from '../../util/params.js';
import { sendTimedJson } from '../server-timing.js';
import { clientGoneSignal, imageUpload } from '../upload.js';

export const ClassifyParams = z.object({
  model: z.string().min(1).optional().describe('model name (GET /v1/models); default CONVSERVE_DEFAULT_MODEL'),
  top: z.coerce.number().int('must be an integer').optional().describe('number of predictions, 1…classes (default 5)'),
  resize: z.enum(['crop', 'squash']).default('crop').describe('crop: short side to the input size, then the centre; squash: resize to the input size (Keras load_img)'),
  invert: z.enum(['auto', 'true', 'false']).default('auto').describe('mnist models: invert dark-on-light digits (auto decides from the border)'),
});

export function classifyRoutes(r: ApiRouter, ctx: AppContext<'classify'>): void {
  const { config, core } = ctx;
  route(r, {
    method: 'post', path: '/v1/classify', operationId: 'classify', tags: ['classify'], summary: 'Classify one or more images (top-k labels)',
    description: 'One image answers `predictions`; several (repeated `image` fields) answer `results`, one per image. Concurrent requests are batched.',
    query: ClassifyParams,
    rateLimit: 'interactive',
    body: { kind: 'image-upload', files: [{ name: 'image', maxCount: config.maxFilesPerRequest }], fields: ClassifyParams },
    responses: { 200: { description: 'Predictions', content: { 'application/json': ClassifyResponse }, headers: { 'Server-Timing': 'Where the request\'s time went, in ms: mw, upload, probe, model, decode, preprocess, batch, queue, ipc (worker round trip), infer, post (top-k), json, total (docs/http-path.md).' } } },
    problems: [400, 404, 413, 415, 422, 503],
  }, imageUpload(config, { fields: [{ name: 'image', maxCount: config.maxFilesPerRequest }] }), async (req, res) => {
    const p = parseParams(ClassifyParams, requestParams(req));
    // A client that disconnects stops waiting: its images leave the batch queue instead of costing inference.
    const signal = clientGoneSignal(res);
    // Server-Timing: the stages of the request (for several images: decode of all, then the first image's).
    const out = await core.classify.classifyUploads(p.model, req.images!.map((f) => f.bytes), { top: p.top, resize: p.resize, invert: p.invert, signal, stages: req.clock?.add }, config);
    const names = req.images!.map((f) => f.filename);
    if (out.results.length === 1) {
      const [one] = out.results;
      sendTimedJson(res, req.clock, { model: out.model, weights: out.weights, ...(out.outputs ? { outputs: out.outputs } : {}), predictions: one!.predictions, timing_ms: one!.timing_ms, batch_size: one!.batch_size } satisfies z.input<typeof ClassifyResponse>);
    } else {
      sendTimedJson(res, req.clock, { model: out.model, weights: out.weights, ...(out.outputs ? { outputs: out.outputs } : {}), results: out.results.map((x, i) => ({ image: i, filename: names[i], ...x })) } satisfies z.input<typeof ClassifyResponse>);
    }
  });
}
