// Normalisation and rescaling layers at inference: BatchNormalization (moving statistics; folded into a preceding
// convolution by the conv emitters when possible), LayerNormalization, Rescaling, Normalization.
import type { KLayer } from '../ir.js';
import { type EmitContext, type KTensor, type WeightSpec, broadcastParam, kerasAxis, unsupported } from './context.js';

/** Keras' default BatchNormalization epsilon. */
const BN_EPSILON = 1e-3;

/** The single normalised axis of a BatchNormalization (positive, Keras order). Keras 2 exports may list it. */
export function bnAxis(layer: KLayer, rank: number): number {
  const v = layer.config.axis ?? -1;
  const axes = typeof v === 'number' ? [v] : Array.isArray(v) ? (v as number[]) : [];
  if (axes.length !== 1) throw unsupported(layer, `BatchNormalization over axes ${JSON.stringify(v)} is not supported (one axis only)`);
  return kerasAxis(axes[0]!, rank);
}

/**
 * Inference BatchNormalization as a per-channel affine map y = scale·x + shift, in float64:
 * scale = gamma/√(var + ε), shift = beta − mean·scale (gamma = 1 when scale=False, beta = 0 when center=False).
 */
export function bnAffine(ctx: EmitContext, layer: KLayer, path: string, channels: number): { scale: Float64Array; shift: Float64Array } {
  const c = layer.config;
  const hasScale = c.scale !== false;
  const hasCenter = c.center !== false;
  const eps = typeof c.epsilon === 'number' ? c.epsilon : BN_EPSILON;
  const specs: WeightSpec[] = [];
  if (hasScale) specs.push({ role: 'gamma', shape: [channels] });
  if (hasCenter) specs.push({ role: 'beta', shape: [channels] });
  specs.push({ role: 'moving_mean', shape: [channels] }, { role: 'moving_variance', shape: [channels] });
  const w = ctx.weightsOf(layer, path, specs);
  const gamma = w.get('gamma')?.data;
  const beta = w.get('beta')?.data;
  const mean = w.get('moving_mean')!.data;
  const variance = w.get('moving_variance')!.data;
  const scale = new Float64Array(channels);
  const shift = new Float64Array(channels);
  for (let i = 0; i < channels; i++) {
    scale[i] = (gamma ? gamma[i]! : 1) / Math.sqrt(variance[i]! + eps);
    shift[i] = (beta ? beta[i]! : 0) - mean[i]! * scale[i]!;
  }
  return { scale, shift };
}

export function emitBatchNormalization(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const rank = x!.shape.length;
  const axis = bnAxis(ctx.layer, rank);
  if (axis === 0) throw unsupported(ctx.layer, 'normalising over the batch axis is not supported');
  const channels = ctx.known(x!, axis, `axis ${axis}`);
  const { scale, shift } = bnAffine(ctx, ctx.layer, ctx.path, channels);
  const s = broadcastParam(scale, [axis], x!.shape);
  const t = broadcastParam(shift, [axis], x!.shape);
  const y = ctx.node('Mul', [x!.value, ctx.constant('scale', s.dims, s.data)]);
  return { value: ctx.node('Add', [y, ctx.constant('shift', t.dims, t.data)]), shape: x!.shape };
}

/** (x − mean)/√(var + ε)·gamma + beta over `axis` (default the last), mean and variance per sample. */
export function emitLayerNormalization(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const shape = x!.shape;
  const rank = shape.length;
  const axes = ctx.axes('axis', -1).map((a) => kerasAxis(a, rank)).sort();
  if (axes.includes(0)) throw unsupported(ctx.layer, 'normalising over the batch axis is not supported');
  if (ctx.bool('rms_scaling', false)) throw unsupported(ctx.layer, 'rms_scaling=True is not supported');
  const eps = ctx.num('epsilon', 1e-3);
  const paramShape = axes.map((a) => ctx.known(x!, a, `axis ${a}`));
  const specs: WeightSpec[] = [];
  if (ctx.bool('scale', true)) specs.push({ role: 'gamma', shape: paramShape });
  if (ctx.bool('center', true)) specs.push({ role: 'beta', shape: paramShape });
  const w = ctx.weights(specs);
  const onnxAxes = axes.map((a) => (rank === 4 ? [0, 2, 3, 1][a]! : a));
  const mean = ctx.node('ReduceMean', [x!.value], { axes: onnxAxes, keepdims: 1 });
  const centered = ctx.node('Sub', [x!.value, mean]);
  const variance = ctx.node('ReduceMean', [ctx.node('Mul', [centered, centered])], { axes: onnxAxes, keepdims: 1 });
  let y = ctx.node('Div', [centered, ctx.node('Sqrt', [ctx.node('Add', [variance, ctx.g.scalar(eps)])])]);
  const gamma = w.get('gamma');
  if (gamma) {
    const p = broadcastParam(gamma.data, axes, shape);
    y = ctx.node('Mul', [y, ctx.constant('gamma', p.dims, p.data)]);
  }
  const beta = w.get('beta');
  if (beta) {
    const p = broadcastParam(beta.data, axes, shape);
    y = ctx.node('Add', [y, ctx.constant('beta', p.dims, p.data)]);
  }
  return { value: y, shape };
}

/** A config scalar or per-channel list (Rescaling scale/offset, Normalization mean/variance) as numbers. */
function numbers(ctx: EmitContext, key: string, fallback: number): number[] {
  const v = ctx.config[key] ?? fallback;
  const flat = Array.isArray(v) ? (v as unknown[]).flat(8) : [v];
  if (!flat.every((n) => typeof n === 'number')) throw unsupported(ctx.layer, `option ${key}=${JSON.stringify(v)} is not a number or a list of numbers`);
  return flat as number[];
}

/** A scalar or a last-axis vector as a broadcastable constant. */
function lastAxisParam(ctx: EmitContext, x: KTensor, name: string, values: number[]): string {
  if (values.length === 1) return ctx.g.scalar(values[0]!);
  const rank = x.shape.length;
  const channels = ctx.known(x, -1, 'last axis');
  if (values.length !== channels) throw unsupported(ctx.layer, `${name} has ${values.length} values for ${channels} channels`);
  const p = broadcastParam(Float64Array.from(values), [rank - 1], x.shape);
  return ctx.constant(name, p.dims, p.data);
}

/** Rescaling: x·scale + offset. */
export function emitRescaling(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const scale = lastAxisParam(ctx, x!, 'scale', numbers(ctx, 'scale', 1));
  const offset = lastAxisParam(ctx, x!, 'offset', numbers(ctx, 'offset', 0));
  return { value: ctx.node('Add', [ctx.node('Mul', [x!.value, scale]), offset]), shape: x!.shape };
}

/** Keras backend epsilon: the floor of Normalization's standard deviation. */
const KERAS_EPSILON = 1e-7;

/**
 * Normalization: (x − mean)/max(√variance, 1e-7) (Keras 2.x and 3.x), or its inverse with `invert`. Mean and
 * variance come from the config when given as arguments, otherwise from the weights (mean, variance, count).
 */
export function emitNormalization(ctx: EmitContext, [x]: KTensor[]): KTensor {
  const shape = x!.shape;
  const rank = shape.length;
  const axes = ctx.axes('axis', -1).map((a) => kerasAxis(a, rank)).sort();
  const dims = axes.map((a) => ctx.known(x!, a, `axis ${a}`));
  const size = dims.reduce((a, b) => a * b, 1);
  let mean: Float64Array;
  let variance: Float64Array;
  if (ctx.config.mean !== undefined && ctx.config.mean !== null) {
    mean = Float64Array.from(numbers(ctx, 'mean', 0));
    variance = Float64Array.from(numbers(ctx, 'variance', 1));
  } else {
    // Keras 2 stores mean, variance, count; a file without the count holds just mean and variance.
    const specs: WeightSpec[] = [{ role: 'mean', shape: null, size }, { role: 'variance', shape: null, size }];
    if (ctx.storedCount() !== 2) specs.push({ role: 'count', shape: null });
    const w = ctx.weights(specs);
    mean = Float64Array.from(w.get('mean')!.data);
    variance = Float64Array.from(w.get('variance')!.data);
  }
  const expand = (v: Float64Array) => (v.length === 1 ? new Float64Array(size).fill(v[0]!) : v);
  mean = expand(mean);
  variance = expand(variance);
  if (mean.length !== size || variance.length !== size) throw unsupported(ctx.layer, `mean/variance have ${mean.length}/${variance.length} values, the axes need ${size}`);
  const std = variance.map((v) => Math.max(Math.sqrt(v), KERAS_EPSILON));
  const m = broadcastParam(mean, axes, shape);
  const s = broadcastParam(std, axes, shape);
  const meanC = ctx.constant('mean', m.dims, m.data);
  const stdC = ctx.constant('std', s.dims, s.data);
  const value = ctx.bool('invert', false)
    ? ctx.node('Add', [ctx.node('Mul', [x!.value, stdC]), meanC])
    : ctx.node('Div', [ctx.node('Sub', [x!.value, meanC]), stdC]);
  return { value, shape };
}
