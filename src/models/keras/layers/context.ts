// What every layer emitter works with: Keras tensors (an ONNX value + its Keras shape), the layer's config
// accessors, validated weight access and the error kinds of the converter.
//
// Layout rule: a rank-4 Keras tensor (N, H, W, C) lives in the ONNX graph as NCHW; tensors of any other rank keep
// the Keras axis order. Emitters translate Keras axes with `physicalAxis` and use `toKerasOrder`/`fromKerasOrder`
// where an operation is defined on the Keras order (Flatten, Reshape).
import type { GraphBuilder } from '../../../onnx/builder.js';
import type { AttrValue } from '../../../onnx/proto.js';
import { KerasImportError } from '../errors.js';
import type { KLayer, KWeight } from '../ir.js';

/** Keras-order shape including the batch axis; null = unknown. */
export type Shape = (number | null)[];

export interface KTensor {
  value: string;
  shape: Shape;
}

export interface ConvertOptions {
  /**
   * hard_sigmoid as Keras 2 / tfjs define it (clip(0.2·x + 0.5, 0, 1)) or as Keras 3 does (relu6(x + 3) / 6).
   * Default: from the file's Keras version (3.x → keras3, otherwise keras2).
   */
  hardSigmoid?: 'keras2' | 'keras3';
  /** Fold BatchNormalization into the convolution before it (default true). The conv's own output then has no value. */
  foldBatchNorm?: boolean;
  /** Spatial size to use where the model leaves it unknown (`(None, None, 3)` inputs). */
  inputSize?: { height: number; width: number };
}

/** A layer class or option the converter does not implement: 422 `keras-import-unsupported-layer`. */
export function unsupported(layer: KLayer, why?: string): KerasImportError {
  const detail = why
    ? `layer '${layer.name}' (${layer.className}): ${why}`
    : `layer '${layer.name}' has class ${layer.className}, which convserve cannot convert (custom and Lambda layers carry Python code)`;
  return new KerasImportError('unsupported-layer', detail, undefined, { layer: layer.name, class_name: layer.className });
}

/** Config and weights disagree (missing, extra or wrongly shaped weights): 422 `keras-import-mismatch`. */
export function mismatch(detail: string, info: Record<string, unknown> = {}): KerasImportError {
  return new KerasImportError('mismatch', detail, undefined, info);
}

export interface WeightSpec {
  role: string;
  /** Expected shape; null = accept any shape with this many values (`size`), or any at all when size is absent. */
  shape: number[] | null;
  size?: number;
}

const fmt = (s: readonly (number | null)[]) => `[${s.map((d) => d ?? '?').join(', ')}]`;

/** Keras axis → position of that axis in the ONNX value (rank 4 is NCHW). Negative axes count from the end. */
export function physicalAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} is out of range for rank ${rank}`);
  return rank === 4 ? [0, 2, 3, 1][a]! : a;
}

/** Normalised positive Keras axis. */
export function kerasAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Shape in ONNX order (rank 4: NCHW). */
export function physicalShape(shape: Shape): Shape {
  return shape.length === 4 ? [shape[0]!, shape[3]!, shape[1]!, shape[2]!] : shape;
}

/**
 * A parameter given in Keras order with full-rank dims `kdims` (1 on broadcast axes, batch included) → the same
 * parameter in the ONNX layout (rank 4: re-ordered to NCHW), ready to broadcast against the tensor.
 */
export function layoutParam(data: Float32Array | Float64Array, kdims: number[]): { dims: number[]; data: Float32Array } {
  if (kdims.length !== 4) return { dims: kdims, data: Float32Array.from(data) };
  const [n, h, w, c] = kdims as [number, number, number, number];
  if (n !== 1) throw new Error('a per-axis parameter cannot vary along the batch axis');
  const out = new Float32Array(h * w * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) out[(ch * h + y) * w + x] = data[(y * w + x) * c + ch]!;
  return { dims: [1, c, h, w], data: out };
}

/** Keras-order data over `axes` of a tensor of `shape` (other axes broadcast) → {@link layoutParam}. */
export function broadcastParam(data: Float32Array | Float64Array, axes: number[], shape: Shape): { dims: number[]; data: Float32Array } {
  return layoutParam(data, shape.map((d, i) => (axes.includes(i) ? d ?? 1 : 1)));
}

export class EmitContext {
  constructor(
    readonly g: GraphBuilder,
    readonly layer: KLayer,
    /** Weight key of this layer (`dense_1`, or `vgg19/block1_conv1` inside a nested model). */
    readonly path: string,
    /** The ONNX value name this layer's output must carry (its Keras name). */
    readonly out: string,
    readonly options: ConvertOptions,
    private readonly lookup: (path: string) => KWeight[] | undefined,
    private readonly consumed: Set<string>,
    /** Set when a BatchNormalization is folded into this convolution: that layer and its weight key. */
    readonly fold?: { layer: KLayer; path: string },
  ) {}

  get config(): Record<string, unknown> {
    return this.layer.config;
  }

  // ---- config accessors ------------------------------------------------------------------------------

  num(key: string, fallback: number): number {
    const v = this.config[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw unsupported(this.layer, `option ${key}=${JSON.stringify(v)} is not a number`);
    return v;
  }

  optNum(key: string): number | null {
    const v = this.config[key];
    return v === undefined || v === null ? null : this.num(key, 0);
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.config[key];
    return typeof v === 'boolean' ? v : fallback;
  }

  str(key: string, fallback: string): string {
    const v = this.config[key];
    return typeof v === 'string' ? v : fallback;
  }

  /** An int or a pair (kernel_size, strides, …) → [rows, cols]. */
  pair(key: string, fallback: number | [number, number]): [number, number] {
    const v = this.config[key] ?? fallback;
    if (typeof v === 'number') return [v, v];
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0] as number, v[1] as number];
    throw unsupported(this.layer, `option ${key}=${JSON.stringify(v)} is not an int or a pair of ints`);
  }

  /** One or several axes (BatchNormalization exports `axis` as a list in Keras 2). */
  axes(key: string, fallback: number): number[] {
    const v = this.config[key] ?? fallback;
    if (typeof v === 'number') return [v];
    if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
    throw unsupported(this.layer, `option ${key}=${JSON.stringify(v)} is not an axis`);
  }

  /** Rejects channels_first models: their inputs and weights follow another layout. */
  requireChannelsLast(): void {
    const f = this.config.data_format;
    if (f !== undefined && f !== null && f !== 'channels_last') throw unsupported(this.layer, `data_format '${String(f)}' is not supported (only channels_last)`);
  }

  requireRank(input: KTensor, ...ranks: number[]): void {
    if (!ranks.includes(input.shape.length)) {
      throw unsupported(this.layer, `input of shape ${fmt(input.shape)} (rank ${input.shape.length}); this layer needs rank ${ranks.join(' or ')}`);
    }
  }

  /** A dimension that must be known (e.g. channels). */
  known(input: KTensor, axis: number, what: string): number {
    const d = input.shape[kerasAxis(axis, input.shape.length)];
    if (d === null || d === undefined) throw unsupported(this.layer, `the ${what} of its input ${fmt(input.shape)} is unknown`);
    return d;
  }

  // ---- weights --------------------------------------------------------------------------------------

  /** Shape of a weight as the file stores it (before any check), to recover options a config omits. */
  storedShape(role: string): number[] | undefined {
    return this.lookup(this.path)?.find((w) => w.name === role)?.shape;
  }

  /** How many weights the file stores for this layer. */
  storedCount(): number {
    return this.lookup(this.path)?.length ?? 0;
  }

  /** This layer's weights, checked against what its config implies. */
  weights(specs: WeightSpec[]): Map<string, KWeight> {
    return this.weightsOf(this.layer, this.path, specs);
  }

  weightsOf(layer: KLayer, path: string, specs: WeightSpec[]): Map<string, KWeight> {
    this.consumed.add(path);
    const found = this.lookup(path) ?? [];
    const need = specs.map((s) => `${s.role} ${s.shape ? fmt(s.shape) : ''}`.trim()).join(', ');
    const where = `layer '${path}' (${layer.className})`;
    if (found.length === 0 && specs.length > 0) throw mismatch(`${where} has no weights in the file; its config needs ${need}`, { layer: path });
    if (found.length !== specs.length) {
      throw mismatch(`${where} has ${found.length} weights in the file (${found.map((w) => `${w.name} ${fmt(w.shape)}`).join(', ')}); its config needs ${specs.length} (${need || 'none'})`,
        { layer: path, expected: specs.length, found: found.length });
    }
    const roles = specs.map((s) => s.role);
    const byName = new Set(found.map((w) => w.name)).size === found.length && found.every((w) => roles.includes(w.name));
    const out = new Map<string, KWeight>();
    specs.forEach((spec, i) => {
      const w = byName ? found.find((x) => x.name === spec.role)! : found[i]!;
      const size = w.shape.reduce((a, b) => a * b, 1);
      const ok = spec.shape
        ? spec.shape.length === w.shape.length && spec.shape.every((d, j) => d === w.shape[j])
        : spec.size === undefined || spec.size === size;
      if (!ok || w.data.length !== size) {
        const want = spec.shape ? fmt(spec.shape) : `${spec.size} values`;
        throw mismatch(`${where}: weight '${spec.role}' has shape ${fmt(w.shape)} in the file, the config implies ${want}`,
          { layer: path, weight: spec.role, expected: spec.shape ?? spec.size, found: w.shape });
      }
      out.set(spec.role, w);
    });
    return out;
  }

  /** A float32 initializer named after this layer (`<path>/<suffix>`). */
  constant(suffix: string, dims: number[], data: Float32Array): string {
    const base = `${this.path}/${suffix}`;
    let name = base;
    for (let i = 1; this.g.hasValue(name); i++) name = `${base}_${i}`;
    return this.g.weight(name, dims, data);
  }

  // ---- nodes ----------------------------------------------------------------------------------------

  /** A node with a fresh internal output name (`<out>/<op>`). */
  node(op: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}): string {
    return this.g.node(op, inputs, attrs, { prefix: `${this.out}/${op.toLowerCase()}` });
  }

  /** A node whose output is this layer's Keras-named value. */
  final(op: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}): string {
    return this.g.node(op, inputs, attrs, { outputs: [this.out] });
  }

  /** NCHW → NHWC for rank-4 values (Keras order); other ranks unchanged. */
  toKerasOrder(t: KTensor): string {
    return t.shape.length === 4 ? this.node('Transpose', [t.value], { perm: [0, 2, 3, 1] }) : t.value;
  }

  /** Keras-order value → the ONNX layout for its rank. */
  fromKerasOrder(value: string, rank: number): string {
    return rank === 4 ? this.node('Transpose', [value], { perm: [0, 3, 1, 2] }) : value;
  }
}
