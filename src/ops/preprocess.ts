// Image → model input tensor, exactly as Keras' preprocess_input modes define it (keras-facts §5).
import sharp from 'sharp';
import type { RawImage } from '../image/io.js';
import type { PreprocessingMode } from '../models/manifest.js';
import { badRequest } from '../util/problem.js';

export type ResizeMode = 'crop' | 'squash';
export type InvertMode = 'auto' | 'true' | 'false';

export interface InputGeometry {
  height: number;
  width: number;
  channels: 1 | 3;
}

/**
 * Resizes to the model's input size.
 * - squash: straight to H×W like Keras `load_img(target_size)` (nearest neighbour, its default); an image
 *   already at the input size passes through untouched.
 * - crop: scale the short side to the input size (Lanczos), then take the centre.
 */
export async function resizeForModel(img: RawImage, geom: InputGeometry, mode: ResizeMode): Promise<RawImage> {
  let out = img;
  if (img.width !== geom.width || img.height !== geom.height) {
    const s = sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
    const resized = mode === 'squash'
      ? s.resize(geom.width, geom.height, { fit: 'fill', kernel: 'nearest' })
      : s.resize(geom.width, geom.height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' });
    const { data, info } = await resized.raw().toBuffer({ resolveWithObject: true });
    out = { data, width: info.width, height: info.height, channels: info.channels as 1 | 3 };
  }
  return out;
}

/** Writes one image into `dst` (NCHW, at `offset`) with the given preprocessing. */
export function toInputTensor(img: RawImage, mode: PreprocessingMode, dst: Float32Array, offset: number, opts: { invert?: InvertMode } = {}): void {
  const { width, height, channels, data } = img;
  const plane = width * height;
  if (mode === 'mnist') {
    const grey = new Float32Array(plane);
    let mean = 0;
    for (let i = 0; i < plane; i++) {
      // Rec. 601 luma, as PIL's convert('L').
      const v = channels === 1 ? data[i]! : (299 * data[i * 3]! + 587 * data[i * 3 + 1]! + 114 * data[i * 3 + 2]!) / 1000;
      grey[i] = v;
      mean += v / plane;
    }
    // MNIST digits are white on black; a dark-on-light scan is inverted (auto: when the image is mostly light).
    const invert = opts.invert === 'true' || ((opts.invert ?? 'auto') === 'auto' && mean > 127.5);
    for (let i = 0; i < plane; i++) dst[offset + i] = (invert ? 255 - grey[i]! : grey[i]!) / 255;
    return;
  }
  if (channels !== 3) throw badRequest('invalid-image', 'This model needs a colour (RGB) image.');
  if (mode === 'caffe') {
    // RGB → BGR, minus the ImageNet channel means (B, G, R), no scaling.
    const means = [103.939, 116.779, 123.68];
    for (let c = 0; c < 3; c++) {
      const src = 2 - c;
      const base = offset + c * plane;
      for (let i = 0; i < plane; i++) dst[base + i] = data[i * 3 + src]! - means[c]!;
    }
  } else {
    for (let c = 0; c < 3; c++) {
      const base = offset + c * plane;
      for (let i = 0; i < plane; i++) dst[base + i] = data[i * 3 + c]! / 127.5 - 1;
    }
  }
}
