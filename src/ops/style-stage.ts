// The images of one scale of a style job (see style-schedule.ts): the content and style images at that scale,
// and the optimised image carried over from the previous scale. The output-size stage uses the images exactly
// as a fixed-resolution job does; coarser stages are resized from them with an antialiasing filter (nearest
// neighbour, right for keras-io's load_img at the output size, would alias at ¼ size).
import { type Chw, resizeBilinear } from '../image/chw.js';
import { type RawImage, resizeRaw } from '../image/raw.js';
import type { ModelSpace } from './model-space.js';
import type { ScaleStage } from './style-schedule.js';

/** The job's images at the output's working size (styles already at style_scale × that size). */
export interface FullSizeImages {
  content: RawImage;
  styles: RawImage[];
}

export interface StageImages {
  /** The content image at the stage's size (pixels, for preserve_color). */
  content: RawImage;
  /** The same in the model's input space. */
  contentX: Chw;
  /** The style images at the stage's scale, in the model's input space. */
  styles: Chw[];
}

/** The stage's images; style images are scaled by the stage's scale, never below `minSide` on a side. */
export async function stageImages(full: FullSizeImages, stage: ScaleStage, space: ModelSpace, minSide: number): Promise<StageImages> {
  const coarse = stage.scale !== 1;
  const content = coarse ? await resizeRaw(full.content, stage.width, stage.height, 'lanczos3') : full.content;
  const styles = await Promise.all(full.styles.map(async (s) => {
    if (!coarse) return space.toModel(s);
    const w = Math.max(minSide, Math.round(s.width * stage.scale));
    const h = Math.max(minSide, Math.round(s.height * stage.scale));
    return space.toModel(await resizeRaw(s, w, h, 'lanczos3'));
  }));
  return { content, contentX: space.toModel(content), styles };
}

/** The optimised image of the previous scale, bilinearly upsampled to `stage` (the next scale's starting point). */
export function carryOver(x: Float32Array, from: { c: number; h: number; w: number }, stage: ScaleStage): Float32Array {
  return resizeBilinear({ data: x, c: from.c, h: from.h, w: from.w }, stage.height, stage.width).data;
}
