// Pooling: MaxPooling2D / AveragePooling2D (TF 'same' geometry; average pooling divides by the number of real,
// unpadded cells: count_include_pad=0) and the global poolings (keepdims or not).
import { type EmitContext, type KTensor } from './context.js';
import { windowGeometry } from './conv.js';

function pool(ctx: EmitContext, x: KTensor, op: 'MaxPool' | 'AveragePool'): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x, 4);
  const size = ctx.pair('pool_size', 2);
  const strides = ctx.config.strides === null || ctx.config.strides === undefined ? size : ctx.pair('strides', size);
  const geo = windowGeometry(ctx, x.shape, size, strides);
  const attrs = { kernel_shape: size, strides, ...geo.attrs, ...(op === 'AveragePool' ? { count_include_pad: 0 } : {}) };
  return { value: ctx.node(op, [x.value], attrs), shape: [x.shape[0]!, geo.outH, geo.outW, x.shape[3]!] };
}

export function emitMaxPooling2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  return pool(ctx, x!, 'MaxPool');
}

export function emitAveragePooling2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  return pool(ctx, x!, 'AveragePool');
}

function globalPool(ctx: EmitContext, x: KTensor, op: 'GlobalAveragePool' | 'GlobalMaxPool'): KTensor {
  ctx.requireChannelsLast();
  ctx.requireRank(x, 4);
  const pooled = ctx.node(op, [x.value]); // [N, C, 1, 1]
  if (ctx.bool('keepdims', false)) return { value: pooled, shape: [x.shape[0]!, 1, 1, x.shape[3]!] };
  return { value: ctx.node('Flatten', [pooled], { axis: 1 }), shape: [x.shape[0]!, x.shape[3]!] };
}

export function emitGlobalAveragePooling2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  return globalPool(ctx, x!, 'GlobalAveragePool');
}

export function emitGlobalMaxPooling2D(ctx: EmitContext, [x]: KTensor[]): KTensor {
  return globalPool(ctx, x!, 'GlobalMaxPool');
}
