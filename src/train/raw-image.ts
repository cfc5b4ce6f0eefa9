// LOCAL IMAGE HELPER of src/train/ — the only module of train/ that touches pixels with sharp or converts raw
// images. Temporary: src/image/ is getting one owner for raw conversions; these functions move there (and this
// module goes away) when it lands.
import sharp from 'sharp';
import type { RawImage } from '../image/io.js';

/** A grey image as RGB (3 equal channels); an RGB image as is. */
export function toRgb(img: RawImage): RawImage {
  if (img.channels === 3) return img;
  const data = Buffer.alloc(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) data[i * 3] = data[i * 3 + 1] = data[i * 3 + 2] = img.data[i]!;
  return { data, width: img.width, height: img.height, channels: 3 };
}

/** Mirrors an RGB image left–right (when `flip`), then rotates it by `angleDeg` on a mid-grey background (grows). */
export async function flipAndRotate(img: RawImage, flip: boolean, angleDeg: number): Promise<RawImage> {
  let s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
  if (flip) s = s.flop();
  s = s.rotate(angleDeg, { background: { r: 128, g: 128, b: 128 } });
  const { data, info } = await s.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: 3 };
}

/** The `width` × `height` window of an RGB image whose top-left corner is (`left`, `top`). */
export async function extractWindow(img: RawImage, left: number, top: number, width: number, height: number): Promise<RawImage> {
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } })
    .extract({ left, top, width, height })
    .raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: 3 };
}

/** Rasterises an SVG document to PNG. */
export function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png().toBuffer();
}
