// The picture of an explanation: its map, colour-mapped (Turbo) and blended over the input picture at the
// picture's own size. The map covers what the model saw — the whole picture for resize=squash, the centred crop
// for resize=crop — and is upsampled bilinearly onto it; the parts the crop cut away are shown darkened.
import sharp from 'sharp';
import type { RawImage } from '../image/io.js';
import { colorAt } from './colormap.js';
import type { Explanation } from './explain.js';

export interface RenderOptions {
  /** Weight of the colour over the picture, 0–1 (default 0.5). */
  opacity?: number;
}

/** The rectangle of the picture (in its pixels, fractional) the model input was made from. */
export function seenRegion(view: Explanation['view']): { left: number; top: number; width: number; height: number } {
  const { imageWidth: iw, imageHeight: ih, inputWidth: mw, inputHeight: mh } = view;
  if (view.resize === 'squash') return { left: 0, top: 0, width: iw, height: ih };
  // sharp's fit 'cover': scale so both sides cover the input, then take the centre.
  const s = Math.max(mw / iw, mh / ih);
  const width = mw / s;
  const height = mh / s;
  return { left: (iw - width) / 2, top: (ih - height) / 2, width, height };
}

/** Bilinear sample of a row-major w×h map at continuous pixel-centre coordinates (edges clamped). */
function sample(map: Float32Array, w: number, h: number, x: number, y: number): number {
  const cx = Math.min(Math.max(x, 0), w - 1);
  const cy = Math.min(Math.max(y, 0), h - 1);
  const x0 = Math.floor(cx), y0 = Math.floor(cy);
  const x1 = Math.min(x0 + 1, w - 1), y1 = Math.min(y0 + 1, h - 1);
  const tx = cx - x0, ty = cy - y0;
  const top = map[y0 * w + x0]! + (map[y0 * w + x1]! - map[y0 * w + x0]!) * tx;
  const bot = map[y1 * w + x0]! + (map[y1 * w + x1]! - map[y1 * w + x0]!) * tx;
  return top + (bot - top) * ty;
}

/**
 * The heat-map PNG: |map| / max|map| through the colour table, blended with `opacity` over the picture inside
 * the region the model saw (integrated gradients' signed attributions are shown by magnitude).
 */
export async function renderExplanationPng(image: RawImage, e: Explanation, opts: RenderOptions = {}): Promise<Buffer> {
  const opacity = Math.min(1, Math.max(0, opts.opacity ?? 0.5));
  const { width: iw, height: ih } = image;
  const region = seenRegion({ ...e.view, imageWidth: iw, imageHeight: ih });
  let scale = 0;
  for (const v of e.map) scale = Math.max(scale, Math.abs(v));
  const out = Buffer.alloc(iw * ih * 3);
  const colour = new Uint8Array(3);
  for (let y = 0; y < ih; y++) {
    const my = ((y + 0.5 - region.top) / region.height) * e.height - 0.5;
    const insideY = y + 0.5 >= region.top && y + 0.5 <= region.top + region.height;
    for (let x = 0; x < iw; x++) {
      const p = y * iw + x;
      const src = image.channels === 3 ? p * 3 : p;
      const step = image.channels === 3 ? 1 : 0;
      const o = p * 3;
      const inside = insideY && x + 0.5 >= region.left && x + 0.5 <= region.left + region.width;
      if (!inside) {
        for (let c = 0; c < 3; c++) out[o + c] = image.data[src + c * step]! >> 1;
        continue;
      }
      const mx = ((x + 0.5 - region.left) / region.width) * e.width - 0.5;
      const t = scale > 0 ? Math.abs(sample(e.map, e.width, e.height, mx, my)) / scale : 0;
      colorAt(t, colour, 0);
      for (let c = 0; c < 3; c++) out[o + c] = Math.round((1 - opacity) * image.data[src + c * step]! + opacity * colour[c]!);
    }
  }
  return sharp(out, { raw: { width: iw, height: ih, channels: 3 } }).png().toBuffer();
}
