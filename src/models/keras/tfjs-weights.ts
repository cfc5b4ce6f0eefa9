// TensorFlow.js weight manifests: each group's shards are concatenated and the group's weights read from the
// result in manifest order. Stored dtypes float32/int32/bool; quantized weights are stored as uint8/uint16 and
// decoded as `q * scale + min` (tfjs io.decodeWeights, same arithmetic order, so values are bit-identical), or
// as float16 (quantization dtype 'float16', no min/scale).
import { KerasImportError } from './errors.js';
import { decodeFloat16 } from './float16.js';

export interface TfjsQuantization {
  dtype: 'uint8' | 'uint16' | 'float16';
  min?: number;
  scale?: number;
}

export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: TfjsQuantization;
}

export interface TfjsWeightGroup {
  paths: string[];
  weights: TfjsWeightSpec[];
}

const STORED_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1 };
const QUANTIZED_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

const isQuantizedDtype = (d: unknown): d is TfjsQuantization['dtype'] => typeof d === 'string' && d in QUANTIZED_BYTES;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Validates a `weightsManifest`, naming the first malformed entry. */
export function parseManifest(manifest: unknown, label: string): TfjsWeightGroup[] {
  const bad = (what: string) => new KerasImportError('corrupt', `${label}: weightsManifest ${what}`, label);
  if (!Array.isArray(manifest)) throw bad('is not a list');
  return manifest.map((group, g) => {
    if (!isRecord(group) || !Array.isArray(group.paths) || !group.paths.every((p) => typeof p === 'string') || !Array.isArray(group.weights)) {
      throw bad(`group ${g + 1} needs "paths" (strings) and "weights"`);
    }
    const weights = group.weights.map((w, i) => {
      if (!isRecord(w) || typeof w.name !== 'string' || !Array.isArray(w.shape) || !w.shape.every((d) => Number.isInteger(d) && d >= 0)
        || typeof w.dtype !== 'string') {
        throw bad(`group ${g + 1}, weight ${i + 1}: needs "name", "shape" (non-negative integers) and "dtype"`);
      }
      const q = w.quantization;
      if (q === undefined) {
        if (!(w.dtype in STORED_BYTES)) throw bad(`weight ${w.name}: dtype ${w.dtype} is not float32, int32 or bool`);
        return { name: w.name, shape: w.shape.map(Number), dtype: w.dtype };
      }
      if (!isRecord(q) || !isQuantizedDtype(q.dtype)) throw bad(`weight ${w.name}: quantization dtype must be uint8, uint16 or float16`);
      if (q.dtype !== 'float16' && (typeof q.min !== 'number' || typeof q.scale !== 'number')) {
        throw bad(`weight ${w.name}: ${q.dtype} quantization needs numeric "min" and "scale"`);
      }
      const quantization: TfjsQuantization = { dtype: q.dtype };
      if (typeof q.min === 'number') quantization.min = q.min;
      if (typeof q.scale === 'number') quantization.scale = q.scale;
      return { name: w.name, shape: w.shape.map(Number), dtype: w.dtype, quantization };
    });
    return { paths: group.paths.map(String), weights };
  });
}

export function weightBytes(w: TfjsWeightSpec): number {
  const n = w.shape.reduce((a, b) => a * b, 1);
  return n * (w.quantization ? QUANTIZED_BYTES[w.quantization.dtype]! : STORED_BYTES[w.dtype]!);
}

/** Decodes one weight from its bytes (copied first: shard bytes may be unaligned, and a Buffer's slice is a view). */
export function decodeWeight(w: TfjsWeightSpec, bytes: Uint8Array): Float32Array {
  const buf = new Uint8Array(bytes).buffer;
  const q = w.quantization;
  if (!q) {
    if (w.dtype === 'float32') return new Float32Array(buf);
    if (w.dtype === 'int32') return Float32Array.from(new Int32Array(buf));
    return Float32Array.from(new Uint8Array(buf));
  }
  if (q.dtype === 'float16') return decodeFloat16(new Uint16Array(buf));
  const stored = q.dtype === 'uint8' ? new Uint8Array(buf) : new Uint16Array(buf);
  const scale = q.scale!;
  const min = q.min!;
  const out = new Float32Array(stored.length);
  for (let i = 0; i < stored.length; i++) out[i] = stored[i]! * scale + min;
  // tfjs rounds dequantized integer weights back to integers.
  return w.dtype === 'int32' ? out.map(Math.round) : out;
}
