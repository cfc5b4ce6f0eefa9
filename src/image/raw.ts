// Decoded pixels in memory (RawImage) and their conversions. This is the one module that hands raw pixel
// buffers to libvips (`sharp(data, { raw })`) and turns libvips' output back into a RawImage, so the
// channel conventions (RGB or grey, alpha flattened onto white) are decided in one place.
import sharp from 'sharp';

/** Decoded 8-bit image, interleaved HWC, `channels` 3 (RGB) or 1 (grey). */
export interface RawImage {
  data: Buffer;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** A sharp pipeline reading `img`'s pixels (to chain resize, blur, convolve, encode…). */
export function rawPipeline(img: RawImage): sharp.Sharp {
  return sharp(img.data, { raw: { width: img.width, height: img.height, channels: img.channels } });
}

/**
 * The pipeline's pixels as 8-bit RGB (or grey with `grey`): alpha is flattened onto white (a transparent
 * pixel shows the page behind it), CMYK/16-bit/other colourspaces become sRGB.
 */
export function normalisePixels(pipeline: sharp.Sharp, grey = false): sharp.Sharp {
  const flat = pipeline.flatten({ background: '#ffffff' });
  return grey ? flat.greyscale().toColourspace('b-w') : flat.toColourspace('srgb');
}

/**
 * Runs `pipeline` and returns its pixels as a RawImage. The pipeline must produce 1 or 3 channels (put
 * {@link normalisePixels} last when its input may carry alpha); anything else is a programming error.
 */
export async function pipelineToRaw(pipeline: sharp.Sharp): Promise<RawImage> {
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  const channels = info.channels;
  if (channels !== 1 && channels !== 3) throw new Error(`image pipeline produced ${channels} channels; expected 1 or 3`);
  return { data, width: info.width, height: info.height, channels };
}

export type ResampleKernel = 'nearest' | 'linear' | 'lanczos3';

/** Resizes to exactly width×height (aspect not kept); the same size returns `img` itself. */
export async function resizeRaw(img: RawImage, width: number, height: number, kernel: ResampleKernel = 'nearest'): Promise<RawImage> {
  if (img.width === width && img.height === height) return img;
  return pipelineToRaw(rawPipeline(img).resize(width, height, { fit: 'fill', kernel }));
}

/** Grey → RGB by replicating the grey value (the gradient models take 3 channels); RGB is returned as is. */
export function toRgb(img: RawImage): RawImage {
  if (img.channels === 3) return img;
  const out = Buffer.alloc(img.width * img.height * 3);
  for (let i = 0; i < img.width * img.height; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = img.data[i]!;
  return { data: out, width: img.width, height: img.height, channels: 3 };
}

/** RGB → one-channel grey, as libvips computes luminance (sRGB → b-w); grey is returned as is. */
export async function toGrey(img: RawImage): Promise<RawImage> {
  if (img.channels === 1) return img;
  return pipelineToRaw(rawPipeline(img).greyscale().toColourspace('b-w'));
}

