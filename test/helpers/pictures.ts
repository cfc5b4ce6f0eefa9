// Deterministic test pictures shared by several suites.
import sharp from 'sharp';
import type { RawImage } from '../../src/image/raw.js';

/** A colour pattern (a sine-bent ramp, a vertical ramp, an XOR texture), `k` varying its frequencies. */
export function pattern(w: number, h: number, k: number): RawImage {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      data[i] = (x * k + 40 * Math.sin(y / 5)) & 255;
      data[i + 1] = (y * 3 * k) & 255;
      data[i + 2] = ((x ^ y) * k) & 255;
    }
  }
  return { data, width: w, height: h, channels: 3 };
}

/** A PNG of smooth waves, a ramp and a checker (w × h, RGB). */
export async function pngPattern(w: number, h: number): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      raw[i] = Math.round(127 + 120 * Math.sin(x / 9) * Math.cos(y / 13));
      raw[i + 1] = (x * 2 + y) & 255;
      raw[i + 2] = ((x >> 3) + (y >> 3)) % 2 ? 200 : 40;
    }
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}
