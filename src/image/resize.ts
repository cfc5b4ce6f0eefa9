// Image sizes: resizing to a model's input (crop or squash) — applied either inside the decode pipeline
// (shrink-on-load) or to an already decoded image, with the same libvips settings — and fitting an image
// under size limits.
import type sharp from 'sharp';
import { type RawImage, pipelineToRaw, rawPipeline } from './raw.js';

/**
 * How an image reaches a model's input size:
 * - crop: scale the short side to the input size (Lanczos), then take the centre;
 * - squash: straight to H×W like Keras `load_img(target_size)` (nearest neighbour, its default).
 */
export const RESIZE_MODES = ['crop', 'squash'] as const;
export type ResizeMode = (typeof RESIZE_MODES)[number];

/** A model input size and how to get there. */
export interface ResizeTarget {
  width: number;
  height: number;
  mode: ResizeMode;
}

/** Adds the resize of `target` to a sharp pipeline (the one definition of crop and squash). */
export function withModelResize(pipeline: sharp.Sharp, target: ResizeTarget): sharp.Sharp {
  const { width, height, mode } = target;
  return mode === 'squash'
    ? pipeline.resize(width, height, { fit: 'fill', kernel: 'nearest' })
    : pipeline.resize(width, height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' });
}

/**
 * Resizes a decoded image to a model's input size; an image already at that size passes through untouched
 * (as Keras' load_img does). Decoding with `decodeImage(…, { resize })` does the same while decoding.
 */
export async function resizeForModel(img: RawImage, geom: { width: number; height: number }, mode: ResizeMode): Promise<RawImage> {
  if (img.width === geom.width && img.height === geom.height) return img;
  return pipelineToRaw(withModelResize(rawPipeline(img), { width: geom.width, height: geom.height, mode }));
}

/** Size with the longer side ≤ maxSide and w·h ≤ maxPixels, aspect kept (never upscales). */
export function fitSize(width: number, height: number, maxSide: number, maxPixels: number): { width: number; height: number } {
  let s = Math.min(1, maxSide / Math.max(width, height), Math.sqrt(maxPixels / (width * height)));
  let w = Math.max(1, Math.floor(width * s));
  let h = Math.max(1, Math.floor(height * s));
  while (w * h > maxPixels) { s *= 0.999; w = Math.max(1, Math.floor(width * s)); h = Math.max(1, Math.floor(height * s)); }
  return { width: w, height: h };
}
