// What a VJP rule gets to work with: the builder it appends backward nodes to, static knowledge about the
// forward values, and small helpers for the in-graph shape arithmetic every rule needs (Shape caching,
// un-broadcasting, opset-dependent Reduce* emission).
import type { GraphBuilder } from '../builder.js';
import { type AttrValue, type NodeProto, DataType, floatTensor, int64Tensor } from '../proto.js';
import { type SDim, attrs } from './dims.js';
import type { StaticInfo } from './static.js';

export class AutodiffError extends Error {
  constructor(message: string, readonly opType?: string, readonly nodeName?: string) {
    super(message);
    this.name = 'AutodiffError';
  }
}

/** A very negative `ends` for Slice with step −1 (clamped by the runtime to "before index 0"). */
export const SLICE_TO_START = -(2 ** 31);
/** A very large `ends` for Slice meaning "to the end". */
export const SLICE_TO_END = 2 ** 31 - 1;

export interface VjpOptions {
  /** Backward of stride-1 Conv: 'flipped' (default; Conv with flipped/transposed weights) or 'transpose' (ConvTranspose). */
  convBackward?: 'flipped' | 'transpose';
  /**
   * Backward of k×k/k and 3×3/2 max-pools without padding: 'mask' (default; plain MaxPool forward, a
   * SpaceToDepth mask / parity split) or 'scatter' (MaxPool with Indices + ScatterElements, the form every
   * other max-pool uses).
   */
  maxPoolBackward?: 'mask' | 'scatter';
  /**
   * Weight gradient of 2-D group-1 Convs whose C, H, W are static: 'conv' (default; one Conv correlating x with
   * the upstream gradient) or 'gemm' (patches gathered channels-last once, then one Gemm over batch × positions;
   * faster for small images with many channels, such as a digit classifier's training graph). 'gemm' keeps the
   * Conv form where it does not pay: one input channel, or more than 2¹⁸ patch values per example.
   */
  convWeightGrad?: 'conv' | 'gemm';
}

export class VjpContext {
  private readonly shapeCache = new Map<string, string>();
  private readonly flipCache = new Map<string, string>();
  private readonly zeroCache = new Map<string, string>();
  /**
   * Gradient values known to be zero wherever a forward value is ≤ 0 (gradient → that value). A block
   * max-pool over a Relu output applies the Relu's mask at the pooled size and records it here, so the
   * Relu's own VJP can pass the gradient through instead of masking it again at full size.
   */
  readonly maskedBy = new Map<string, string>();

  constructor(
    readonly b: GraphBuilder,
    readonly info: StaticInfo,
    /** Opset of the default domain of the graph being extended (≥ 13). */
    readonly opset: number,
    readonly options: VjpOptions = {},
  ) {}

  /** Appends one node and returns its (single, fresh) output. */
  op(opType: string, inputs: string[], a: Record<string, AttrValue | undefined> = {}, hint?: string): string {
    return this.b.node(opType, inputs, a, { prefix: `grad/${hint ?? opType.toLowerCase()}` });
  }

  opMulti(opType: string, inputs: string[], count: number, a: Record<string, AttrValue | undefined> = {}): string[] {
    return this.b.nodeMulti(opType, inputs, a, { outputs: count, prefix: `grad/${opType.toLowerCase()}` });
  }

  ints(values: number[], dims?: number[]): string {
    return this.b.ints(values, dims);
  }

  scalar(v: number): string {
    return this.b.scalar(v);
  }

  /** A fresh float32 constant tensor (not deduplicated). */
  floatConst(prefix: string, dims: number[], data: Float32Array): string {
    const name = this.b.fresh(`grad/${prefix}`);
    this.b.initializers.push(floatTensor(name, dims, data));
    return name;
  }

  dims(v: string): SDim[] | undefined {
    return this.info.dims.get(v);
  }

  rank(v: string): number | undefined {
    return this.info.rank(v);
  }

  constInts(v: string | undefined): number[] | undefined {
    return v ? this.info.ints.get(v) : undefined;
  }

  constFloats(v: string | undefined): number[] | undefined {
    return v ? this.info.floats.get(v) : undefined;
  }

  /** `Shape(v)`, emitted once per value. */
  shape(v: string): string {
    let s = this.shapeCache.get(v);
    if (!s) {
      s = this.op('Shape', [v], {}, 'shape');
      this.shapeCache.set(v, s);
    }
    return s;
  }

  /** `Shape(v)[start:end]` as an int64 vector (end omitted = to the end). */
  shapeSlice(v: string, start: number, end?: number): string {
    return this.op('Slice', [this.shape(v), this.ints([start]), this.ints([end ?? SLICE_TO_END])], {}, 'dims');
  }

  /** Zeros shaped like forward value `v`. */
  zerosLike(v: string): string {
    let z = this.zeroCache.get(v);
    if (!z) {
      z = this.op('ConstantOfShape', [this.shape(v)], { value: floatTensor('', [1], new Float32Array([0])) }, 'zeros');
      this.zeroCache.set(v, z);
    }
    return z;
  }

  onesOfShape(shape: string): string {
    return this.op('ConstantOfShape', [shape], { value: floatTensor('', [1], new Float32Array([1])) }, 'ones');
  }

  /** A ConstantOfShape int64 filled with `value`. */
  intsOfShape(shape: string, value: number): string {
    return this.op('ConstantOfShape', [shape], { value: int64Tensor('', [1], [value]) }, 'fill');
  }

  castFloat(v: string): string {
    return this.op('Cast', [v], { to: DataType.FLOAT });
  }

  /** Reduce* with `axes` (constant list or a dynamic int64 tensor) in the form the opset wants. */
  reduce(op: string, x: string, axes: number[] | string | undefined, keepdims: boolean, extra: Record<string, AttrValue> = {}): string {
    const axesAsInput = op === 'ReduceSum' ? this.opset >= 13 : this.opset >= 18;
    if (axes === undefined) return this.op(op, [x], { keepdims: keepdims ? 1 : 0, ...extra });
    if (axesAsInput) {
      const ax = typeof axes === 'string' ? axes : this.ints(axes);
      return this.op(op, [x, ax], { keepdims: keepdims ? 1 : 0, ...extra });
    }
    if (typeof axes === 'string') throw new AutodiffError(`${op} with dynamic axes needs opset ≥ 18 (graph is ${this.opset})`, op);
    return this.op(op, [x], { axes, keepdims: keepdims ? 1 : 0, ...extra });
  }

  /**
   * Reduces gradient `g` (shaped like the broadcast result) back to the shape of operand `x`. `others` are the
   * static dims of the operands `x` was broadcast against; when they prove `x` was never broadcast, `g` is
   * returned as is. Otherwise the broadcast axes are found in-graph: pad Shape(x) with leading 1s to the rank
   * of g, reduce over the axes where it is 1 (`noop_with_empty_axes` makes "none" free), reshape to Shape(x).
   */
  unbroadcast(g: string, x: string, others: (SDim[] | undefined)[]): string {
    if (this.notBroadcast(x, others)) return g;
    const sx = this.shape(x);
    const sg = this.op('Shape', [g], {}, 'shape');
    const rx = this.rank(x);
    const rg = rankOfBroadcast(this.dims(x), others);
    let sxp = sx;
    if (rx === undefined || rg === undefined || rg !== rx) {
      const diff = this.op('Sub', [this.op('Size', [sg]), this.op('Size', [sx])]);
      const ones = this.intsOfShape(this.op('Reshape', [diff, this.ints([1])]), 1);
      sxp = this.op('Concat', [ones, sx], { axis: 0 });
    }
    const mask = this.op('Equal', [sxp, this.ints([1])]);
    const axes = this.op('Reshape', [this.op('NonZero', [mask]), this.ints([-1])]);
    const red = this.op('ReduceSum', [g, axes], { keepdims: 1, noop_with_empty_axes: 1 });
    return this.op('Reshape', [red, sx]);
  }

  private notBroadcast(x: string, others: (SDim[] | undefined)[]): boolean {
    const dx = this.dims(x);
    if (!dx) return false;
    for (const o of others) {
      if (!o) return false;
      if (o.length > dx.length) return false;
      for (let i = 0; i < o.length; i++) {
        const od = o[o.length - 1 - i]!;
        const xd = dx[dx.length - 1 - i]!;
        if (od === 1) continue;
        if (typeof xd === 'number' && xd !== 1) continue; // a known non-1 dim is never broadcast
        if (xd !== null && xd === od) continue;
        return false;
      }
    }
    return true;
  }

  /** Transpose(W, [1,0,…]) with the spatial axes reversed: the weight of the stride-1 input-gradient Conv. */
  flippedWeight(w: string, spatial: number[]): string {
    let f = this.flipCache.get(w);
    if (!f) {
      const perm = [1, 0, ...spatial.map((_, i) => i + 2)];
      f = this.op('Transpose', [w], { perm }, 'wT');
      const flipAxes = spatial.map((k, i) => (k > 1 ? i + 2 : -1)).filter((a) => a >= 0);
      if (flipAxes.length > 0) {
        f = this.op('Slice', [
          f, this.ints(flipAxes.map(() => -1)), this.ints(flipAxes.map(() => SLICE_TO_START)),
          this.ints(flipAxes), this.ints(flipAxes.map(() => -1)),
        ], {}, 'wflip');
      }
      this.flipCache.set(w, f);
    }
    return f;
  }

  /** Reads a node attribute (ints become numbers). */
  attrs(node: NodeProto): ReturnType<typeof attrs> {
    return attrs(node.attribute ?? []);
  }
}

function rankOfBroadcast(dx: SDim[] | undefined, others: (SDim[] | undefined)[]): number | undefined {
  if (!dx || others.some((o) => !o)) return undefined;
  return Math.max(dx.length, ...others.map((o) => o!.length));
}
