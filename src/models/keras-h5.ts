// Legacy Keras HDF5 weight files (keras-facts §4), read and written with h5wasm (HDF5 compiled to wasm; the
// node build reads real files directly).
//
// Layout: root attribute `layer_names` (or split into `layer_names0`, `layer_names1`, … when it would exceed
// the 64,512-byte object-header limit); one group per layer with a `weight_names` attribute; every weight name
// is a dataset path relative to the layer group ('/' → nested groups, e.g. `conv2d_1/conv2d_1/kernel:0`).
// Full-model files keep all this under a `model_weights` group. Datasets are plain float32 arrays.
import { closeSync, openSync, readSync, renameSync, rmSync, statSync } from 'node:fs';
import h5wasm from 'h5wasm/node';

/** Keras' HDF5_OBJECT_HEADER_LIMIT: larger list attributes are split into numbered chunks. */
export const HDF5_OBJECT_HEADER_LIMIT = 64512;

export type H5ErrorKind = 'not-found' | 'not-hdf5' | 'truncated' | 'not-keras' | 'corrupt';

export class H5FormatError extends Error {
  constructor(readonly kind: H5ErrorKind, message: string) {
    super(message);
    this.name = 'H5FormatError';
  }
}

export interface H5WeightInfo {
  /** As listed in the layer's `weight_names`. */
  name: string;
  shape: number[];
  /** h5wasm dtype string, e.g. '<f' (float32) or '<d' (float64). */
  dtype: string;
  /** Absolute dataset path inside the file. */
  path: string;
}

export interface H5LayerInfo {
  name: string;
  weights: H5WeightInfo[];
}

export interface KerasH5Info {
  file: string;
  sizeBytes: number;
  kerasVersion?: string;
  backend?: string;
  /** True when the weights were found under a `model_weights` group (a full-model .h5). */
  fullModel: boolean;
  /** Every layer of `layer_names`, in file order, weightless ones included. */
  layers: H5LayerInfo[];
}

let ready: Promise<unknown> | undefined;
export async function h5(): Promise<typeof h5wasm> {
  ready ??= h5wasm.ready;
  await ready;
  return h5wasm;
}

/**
 * HDF5 prints its diagnostic stack to stderr and h5wasm often reports failures lazily. Run `fn` with stderr
 * captured so a failure can be reported as one precise line instead of 40 lines of C stack.
 */
export function withCapturedStderr<T>(fn: () => T): { value?: T; error?: unknown; stderr: string } {
  const chunks: string[] = [];
  const original = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  }) as typeof process.stderr.write;
  try {
    return { value: fn(), stderr: chunks.join('') };
  } catch (error) {
    return { error, stderr: chunks.join('') };
  } finally {
    process.stderr.write = original;
  }
}

/** The most specific line of an HDF5 diagnostic stack (the deepest "in fn(): message"). */
export function hdf5Reason(stderr: string): string | undefined {
  const lines = [...stderr.matchAll(/line \d+ in [^:]+\(\): (.+)$/gm)].map((m) => m[1]!.trim());
  return lines.at(-1);
}

const SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Checks that `path` exists, is HDF5, and is not shorter than its superblock says (a truncated download),
 * before h5wasm touches it.
 */
export function checkHdf5File(path: string): { sizeBytes: number } {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new H5FormatError('not-found', `${path} is not a file`);
    size = st.size;
  } catch (e) {
    if (e instanceof H5FormatError) throw e;
    throw new H5FormatError('not-found', `${path}: no such file`);
  }
  const fd = openSync(path, 'r');
  try {
    // The superblock may sit at 0, 512, 1024, 2048, … (a user block precedes it).
    for (let base = 0; base === 0 || base + 8 <= size; base = base === 0 ? 512 : base * 2) {
      const head = Buffer.alloc(96);
      const n = readSync(fd, head, 0, head.length, base);
      if (n < 8) break;
      if (!head.subarray(0, 8).equals(SIGNATURE)) continue;
      const storedEof = superblockEof(head.subarray(0, n));
      if (storedEof !== undefined && base + storedEof > size) {
        throw new H5FormatError('truncated',
          `${path} is truncated: the HDF5 superblock says the file is ${base + storedEof} bytes, it has ${size} (incomplete download or copy?)`);
      }
      return { sizeBytes: size };
    }
  } finally {
    closeSync(fd);
  }
  const what = size === 0 ? 'an empty file' : 'not an HDF5 file (no HDF5 signature)';
  throw new H5FormatError('not-hdf5', `${path} is ${what}; expected a Keras .h5 weights file`);
}

/** End-of-file address from a version 0–3 superblock (8-byte offsets); undefined when it cannot be read. */
function superblockEof(sb: Buffer): number | undefined {
  const version = sb[8];
  const read64 = (at: number) => (at + 8 <= sb.length ? Number(sb.readBigUInt64LE(at)) : undefined);
  if (version === 0 || version === 1) {
    const sizeOfOffsets = sb[13];
    if (sizeOfOffsets !== 8) return undefined;
    const addrStart = version === 0 ? 24 : 28; // after the fixed fields (v1 adds 4 bytes)
    return read64(addrStart + 16); // base, free-space, EOF
  }
  if (version === 2 || version === 3) {
    if (sb[9] !== 8) return undefined;
    return read64(12 + 16); // base, superblock-extension, EOF
  }
  return undefined;
}

type H5Group = InstanceType<typeof h5wasm.Group>;
type H5File = InstanceType<typeof h5wasm.File>;
type H5Dataset = InstanceType<typeof h5wasm.Dataset>;

/** Decodes a string-list attribute as h5py/Keras write it (fixed or variable length; empty lists are often float64[0]). */
export function toStringList(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  // Fixed-length strings may be NUL- or space-padded (h5wasm already cuts at the first NUL).
  if (typeof value === 'string') return [value.replace(/[\0 ]+$/, '')];
  if (value instanceof Uint8Array) return [new TextDecoder().decode(value).replace(/[\0 ]+$/, '')];
  if (ArrayBuffer.isView(value)) {
    if ((value as unknown as { length: number }).length === 0) return [];
    throw new Error('expected a list of strings, found numbers');
  }
  if (Array.isArray(value)) return value.flatMap((v) => toStringList(v));
  return [String(value)];
}

export function hasAttr(g: H5Group, name: string): boolean {
  return Object.hasOwn(g.attrs, name);
}

/** `load_attributes_from_hdf5_group`: `name`, or the chunks `name0`, `name1`, …. */
export function readListAttr(g: H5Group, name: string): string[] | undefined {
  if (hasAttr(g, name)) return toStringList(g.get_attribute(name, false));
  if (!hasAttr(g, `${name}0`)) return undefined;
  const out: string[] = [];
  for (let i = 0; hasAttr(g, `${name}${i}`); i++) out.push(...toStringList(g.get_attribute(`${name}${i}`, false)));
  return out;
}

export function readStringAttr(g: H5Group, name: string): string | undefined {
  if (!hasAttr(g, name)) return undefined;
  return toStringList(g.get_attribute(name, false))[0];
}

/** Walks `a/b/c` group by group, as Keras 3 does; refuses anything that is not a plain group/dataset. */
function resolve(g: H5Group, relPath: string): H5Group | H5Dataset | null {
  let cur: H5Group | H5Dataset | null = g;
  for (const part of relPath.split('/').filter(Boolean)) {
    if (!(cur instanceof h5wasm.Group)) return null;
    const next: unknown = cur.get(part);
    if (next instanceof h5wasm.Dataset || next instanceof h5wasm.Group) cur = next;
    else return null;
  }
  return cur;
}

/** An open Keras weights file. Layer structure is read at open; weight data only on {@link read}. */
export class KerasH5Reader {
  private constructor(private readonly file: H5File, readonly info: KerasH5Info) {}

  static async open(path: string): Promise<KerasH5Reader> {
    const { sizeBytes } = checkHdf5File(path);
    const lib = await h5();
    let file: H5File | undefined;
    const res = withCapturedStderr(() => {
      file = new lib.File(path, 'r');
      return KerasH5Reader.describe(file, path, sizeBytes);
    });
    if (res.error !== undefined || res.value === undefined) {
      try { file?.close(); } catch { /* already broken */ }
      if (res.error instanceof H5FormatError) throw res.error;
      const reason = hdf5Reason(res.stderr) ?? (res.error instanceof Error ? res.error.message : String(res.error));
      const kind: H5ErrorKind = /truncated/i.test(reason) ? 'truncated' : 'corrupt';
      throw new H5FormatError(kind, `${path}: cannot read the HDF5 file (${reason})`);
    }
    return new KerasH5Reader(file!, res.value);
  }

  private static describe(file: H5File, path: string, sizeBytes: number): KerasH5Info {
    let root: H5Group = file;
    let fullModel = false;
    let layerNames = readListAttr(root, 'layer_names');
    if (layerNames === undefined) {
      const mw = file.get('model_weights');
      if (mw instanceof h5wasm.Group) {
        root = mw;
        fullModel = true;
        layerNames = readListAttr(root, 'layer_names');
      }
    }
    if (layerNames === undefined) {
      throw new H5FormatError('not-keras', `${path} is HDF5 but not a Keras weights file: no 'layer_names' attribute and no 'model_weights' group`);
    }
    const layers: H5LayerInfo[] = layerNames.map((name) => {
      const g = root.get(name);
      if (!(g instanceof h5wasm.Group)) {
        throw new H5FormatError('corrupt', `${path}: layer '${name}' is listed in layer_names but has no group`);
      }
      const weightNames = readListAttr(g, 'weight_names') ?? [];
      const weights = weightNames.map((wn) => {
        const ds = resolve(g, wn);
        if (!(ds instanceof h5wasm.Dataset)) {
          throw new H5FormatError('corrupt', `${path}: weight '${wn}' of layer '${name}' is not a dataset (expected at ${g.path}/${wn})`);
        }
        const dtype = String(ds.dtype);
        if (!/^[<>]?[fd]$/.test(dtype)) throw new H5FormatError('corrupt', `${path}: weight '${wn}' has dtype ${dtype}, expected float32`);
        return { name: wn, shape: ds.shape ?? [], dtype, path: ds.path };
      });
      return { name, weights };
    });
    return {
      file: path, sizeBytes, fullModel, layers,
      kerasVersion: readStringAttr(file, 'keras_version') ?? readStringAttr(root, 'keras_version'),
      backend: readStringAttr(file, 'backend') ?? readStringAttr(root, 'backend'),
    };
  }

  /** Layers with at least one weight, in file order (what Keras' topological loading pairs up). */
  get weightedLayers(): H5LayerInfo[] {
    return this.info.layers.filter((l) => l.weights.length > 0);
  }

  /** Reads one weight as float32 (float64 files are converted). */
  read(w: H5WeightInfo): Float32Array {
    const res = withCapturedStderr(() => {
      const ds = this.file.get(w.path);
      if (!(ds instanceof h5wasm.Dataset)) throw new Error(`dataset ${w.path} disappeared`);
      return ds.value;
    });
    const v = res.value;
    if (res.error !== undefined || !(v instanceof Float32Array || v instanceof Float64Array)) {
      const reason = hdf5Reason(res.stderr) ?? (res.error instanceof Error ? res.error.message : 'unexpected data type');
      throw new H5FormatError(/truncat|address|eof/i.test(reason) ? 'truncated' : 'corrupt', `${this.info.file}: cannot read ${w.path} (${reason})`);
    }
    const expected = w.shape.reduce((a, b) => a * b, 1);
    if (v.length !== expected) throw new H5FormatError('corrupt', `${this.info.file}: ${w.path} has ${v.length} values, its shape [${w.shape}] needs ${expected}`);
    return v instanceof Float32Array ? v : Float32Array.from(v);
  }

  close(): void {
    try { this.file.close(); } catch { /* ignore */ }
  }
}

// ---------------------------------------------------------------------------------------------------
// Writer

export interface H5WriteWeight {
  /** Name for `weight_names`; '/' creates nested groups under the layer group. */
  name: string;
  shape: number[];
  /** The data, or a function producing it when the writer gets there (keeps peak memory at one layer). */
  data: Float32Array | (() => Float32Array);
}

export interface H5WriteLayer {
  name: string;
  /** Empty for weightless layers (input, pools, activations, concats…): Keras lists them too. */
  weights: H5WriteWeight[];
}

export interface H5WriteOptions {
  /** Root `keras_version` attribute; null = omit it (Keras 1 files have none). Default '2.1.2'. */
  kerasVersion?: string | null;
  /** Root `backend` attribute; null = omit it. Default 'tensorflow'. */
  backend?: string | null;
  /** Write a full-model file: everything under `model_weights`, plus a `model_config` attribute. */
  fullModel?: boolean;
  /** Split `layer_names` into this many chunks (`layer_names0…`); default: only above the header limit, as Keras does. */
  splitLayerNames?: number;
}

/** Keras' save_attributes_to_hdf5_group: one attribute, or numbered chunks when too large. */
function writeListAttr(g: H5Group, name: string, values: string[], forceChunks?: number): void {
  const enc = new TextEncoder();
  const width = Math.max(1, ...values.map((v) => enc.encode(v).length));
  const fits = (chunk: string[]) => chunk.length * width <= HDF5_OBJECT_HEADER_LIMIT;
  let chunks = forceChunks ?? 1;
  if (!forceChunks) while (!splitEven(values, chunks).every(fits)) chunks++;
  const write = (attr: string, list: string[]) => {
    if (list.length === 0) g.create_attribute(attr, new Float64Array(0)); // what h5py stores for []
    else g.create_attribute(attr, list, [list.length], `S${width}`);
  };
  if (chunks === 1 && !forceChunks) write(name, values);
  else splitEven(values, chunks).forEach((c, i) => write(`${name}${i}`, c));
}

/** numpy.array_split: the first (n % k) chunks get one extra element. */
function splitEven<T>(xs: T[], k: number): T[][] {
  const base = Math.floor(xs.length / k);
  const extra = xs.length % k;
  const out: T[][] = [];
  let at = 0;
  for (let i = 0; i < k; i++) {
    const n = base + (i < extra ? 1 : 0);
    out.push(xs.slice(at, at + n));
    at += n;
  }
  return out;
}

/**
 * Writes a legacy Keras weights file (the layout `model.save_weights('x.h5')` produces). Written to a temporary
 * name and renamed, so `path` is either absent or complete.
 */
export async function writeKerasH5(path: string, layers: H5WriteLayer[], opts: H5WriteOptions = {}): Promise<{ sizeBytes: number }> {
  const lib = await h5();
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const file = new lib.File(tmp, 'w');
  try {
    const kerasVersion = opts.kerasVersion === undefined ? '2.1.2' : opts.kerasVersion;
    const backend = opts.backend === undefined ? 'tensorflow' : opts.backend;
    let root: H5Group = file;
    if (opts.fullModel) {
      file.create_attribute('model_config', JSON.stringify({ class_name: 'Model', config: { name: 'model', layers: [] } }));
      root = file.create_group('model_weights');
    }
    for (const g of opts.fullModel ? [file, root] : [file]) {
      if (kerasVersion !== null) g.create_attribute('keras_version', kerasVersion);
      if (backend !== null) g.create_attribute('backend', backend);
    }
    writeListAttr(root, 'layer_names', layers.map((l) => l.name), opts.splitLayerNames);
    for (const layer of layers) {
      const g = root.create_group(layer.name);
      writeListAttr(g, 'weight_names', layer.weights.map((w) => w.name));
      for (const w of layer.weights) {
        const parts = w.name.split('/');
        let parent = g;
        for (const p of parts.slice(0, -1)) {
          const existing = parent.get(p);
          parent = existing instanceof lib.Group ? existing : parent.create_group(p);
        }
        const data = typeof w.data === 'function' ? w.data() : w.data;
        const n = w.shape.reduce((a, b) => a * b, 1);
        if (data.length !== n) throw new Error(`writeKerasH5: ${layer.name}/${w.name} has ${data.length} values, shape [${w.shape}] needs ${n}`);
        parent.create_dataset({ name: parts.at(-1)!, data, shape: w.shape, dtype: '<f' });
      }
    }
    file.close();
    renameSync(tmp, path);
  } catch (e) {
    try { file.close(); } catch { /* ignore */ }
    rmSync(tmp, { force: true });
    throw e;
  }
  return { sizeBytes: statSync(path).size };
}
