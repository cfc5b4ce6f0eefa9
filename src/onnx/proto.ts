// Thin typed layer over onnx-proto (protobufjs, ONNX 1.10 schema). Everything that touches the raw
// protobuf classes lives here so the builder and the autodiff stay readable.
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
export type ModelProto = onnxProto.onnx.ModelProto;
export type GraphProto = onnxProto.onnx.IGraphProto;
export type NodeProto = onnxProto.onnx.INodeProto;
export type TensorProto = onnxProto.onnx.ITensorProto;
export type ValueInfoProto = onnxProto.onnx.IValueInfoProto;
export type AttributeProto = onnxProto.onnx.IAttributeProto;

/** IR version and opset we emit. ORT 1.30 accepts IR 8..13 with opset 17..26 (see onnxruntime facts). */
export const IR_VERSION = 8;
export const OPSET = 17;

export const DataType = onnxProto.onnx.TensorProto.DataType;
export type ElemType = 'float32' | 'int64' | 'bool' | 'int32';

export function dataTypeOf(t: ElemType): number {
  switch (t) {
    case 'float32': return DataType.FLOAT;
    case 'int64': return DataType.INT64;
    case 'int32': return DataType.INT32;
    case 'bool': return DataType.BOOL;
  }
}

/** Attribute values accepted by {@link makeAttribute}: numbers are ints when integral unless `floats`/`f` is forced. */
export type AttrValue = number | string | number[] | string[] | TensorProto | { float: number } | { floats: number[] };

const AT = onnxProto.onnx.AttributeProto.AttributeType;

export function makeAttribute(name: string, value: AttrValue): AttributeProto {
  if (typeof value === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(value) };
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: AT.INT, i: value } : { name, type: AT.FLOAT, f: value };
  }
  if (Array.isArray(value)) {
    if (value.length > 0 && typeof value[0] === 'string') {
      return { name, type: AT.STRINGS, strings: (value as string[]).map((s) => new TextEncoder().encode(s)) };
    }
    const nums = value as number[];
    return nums.every(Number.isInteger) ? { name, type: AT.INTS, ints: nums } : { name, type: AT.FLOATS, floats: nums };
  }
  if ('float' in value) return { name, type: AT.FLOAT, f: value.float };
  if ('floats' in value) return { name, type: AT.FLOATS, floats: value.floats };
  return { name, type: AT.TENSOR, t: value };
}

/** Reads an attribute back as a plain JS value (ints become numbers). */
export function attributeValue(a: AttributeProto): number | string | number[] | string[] | TensorProto | undefined {
  switch (a.type) {
    case AT.INT: return Number(a.i);
    case AT.FLOAT: return a.f ?? 0;
    case AT.STRING: return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AT.INTS: return (a.ints ?? []).map(Number);
    case AT.FLOATS: return a.floats ?? [];
    case AT.STRINGS: return (a.strings ?? []).map((s) => new TextDecoder().decode(s));
    case AT.TENSOR: return a.t ?? undefined;
    default: return undefined;
  }
}

export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  attrs: Record<string, AttrValue | undefined> = {},
  name?: string,
  domain?: string,
): NodeProto {
  const attribute = Object.entries(attrs)
    .filter((e): e is [string, AttrValue] => e[1] !== undefined)
    .map(([k, v]) => makeAttribute(k, v));
  return { opType, input: inputs, output: outputs, attribute, name: name ?? outputs[0], domain: domain ?? '' };
}

/** A dimension is a fixed size or a symbolic name (e.g. 'N', 'H'). */
export type Dim = number | string;

export function makeValueInfo(name: string, elem: ElemType, dims?: Dim[]): ValueInfoProto {
  const shape = dims === undefined
    ? undefined
    : { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType: { elemType: dataTypeOf(elem), shape } } };
}

export function floatTensor(name: string, dims: number[], data: Float32Array): TensorProto {
  return { name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

export function int64Tensor(name: string, dims: number[], values: number[]): TensorProto {
  const buf = new BigInt64Array(values.map((v) => BigInt(v)));
  return { name, dims, dataType: DataType.INT64, rawData: new Uint8Array(buf.buffer) };
}

/** Decodes a float tensor whether it is stored as rawData or floatData (external data is not resolved here). */
export function tensorToFloat32(t: TensorProto): Float32Array {
  if (t.rawData && t.rawData.length > 0) {
    const copy = new Uint8Array(t.rawData); // aligned copy
    return new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  }
  return Float32Array.from(t.floatData ?? []);
}

export function tensorToInt64(t: TensorProto): number[] {
  if (t.rawData && t.rawData.length > 0) {
    const copy = new Uint8Array(t.rawData);
    return Array.from(new BigInt64Array(copy.buffer, 0, copy.byteLength / 8), Number);
  }
  return (t.int64Data ?? []).map(Number);
}

export function encodeModel(model: onnxProto.onnx.IModelProto): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}

export function decodeModel(bytes: Uint8Array): ModelProto {
  return onnx.ModelProto.decode(bytes);
}
