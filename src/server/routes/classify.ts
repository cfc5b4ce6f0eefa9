import { Router } from 'express';
import { z } from 'zod';
import { decodeImage } from '../../image/io.js';
import type { ClassifyService } from '../../ops/classify-service.js';
import type { AppContext } from '../context.js';
import { parseParams, requestParams } from '../params.js';
import { imageUpload } from '../upload.js';

export const ClassifyParams = z.object({
  model: z.string().min(1).optional(),
  top: z.coerce.number().int('must be an integer').optional(),
  resize: z.enum(['crop', 'squash']).default('crop'),
  invert: z.enum(['auto', 'true', 'false']).default('auto'),
});

export function classifyRoutes(ctx: AppContext): Router {
  const r = Router();
  const { config } = ctx;
  r.post('/v1/classify', imageUpload(config, { fields: ['image'] }), async (req, res) => {
    const service = ctx.services.classify as ClassifyService;
    const p = parseParams(ClassifyParams, requestParams(req));
    const t0 = performance.now();
    const images = await Promise.all(req.images!.map((f) => decodeImage(f.bytes, config)));
    const decodeMs = (performance.now() - t0) / images.length;
    const out = await service.classifyImages(p.model, images, { top: p.top, resize: p.resize, invert: p.invert }, decodeMs);
    const names = req.images!.map((f) => f.filename);
    if (out.results.length === 1) {
      const [one] = out.results;
      res.json({ model: out.model, weights: out.weights, predictions: one!.predictions, timing_ms: one!.timing_ms, batch_size: one!.batch_size });
    } else {
      res.json({ model: out.model, weights: out.weights, results: out.results.map((x, i) => ({ image: i, filename: names[i], ...x })) });
    }
  });
  return r;
}
