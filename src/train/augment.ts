// --augment of a fine-tune: every epoch sees each training image randomly flipped, rotated and cropped (Keras'
// RandomFlip / RandomRotation / RandomCrop), so the frozen base's features of the training images are recomputed
// every epoch.
import type { RawImage } from '../image/io.js';
import { resizeForModel } from '../image/resize.js';
import { extractWindow, flipAndRotate } from '../image/transform.js';
import type { Geometry } from './frozen-base.js';

/** Augmentation parameters: horizontal flip (p = 0.5), rotation ±10°, random crop keeping 85–100 % of the side. */
export const AUGMENT = { flip: 0.5, rotateDeg: 10, minCrop: 0.85 };
/** With --augment the decoded image is kept at this multiple of the input side (room for crops). */
export const AUGMENT_MARGIN = 1.15;

/** A random flip / rotation / crop of `img` (already centre-cropped to a square ≥ the input size), then resized. */
export async function augmentImage(img: RawImage, geom: Geometry, rand: () => number): Promise<RawImage> {
  const flip = rand() < AUGMENT.flip;
  const angle = (rand() * 2 - 1) * AUGMENT.rotateDeg;
  const keep = AUGMENT.minCrop + rand() * (1 - AUGMENT.minCrop);
  const ox = rand();
  const oy = rand();
  const rotated = await flipAndRotate(img, flip, angle);
  // The largest centred square without the rotation's background corners, then a random window inside it.
  const th = (Math.abs(angle) * Math.PI) / 180;
  const safe = Math.floor(Math.min(img.width, img.height) / (Math.cos(th) + Math.sin(th)));
  const side = Math.max(8, Math.floor(safe * keep));
  const left = Math.floor((rotated.width - safe) / 2 + ox * (safe - side));
  const top = Math.floor((rotated.height - safe) / 2 + oy * (safe - side));
  const crop = await extractWindow(rotated, Math.max(0, left), Math.max(0, top), Math.min(side, rotated.width), Math.min(side, rotated.height));
  return resizeForModel(crop, geom, 'crop');
}
