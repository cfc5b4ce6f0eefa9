// Float CHW image arithmetic for the gradient ops: TF-exact bilinear resize (half-pixel centres, no
// antialias — tf.image.resize's default), circular roll, tiles, Keras (de)preprocessing, and the YCbCr
// recombination used by colour-preserving style transfer.
import sharp from 'sharp';
import type { RawImage } from '../image/io.js';
import type { PreprocessingMode } from '../models/manifest.js';
import { toInputTensor } from './preprocess.js';

/** A 1×C×H×W float image (batch 1), row-major. */
export interface Chw {
  data: Float32Array;
  c: number;
  h: number;
  w: number;
}

interface Axis { lo: Int32Array; hi: Int32Array; t: Float32Array }

/** tf.image.resize bilinear, half_pixel_centers: in = (o + 0.5)·scale − 0.5, lower = max(⌊in⌋, 0), upper = min(⌈in⌉, n−1). */
function axisWeights(inSize: number, outSize: number): Axis {
  const scale = inSize / outSize;
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const t = new Float32Array(outSize);
  for (let o = 0; o < outSize; o++) {
    const pos = (o + 0.5) * scale - 0.5;
    const f = Math.floor(pos);
    lo[o] = Math.max(f, 0);
    hi[o] = Math.min(Math.ceil(pos), inSize - 1);
    t[o] = pos - f;
  }
  return { lo, hi, t };
}

export function resizeBilinear(src: Chw, h: number, w: number): Chw {
  if (src.h === h && src.w === w) return { ...src, data: src.data.slice() };
  const ay = axisWeights(src.h, h);
  const ax = axisWeights(src.w, w);
  const out = new Float32Array(src.c * h * w);
  for (let c = 0; c < src.c; c++) {
    const sb = c * src.h * src.w;
    const ob = c * h * w;
    for (let y = 0; y < h; y++) {
      const r0 = sb + ay.lo[y]! * src.w;
      const r1 = sb + ay.hi[y]! * src.w;
      const ty = ay.t[y]!;
      for (let x = 0; x < w; x++) {
        const x0 = ax.lo[x]!, x1 = ax.hi[x]!, tx = ax.t[x]!;
        const top = src.data[r0 + x0]! + (src.data[r0 + x1]! - src.data[r0 + x0]!) * tx;
        const bot = src.data[r1 + x0]! + (src.data[r1 + x1]! - src.data[r1 + x0]!) * tx;
        out[ob + y * w + x] = top + (bot - top) * ty;
      }
    }
  }
  return { data: out, c: src.c, h, w };
}

/** np.roll over H and W: out[y][x] = src[(y − dy) mod h][(x − dx) mod w]. */
export function roll(src: Chw, dy: number, dx: number): Chw {
  const { c, h, w } = src;
  const sy = ((dy % h) + h) % h;
  const sx = ((dx % w) + w) % w;
  if (sy === 0 && sx === 0) return { ...src, data: src.data.slice() };
  const out = new Float32Array(src.data.length);
  for (let ch = 0; ch < c; ch++) {
    const b = ch * h * w;
    for (let y = 0; y < h; y++) {
      const srow = b + ((y - sy + h) % h) * w;
      const orow = b + y * w;
      // two contiguous runs
      out.set(src.data.subarray(srow + w - sx, srow + w), orow);
      out.set(src.data.subarray(srow, srow + w - sx), orow + sx);
    }
  }
  return { data: out, c, h, w };
}

export function extractTile(src: Chw, y0: number, x0: number, th: number, tw: number): Chw {
  const out = new Float32Array(src.c * th * tw);
  for (let c = 0; c < src.c; c++) {
    for (let y = 0; y < th; y++) {
      const s = c * src.h * src.w + (y0 + y) * src.w + x0;
      out.set(src.data.subarray(s, s + tw), c * th * tw + y * tw);
    }
  }
  return { data: out, c: src.c, h: th, w: tw };
}

export function addTile(dst: Chw, tile: Float32Array, y0: number, x0: number, th: number, tw: number): void {
  for (let c = 0; c < dst.c; c++) {
    for (let y = 0; y < th; y++) {
      const d = c * dst.h * dst.w + (y0 + y) * dst.w + x0;
      const s = c * th * tw + y * tw;
      for (let x = 0; x < tw; x++) dst.data[d + x]! += tile[s + x]!;
    }
  }
}

/** Splits [0, n) into ⌈n/tile⌉ near-equal parts (each ≥ tile/2 when n > tile). */
export function tileRanges(n: number, tile: number): [number, number][] {
  const k = Math.max(1, Math.ceil(n / tile));
  return Array.from({ length: k }, (_, i) => [Math.round((i * n) / k), Math.round(((i + 1) * n) / k)] as [number, number]);
}

/** RawImage (RGB) → preprocessed CHW (Keras preprocess_input mode). */
export function preprocess(img: RawImage, mode: PreprocessingMode): Chw {
  const data = new Float32Array(3 * img.width * img.height);
  toInputTensor(img, mode, data, 0);
  return { data, c: 3, h: img.height, w: img.width };
}

const CAFFE_MEANS = [103.939, 116.779, 123.68];

/** Preprocessed CHW → RGB bytes: clip to [0,255] then truncate, as Keras' astype('uint8'). */
export function deprocess(x: Chw, mode: 'caffe' | 'tf'): RawImage {
  const { h, w } = x;
  const plane = h * w;
  const out = Buffer.alloc(plane * 3);
  for (let c = 0; c < 3; c++) {
    // caffe: channel c of x is BGR; output RGB channel = 2 − c.
    const dstC = mode === 'caffe' ? 2 - c : c;
    const base = c * plane;
    for (let i = 0; i < plane; i++) {
      const v = mode === 'caffe' ? x.data[base + i]! + CAFFE_MEANS[c]! : (x.data[base + i]! / 2 + 0.5) * 255;
      out[i * 3 + dstC] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
    }
  }
  return { data: out, width: w, height: h, channels: 3 };
}

/** Resizes 8-bit RGB with sharp (`nearest` = Keras load_img's default; `lanczos3` for downscaling inputs). */
export async function resizeRaw(img: RawImage, width: number, height: number, kernel: 'nearest' | 'lanczos3' | 'linear' = 'nearest'): Promise<RawImage> {
  if (img.width === width && img.height === height) return img;
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } })
    .resize(width, height, { fit: 'fill', kernel: kernel === 'linear' ? 'linear' : kernel })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels as 1 | 3 };
}

/** Greyscale → RGB (the gradient models take 3 channels). */
export function toRgb(img: RawImage): RawImage {
  if (img.channels === 3) return img;
  const out = Buffer.alloc(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = img.data[i]!;
  return { data: out, width: img.width, height: img.height, channels: 3 };
}

/** BT.601 full-range (JPEG) YCbCr of one RGB pixel. */
export function rgbToYcbcr(r: number, g: number, b: number): [number, number, number] {
  return [
    0.299 * r + 0.587 * g + 0.114 * b,
    128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
    128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
  ];
}

/**
 * Colour preservation (luminance-only transfer, Gatys et al. 2016 "Preserving color"): the luminance Y of
 * `stylised` with the chroma Cb/Cr of `content` (same size), back to RGB.
 */
export function keepChroma(stylised: RawImage, content: RawImage): RawImage {
  const n = stylised.width * stylised.height;
  const out = Buffer.alloc(n * 3);
  const clip = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v));
  for (let i = 0; i < n; i++) {
    const [y] = rgbToYcbcr(stylised.data[i * 3]!, stylised.data[i * 3 + 1]!, stylised.data[i * 3 + 2]!);
    const [, cb, cr] = rgbToYcbcr(content.data[i * 3]!, content.data[i * 3 + 1]!, content.data[i * 3 + 2]!);
    out[i * 3] = clip(y + 1.402 * (cr - 128));
    out[i * 3 + 1] = clip(y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128));
    out[i * 3 + 2] = clip(y + 1.772 * (cb - 128));
  }
  return { data: out, width: stylised.width, height: stylised.height, channels: 3 };
}

/** Size with the longer side ≤ maxSide and w·h ≤ maxPixels, aspect kept (never upscales). */
export function fitSize(width: number, height: number, maxSide: number, maxPixels: number): { width: number; height: number } {
  let s = Math.min(1, maxSide / Math.max(width, height), Math.sqrt(maxPixels / (width * height)));
  let w = Math.max(1, Math.floor(width * s));
  let h = Math.max(1, Math.floor(height * s));
  while (w * h > maxPixels) { s *= 0.999; w = Math.max(1, Math.floor(width * s)); h = Math.max(1, Math.floor(height * s)); }
  return { width: w, height: h };
}

export function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

export function floatsOf(b: Buffer): Float32Array {
  const copy = new Uint8Array(b); // aligned copy
  return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
}
