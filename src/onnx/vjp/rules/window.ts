// What Conv and the pools share: output-size inference for a sliding window, the begin/end pads when they are
// static, and the adjoint of a strided/padded window op as a full ConvTranspose plus a crop.
import type { VjpContext } from '../context.js';
import type { SDim } from '../dims.js';
import type { InferArgs } from '../static.js';

/** Output dims of Conv / MaxPool / AveragePool / LpPool (N, C or M, then one dim per spatial axis). */
export function inferWindow({ node, a, dims, set }: InferArgs): void {
  const op = node.opType;
  const x = dims(0);
  if (!x) return;
  const w = op === 'Conv' ? dims(1) : undefined;
  const kernel = (a.kernel_shape as number[] | undefined) ?? (w ? (w.slice(2) as number[]) : undefined);
  const out: SDim[] = [x[0] ?? null, op === 'Conv' ? (w?.[0] ?? null) : (x[1] ?? null)];
  for (let i = 2; i < x.length; i++) {
    const k = kernel?.[i - 2];
    const s = (a.strides as number[] | undefined)?.[i - 2] ?? 1;
    const dl = (a.dilations as number[] | undefined)?.[i - 2] ?? 1;
    const pads = a.pads as number[] | undefined;
    const autoPad = (a.auto_pad as string | undefined) ?? 'NOTSET';
    const h = x[i] ?? null;
    if (typeof k !== 'number') { out.push(null); continue; }
    const ke = (k - 1) * dl + 1;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
      out.push(s === 1 ? h : typeof h === 'number' ? Math.ceil(h / s) : null);
    } else {
      const pb = autoPad === 'VALID' ? 0 : pads?.[i - 2] ?? 0;
      const pe = autoPad === 'VALID' ? 0 : pads?.[i - 2 + x.length - 2] ?? 0;
      if (typeof h === 'number') {
        const r = (h + pb + pe - ke) / s;
        out.push((a.ceil_mode ? Math.ceil(r) : Math.floor(r)) + 1);
      } else out.push(s === 1 && pb + pe === ke - 1 ? h : null);
    }
  }
  set(0, out);
  if (op === 'MaxPool') set(1, out);
}

/**
 * Static begin/end pads per spatial axis when they do not depend on the input size (explicit pads, VALID, or
 * SAME at stride 1). `kernel` is the effective (dilated) kernel extent.
 */
export function staticBeginEnd(autoPad: string, pads: number[] | undefined, kernel: number[], strides: number[]): [number[], number[]] | undefined {
  const n = kernel.length;
  if (autoPad === 'VALID') return [Array(n).fill(0), Array(n).fill(0)];
  if (autoPad === 'NOTSET' || autoPad === '') return [pads?.slice(0, n) ?? Array(n).fill(0), pads?.slice(n, 2 * n) ?? Array(n).fill(0)];
  if (strides.some((s) => s !== 1)) return undefined;
  const total = kernel.map((k) => k - 1);
  const pb = total.map((t) => (autoPad === 'SAME_LOWER' ? Math.ceil(t / 2) : Math.floor(t / 2)));
  return [pb, total.map((t, i) => t - pb[i]!)];
}

/**
 * Begin pads per spatial axis as an int64 tensor: static when possible, else for SAME computed in-graph as
 * ⌊max((o−1)·s + k − H, 0)/2⌋ (SAME_UPPER) or ⌈…⌉ (SAME_LOWER), o = output size of `outRef`, H = `hx` (the
 * input's spatial sizes), k the effective kernel.
 */
export function beginPads(
  ctx: VjpContext, hx: string, outRef: string, kernel: number[], strides: number[], autoPad: string, pads: number[] | undefined,
): string {
  const st = staticBeginEnd(autoPad, pads, kernel, strides);
  if (st) return ctx.ints(st[0]);
  const nsp = kernel.length;
  const o = ctx.shapeSlice(outRef, 2);
  const full = ctx.op('Add', [ctx.op('Mul', [ctx.op('Sub', [o, ctx.ints([1])]), ctx.ints(strides)]), ctx.ints(kernel)]);
  const total = ctx.op('Max', [ctx.op('Sub', [full, hx]), ctx.ints(Array(nsp).fill(0))]);
  return autoPad === 'SAME_LOWER'
    ? ctx.op('Div', [ctx.op('Add', [total, ctx.ints([1])]), ctx.ints([2])])
    : ctx.op('Div', [total, ctx.ints([2])]);
}

/**
 * The adjoint of a strided/padded "window" op (Conv or sum-pool) by ConvTranspose: a full transposed
 * convolution (no pads, output_padding = stride − 1 so the last rows are always covered) followed by a
 * Slice [pb : pb + H] per spatial axis (pb from {@link beginPads}).
 */
export function transposeAndCrop(
  ctx: VjpContext, g: string, w: string, x: string, kernel: number[], strides: number[], autoPad: string,
  pads: number[] | undefined, group: number, outRef: string, dilations?: number[],
): string {
  const dilated = dilations?.some((d) => d !== 1) ?? false;
  const ct = ctx.op('ConvTranspose', [g, w], {
    kernel_shape: kernel, strides, group: group === 1 ? undefined : group, output_padding: strides.map((s) => s - 1),
    dilations: dilated ? dilations : undefined,
  });
  const extent = kernel.map((k, i) => (k - 1) * (dilations?.[i] ?? 1) + 1);
  const hx = ctx.shapeSlice(x, 2);
  const starts = beginPads(ctx, hx, outRef, extent, strides, autoPad, pads);
  const ends = ctx.op('Add', [starts, hx]);
  return ctx.op('Slice', [ct, starts, ends, ctx.ints(kernel.map((_, i) => i + 2))]);
}
