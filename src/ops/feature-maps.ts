// Static facts about the values of a forward ONNX graph that the gradient ops need before running it: which
// values are 4-D feature maps (NCHW), their channel count, whether a conv or an activation made them, and the
// spatial size they have for a given input size (hence the smallest input a layer accepts). A small propagation
// over the ops our graphs use (the architectures', the Keras converter's, the trained models'); a value it
// cannot follow is simply "unknown" (no rank, no channels, no size), never a guess.
import type { GraphProto, NodeProto, TensorProto } from '../onnx/proto.js';
import { attributeValue, tensorToInt64 } from '../onnx/proto.js';

export type LayerRole = 'conv' | 'activation' | 'other';

export interface ValueFacts {
  rank?: number;
  /** Dimension 1 (channels) of a 4-D value. */
  channels?: number;
  /** The op that computed the value (through Identity nodes). */
  op: string;
}

const CONV_OPS = new Set(['Conv', 'ConvTranspose']);
const ACTIVATION_OPS = new Set([
  'Relu', 'LeakyRelu', 'Elu', 'Selu', 'Celu', 'PRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Softplus', 'Softsign',
  'Clip', 'Gelu', 'Mish', 'ThresholdedRelu',
]);
/** Ops whose output has the shape of their first input (activations, normalisation, casts, dropout…). */
const SAME_SHAPE_OPS = new Set([
  ...ACTIVATION_OPS, 'Identity', 'Dropout', 'BatchNormalization', 'InstanceNormalization', 'LRN', 'Neg', 'Abs', 'Exp', 'Log',
  'Sqrt', 'Reciprocal', 'Erf', 'Cast', 'Floor', 'Ceil', 'Round', 'Softmax', 'LogSoftmax',
]);
/** Elementwise ops with broadcasting: the output has the largest rank of their inputs. */
const BROADCAST_OPS = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'Where']);
/** Ops that keep the channels and change (or may change) the spatial size. */
const SPATIAL_OPS = new Set(['MaxPool', 'AveragePool', 'LpPool', 'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool', 'Pad', 'Resize', 'Upsample']);

export function roleOfOp(op: string): LayerRole {
  return CONV_OPS.has(op) ? 'conv' : ACTIVATION_OPS.has(op) ? 'activation' : 'other';
}

type Graph = Pick<GraphProto, 'node' | 'initializer' | 'input'>;

function attr(n: NodeProto, name: string): ReturnType<typeof attributeValue> {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a ? attributeValue(a) : undefined;
}

function constants(g: Graph): Map<string, TensorProto> {
  const m = new Map<string, TensorProto>();
  for (const t of g.initializer ?? []) m.set(t.name ?? '', t as TensorProto);
  for (const n of g.node ?? []) {
    const v = n.opType === 'Constant' ? attr(n as NodeProto, 'value') : undefined;
    if (v && typeof v === 'object' && !Array.isArray(v)) m.set(n.output![0]!, v);
  }
  return m;
}

/** Rank, channels and origin op of every value of the graph (inputs, initializers, node outputs). */
export function analyseGraph(g: Graph): Map<string, ValueFacts> {
  const facts = new Map<string, ValueFacts>();
  const consts = constants(g);
  for (const i of g.input ?? []) {
    const dims = i.type?.tensorType?.shape?.dim ?? [];
    const c = dims[1]?.dimValue;
    facts.set(i.name ?? '', { rank: dims.length, channels: dims.length === 4 && c != null ? Number(c) : undefined, op: 'input' });
  }
  for (const [name, t] of consts) facts.set(name, { rank: (t.dims ?? []).length, op: 'Constant' });
  for (const node of (g.node ?? []) as NodeProto[]) {
    const ins = (node.input ?? []).map((v) => facts.get(v));
    const first = ins[0];
    const op = node.opType ?? '';
    let f: ValueFacts = { op };
    // Identity keeps the facts and the op of the value it forwards (a Keras layer's named output is an Identity).
    if (op === 'Identity') f = first ? { ...first } : { op };
    else if (CONV_OPS.has(op)) {
      const w = consts.get(node.input?.[1] ?? '');
      const group = Number(attr(node, 'group') ?? 1);
      const channels = w?.dims ? Number(op === 'Conv' ? w.dims[0] : Number(w.dims[1]) * group) : undefined;
      f = { rank: first?.rank, channels, op };
    } else if (SAME_SHAPE_OPS.has(op) || SPATIAL_OPS.has(op)) f = { rank: first?.rank, channels: first?.channels, op };
    else if (BROADCAST_OPS.has(op)) {
      const ranks = ins.map((x) => x?.rank);
      const known = ranks.every((r) => r !== undefined);
      const rank = known ? Math.max(...(ranks as number[])) : undefined;
      const channels = rank === 4 ? Math.max(...ins.filter((x) => x?.rank === 4 && x.channels !== undefined).map((x) => x!.channels!), 0) || undefined : undefined;
      f = { rank, channels, op };
    } else if (op === 'Concat') {
      const rank = first?.rank;
      const axisRaw = Number(attr(node, 'axis') ?? 0);
      const axis = rank !== undefined && axisRaw < 0 ? axisRaw + rank : axisRaw;
      const channels = rank !== 4 ? undefined
        : axis === 1 ? (ins.every((x) => x?.channels !== undefined) ? ins.reduce((s, x) => s + x!.channels!, 0) : undefined)
          : first?.channels;
      f = { rank, channels, op };
    } else if (op === 'Transpose') {
      const perm = attr(node, 'perm');
      f = { rank: first?.rank, channels: Array.isArray(perm) && perm[1] === 1 ? first?.channels : undefined, op };
    } else if (op === 'Flatten' || op === 'Gemm') f = { rank: 2, op };
    else if (op === 'Reshape') {
      const shape = consts.get(node.input?.[1] ?? '');
      f = { rank: shape?.dims?.length === 1 ? Number(shape.dims[0]) : undefined, op };
    } else if (op === 'Shape') f = { rank: 1, op };
    facts.set(node.output?.[0] ?? '', f);
  }
  return facts;
}

type Side = [number, number] | undefined;

function outSide(n: number, k: number, s: number, d: number, padTotal: number, autoPad: string, ceil: boolean): number {
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(n / s);
  const span = n + padTotal - d * (k - 1) - 1;
  if (span < 0) return 0;
  return (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
}

/** H×W of every 4-D value for an H×W input (undefined where the propagation cannot follow). */
export function spatialSides(g: Graph, h: number, w: number): Map<string, Side> {
  const sides = new Map<string, Side>();
  const consts = constants(g);
  for (const i of g.input ?? []) sides.set(i.name ?? '', [h, w]);
  for (const node of (g.node ?? []) as NodeProto[]) {
    const op = node.opType ?? '';
    const ins = (node.input ?? []).map((v) => sides.get(v));
    const first = ins[0];
    let out: Side;
    if (CONV_OPS.has(op) || op === 'MaxPool' || op === 'AveragePool' || op === 'LpPool') {
      if (first) {
        const wt = consts.get(node.input?.[1] ?? '');
        const kernel = (attr(node, 'kernel_shape') as number[] | undefined) ?? (wt?.dims ? wt.dims.slice(2).map(Number) : undefined);
        const strides = (attr(node, 'strides') as number[] | undefined) ?? [1, 1];
        const dil = (attr(node, 'dilations') as number[] | undefined) ?? [1, 1];
        const pads = (attr(node, 'pads') as number[] | undefined) ?? [0, 0, 0, 0];
        const autoPad = String(attr(node, 'auto_pad') ?? 'NOTSET');
        const ceil = Number(attr(node, 'ceil_mode') ?? 0) === 1;
        if (kernel?.length === 2 && op !== 'ConvTranspose') {
          out = [0, 1].map((a) => outSide(first[a]!, kernel[a]!, strides[a]!, dil[a]!, pads[a]! + pads[a + 2]!, autoPad, ceil)) as [number, number];
        }
      }
    } else if (op === 'GlobalAveragePool' || op === 'GlobalMaxPool' || op === 'GlobalLpPool') out = first ? [1, 1] : undefined;
    else if (op === 'Pad') {
      const pads = consts.get(node.input?.[1] ?? '');
      const p = pads ? tensorToInt64(pads) : undefined;
      out = first && p?.length === 8 ? [first[0] + p[2]! + p[6]!, first[1] + p[3]! + p[7]!] : undefined;
    } else if (SAME_SHAPE_OPS.has(op) || op === 'Identity') out = first;
    else if (BROADCAST_OPS.has(op) || op === 'Concat') {
      const known = ins.filter((x): x is [number, number] => x !== undefined);
      out = known.length > 0 ? [Math.max(...known.map((x) => x[0])), Math.max(...known.map((x) => x[1]))] : undefined;
    }
    sides.set(node.output?.[0] ?? '', out);
  }
  return sides;
}

/** The values `targets` depend on (themselves included). */
export function ancestorValues(g: Graph, targets: string[]): Set<string> {
  const producer = new Map<string, NodeProto>();
  for (const n of (g.node ?? []) as NodeProto[]) for (const o of n.output ?? []) producer.set(o, n);
  const seen = new Set<string>();
  const stack = [...targets];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const i of producer.get(v)?.input ?? []) if (i) stack.push(i);
  }
  return seen;
}

/**
 * The smallest square input side for which every 4-D value that `targets` depend on is at least 1×1 (binary
 * search over the propagated sizes, which grow with the input); undefined when the propagation cannot tell.
 */
export function minInputSide(g: Graph, targets: string[], facts: Map<string, ValueFacts>): number | undefined {
  const needed = [...ancestorValues(g, targets)].filter((v) => facts.get(v)?.rank === 4 && facts.get(v)?.op !== 'Constant'); // not the weights
  const fits = (n: number): boolean | undefined => {
    const sides = spatialSides(g, n, n);
    let known = true;
    for (const v of needed) {
      const s = sides.get(v);
      if (!s) { known = false; continue; }
      if (s[0] < 1 || s[1] < 1) return false;
    }
    return known ? true : undefined;
  };
  const MAX = 8192;
  if (fits(MAX) !== true) return undefined;
  let lo = 1, hi = MAX;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fits(mid) === true) hi = mid; else lo = mid + 1;
  }
  return lo;
}
