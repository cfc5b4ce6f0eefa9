// Static (load-time) knowledge about the values of a forward graph: element type class, rank and dims where they
// can be inferred cheaply, and the values of small constant tensors. The autodiff never *needs* full shapes
// (every runtime size is computed in-graph with Shape/Slice/…); this only lets it skip work it can prove
// unnecessary (e.g. un-broadcasting a gradient whose operand was never broadcast) and read attributes such as
// kernel sizes, ranks and constant exponents.
import {
  type AttributeProto, type NodeProto, type TensorProto, type ValueInfoProto,
  DataType, attributeValue, tensorToFloat32, tensorToInt64,
} from '../proto.js';

/** A static dimension: a number, a symbolic name shared by equal dims, or null when unknown. */
export type SDim = number | string | null;

export class StaticInfo {
  readonly dims = new Map<string, SDim[]>();
  readonly ints = new Map<string, number[]>();
  readonly floats = new Map<string, number[]>();
  readonly initializers = new Map<string, TensorProto>();
  /** Values known to be non-float (int64 shapes, bool masks): never differentiable. */
  readonly nonFloat = new Set<string>();
  private symCounter = 0;

  constructor(nodes: NodeProto[], inputs: ValueInfoProto[], initializers: TensorProto[]) {
    for (const t of initializers) {
      const name = t.name ?? '';
      this.initializers.set(name, t);
      this.dims.set(name, (t.dims ?? []).map(Number));
      this.recordConstant(name, t);
    }
    for (const v of inputs) {
      const name = v.name ?? '';
      const tt = v.type?.tensorType;
      if (tt?.elemType !== undefined && tt.elemType !== null && !isFloatType(tt.elemType)) this.nonFloat.add(name);
      if (tt?.shape?.dim) {
        this.dims.set(name, tt.shape.dim.map((d) => {
          if (d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0) return Number(d.dimValue);
          if (d.dimParam) return `sym:${d.dimParam}`;
          return null;
        }));
      }
    }
    for (const n of nodes) {
      try {
        this.inferNode(n);
      } catch {
        // Inference is best effort: an unexpected attribute layout just leaves the outputs unknown.
      }
    }
  }

  rank(name: string): number | undefined {
    return this.dims.get(name)?.length;
  }

  private recordConstant(name: string, t: TensorProto): void {
    if (t.dataLocation === 1 /* EXTERNAL */) {
      if (t.dataType !== DataType.FLOAT) this.nonFloat.add(name);
      return;
    }
    const count = (t.dims ?? []).map(Number).reduce((a, b) => a * b, 1);
    if (t.dataType === DataType.INT64 || t.dataType === DataType.INT32) {
      this.nonFloat.add(name);
      if (count <= 64) {
        this.ints.set(name, t.dataType === DataType.INT64 ? tensorToInt64(t) : int32Values(t));
      }
    } else if (t.dataType === DataType.FLOAT) {
      if (count <= 64) this.floats.set(name, Array.from(tensorToFloat32(t)));
    } else if (!isFloatType(t.dataType ?? 0)) {
      this.nonFloat.add(name);
    }
  }

  private fresh(): string {
    return `anon:${++this.symCounter}`;
  }

  private inferNode(n: NodeProto): void {
    const op = n.opType ?? '';
    const ins = n.input ?? [];
    const outs = n.output ?? [];
    const a = attrs(n.attribute ?? []);
    const d = (i: number): SDim[] | undefined => (ins[i] ? this.dims.get(ins[i]!) : undefined);
    const ci = (i: number): number[] | undefined => (ins[i] ? this.ints.get(ins[i]!) : undefined);
    const set = (i: number, v: SDim[] | undefined): void => {
      if (v && outs[i]) this.dims.set(outs[i]!, v);
    };
    if (INT_OUTPUT_OPS.has(op)) for (const o of outs) if (o) this.nonFloat.add(o);
    if (op === 'Cast' && !isFloatType(Number(a.to))) this.nonFloat.add(outs[0]!);
    if (PASS_NONFLOAT_OPS.has(op) && ins[0] && this.nonFloat.has(ins[0])) for (const o of outs) if (o) this.nonFloat.add(o);
    if (op === 'MaxPool' && outs[1]) this.nonFloat.add(outs[1]);

    if (UNARY_SAME.has(op)) { set(0, d(0)); return; }
    if (BROADCAST.has(op)) {
      const all = ins.filter((x) => x).map((x) => this.dims.get(x));
      if (all.every((x) => x !== undefined)) set(0, broadcastDims(all as SDim[][]));
      return;
    }
    switch (op) {
      case 'Constant': {
        const v = a.value as TensorProto | undefined;
        if (v) {
          this.dims.set(outs[0]!, (v.dims ?? []).map(Number));
          this.recordConstant(outs[0]!, v);
        } else if (a.value_int !== undefined) {
          this.dims.set(outs[0]!, []); this.ints.set(outs[0]!, [Number(a.value_int)]); this.nonFloat.add(outs[0]!);
        } else if (a.value_ints !== undefined) {
          const vs = a.value_ints as number[];
          this.dims.set(outs[0]!, [vs.length]); this.ints.set(outs[0]!, vs); this.nonFloat.add(outs[0]!);
        } else if (a.value_float !== undefined) {
          this.dims.set(outs[0]!, []); this.floats.set(outs[0]!, [Number(a.value_float)]);
        }
        return;
      }
      case 'Conv': case 'MaxPool': case 'AveragePool': case 'LpPool': {
        const x = d(0);
        if (!x) return;
        const w = op === 'Conv' ? d(1) : undefined;
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
        return;
      }
      case 'GlobalAveragePool': case 'GlobalMaxPool': {
        const x = d(0);
        if (x) set(0, x.map((v, i) => (i < 2 ? v : 1)));
        return;
      }
      case 'Concat': {
        const all = ins.map((x) => this.dims.get(x));
        if (!all.every((x) => x !== undefined) || all.length === 0) return;
        const r = all[0]!.length;
        const ax = normAxis(Number(a.axis ?? 0), r);
        const out = all[0]!.slice();
        const parts = all.map((x) => x![ax]);
        out[ax] = parts.every((p) => typeof p === 'number') ? (parts as number[]).reduce((s, v) => s + v, 0) : null;
        for (let i = 0; i < r; i++) if (i !== ax) out[i] = all.map((x) => x![i]).find((v) => typeof v === 'number') ?? out[i]!;
        set(0, out);
        return;
      }
      case 'MatMul': {
        const x = d(0); const y = d(1);
        if (!x || !y) return;
        const xa = x.length === 1 ? [1, x[0]!] : x;
        const ya = y.length === 1 ? [y[0]!, 1] : y;
        const batch = broadcastDims([xa.slice(0, -2), ya.slice(0, -2)]);
        const out = [...batch, xa[xa.length - 2]!, ya[ya.length - 1]!];
        if (x.length === 1) out.splice(out.length - 2, 1);
        if (y.length === 1) out.splice(out.length - 1, 1);
        set(0, out);
        return;
      }
      case 'Gemm': {
        const x = d(0); const y = d(1);
        if (!x || !y) return;
        set(0, [a.transA ? x[1]! : x[0]!, a.transB ? y[0]! : y[1]!]);
        return;
      }
      case 'Reshape': {
        const x = d(0);
        const shape = ci(1);
        if (shape) {
          const out: SDim[] = shape.map((v, i) => (v === 0 && !a.allowzero ? (x?.[i] ?? null) : v === -1 ? null : v));
          const minus = shape.indexOf(-1);
          if (minus >= 0 && x && x.every((v) => typeof v === 'number') && out.every((v, i) => i === minus || typeof v === 'number')) {
            const total = (x as number[]).reduce((s, v) => s * v, 1);
            const rest = (out.filter((_, i) => i !== minus) as number[]).reduce((s, v) => s * v, 1);
            out[minus] = rest > 0 ? total / rest : null;
          }
          set(0, out);
        } else {
          const sd = d(1);
          if (sd && typeof sd[0] === 'number') set(0, Array.from({ length: sd[0] }, () => null));
        }
        return;
      }
      case 'Flatten': {
        const x = d(0);
        if (!x) return;
        const ax = normAxis(Number(a.axis ?? 1), x.length);
        const prod = (v: SDim[]): SDim => (v.every((e) => typeof e === 'number') ? (v as number[]).reduce((s, e) => s * e, 1) : null);
        set(0, [prod(x.slice(0, ax)), prod(x.slice(ax))]);
        return;
      }
      case 'Transpose': {
        const x = d(0);
        if (!x) return;
        const perm = (a.perm as number[] | undefined) ?? x.map((_, i) => x.length - 1 - i);
        set(0, perm.map((p) => x[p] ?? null));
        return;
      }
      case 'Squeeze': case 'Unsqueeze': {
        const x = d(0);
        const axes = ci(1) ?? (a.axes as number[] | undefined);
        if (!x) return;
        if (op === 'Squeeze') {
          if (!axes) { if (x.every((v) => v !== null)) set(0, x.filter((v) => v !== 1)); return; }
          const ax = new Set(axes.map((v) => normAxis(v, x.length)));
          set(0, x.filter((_, i) => !ax.has(i)));
        } else {
          if (!axes) return;
          const r = x.length + axes.length;
          const ax = new Set(axes.map((v) => normAxis(v, r)));
          const out: SDim[] = [];
          let j = 0;
          for (let i = 0; i < r; i++) out.push(ax.has(i) ? 1 : x[j++] ?? null);
          set(0, out);
        }
        return;
      }
      case 'Slice': {
        const x = d(0);
        if (!x) return;
        const starts = ci(1); const ends = ci(2);
        const axes = ins[3] ? ci(3) : starts?.map((_, i) => i);
        const steps = ins[4] ? ci(4) : starts?.map(() => 1);
        const out = x.slice();
        if (!axes) { set(0, x.map(() => null)); return; }
        axes.forEach((axRaw, i) => {
          const ax = normAxis(axRaw, x.length);
          const h = x[ax];
          if (typeof h === 'number' && starts && ends && steps) {
            out[ax] = sliceLen(h, starts[i]!, ends[i]!, steps[i]!);
          } else out[ax] = null;
        });
        set(0, out);
        return;
      }
      case 'Pad': {
        const x = d(0);
        if (!x) return;
        const pads = ci(1);
        const axes = ins[3] ? ci(3) : x.map((_, i) => i);
        if (!pads || !axes) { set(0, x.map(() => null)); return; }
        const out = x.slice();
        axes.forEach((axRaw, i) => {
          const ax = normAxis(axRaw, x.length);
          const h = x[ax];
          const add = pads[i]! + pads[i + axes.length]!;
          out[ax] = add === 0 ? (h ?? null) : typeof h === 'number' ? h + add : null;
        });
        set(0, out);
        return;
      }
      case 'ReduceMean': case 'ReduceSum': case 'ReduceSumSquare': case 'ReduceMax': case 'ReduceMin':
      case 'ReduceProd': case 'ReduceL2': case 'ReduceL1': case 'ReduceLogSumExp': {
        const x = d(0);
        if (!x) return;
        const axes = ins[1] ? ci(1) : (a.axes as number[] | undefined);
        if (ins[1] && !axes) return;
        const keep = a.keepdims === undefined ? true : Boolean(a.keepdims);
        if (!axes || axes.length === 0) {
          if (axes && a.noop_with_empty_axes) { set(0, x); return; }
          set(0, keep ? x.map(() => 1) : []);
          return;
        }
        const ax = new Set(axes.map((v) => normAxis(v, x.length)));
        set(0, keep ? x.map((v, i) => (ax.has(i) ? 1 : v)) : x.filter((_, i) => !ax.has(i)));
        return;
      }
      case 'Shape': {
        const x = d(0);
        if (!x) return;
        const r = x.length;
        const st = a.start === undefined ? 0 : normAxis(Math.max(Math.min(Number(a.start), r), -r), r);
        const en = a.end === undefined ? r : Math.min(normAxis(Math.max(Number(a.end), -r), r), r);
        set(0, [Math.max(en - st, 0)]);
        if (st === 0 && en === r && x.every((v) => typeof v === 'number')) this.ints.set(outs[0]!, x as number[]);
        return;
      }
      case 'Size': set(0, []); return;
      case 'Gather': {
        const x = d(0); const idx = d(1);
        if (!x || !idx) return;
        const ax = normAxis(Number(a.axis ?? 0), x.length);
        set(0, [...x.slice(0, ax), ...idx, ...x.slice(ax + 1)]);
        return;
      }
      case 'ConstantOfShape': {
        const s = ci(0);
        if (s) set(0, s);
        else {
          const sd = d(0);
          if (sd && typeof sd[0] === 'number') set(0, Array.from({ length: sd[0] }, () => this.fresh()));
        }
        return;
      }
      case 'Expand': {
        const x = d(0);
        const s = ci(1);
        if (x && s) set(0, broadcastDims([x, s.map((v) => (v === 1 ? 1 : v))]));
        return;
      }
      case 'Split': {
        const x = d(0);
        if (!x) return;
        const ax = normAxis(Number(a.axis ?? 0), x.length);
        const split = ci(1) ?? (a.split as number[] | undefined);
        outs.forEach((_, i) => set(i, x.map((v, j) => (j === ax ? (split ? split[i]! : null) : v))));
        return;
      }
      case 'BatchNormalization': case 'Dropout': set(0, d(0)); return;
      default:
    }
  }
}

/** Ops whose outputs carry no gradient (integer/boolean results, or piecewise-constant functions). */
export const NON_DIFFERENTIABLE = new Set([
  'Shape', 'Size', 'Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or', 'Xor',
  'ArgMax', 'ArgMin', 'NonZero', 'Sign', 'Floor', 'Ceil', 'Round', 'ConstantOfShape', 'Range', 'Constant',
  'EyeLike', 'RandomNormalLike', 'RandomUniformLike', 'IsNaN', 'IsInf', 'TopK_indices',
]);

const INT_OUTPUT_OPS = new Set([
  'Shape', 'Size', 'Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Not', 'And', 'Or', 'Xor',
  'ArgMax', 'ArgMin', 'NonZero', 'Range', 'IsNaN', 'IsInf',
]);
const PASS_NONFLOAT_OPS = new Set([
  'Gather', 'Concat', 'Slice', 'Squeeze', 'Unsqueeze', 'Reshape', 'Add', 'Sub', 'Mul', 'Div', 'Max', 'Min',
  'ReduceProd', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'Identity', 'Expand', 'Abs', 'Neg', 'Tile',
]);

const UNARY_SAME = new Set([
  'Relu', 'Abs', 'Sqrt', 'Neg', 'Exp', 'Log', 'Sigmoid', 'Tanh', 'Identity', 'Cast', 'LeakyRelu', 'Softmax',
  'LogSoftmax', 'Clip', 'Erf', 'Sign', 'Not', 'Reciprocal', 'Floor', 'Ceil', 'Round', 'Elu', 'Softplus', 'LRN',
]);
const BROADCAST = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Where', 'Sum', 'Max', 'Min', 'Mean', 'Equal', 'Greater', 'Less', 'And', 'Or',
  'GreaterOrEqual', 'LessOrEqual', 'PRelu', 'Mod',
]);

export function isFloatType(t: number): boolean {
  return t === DataType.FLOAT || t === DataType.DOUBLE || t === DataType.FLOAT16 || t === DataType.BFLOAT16;
}

function int32Values(t: TensorProto): number[] {
  if (t.rawData && t.rawData.length > 0) {
    const copy = new Uint8Array(t.rawData);
    return Array.from(new Int32Array(copy.buffer, 0, copy.byteLength / 4));
  }
  return (t.int32Data ?? []).map(Number);
}

export function attrs(list: AttributeProto[]): Record<string, ReturnType<typeof attributeValue>> {
  const out: Record<string, ReturnType<typeof attributeValue>> = {};
  for (const x of list) if (x.name) out[x.name] = attributeValue(x);
  return out;
}

export function normAxis(ax: number, rank: number): number {
  return ax < 0 ? ax + rank : ax;
}

/** Numpy broadcasting over static dims; unknown where it cannot be decided. */
export function broadcastDims(all: SDim[][]): SDim[] {
  const r = Math.max(...all.map((x) => x.length));
  const out: SDim[] = [];
  for (let i = 0; i < r; i++) {
    const ds = all.map((x) => x[x.length - r + i]).filter((v) => v !== undefined) as SDim[];
    const non1 = ds.filter((v) => v !== 1);
    if (non1.length === 0) { out.push(1); continue; }
    const num = non1.find((v) => typeof v === 'number');
    if (num !== undefined) { out.push(num); continue; }
    out.push(non1.every((v) => v !== null && v === non1[0]) && ds.every((v) => v !== null) ? non1[0]! : null);
  }
  return out;
}

function sliceLen(h: number, start: number, end: number, step: number): number {
  const clamp = (v: number, lo: number, hi: number): number => Math.min(Math.max(v, lo), hi);
  let s = start < 0 ? start + h : start;
  let e = end < 0 ? end + h : end;
  if (step > 0) {
    s = clamp(s, 0, h); e = clamp(e, 0, h);
    return Math.max(0, Math.ceil((e - s) / step));
  }
  s = clamp(s, -1, h - 1); e = clamp(e, -1, h - 1);
  return Math.max(0, Math.ceil((s - e) / -step));
}
