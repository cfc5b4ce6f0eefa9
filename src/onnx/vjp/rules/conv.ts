// Conv: data gradient by a flipped-weight Conv (stride 1) or ConvTranspose + crop (any stride / group).
import { type OpRule, type Vjp, fail, g0, list, num } from '../rule.js';
import { inferWindow, staticBeginEnd, transposeAndCrop } from './window.js';

const convVjp: Vjp = (args) => {
  const { ctx, x: [X, W, B], a, need } = args;
  if (need[1] || (B && need[2])) fail(args, 'gradients w.r.t. weights or bias are not supported (only w.r.t. the data input)');
  if (!need[0]) return [];
  const g = g0(args);
  const wd = ctx.dims(W!);
  const kernel = (a.kernel_shape as number[] | undefined) ?? (wd?.slice(2) as number[] | undefined);
  if (!kernel || kernel.some((k) => typeof k !== 'number')) fail(args, 'kernel size unknown (no kernel_shape and weight dims unknown)');
  const k = kernel!;
  const n = k.length;
  const strides = list(a.strides, n, 1);
  const dil = list(a.dilations, n, 1);
  if (dil.some((d) => d !== 1)) fail(args, `dilations [${dil}] are not supported (only 1)`);
  const group = num(a.group, 1);
  const autoPad = (a.auto_pad as string | undefined) ?? 'NOTSET';
  const pads = a.pads as number[] | undefined;
  if (group === 1 && strides.every((s) => s === 1) && ctx.options.convBackward !== 'transpose') {
    const [pb, pe] = staticBeginEnd(autoPad, pads, k, strides)!;
    const pb2 = k.map((kk, i) => kk - 1 - pb[i]!);
    const pe2 = k.map((kk, i) => kk - 1 - pe[i]!);
    if ([...pb2, ...pe2].every((p) => p >= 0)) {
      // dx = Conv(dy, W′): W′ = W with in/out channels swapped and the kernel flipped; ORT folds W′ at load.
      const wf = ctx.flippedWeight(W!, k);
      return [ctx.op('Conv', [g, wf], { kernel_shape: k, pads: [...pb2, ...pe2] }, 'dconv')];
    }
  }
  return [transposeAndCrop(ctx, g, W!, X!, k, strides, autoPad, pads, group, args.y[0]!)];
};

export const convRules: Record<string, OpRule> = {
  Conv: { infer: inferWindow, grad: { kind: 'input', vjp: convVjp } },
};
