// Convolutions: Conv2D (strides, dilation, groups), DepthwiseConv2D, SeparableConv2D, Conv2DTranspose.
// Kernels are converted from Keras' HWIO layout; TF 'same' padding puts the odd pixel at the bottom/right;
// a BatchNormalization right after a linear Conv2D/DepthwiseConv2D is folded into its kernel and bias.
import { hwioToOihw } from '../../architectures/layers.js';
import type { AttrValue } from '../../../onnx/proto.js';
import { activate } from './activations.js';
import { type EmitContext, type KTensor, type Shape, type WeightSpec, unsupported } from './context.js';
import { bnAffine } from './normalization.js';

export interface SpatialGeometry {
  /** ONNX attributes: explicit `pads`, or `auto_pad: SAME_UPPER` when a size is unknown and the stride > 1. */
  attrs: Record<string, AttrValue | undefined>;
  outH: number | null;
  outW: number | null;
}

/**
 * TF/Keras window geometry: 'valid' → out = ⌊(in − k_eff)/s⌋ + 1, no padding; 'same' → out = ⌈in/s⌉, total padding
 * max((out − 1)·s + k_eff − in, 0), ⌊total/2⌋ before and the rest after (ONNX SAME_UPPER is exactly this).
 */
export function windowGeometry(
  ctx: EmitContext, input: Shape, kernel: [number, number], strides: [number, number], dilation: [number, number] = [1, 1],
): SpatialGeometry {
  const padding = ctx.str('padding', 'valid').toLowerCase();
  if (padding !== 'same' && padding !== 'valid') throw unsupported(ctx.layer, `padding '${padding}' is not supported (same or valid)`);
  const sizes = [input[1] ?? null, input[2] ?? null];
  const eff = kernel.map((k, i) => (k - 1) * dilation[i]! + 1);
  if (padding === 'valid') {
    const out = sizes.map((n, i) => (n === null ? null : Math.floor((n - eff[i]!) / strides[i]!) + 1));
    if (out.some((o) => o !== null && o < 1)) throw unsupported(ctx.layer, `its ${kernel.join('×')} window does not fit the ${sizes.join('×')} input`);
    return { attrs: { pads: [0, 0, 0, 0] }, outH: out[0]!, outW: out[1]! };
  }
  const out = sizes.map((n, i) => (n === null ? null : Math.ceil(n / strides[i]!)));
  const before: number[] = [];
  const after: number[] = [];
  for (let i = 0; i < 2; i++) {
    const n = sizes[i]!;
    if (n === null && strides[i] !== 1) return { attrs: { auto_pad: 'SAME_UPPER' }, outH: out[0]!, outW: out[1]! };
    const total = n === null ? eff[i]! - 1 : Math.max((out[i]! - 1) * strides[i]! + eff[i]! - n, 0);
    before.push(Math.floor(total / 2));
    after.push(total - Math.floor(total / 2));
  }
  return { attrs: { pads: [...before, ...after] }, outH: out[0]!, outW: out[1]! };
}

/** Folds the BatchNormalization planned for this conv (if any) into OIHW kernel + bias (both modified in place). */
function foldInto(ctx: EmitContext, kernel: Float32Array, bias: Float32Array, channels: number): void {
  if (!ctx.fold) return;
  const { scale, shift } = bnAffine(ctx, ctx.fold.layer, ctx.fold.path, channels);
  const per = kernel.length / channels;
  for (let o = 0; o < channels; o++) {
    for (let j = 0; j < per; j++) kernel[o * per + j] = kernel[o * per + j]! * scale[o]!;
    bias[o] = bias[o]! * scale[o]! + shift[o]!;
  }
}

function convNode(
  ctx: EmitContext, x: string, kernel: { dims: number[]; data: Float32Array }, bias: Float32Array | null,
  attrs: Record<string, AttrValue | undefined>,
): string {
  const inputs = [x, ctx.constant('kernel', kernel.dims, kernel.data)];
  if (bias) inputs.push(ctx.constant('bias', [bias.length], bias));
  return ctx.node('Conv', inputs, attrs);
}

function finish(ctx: EmitContext, value: string, shape: Shape): KTensor {
  return { value: activate(ctx, value, shape, ctx.config.activation), shape };
}

export function emitConv2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  const cin = ctx.known(x!, 3, 'channel count');
  const filters = ctx.num('filters', 0);
  const groups = ctx.num('groups', 1);
  const k = ctx.pair('kernel_size', 1);
  const s = ctx.pair('strides', 1);
  const d = ctx.pair('dilation_rate', 1);
  if (cin % groups !== 0 || filters % groups !== 0) throw unsupported(ctx.layer, `groups=${groups} does not divide ${cin} input channels and ${filters} filters`);
  const useBias = ctx.bool('use_bias', true);
  const specs: WeightSpec[] = [{ role: 'kernel', shape: [k[0], k[1], cin / groups, filters] }];
  if (useBias) specs.push({ role: 'bias', shape: [filters] });
  const w = ctx.weights(specs);
  const geo = windowGeometry(ctx, x!.shape, k, s, d);
  const kw = w.get('kernel')!;
  const kernel = hwioToOihw({ shape: kw.shape, data: kw.data });
  let bias: Float32Array | null = useBias ? Float32Array.from(w.get('bias')!.data) : null;
  if (ctx.fold) {
    bias ??= new Float32Array(filters);
    foldInto(ctx, kernel.data, bias, filters);
  }
  const y = convNode(ctx, x!.value, kernel, bias, { kernel_shape: k, strides: s, dilations: d, group: groups, ...geo.attrs });
  return finish(ctx, y, [x!.shape[0]!, geo.outH, geo.outW, filters]);
}

/** Depthwise kernel (kh, kw, C, m) → ONNX grouped-conv kernel (C·m, 1, kh, kw): output channel c·m + j. */
function depthwiseKernel(data: Float32Array, kh: number, kw: number, channels: number, multiplier: number): { dims: number[]; data: Float32Array } {
  return hwioToOihw({ shape: [kh, kw, 1, channels * multiplier], data });
}

export function emitDepthwiseConv2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  const cin = ctx.known(x!, 3, 'channel count');
  const m = ctx.num('depth_multiplier', 1);
  const k = ctx.pair('kernel_size', 1);
  const s = ctx.pair('strides', 1);
  const d = ctx.pair('dilation_rate', 1);
  const useBias = ctx.bool('use_bias', true);
  const specs: WeightSpec[] = [{ role: 'depthwise_kernel', shape: [k[0], k[1], cin, m] }];
  if (useBias) specs.push({ role: 'bias', shape: [cin * m] });
  const w = ctx.weights(specs);
  const geo = windowGeometry(ctx, x!.shape, k, s, d);
  const kernel = depthwiseKernel(w.get('depthwise_kernel')!.data, k[0], k[1], cin, m);
  let bias: Float32Array | null = useBias ? Float32Array.from(w.get('bias')!.data) : null;
  if (ctx.fold) {
    bias ??= new Float32Array(cin * m);
    foldInto(ctx, kernel.data, bias, cin * m);
  }
  const y = convNode(ctx, x!.value, kernel, bias, { kernel_shape: k, strides: s, dilations: d, group: cin, ...geo.attrs });
  return finish(ctx, y, [x!.shape[0]!, geo.outH, geo.outW, cin * m]);
}

/** SeparableConv2D: a depthwise conv (strides, padding, dilation) then a 1×1 pointwise conv with the bias. */
export function emitSeparableConv2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  const cin = ctx.known(x!, 3, 'channel count');
  const filters = ctx.num('filters', 0);
  // tfjs-layers omits depth_multiplier from SeparableConv2D configs: then the depthwise kernel's shape says it.
  const m = ctx.num('depth_multiplier', ctx.storedShape('depthwise_kernel')?.[3] ?? 1);
  const k = ctx.pair('kernel_size', 1);
  const s = ctx.pair('strides', 1);
  const d = ctx.pair('dilation_rate', 1);
  const useBias = ctx.bool('use_bias', true);
  const specs: WeightSpec[] = [
    { role: 'depthwise_kernel', shape: [k[0], k[1], cin, m] },
    { role: 'pointwise_kernel', shape: [1, 1, cin * m, filters] },
  ];
  if (useBias) specs.push({ role: 'bias', shape: [filters] });
  const w = ctx.weights(specs);
  const geo = windowGeometry(ctx, x!.shape, k, s, d);
  const depthwise = convNode(ctx, x!.value, depthwiseKernel(w.get('depthwise_kernel')!.data, k[0], k[1], cin, m), null,
    { kernel_shape: k, strides: s, dilations: d, group: cin, ...geo.attrs });
  const pw = w.get('pointwise_kernel')!;
  const y = convNode(ctx, depthwise, hwioToOihw({ shape: pw.shape, data: pw.data }), useBias ? w.get('bias')!.data : null,
    { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0] });
  return finish(ctx, y, [x!.shape[0]!, geo.outH, geo.outW, filters]);
}

/**
 * Conv2DTranspose. Keras sizes the output as deconv_output_length: valid → in·s + max(k_eff − s, 0); same → in·s;
 * with output_padding → (in − 1)·s + k_eff − 2·pad + output_padding (pad = ⌊k_eff/2⌋ for same, 0 for valid) — and
 * computes it as the transpose of the forward conv from that size, padded TF-style. In every case
 * D = out − (in − 1)·s does not depend on `in`, so the ONNX pads and output_padding are static.
 */
export function emitConv2DTranspose(ctx: EmitContext, [x]: KTensor[]): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x!, 4);
  const cin = ctx.known(x!, 3, 'channel count');
  const filters = ctx.num('filters', 0);
  const k = ctx.pair('kernel_size', 1);
  const s = ctx.pair('strides', 1);
  const d = ctx.pair('dilation_rate', 1);
  const padding = ctx.str('padding', 'valid').toLowerCase();
  if (padding !== 'same' && padding !== 'valid') throw unsupported(ctx.layer, `padding '${padding}' is not supported (same or valid)`);
  const outputPadding = ctx.config.output_padding === undefined || ctx.config.output_padding === null ? null : ctx.pair('output_padding', 0);
  const useBias = ctx.bool('use_bias', true);
  const specs: WeightSpec[] = [{ role: 'kernel', shape: [k[0], k[1], filters, cin] }];
  if (useBias) specs.push({ role: 'bias', shape: [filters] });
  const w = ctx.weights(specs);

  const pads = [0, 0, 0, 0];
  const extra = [0, 0];
  const outSize: (number | null)[] = [];
  for (let i = 0; i < 2; i++) {
    const eff = (k[i]! - 1) * d[i]! + 1;
    const dd = outputPadding === null
      ? (padding === 'valid' ? s[i]! + Math.max(eff - s[i]!, 0) : s[i]!)
      : eff - 2 * (padding === 'same' ? Math.floor(eff / 2) : 0) + outputPadding[i]!;
    const total = Math.max(eff - dd, 0);
    pads[i] = Math.floor(total / 2);
    pads[i + 2] = total - Math.floor(total / 2);
    extra[i] = dd - (eff - total);
    if (extra[i]! < 0 || extra[i]! >= Math.max(s[i]!, d[i]!)) throw unsupported(ctx.layer, `output_padding ${JSON.stringify(outputPadding)} is not valid for strides ${s.join('×')}`);
    const n = x!.shape[i + 1] ?? null;
    outSize.push(n === null ? null : (n - 1) * s[i]! + dd);
  }
  // Keras (kh, kw, out, in) → ONNX ConvTranspose (in, out, kh, kw).
  const [kh, kw] = k;
  const src = w.get('kernel')!.data;
  const dst = new Float32Array(src.length);
  for (let h = 0; h < kh; h++) for (let ww = 0; ww < kw; ww++) for (let o = 0; o < filters; o++) for (let i = 0; i < cin; i++) {
    dst[((i * filters + o) * kh + h) * kw + ww] = src[((h * kw + ww) * filters + o) * cin + i]!;
  }
  const inputs = [x!.value, ctx.constant('kernel', [cin, filters, kh, kw], dst)];
  if (useBias) inputs.push(ctx.constant('bias', [filters], w.get('bias')!.data));
  const y = ctx.node('ConvTranspose', inputs, { kernel_shape: k, strides: s, dilations: d, pads, output_padding: extra });
  return finish(ctx, y, [x!.shape[0]!, outSize[0]!, outSize[1]!, filters]);
}
