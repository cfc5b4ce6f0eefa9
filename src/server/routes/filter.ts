import { z } from 'zod';
import { ImageResponses, KernelsResponse } from '../api-schemas.js';
import { type ApiRouter, route } from '../route-registry.js';
import { chooseOutputFormat, contentTypeOf, decodeImage, encodeImage } from '../../image/io.js';
import { filterImage } from '../../ops/filter.js';
import { NAMED_KERNELS, resolveKernel } from '../../ops/kernels.js';
import type { AppContext } from '../context.js';
import { requestParams } from '../params.js';
import { parseParams, zBool, zNumber } from '../../util/params.js';
import { clientGoneSignal, imageUpload } from '../upload.js';

export const FilterParams = z.object({
  kernel: z.union([z.string(), z.array(z.array(z.unknown()))]).optional().describe('a named kernel (GET /v1/kernels) or a JSON matrix, odd × odd up to CONVSERVE_MAX_KERNEL_SIZE'),
  scale: zNumber.optional().describe("divisor; default the kernel's sum, or 1 when the entries sum to 0"),
  offset: zNumber.optional().describe('added after scaling; default 0'),
  abs: zBool.optional().describe('absolute value of the scaled response; default on for zero-sum kernels'),
  grayscale: zBool.optional().describe('filter the luminance only (one-channel result)'),
  format: z.string().optional().describe('png (default), jpeg or webp; without it the Accept header decides'),
});

export function filterRoutes(r: ApiRouter, ctx: AppContext): void {
  const { config } = ctx;

  route(r, {
    method: 'get', path: '/v1/kernels', operationId: 'listKernels', tags: ['filter'], summary: 'The named kernels with their matrices, and the custom-kernel limits',
    responses: { 200: { description: 'Kernels', content: { 'application/json': KernelsResponse } } },
  }, (_req, res) => {
    res.json({
      kernels: Object.entries(NAMED_KERNELS).map(([name, k]) => {
        const resolved = resolveKernel(name, 15);
        return { name, matrix: k.matrix, scale: resolved.scale, zero_sum: Math.abs(resolved.sum) < 1e-12, description: k.description };
      }),
      custom: { max_size: config.maxKernelSize, sizes: 'odd × odd, 1…' + config.maxKernelSize },
    } satisfies z.input<typeof KernelsResponse>);
  });

  route(r, {
    method: 'post', path: '/v1/filter', operationId: 'filter', tags: ['filter'], summary: 'Convolve an image with a named or custom kernel',
    description: 'Cross-correlation (like Keras Conv2D) in floating point by libvips; borders replicated; result truncated to 0…255.',
    query: FilterParams,
    rateLimit: 'interactive',
    body: { kind: 'image-upload', files: [{ name: 'image' }], fields: FilterParams },
    responses: { 200: { description: 'The filtered image', content: ImageResponses, headers: { 'X-Convserve-Kernel': 'JSON: the kernel, scale, offset and abs actually applied' } } },
    problems: [400, 413, 415, 422, 503],
  }, imageUpload(config, { fields: [{ name: 'image', maxCount: 1 }] }), async (req, res) => {
    const p = parseParams(FilterParams, requestParams(req));
    const kernel = resolveKernel(p.kernel, config.maxKernelSize);
    const format = chooseOutputFormat(p.format, req.headers.accept);
    // libvips cannot stop mid-operation: a client that went away skips the stages still ahead.
    const signal = clientGoneSignal(res);
    const input = await decodeImage(req.images![0]!.bytes, { ...config, maxInputPixels: Math.min(config.maxInputPixels, config.maxFilterPixels) });
    signal.throwIfAborted();
    const { image, applied } = await filterImage(input, { kernel, scale: p.scale, offset: p.offset, abs: p.abs, grayscale: p.grayscale });
    signal.throwIfAborted();
    const out = await encodeImage(image, format);
    res.set('Content-Type', contentTypeOf(format));
    res.set('X-Convserve-Kernel', JSON.stringify(applied));
    res.send(out);
  });
}
