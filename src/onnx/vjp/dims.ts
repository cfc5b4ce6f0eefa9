// Small pure helpers shared by the static inference and the op rules: static dimensions, axis normalisation,
// numpy broadcasting over static dims, attribute decoding and element-type classes.
import { type AttributeProto, type TensorProto, DataType, attributeValue } from '../proto.js';

/** A static dimension: a number, a symbolic name shared by equal dims, or null when unknown. */
export type SDim = number | string | null;

/** A node's attributes as plain values (ints become numbers). */
export type Attrs = Record<string, ReturnType<typeof attributeValue>>;

export function attrs(list: AttributeProto[]): Attrs {
  const out: Attrs = {};
  for (const x of list) if (x.name) out[x.name] = attributeValue(x);
  return out;
}

export function isFloatType(t: number): boolean {
  return t === DataType.FLOAT || t === DataType.DOUBLE || t === DataType.FLOAT16 || t === DataType.BFLOAT16;
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

/** Length of a Slice along one axis of static size h (ONNX clamping rules). */
export function sliceLen(h: number, start: number, end: number, step: number): number {
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

export function int32Values(t: TensorProto): number[] {
  if (t.rawData && t.rawData.length > 0) {
    const copy = new Uint8Array(t.rawData);
    return Array.from(new Int32Array(copy.buffer, 0, copy.byteLength / 4));
  }
  return (t.int32Data ?? []).map(Number);
}
