import { Router } from 'express';
import { z } from 'zod';
import { chooseOutputFormat, contentTypeOf, decodeImage, encodeImage } from '../../image/io.js';
import { filterImage } from '../../ops/filter.js';
import { NAMED_KERNELS, resolveKernel } from '../../ops/kernels.js';
import type { AppContext } from '../context.js';
import { parseParams, requestParams, zBool, zNumber } from '../params.js';
import { imageUpload } from '../upload.js';

const FilterParams = z.object({
  kernel: z.union([z.string(), z.array(z.array(z.unknown()))]).optional(),
  scale: zNumber.optional(),
  offset: zNumber.optional(),
  abs: zBool.optional(),
  grayscale: zBool.optional(),
  format: z.string().optional(),
});

export function filterRoutes(ctx: AppContext): Router {
  const r = Router();
  const { config } = ctx;

  r.get('/v1/kernels', (_req, res) => {
    res.json({
      kernels: Object.entries(NAMED_KERNELS).map(([name, k]) => {
        const resolved = resolveKernel(name, 15);
        return { name, matrix: k.matrix, scale: resolved.scale, zero_sum: Math.abs(resolved.sum) < 1e-12, description: k.description };
      }),
      custom: { max_size: config.maxKernelSize, sizes: 'odd × odd, 1…' + config.maxKernelSize },
    });
  });

  r.post('/v1/filter', imageUpload(config, { fields: ['image'] }), async (req, res) => {
    const p = parseParams(FilterParams, requestParams(req));
    const kernel = resolveKernel(p.kernel, config.maxKernelSize);
    const format = chooseOutputFormat(p.format, req.headers.accept);
    const input = await decodeImage(req.images![0]!.bytes, { ...config, maxInputPixels: Math.min(config.maxInputPixels, config.maxFilterPixels) });
    const { image, applied } = await filterImage(input, { kernel, scale: p.scale, offset: p.offset, abs: p.abs, grayscale: p.grayscale });
    const out = await encodeImage(image, format);
    res.set('Content-Type', contentTypeOf(format));
    res.set('X-Convserve-Kernel', JSON.stringify(applied));
    res.send(out);
  });
  return r;
}
