// Pixels → model input tensor and back. Every preprocessing mode is one row of a table holding the map of a
// 0…255 pixel value into the model's input space AND its exact inverse, so classification (forward only),
// DeepDream and style transfer (forward, optimise, then inverse) can never disagree about a constant.
//
// Specs (a model folder's manifest records one):
// - caffe  Keras VGG: RGB→BGR, minus the ImageNet means B 103.939, G 116.779, R 123.68, no scaling (3 channels)
// - tf     Keras Inception: x/127.5 − 1 (1 or 3 channels)
// - mnist  luma/255, one channel, white digit on black (a dark-on-light image may be inverted first)
// - torch  x/255, minus mean [0.485, 0.456, 0.406], divided by std [0.229, 0.224, 0.225] per RGB channel
// - raw    0…255 as is (a model that starts with its own Rescaling/Normalization layer)
// - rescale:<scale>[:<offset>]  x·scale + offset; scale and offset are numbers or fractions (rescale:1/255,
//          rescale:1/127.5:-1); the scale must be non-zero so the map can be inverted.
import { z } from 'zod';
import { badRequest } from '../util/problem.js';
import type { Chw } from './chw.js';
import { luma601 } from './colour.js';
import type { RawImage } from './raw.js';

export const NAMED_PREPROCESSING = ['caffe', 'tf', 'mnist', 'torch', 'raw'] as const;
export type NamedPreprocessing = (typeof NAMED_PREPROCESSING)[number];
export type PreprocessingSpec = NamedPreprocessing | `rescale:${string}`;

/** MNIST polarity: `auto` inverts mostly-light images (dark-on-light scans); `true`/`false` force it. */
export type InvertMode = 'auto' | 'true' | 'false';

/** One row of the table: the value map of a mode and its inverse. */
interface ValueMap {
  /** The tensor channel count the mode is defined for; absent: 1 or 3, as the model's input. */
  channels?: 1 | 3;
  /** 3-channel tensors are in BGR order (caffe); otherwise RGB. */
  bgr?: boolean;
  /** MNIST polarity: the grey image may be inverted before the map (see {@link InvertMode}). */
  invertible?: boolean;
  /** Pixel value p (0…255) of tensor channel c → tensor value. */
  forward(p: number, c: number): number;
  /** Tensor value of channel c → pixel value (before clipping). */
  inverse(v: number, c: number): number;
}

const CAFFE_BGR_MEANS = [103.939, 116.779, 123.68];
const TORCH_RGB_MEAN = [0.485, 0.456, 0.406];
const TORCH_RGB_STD = [0.229, 0.224, 0.225];

const NAMED: Record<NamedPreprocessing, ValueMap> = {
  caffe: { channels: 3, bgr: true, forward: (p, c) => p - CAFFE_BGR_MEANS[c]!, inverse: (v, c) => v + CAFFE_BGR_MEANS[c]! },
  tf: { forward: (p) => p / 127.5 - 1, inverse: (v) => (v / 2 + 0.5) * 255 },
  mnist: { channels: 1, invertible: true, forward: (p) => p / 255, inverse: (v) => v * 255 },
  torch: {
    channels: 3,
    forward: (p, c) => (p / 255 - TORCH_RGB_MEAN[c]!) / TORCH_RGB_STD[c]!,
    inverse: (v, c) => (v * TORCH_RGB_STD[c]! + TORCH_RGB_MEAN[c]!) * 255,
  },
  raw: { forward: (p) => p, inverse: (v) => v },
};

/** x·(num/den) + offset, computed as x·num/den so that rescale:1/127.5:-1 equals tf bit for bit. */
function rescaleMap(num: number, den: number, offset: number): ValueMap {
  return { forward: (p) => (p * num) / den + offset, inverse: (v) => ((v - offset) * den) / num };
}

const SPEC_FORMS = 'caffe, tf, mnist, torch, raw or rescale:<scale>[:<offset>] (e.g. rescale:1/255, rescale:1/127.5:-1)';
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A number or a fraction a/b; the error names the part of the spec that is wrong. */
function parseRatio(text: string, what: string): { num: number; den: number } | string {
  const parts = text.split('/');
  if (parts.length > 2) return `${what} '${text}' has more than one '/'`;
  if (parts.some((p) => !DECIMAL.test(p))) return `${what} '${text}' is not a number or a fraction (e.g. 0.5, 1/255, -1)`;
  const num = Number(parts[0]);
  const den = parts.length === 2 ? Number(parts[1]) : 1;
  if (den === 0) return `${what} '${text}' divides by zero`;
  if (!Number.isFinite(num) || !Number.isFinite(den) || !Number.isFinite(num / den)) return `${what} '${text}' is not finite`;
  return { num, den };
}

const isNamed = (s: string): s is NamedPreprocessing => (NAMED_PREPROCESSING as readonly string[]).includes(s);
const isRescale = (s: string): s is `rescale:${string}` => s.startsWith('rescale:');

/** The spec with its value map, or the reason it is not a spec. */
function valueMapOf(spec: string): { spec: PreprocessingSpec; map: ValueMap } | string {
  if (spec === '') return `empty preprocessing; expected ${SPEC_FORMS}`;
  if (isNamed(spec)) return { spec, map: NAMED[spec] };
  if (!isRescale(spec)) {
    const head = spec.split(':')[0]!.trim().toLowerCase();
    const known = isNamed(head) ? `'${head}'` : head === 'rescale' ? `'rescale:<scale>'` : undefined;
    return `unknown preprocessing '${spec}'${known ? ` (did you mean ${known}?)` : ''}; expected ${SPEC_FORMS}`;
  }
  const args = spec.slice('rescale:'.length).split(':');
  if (args[0] === '') return `'${spec}': rescale needs a scale: rescale:<scale>[:<offset>], e.g. rescale:1/255`;
  if (args.length > 2) return `'${spec}': rescale takes at most a scale and an offset (rescale:<scale>[:<offset>])`;
  const scale = parseRatio(args[0]!, 'scale');
  if (typeof scale === 'string') return `'${spec}': ${scale}`;
  if (scale.num === 0) return `'${spec}': the scale must be non-zero (the preprocessing must be invertible)`;
  let offset = 0;
  if (args.length === 2) {
    const o = parseRatio(args[1]!, 'offset');
    if (typeof o === 'string') return `'${spec}': ${o}`;
    offset = o.num / o.den;
  }
  return { spec, map: rescaleMap(scale.num, scale.den, offset) };
}

export interface TensorOptions {
  /** The model's input channels (default: the mode's own, else 3). */
  channels?: 1 | 3;
  /** mnist only: polarity of the digit (default auto). */
  invert?: InvertMode;
}

/** A parsed preprocessing spec: image → tensor and its inverse. */
export interface Preprocessing {
  readonly spec: PreprocessingSpec;
  /** The tensor channel count the mode requires, or undefined when it works with 1 or 3. */
  readonly channels: 1 | 3 | undefined;
  /** Writes `img` (RGB or grey uint8 HWC) into `dst` at `offset` as one NCHW item. */
  toTensor(img: RawImage, dst: Float32Array, offset?: number, opts?: TensorOptions): void;
  /** The inverse: a CHW tensor (1 or 3 channels) back to 8-bit pixels, clipped to [0, 255] then truncated (Keras' astype('uint8')). */
  fromTensor(x: Chw): RawImage;
}

function makePreprocessing(spec: PreprocessingSpec, map: ValueMap): Preprocessing {
  const channelsFor = (requested: number | undefined, what: string): 1 | 3 => {
    const n = requested ?? map.channels ?? 3;
    if ((map.channels !== undefined && n !== map.channels) || (n !== 1 && n !== 3)) {
      throw new Error(`'${spec}' preprocessing cannot ${what} a ${n}-channel tensor${map.channels ? ` (it is defined for ${map.channels})` : ''}`);
    }
    return n;
  };
  // The forward map of every 8-bit value of each channel, computed once: a colour image is then one table read
  // per value (the same float32 the map gives, at a fraction of the cost of calling it 150k times per image).
  const forwardTable = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let p = 0; p < 256; p++) forwardTable[c * 256 + p] = map.forward(p, c);
  return {
    spec,
    channels: map.channels,
    toTensor(img, dst, offset = 0, opts = {}) {
      const { width, height, data } = img;
      const plane = width * height;
      if (channelsFor(opts.channels, 'make') === 1) {
        const grey = new Float32Array(plane);
        let mean = 0;
        for (let i = 0; i < plane; i++) {
          const v = img.channels === 1 ? data[i]! : luma601(data[i * 3]!, data[i * 3 + 1]!, data[i * 3 + 2]!);
          grey[i] = v;
          mean += v / plane;
        }
        const invert = map.invertible === true && (opts.invert === 'true' || ((opts.invert ?? 'auto') === 'auto' && mean > 127.5));
        for (let i = 0; i < plane; i++) dst[offset + i] = map.forward(invert ? 255 - grey[i]! : grey[i]!, 0);
        return;
      }
      if (img.channels !== 3) throw badRequest('invalid-image', 'This model needs a colour (RGB) image.');
      // One pass over the pixels writing the three planes: ≈ 0.22 ms at 224×224 where three strided passes took 0.30.
      const s0 = map.bgr ? 2 : 0;
      const s2 = 2 - s0;
      const p0 = dst.subarray(offset, offset + plane);
      const p1 = dst.subarray(offset + plane, offset + 2 * plane);
      const p2 = dst.subarray(offset + 2 * plane, offset + 3 * plane);
      for (let i = 0, j = 0; i < plane; i++, j += 3) {
        p0[i] = forwardTable[data[j + s0]!]!;
        p1[i] = forwardTable[256 + data[j + 1]!]!;
        p2[i] = forwardTable[512 + data[j + s2]!]!;
      }
    },
    fromTensor(x) {
      const channels = channelsFor(x.c, 'invert');
      const plane = x.h * x.w;
      const out = Buffer.alloc(plane * channels);
      for (let c = 0; c < channels; c++) {
        const dstC = map.bgr ? 2 - c : c;
        const base = c * plane;
        for (let i = 0; i < plane; i++) {
          const v = map.inverse(x.data[base + i]!, c);
          out[i * channels + dstC] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
        }
      }
      return { data: out, width: x.w, height: x.h, channels };
    },
  };
}

const parsed = new Map<string, Preprocessing>();

/** The reason `spec` is not a preprocessing spec, or undefined when it is one. */
export function preprocessingSpecError(spec: string): string | undefined {
  const found = valueMapOf(spec);
  return typeof found === 'string' ? found : undefined;
}

/** Parses a spec (see the top of this file); a bad one is a 400 `invalid-preprocessing` naming what is wrong. */
export function parsePreprocessing(spec: string): Preprocessing {
  let p = parsed.get(spec);
  if (!p) {
    const found = valueMapOf(spec);
    if (typeof found === 'string') throw badRequest('invalid-preprocessing', found);
    p = makePreprocessing(found.spec, found.map);
    if (parsed.size >= 256) parsed.clear(); // specs may come from requests: keep the cache bounded
    parsed.set(spec, p);
  }
  return p;
}

/** A spec as zod sees it: a string, checked by the parser, typed as a spec. */
export const PreprocessingSpecSchema = z.string()
  .superRefine((s, ctx) => {
    const error = preprocessingSpecError(s);
    if (error) ctx.addIssue({ code: 'custom', message: error });
  })
  .pipe(z.union([z.enum(NAMED_PREPROCESSING), z.templateLiteral(['rescale:', z.string()])]))
  .describe(`How 0…255 pixels become the model input: ${SPEC_FORMS}`);

/** Writes one image into `dst` (NCHW, at `offset`) with the given preprocessing. */
export function toInputTensor(img: RawImage, spec: PreprocessingSpec, dst: Float32Array, offset: number, opts: TensorOptions = {}): void {
  parsePreprocessing(spec).toTensor(img, dst, offset, opts);
}

/** An image as a preprocessed CHW tensor (batch 1; channels: the mode's, else RGB). */
export function preprocess(img: RawImage, spec: PreprocessingSpec, opts: TensorOptions = {}): Chw {
  const p = parsePreprocessing(spec);
  const c = opts.channels ?? p.channels ?? 3;
  const data = new Float32Array(c * img.width * img.height);
  p.toTensor(img, data, 0, { ...opts, channels: c });
  return { data, c, h: img.height, w: img.width };
}

/** The inverse of {@link preprocess}: back to 8-bit pixels (clip, then truncate as Keras' astype('uint8')). */
export function deprocess(x: Chw, spec: PreprocessingSpec): RawImage {
  return parsePreprocessing(spec).fromTensor(x);
}
