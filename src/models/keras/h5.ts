// HDF5 access for the Keras readers: open read-only with every failure turned into a KerasImportError, and read a
// weight dataset as float32 whatever its stored numeric type. Built on the h5wasm helpers of ../keras-h5.ts.
import h5wasm from 'h5wasm/node';
import { checkHdf5File, H5FormatError, h5, hdf5Reason, withCapturedStderr } from '../keras-h5.js';
import { KerasImportError, type KerasImportErrorKind } from './errors.js';
import { decodeFloat16 } from './float16.js';

export type H5File = InstanceType<typeof h5wasm.File>;
export type H5Group = InstanceType<typeof h5wasm.Group>;
export type H5Dataset = InstanceType<typeof h5wasm.Dataset>;

const KIND_OF: Record<H5FormatError['kind'], KerasImportErrorKind> = {
  'not-found': 'not-found', 'not-hdf5': 'unknown-format', truncated: 'truncated', 'not-keras': 'unknown-format', corrupt: 'corrupt',
};

/** Opens `path` read-only. `label` names it in messages (e.g. `m.keras: model.weights.h5` for an archive member). */
export async function openH5(path: string, label = path): Promise<H5File> {
  try {
    checkHdf5File(path);
  } catch (e) {
    if (e instanceof H5FormatError) throw new KerasImportError(KIND_OF[e.kind], e.message.replaceAll(path, label), label);
    throw e;
  }
  const lib = await h5();
  const res = withCapturedStderr(() => new lib.File(path, 'r'));
  if (res.error !== undefined || res.value === undefined) {
    const reason = hdf5Reason(res.stderr) ?? (res.error instanceof Error ? res.error.message : String(res.error));
    throw new KerasImportError(/truncat|eof/i.test(reason) ? 'truncated' : 'corrupt', `${label}: cannot read the HDF5 file (${reason})`, label);
  }
  return res.value;
}

export function closeH5(file: H5File): void {
  try { file.close(); } catch { /* already broken: nothing to release */ }
}

export const isGroup = (x: unknown): x is H5Group => x instanceof h5wasm.Group;
export const isDataset = (x: unknown): x is H5Dataset => x instanceof h5wasm.Dataset;

/** The child group `name` of `g`, or undefined (also when `name` is a dataset or the lookup fails). */
export function childGroup(g: H5Group, name: string): H5Group | undefined {
  const res = withCapturedStderr(() => (g.keys().includes(name) ? g.get(name) : undefined));
  return isGroup(res.value) ? res.value : undefined;
}

/** Walks `a/b/c` below `g` (weight names contain '/'); the dataset found, or undefined. */
export function datasetAt(g: H5Group, relPath: string): H5Dataset | undefined {
  let cur: unknown = g;
  for (const part of relPath.split('/').filter(Boolean)) {
    if (!isGroup(cur)) return undefined;
    cur = childGroup(cur, part) ?? datasetChild(cur, part);
  }
  return isDataset(cur) ? cur : undefined;
}

function datasetChild(g: H5Group, name: string): H5Dataset | undefined {
  const res = withCapturedStderr(() => (g.keys().includes(name) ? g.get(name) : undefined));
  return isDataset(res.value) ? res.value : undefined;
}

/** Reads a weight as float32 (float64 and integer datasets are converted; scalars get shape []). */
export function readWeightData(ds: H5Dataset, label: string): { shape: number[]; data: Float32Array } {
  const res = withCapturedStderr(() => ({ value: ds.value, shape: ds.shape ?? [], dtype: String(ds.dtype) }));
  if (res.error !== undefined || res.value === undefined) {
    const reason = hdf5Reason(res.stderr) ?? (res.error instanceof Error ? res.error.message : String(res.error));
    throw new KerasImportError(/truncat|address|eof/i.test(reason) ? 'truncated' : 'corrupt', `${label}: cannot read ${ds.path} (${reason})`, label);
  }
  const { value, shape, dtype } = res.value;
  const data = toFloat32(value, dtype);
  if (data === undefined) {
    throw new KerasImportError('corrupt', `${label}: ${ds.path} has HDF5 type ${dtype}; weights must be float32, float64, float16 or integers`, label);
  }
  const expected = shape.reduce((a, b) => a * b, 1);
  if (data.length !== expected) {
    throw new KerasImportError('corrupt', `${label}: ${ds.path} has ${data.length} values, its shape [${shape.join(', ')}] needs ${expected}`, label);
  }
  return { shape, data };
}

/** `dtype` is h5wasm's numpy-style code: '<f' float32, '<d' float64, '<e' float16, '<i'/'<q' integers, …. */
function toFloat32(value: unknown, dtype: string): Float32Array | undefined {
  if (value instanceof Float32Array) return value;
  if (/^[<>|]?e$/.test(dtype)) return value instanceof Uint16Array ? decodeFloat16(value) : undefined;
  if (typeof value === 'number' || typeof value === 'bigint') return Float32Array.of(Number(value));
  if (value instanceof BigInt64Array || value instanceof BigUint64Array) return Float32Array.from(value, (v) => Number(v));
  if (value instanceof Float64Array || value instanceof Int8Array || value instanceof Uint8Array || value instanceof Int16Array
    || value instanceof Uint16Array || value instanceof Int32Array || value instanceof Uint32Array) return Float32Array.from(value);
  return undefined;
}

/**
 * Runs `fn` (which walks an open file) with HDF5's diagnostic stack captured; a damaged file often fails only
 * here, lazily, as a bare h5wasm error. Anything but a KerasImportError becomes a one-line `corrupt`/`truncated`.
 */
export function guardH5<T>(label: string, fn: () => T): T {
  const res = withCapturedStderr(() => ({ result: fn() }));
  if (res.value) return res.value.result;
  if (res.error instanceof KerasImportError) throw res.error;
  const reason = hdf5Reason(res.stderr) ?? (res.error instanceof Error ? res.error.message : String(res.error));
  throw new KerasImportError(/truncat|eof/i.test(reason) ? 'truncated' : 'corrupt', `${label}: cannot read the HDF5 file (${reason})`, label);
}
