// Keras activations (the `activation` argument of any layer, the Activation layer) and the activation layers
// (ReLU, LeakyReLU, PReLU, ELU, Softmax, ThresholdedReLU). Piecewise functions are written with Relu, Exp, Abs
// and arithmetic rather than Clip/Elu/Softplus, so the autodiff (src/onnx/vjp) can differentiate them: DeepDream
// and style transfer run gradients through imported models. Every form is exact (up to float rounding).
import { type EmitContext, type KTensor, type Shape, layoutParam, physicalAxis, unsupported } from './context.js';

const SELU_ALPHA = 1.6732632423543772848170429916717;
const SELU_SCALE = 1.0507009873554804934193349852946;

/** The activation's name from a config value: a string, or a Keras 3 `{class_name: 'function', config: name}`. */
export function activationName(v: unknown): string {
  if (v === undefined || v === null) return 'linear';
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if (typeof o.config === 'string') return o.config;
    if (typeof o.class_name === 'string') return o.class_name;
  }
  return String(v);
}

/** min(relu(x), cap) with Relu only: relu(x) − relu(relu(x) − cap). */
function reluCapped(ctx: EmitContext, x: string, cap: number): string {
  const r = ctx.node('Relu', [x]);
  return ctx.node('Sub', [r, ctx.node('Relu', [ctx.node('Sub', [r, ctx.g.scalar(cap)])])]);
}

/** x > 0 ? x : alpha·(exp(x) − 1), as relu(x) + alpha·(exp(−relu(−x)) − 1). */
export function elu(ctx: EmitContext, x: string, alpha: number): string {
  const negPart = ctx.node('Neg', [ctx.node('Relu', [ctx.node('Neg', [x])])]);
  const expm1 = ctx.node('Sub', [ctx.node('Exp', [negPart]), ctx.g.scalar(1)]);
  return ctx.node('Add', [ctx.node('Relu', [x]), alpha === 1 ? expm1 : ctx.node('Mul', [expm1, ctx.g.scalar(alpha)])]);
}

/** log(1 + eˣ) without overflow: relu(x) + log(1 + e^−|x|). */
function softplus(ctx: EmitContext, x: string): string {
  const tail = ctx.node('Log', [ctx.node('Add', [ctx.node('Exp', [ctx.node('Neg', [ctx.node('Abs', [x])])]), ctx.g.scalar(1)])]);
  return ctx.node('Add', [ctx.node('Relu', [x]), tail]);
}

/** clip(a·x + b, 0, 1). */
function hardSigmoid(ctx: EmitContext, x: string, a: number, b: number): string {
  const y = ctx.node('Add', [ctx.node('Mul', [x, ctx.g.scalar(a)]), ctx.g.scalar(b)]);
  return reluCapped(ctx, y, 1);
}

function gelu(ctx: EmitContext, x: string, approximate: boolean): string {
  const half = ctx.node('Mul', [x, ctx.g.scalar(0.5)]);
  let inner: string;
  if (approximate) {
    // tanh(√(2/π)·(x + 0.044715·x³))
    const cube = ctx.node('Mul', [ctx.node('Mul', [x, x]), x]);
    const poly = ctx.node('Add', [x, ctx.node('Mul', [cube, ctx.g.scalar(0.044715)])]);
    inner = ctx.node('Tanh', [ctx.node('Mul', [poly, ctx.g.scalar(Math.sqrt(2 / Math.PI))])]);
  } else {
    inner = ctx.node('Erf', [ctx.node('Mul', [x, ctx.g.scalar(Math.SQRT1_2)])]);
  }
  return ctx.node('Mul', [half, ctx.node('Add', [inner, ctx.g.scalar(1)])]);
}

/** Applies a Keras activation by name to `x` (Keras shape `shape`); returns the activated value. */
export function activate(ctx: EmitContext, x: string, shape: Shape, activation: unknown): string {
  const name = activationName(activation);
  const rank = shape.length;
  const keras3 = ctx.options.hardSigmoid === 'keras3';
  switch (name) {
    case 'linear': return x;
    case 'relu': return ctx.node('Relu', [x]);
    case 'relu6': return reluCapped(ctx, x, 6);
    case 'leaky_relu': return ctx.node('LeakyRelu', [x], { alpha: { float: 0.2 } });
    case 'elu': return elu(ctx, x, 1);
    case 'selu': return ctx.node('Mul', [elu(ctx, x, SELU_ALPHA), ctx.g.scalar(SELU_SCALE)]);
    case 'gelu': return gelu(ctx, x, false);
    case 'gelu_new': case 'gelu_approximate': return gelu(ctx, x, true);
    case 'swish': case 'silu': return ctx.node('Mul', [x, ctx.node('Sigmoid', [x])]);
    case 'sigmoid': return ctx.node('Sigmoid', [x]);
    // Keras 2 / tfjs: clip(0.2x + 0.5, 0, 1). Keras 3: relu6(x + 3)/6 = clip(x/6 + 0.5, 0, 1).
    case 'hard_sigmoid': return keras3 ? hardSigmoid(ctx, x, 1 / 6, 0.5) : hardSigmoid(ctx, x, 0.2, 0.5);
    case 'hard_silu': case 'hard_swish': return ctx.node('Mul', [x, hardSigmoid(ctx, x, 1 / 6, 0.5)]);
    case 'tanh': return ctx.node('Tanh', [x]);
    case 'softmax': return ctx.node('Softmax', [x], { axis: physicalAxis(-1, rank) });
    case 'log_softmax': return ctx.node('LogSoftmax', [x], { axis: physicalAxis(-1, rank) });
    case 'softplus': return softplus(ctx, x);
    case 'softsign': return ctx.node('Div', [x, ctx.node('Add', [ctx.node('Abs', [x]), ctx.g.scalar(1)])]);
    case 'mish': return ctx.node('Mul', [x, ctx.node('Tanh', [softplus(ctx, x)])]);
    case 'exponential': return ctx.node('Exp', [x]);
    default: throw unsupported(ctx.layer, `activation '${name}' is not supported`);
  }
}

// ---- layers ------------------------------------------------------------------------------------------

export function emitActivation(ctx: EmitContext, [x]: KTensor[]): KTensor {
  return { value: activate(ctx, x!.value, x!.shape, ctx.config.activation), shape: x!.shape };
}

/**
 * Keras ReLU(max_value, negative_slope, threshold), as keras.activations.relu computes it:
 * y = (threshold ≠ 0 ? x·[x > threshold] : relu(x)), clipped to [0, max_value] if set, minus
 * negative_slope·relu(threshold − x).
 */
export function emitReLU(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const maxValue = ctx.optNum('max_value');
  const slope = ctx.num('negative_slope', 0);
  const threshold = ctx.num('threshold', 0);
  let y = threshold !== 0
    ? ctx.node('Mul', [x!.value, ctx.node('Cast', [ctx.node('Greater', [x!.value, ctx.g.scalar(threshold)])], { to: 1 })])
    : ctx.node('Relu', [x!.value]);
  if (maxValue !== null) y = reluCapped(ctx, y, maxValue);
  if (slope !== 0) {
    const below = ctx.node('Relu', [threshold !== 0 ? ctx.node('Sub', [ctx.g.scalar(threshold), x!.value]) : ctx.node('Neg', [x!.value])]);
    y = ctx.node('Sub', [y, ctx.node('Mul', [below, ctx.g.scalar(slope)])]);
  }
  return { value: y, shape: x!.shape };
}

export function emitLeakyReLU(ctx: EmitContext, [x]: KTensor[]): KTensor {
  // Keras 2 / tfjs call the slope `alpha`, Keras 3 `negative_slope`; the default is 0.3 in both.
  const slope = ctx.optNum('negative_slope') ?? ctx.num('alpha', 0.3);
  return { value: ctx.node('LeakyRelu', [x!.value], { alpha: { float: slope } }), shape: x!.shape };
}

export function emitELU(ctx: EmitContext, [x]: KTensor[]): KTensor {
  return { value: elu(ctx, x!.value, ctx.num('alpha', 1)), shape: x!.shape };
}

export function emitThresholdedReLU(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const theta = ctx.num('theta', 1);
  const mask = ctx.node('Cast', [ctx.node('Greater', [x!.value, ctx.g.scalar(theta)])], { to: 1 });
  return { value: ctx.node('Mul', [x!.value, mask]), shape: x!.shape };
}

export function emitSoftmax(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const axes = ctx.axes('axis', -1);
  if (axes.length !== 1) throw unsupported(ctx.layer, `softmax over several axes (${axes.join(', ')}) is not supported`);
  return { value: ctx.node('Softmax', [x!.value], { axis: physicalAxis(axes[0]!, x!.shape.length) }), shape: x!.shape };
}

/** PReLU: relu(x) − alpha·relu(−x), alpha of shape input_shape[1:] with `shared_axes` collapsed to 1. */
export function emitPReLU(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const shape = x!.shape;
  const shared = ctx.config.shared_axes;
  const sharedAxes = typeof shared === 'number' ? [shared] : Array.isArray(shared) ? (shared as number[]) : [];
  const alphaShape = shape.slice(1).map((d, i) => (sharedAxes.includes(i + 1) ? 1 : d));
  if (alphaShape.some((d) => d === null)) throw unsupported(ctx.layer, `the alpha shape depends on unknown input dims ${JSON.stringify(shape)}`);
  const w = ctx.weights([{ role: 'alpha', shape: alphaShape as number[] }]);
  const p = layoutParam(w.get('alpha')!.data, [1, ...(alphaShape as number[])]);
  const alpha = ctx.constant('alpha', p.dims, p.data);
  const neg = ctx.node('Mul', [ctx.node('Relu', [ctx.node('Neg', [x!.value])]), alpha]);
  return { value: ctx.node('Sub', [ctx.node('Relu', [x!.value]), neg]), shape };
}
