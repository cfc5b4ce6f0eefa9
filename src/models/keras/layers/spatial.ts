// Spatial reshaping of images: ZeroPadding2D, Cropping2D, UpSampling2D (nearest, bilinear), Resizing, CenterCrop.
// Resampling follows tf.image.resize as Keras uses it: half-pixel centres, no antialiasing; nearest rounds
// half-way cases up (TF: ⌊(out + ½)·in/out⌋).
import { type EmitContext, type KTensor, type Shape, unsupported } from './context.js';

/** int | [rows, cols] | [[top, bottom], [left, right]] → [[top, bottom], [left, right]]. */
function sides(ctx: EmitContext, key: string): [[number, number], [number, number]] {
  const v = ctx.config[key] ?? 1;
  if (typeof v === 'number') return [[v, v], [v, v]];
  if (Array.isArray(v) && v.length === 2) {
    const [a, b] = v as unknown[];
    if (typeof a === 'number' && typeof b === 'number') return [[a, a], [b, b]];
    if (Array.isArray(a) && Array.isArray(b) && [...a, ...b].every((n) => typeof n === 'number') && a.length === 2 && b.length === 2) {
      return [[a[0] as number, a[1] as number], [b[0] as number, b[1] as number]];
    }
  }
  throw unsupported(ctx.layer, `option ${key}=${JSON.stringify(v)} is not an int, a pair or a pair of pairs`);
}

const plus = (d: number | null, n: number) => (d === null ? null : d + n);

export function emitZeroPadding2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  const [[t, b], [l, r]] = sides(ctx, 'padding');
  const value = ctx.node('Pad', [x!.value, ctx.g.ints([0, 0, t, l, 0, 0, b, r])], { mode: 'constant' });
  return { value, shape: [x!.shape[0]!, plus(x!.shape[1]!, t + b), plus(x!.shape[2]!, l + r), x!.shape[3]!] };
}

/** Rows/cols [begin, size − end) of a rank-4 NCHW value, sizes possibly unknown (negative ends). */
function crop(ctx: EmitContext, x: KTensor, [t, b]: [number, number], [l, r]: [number, number]): KTensor {
  const BIG = 2 ** 62;
  const value = ctx.node('Slice', [x.value, ctx.g.ints([t, l]), ctx.g.ints([b > 0 ? -b : BIG, r > 0 ? -r : BIG]), ctx.g.ints([2, 3])]);
  const shape: Shape = [x.shape[0]!, plus(x.shape[1]!, -t - b), plus(x.shape[2]!, -l - r), x.shape[3]!];
  if ((shape[1] !== null && shape[1]! < 1) || (shape[2] !== null && shape[2]! < 1)) {
    throw unsupported(ctx.layer, `cropping leaves nothing of the ${x.shape[1]}×${x.shape[2]} input`);
  }
  return { value, shape };
}

export function emitCropping2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  const [rows, cols] = sides(ctx, 'cropping');
  return crop(ctx, x!, rows, cols);
}

/** Resize attributes for a Keras interpolation name. */
function resizeMode(ctx: EmitContext, interpolation: string, upsampling: boolean): Record<string, string> {
  if (interpolation === 'nearest') {
    // Integer-factor upsampling repeats pixels (out → ⌊out/s⌋); Resizing follows tf.image.resize's half-pixel rule.
    return upsampling
      ? { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }
      : { mode: 'nearest', coordinate_transformation_mode: 'half_pixel', nearest_mode: 'round_prefer_ceil' };
  }
  if (interpolation === 'bilinear') return { mode: 'linear', coordinate_transformation_mode: 'half_pixel' };
  throw unsupported(ctx.layer, `interpolation '${interpolation}' is not supported (nearest or bilinear)`);
}

export function emitUpSampling2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  const [sh, sw] = ctx.pair('size', 2);
  const attrs = resizeMode(ctx, ctx.str('interpolation', 'nearest'), true);
  const scales = ctx.constant('scales', [4], new Float32Array([1, 1, sh, sw]));
  const value = ctx.node('Resize', [x!.value, '', scales], attrs);
  const times = (d: number | null, f: number) => (d === null ? null : d * f);
  return { value, shape: [x!.shape[0]!, times(x!.shape[1]!, sh), times(x!.shape[2]!, sw), x!.shape[3]!] };
}

export function emitResizing(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  if (ctx.bool('crop_to_aspect_ratio', false) || ctx.bool('pad_to_aspect_ratio', false)) {
    throw unsupported(ctx.layer, 'crop_to_aspect_ratio / pad_to_aspect_ratio are not supported');
  }
  const h = ctx.num('height', 0);
  const w = ctx.num('width', 0);
  const attrs = resizeMode(ctx, ctx.str('interpolation', 'bilinear'), false);
  const batchAndChannels = ctx.node('Slice', [ctx.node('Shape', [x!.value]), ctx.g.ints([0]), ctx.g.ints([2])]);
  const sizes = ctx.node('Concat', [batchAndChannels, ctx.g.ints([h, w])], { axis: 0 });
  return { value: ctx.node('Resize', [x!.value, '', '', sizes], attrs), shape: [x!.shape[0]!, h, w, x!.shape[3]!] };
}

/** CenterCrop to (height, width) from offset ⌊(in − out)/2⌋. Smaller inputs (Keras resizes them) are refused. */
export function emitCenterCrop(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  const h = ctx.num('height', 0);
  const w = ctx.num('width', 0);
  const inH = ctx.known(x!, 1, 'height');
  const inW = ctx.known(x!, 2, 'width');
  if (inH < h || inW < w) throw unsupported(ctx.layer, `its ${inH}×${inW} input is smaller than the ${h}×${w} crop (Keras would resize; not supported)`);
  const t = Math.floor((inH - h) / 2);
  const l = Math.floor((inW - w) / 2);
  return crop(ctx, x!, [t, inH - h - t], [l, inW - w - l]);
}
