// Colour-space arithmetic on RGB pixels: Rec. 601 luma, BT.601 YCbCr and the luminance-only recombination
// used by colour-preserving style transfer.
import type { RawImage } from './raw.js';

/** Rec. 601 luma of one RGB pixel, as PIL's convert('L') (not rounded). */
export function luma601(r: number, g: number, b: number): number {
  return (299 * r + 587 * g + 114 * b) / 1000;
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
