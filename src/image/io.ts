// Image decode/encode for every endpoint and command: one place that knows the limits, EXIF orientation,
// alpha flattening and the formats we accept.
import sharp from 'sharp';
import { ProblemError, badRequest, tooLarge, unprocessable, unsupportedMedia } from '../util/problem.js';
import { readJpegHeader } from './jpeg-header.js';
import { type RawImage, normalisePixels, pipelineToRaw, rawPipeline } from './raw.js';
import { type ResizeTarget, withModelResize } from './resize.js';

export type { RawImage } from './raw.js';

export interface DecodeLimits {
  maxInputPixels: number;
  decodeTimeoutMs: number;
}

/** sharp's `format` names we accept (AVIF and HEIC are both reported as 'heif'). */
export const ACCEPTED_INPUT_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif'] as const;
export const OUTPUT_FORMATS = ['png', 'jpeg', 'webp'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

const CONTENT_TYPES: Record<OutputFormat, string> = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp' };
export const contentTypeOf = (f: OutputFormat) => CONTENT_TYPES[f];

/**
 * Reads the header only (no pixel decode) and rejects what we will not decode: unknown formats and images
 * over the pixel limit — so a 100k × 100k PNG bomb costs a few bytes of parsing, not gigabytes.
 */
export async function probeImage(bytes: Buffer, limits: DecodeLimits): Promise<sharp.Metadata> {
  if (bytes.length === 0) throw badRequest('empty-image', 'The uploaded image is empty (0 bytes).');
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    // The bytes are not any image format libvips knows (text, truncated header…): the client's data is bad.
    throw unprocessable('undecodable-image', `The upload is not a recognisable image (${shortSharpMessage(e)}). Accepted: JPEG, PNG, WebP, GIF, TIFF, AVIF.`);
  }
  const format = meta.format as string | undefined;
  if (!format || !(ACCEPTED_INPUT_FORMATS as readonly string[]).includes(format)) {
    throw unsupportedMedia('unsupported-image-format', `Image format '${format ?? 'unknown'}' is not accepted. Accepted: JPEG, PNG, WebP, GIF, TIFF, AVIF.`);
  }
  checkPixels(meta.width ?? 0, meta.height ?? 0, limits);
  return meta;
}

function checkPixels(width: number, height: number, limits: DecodeLimits): void {
  if (width <= 0 || height <= 0) throw unprocessable('undecodable-image', 'The image header has no valid dimensions.');
  if (width * height > limits.maxInputPixels) {
    throw tooLarge('image-too-many-pixels', `The image is ${width}×${height} = ${width * height} pixels; the limit is ${limits.maxInputPixels} (CONVSERVE_MAX_INPUT_PIXELS).`, { width, height, limit: limits.maxInputPixels });
  }
}

/** What {@link decodeProbed} needs from a probe. */
export interface ProbedHeader {
  /** EXIF orientation (1 or absent: none to apply). */
  orientation?: number;
}

/**
 * {@link probeImage} for the decode path: the same checks and problems, but a plain JPEG's header is read in
 * JavaScript (jpeg-header.ts) instead of by libvips on the thread pool; anything else goes to probeImage.
 */
export async function probeUpload(bytes: Buffer, limits: DecodeLimits): Promise<ProbedHeader> {
  const jpeg = readJpegHeader(bytes);
  if (!jpeg) return probeImage(bytes, limits);
  checkPixels(jpeg.width, jpeg.height, limits);
  return jpeg;
}

/**
 * Decodes to 8-bit sRGB (or grey): applies EXIF orientation, takes the first frame of animations,
 * flattens alpha onto white. With `resize`, decodes straight to a model's input size (see ResizeTarget:
 * an image already at that size is not resampled). Any failure becomes a 4xx ProblemError.
 */
export async function decodeImage(bytes: Buffer, limits: DecodeLimits, opts: DecodeOptions = {}): Promise<RawImage> {
  return decodeProbed(bytes, await probeImage(bytes, limits), limits, opts);
}

export interface DecodeOptions {
  /** One grey channel instead of RGB. */
  grey?: boolean;
  /** Decode straight to a model's input size. */
  resize?: ResizeTarget;
}

/**
 * {@link decodeImage} for bytes already checked by {@link probeImage} or {@link probeUpload} (`meta` is its answer): a caller that
 * probes every upload first (to report bad ones before anything else) does not pay for a second header parse.
 */
export async function decodeProbed(bytes: Buffer, meta: ProbedHeader, limits: DecodeLimits, opts: DecodeOptions = {}): Promise<RawImage> {
  const seconds = Math.max(1, Math.ceil(limits.decodeTimeoutMs / 1000));
  let pipeline = sharp(bytes, { limitInputPixels: limits.maxInputPixels, failOn: 'error', pages: 1 }).timeout({ seconds });
  // EXIF orientation: only an image that has one is auto-rotated (the no-op step still costs libvips work).
  if ((meta.orientation ?? 1) !== 1) pipeline = pipeline.rotate();
  // Resizing in the decode pipeline lets libvips shrink JPEG/WebP while decoding (a 1 MP JPEG for a 224
  // model decodes at 1/4 scale): several times faster than decoding in full and resizing afterwards.
  if (opts.resize) pipeline = withModelResize(pipeline, opts.resize);
  try {
    return await withTimeout(pipelineToRaw(normalisePixels(pipeline, opts.grey)), limits.decodeTimeoutMs);
  } catch (e) {
    if (e instanceof ProblemError) throw e;
    throw unprocessable('undecodable-image', `The image could not be decoded: ${shortSharpMessage(e)}`);
  }
}

export async function encodeImage(img: RawImage, format: OutputFormat, quality = 90): Promise<Buffer> {
  let s = rawPipeline(img);
  if (img.channels === 1) s = s.toColourspace('b-w'); // keep grey images one-channel in the output file
  switch (format) {
    case 'png': return s.png().toBuffer();
    case 'jpeg': return s.jpeg({ quality }).toBuffer();
    case 'webp': return s.webp({ quality }).toBuffer();
  }
}

/**
 * Output format from an explicit `format` parameter, else the Accept header (first acceptable of
 * png/jpeg/webp in the client's order of preference), else PNG.
 */
export function chooseOutputFormat(formatParam: unknown, accept: string | undefined): OutputFormat {
  if (formatParam !== undefined && formatParam !== '') {
    const f = String(formatParam).toLowerCase().replace(/^jpg$/, 'jpeg');
    if (!(OUTPUT_FORMATS as readonly string[]).includes(f)) {
      throw badRequest('invalid-format', `format must be one of ${OUTPUT_FORMATS.join(', ')}; got '${String(formatParam)}'.`);
    }
    return f as OutputFormat;
  }
  if (accept) {
    const prefs = accept.split(',').map((part, i) => {
      const [type, ...params] = part.trim().split(';');
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      return { type: (type ?? '').trim().toLowerCase(), q: q ? Number(q.slice(2)) : 1, i };
    }).filter((p) => p.q > 0).sort((a, b) => b.q - a.q || a.i - b.i);
    for (const p of prefs) {
      const f = OUTPUT_FORMATS.find((o) => CONTENT_TYPES[o] === p.type);
      if (f) return f;
      if (p.type === 'image/*' || p.type === '*/*') return 'png';
    }
  }
  return 'png';
}

function shortSharpMessage(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.replace(/^Input (buffer|file) /, '').slice(0, 200);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(unprocessable('decode-timeout', `Decoding took longer than ${ms} ms (CONVSERVE_DECODE_TIMEOUT_MS).`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
