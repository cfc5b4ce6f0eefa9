// Geometric edits of a decoded image (training augmentation): mirror + rotate, and cutting a window out. Built on
// raw.ts' pipeline helpers, so the pixel conventions stay decided in one place.
import { type RawImage, pipelineToRaw, rawPipeline } from './raw.js';

/** Mirrors an image left–right (when `flip`), then rotates it by `angleDeg` on a mid-grey background (grows). */
export function flipAndRotate(img: RawImage, flip: boolean, angleDeg: number): Promise<RawImage> {
  let s = rawPipeline(img);
  if (flip) s = s.flop();
  return pipelineToRaw(s.rotate(angleDeg, { background: { r: 128, g: 128, b: 128 } }));
}

/** The `width` × `height` window of an image whose top-left corner is (`left`, `top`). */
export function extractWindow(img: RawImage, left: number, top: number, width: number, height: number): Promise<RawImage> {
  return pipelineToRaw(rawPipeline(img).extract({ left, top, width, height }));
}
