// Conv2D filter gradient for backends without a Conv2DBackpropFilter kernel (tfjs-backend-wasm 4.22 has none, so
// training any convnet on wasm fails). We override the *gradient* of Conv2D (tf.registerGradient): the input part
// stays the stock one (Conv2DBackpropInput exists on wasm); the filter part is computed with forward ops only:
//
//   dW[kh, kw, ci, co] = Σ_{n, h, w} xp[n, h·s + kh, w·s + kw, ci] · dy[n, h, w, co]        (xp = x padded)
//
// which is a forward conv2d of xp transposed to [ci, Hp, Wp, n] (batch = ci, channels = n) with dy transposed to
// [oh, ow, n, co] as the filter, dilation = stride, stride 1, 'valid' padding; its output [ci, ≥kh, ≥kw, co] is
// sliced to [kh, kw] and transposed to [kh, kw, ci, co]. Gradient functions may call ordinary tf ops (a custom
// *kernel* calling tf ops crashed: its intermediates were disposed under it — training-notes.md).
//
// The override is global (gradients are not per backend), so it dispatches at call time: backends that have a
// Conv2DBackpropFilter kernel keep the stock path.
import * as tf from '@tensorflow/tfjs';

type Pad = 'same' | 'valid' | number | number[][];

interface Conv2DAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat?: 'NHWC' | 'NCHW';
  dilations?: number | [number, number];
}

const pair = (v: number | [number, number] | undefined, dflt = 1): [number, number] =>
  v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : v;

/** [top, bottom, left, right] padding TensorFlow applies for this convolution. */
export function convPadding(
  inH: number, inW: number, kh: number, kw: number, strides: [number, number], pad: Pad,
): [number, number, number, number] {
  if (pad === 'valid') return [0, 0, 0, 0];
  if (typeof pad === 'number') return [pad, pad, pad, pad];
  if (Array.isArray(pad)) {
    // explicit NHWC padding [[0,0],[top,bottom],[left,right],[0,0]]
    const [, hp, wp] = pad;
    return [hp?.[0] ?? 0, hp?.[1] ?? 0, wp?.[0] ?? 0, wp?.[1] ?? 0];
  }
  const [sh, sw] = strides;
  const oh = Math.ceil(inH / sh);
  const ow = Math.ceil(inW / sw);
  const padH = Math.max((oh - 1) * sh + kh - inH, 0);
  const padW = Math.max((ow - 1) * sw + kw - inW, 0);
  const top = Math.floor(padH / 2);
  const left = Math.floor(padW / 2);
  return [top, padH - top, left, padW - left];
}

/**
 * The Conv2D filter gradient (NHWC, dilation 1) computed with forward convolutions only.
 * @param x input [n, H, W, ci]; @param dy output gradient [n, oh, ow, co]; @param filterShape [kh, kw, ci, co]
 */
export function conv2dFilterGradViaForward(
  x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: [number, number, number, number],
  strides: number | [number, number], pad: Pad,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = filterShape;
    const [sh, sw] = pair(strides);
    const [, inH, inW] = x.shape;
    const [, oh, ow] = dy.shape;
    const [top, bottom, left, right] = convPadding(inH, inW, kh, kw, [sh, sw], pad);
    // Only the rows/cols the convolution actually reads: (o-1)·s + k from the padded origin.
    const needH = (oh - 1) * sh + kh;
    const needW = (ow - 1) * sw + kw;
    let xp: tf.Tensor4D = x;
    if (top || bottom || left || right) xp = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]]);
    if (xp.shape[1] > needH || xp.shape[2] > needW) {
      xp = tf.slice(xp, [0, 0, 0, 0], [-1, Math.min(needH, xp.shape[1]), Math.min(needW, xp.shape[2]), -1]);
    }
    const xt = tf.transpose(xp, [3, 1, 2, 0]); // [ci, Hp, Wp, n]
    const dyt = tf.transpose(dy, [1, 2, 0, 3]); // [oh, ow, n, co]
    const g = tf.conv2d(xt as tf.Tensor4D, dyt as tf.Tensor4D, 1, 'valid', 'NHWC', [sh, sw]); // [ci, kh', kw', co]
    const gs = g.shape[1] === kh && g.shape[2] === kw ? g : tf.slice(g, [0, 0, 0, 0], [-1, kh, kw, -1]);
    return tf.transpose(gs, [1, 2, 0, 3]) as tf.Tensor4D; // [kh, kw, ci, co]
  });
}

let stock: tf.GradConfig | undefined;
let installed = false;
let forced = false;

/** True when the active backend has no native Conv2DBackpropFilter kernel (wasm). */
export function needsForwardFilterGrad(backend = tf.getBackend()): boolean {
  return tf.getKernel('Conv2DBackpropFilter', backend) === undefined;
}

/**
 * Registers the Conv2D gradient override (idempotent). On backends with a Conv2DBackpropFilter kernel the
 * stock gradient runs unchanged; elsewhere the filter part uses {@link conv2dFilterGradViaForward}.
 * @param force always use the forward-conv filter gradient (tests).
 */
export function installConv2DGradientOverride(opts: { force?: boolean } = {}): void {
  if (!stock) {
    stock = tf.getGradient('Conv2D');
    if (!stock) throw new Error('tfjs has no stock Conv2D gradient to extend');
  }
  forced = opts.force ?? false;
  if (installed) return;
  installed = true;
  const base = stock;
  tf.registerGradient({
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const grads = base.gradFunc(dy, saved, attrs) as { x: () => tf.Tensor; filter: () => tf.Tensor };
      if (!forced && !needsForwardFilterGrad()) return grads;
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const a = attrs as unknown as Conv2DAttrs;
      if (a.dataFormat === 'NCHW') throw new Error('Conv2D filter gradient via forward convs: only NHWC is supported');
      const [dh, dw] = pair(a.dilations);
      if (dh !== 1 || dw !== 1) throw new Error('Conv2D filter gradient via forward convs: dilations must be 1');
      return {
        x: grads.x,
        filter: () => conv2dFilterGradViaForward(x, dy as tf.Tensor4D, filter.shape, a.strides, a.pad),
      };
    },
  });
}

/** Restores tfjs's stock Conv2D gradient (tests). */
export function uninstallConv2DGradientOverride(): void {
  if (!installed || !stock) return;
  tf.registerGradient(stock);
  installed = false;
  forced = false;
}
