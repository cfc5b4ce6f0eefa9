// Kernel filtering: the one core function behind POST /v1/filter and `convserve filter`.
// libvips (through sharp) does the convolution: float precision, edges extended by replicating the border
// pixel, result truncated and clamped to 0…255.
import { type RawImage, pipelineToRaw, rawPipeline, toGrey } from '../image/raw.js';
import { badRequest } from '../util/problem.js';
import type { ResolvedKernel } from './kernels.js';

export interface FilterOptions {
  kernel: ResolvedKernel;
  /** Divisor (default: the kernel's own scale — its sum, or 1 for zero-sum kernels). */
  scale?: number;
  /** Added after scaling (default 0). */
  offset?: number;
  /**
   * Take the absolute value of the scaled response before adding the offset. Default: on for zero-sum
   * kernels (edge detectors), whose responses are half negative and would otherwise clip to black.
   */
  abs?: boolean;
  /** Filter the luminance only and return a one-channel image. */
  grayscale?: boolean;
}

export interface FilterResult {
  image: RawImage;
  applied: { kernel: string; matrix: number[][]; scale: number; offset: number; abs: boolean; grayscale: boolean };
}

export async function filterImage(input: RawImage, opts: FilterOptions): Promise<FilterResult> {
  const k = opts.kernel;
  const scale = opts.scale ?? k.scale;
  if (!Number.isFinite(scale) || scale === 0) throw badRequest('invalid-kernel', `scale must be a finite non-zero number; got ${scale}.`);
  const offset = opts.offset ?? 0;
  if (!Number.isFinite(offset)) throw badRequest('invalid-kernel', `offset must be a finite number; got ${offset}.`);
  const abs = opts.abs ?? Math.abs(k.sum) < 1e-12;
  const grayscale = opts.grayscale ?? false;

  const src = grayscale ? await toGrey(input) : input;
  const flat = padToAtLeast3(k.matrix);
  let data: Buffer;
  if (!abs) {
    data = await convolve(src, flat, scale, offset);
  } else {
    // |r| = max(r, 0) + max(−r, 0): two clamped passes (libvips clamps to 0…255), added, then offset.
    const pos = await convolve(src, flat, scale, 0);
    const neg = await convolve(src, { ...flat, kernel: flat.kernel.map((v) => -v) }, scale, 0);
    data = Buffer.allocUnsafe(pos.length);
    for (let i = 0; i < pos.length; i++) data[i] = Math.min(255, Math.max(0, pos[i]! + neg[i]! + offset));
  }
  return {
    image: { data, width: src.width, height: src.height, channels: src.channels },
    applied: { kernel: k.name, matrix: k.matrix, scale, offset, abs, grayscale },
  };
}

interface FlatKernel { width: number; height: number; kernel: number[] }

/** libvips needs each side ≥ 3: embed smaller (1×1, 1×3…) kernels in zeros, which changes nothing. */
function padToAtLeast3(m: number[][]): FlatKernel {
  const h = Math.max(3, m.length);
  const w = Math.max(3, m[0]!.length);
  const dy = (h - m.length) / 2;
  const dx = (w - m[0]!.length) / 2;
  const kernel = new Array<number>(w * h).fill(0);
  m.forEach((row, i) => row.forEach((v, j) => { kernel[(i + dy) * w + j + dx] = v; }));
  return { width: w, height: h, kernel };
}

async function convolve(img: RawImage, k: FlatKernel, scale: number, offset: number): Promise<Buffer> {
  // sharp only honours positive whole-number scales; dividing the kernel ourselves makes any scale exact.
  const kernel = k.kernel.map((v) => v / scale);
  const out = await pipelineToRaw(rawPipeline(img)
    .convolve({ width: k.width, height: k.height, kernel, scale: 1, offset })
    .toColourspace(img.channels === 1 ? 'b-w' : 'srgb'));
  if (out.channels !== img.channels) throw new Error(`convolve returned ${out.channels} channels for ${img.channels}`);
  return out.data;
}
