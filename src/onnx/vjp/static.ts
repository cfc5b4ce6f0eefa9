// Static (load-time) knowledge about the values of a forward graph: element type class, rank and dims where they
// can be inferred cheaply, and the values of small constant tensors. The autodiff never *needs* full shapes
// (every runtime size is computed in-graph with Shape/Slice/…); this only lets it skip work it can prove
// unnecessary (e.g. un-broadcasting a gradient whose operand was never broadcast) and read attributes such as
// kernel sizes, ranks and constant exponents. What each op does to dims and element types is part of its
// rule record (./rules/*.ts); this file only walks the nodes and keeps the results.
import {
  type NodeProto, type TensorProto, type ValueInfoProto, DataType, tensorToFloat32, tensorToInt64,
} from '../proto.js';
import { type Attrs, type SDim, attrs, int32Values, isFloatType } from './dims.js';

/** What a shape rule sees of one node: its attributes, the static knowledge of its inputs, and setters for its outputs. */
export interface InferArgs {
  node: NodeProto;
  a: Attrs;
  /** Input names ('' for an omitted optional input). */
  ins: string[];
  /** Static dims of input i (undefined: unknown). */
  dims(i: number): SDim[] | undefined;
  /** Value of input i when it is a small constant integer tensor. */
  ints(i: number): number[] | undefined;
  /** Records the dims of output i. */
  set(i: number, dims: SDim[] | undefined): void;
  /** Records the value of output i as a small constant integer tensor. */
  setInts(i: number, values: number[]): void;
  /** Records output i as the given constant tensor (dims, value, element class). */
  setConstant(i: number, t: TensorProto): void;
  /** Records output i as a float scalar constant. */
  setFloats(i: number, values: number[]): void;
  /** A fresh symbolic dim (equal only to itself). */
  fresh(): string;
}

/** Element class of an op's outputs: 'int' never float, 'like-input' non-float when input 0 is, or per output. */
export type OutputTypes = 'int' | 'like-input' | ((a: Attrs) => ('float' | 'int')[]);

/** The static-inference part of an op's rule record. */
export interface ShapeRule {
  /** Element class of the outputs (default: float — differentiable). */
  types?: OutputTypes;
  /** Best-effort output dims (and small constant values) from what is known about the inputs. */
  infer?: (n: InferArgs) => void;
}

export class StaticInfo {
  readonly dims = new Map<string, SDim[]>();
  readonly ints = new Map<string, number[]>();
  readonly floats = new Map<string, number[]>();
  readonly initializers = new Map<string, TensorProto>();
  /** Values known to be non-float (int64 shapes, bool masks): never differentiable. */
  readonly nonFloat = new Set<string>();
  /** Op type of the node producing each value. */
  readonly producerOp = new Map<string, string>();
  private symCounter = 0;

  constructor(
    nodes: NodeProto[], inputs: ValueInfoProto[], initializers: TensorProto[],
    rules: (node: NodeProto) => ShapeRule | undefined,
  ) {
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
      for (const o of n.output ?? []) if (o) this.producerOp.set(o, n.opType ?? '');
      const rule = rules(n);
      if (!rule) continue;
      try {
        this.inferNode(n, rule);
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

  private inferNode(n: NodeProto, rule: ShapeRule): void {
    const ins = (n.input ?? []).map((x) => x ?? '');
    const outs = n.output ?? [];
    const a = attrs(n.attribute ?? []);
    const types = rule.types;
    if (types === 'int' || (types === 'like-input' && ins[0] && this.nonFloat.has(ins[0]))) {
      for (const o of outs) if (o) this.nonFloat.add(o);
    } else if (typeof types === 'function') {
      types(a).forEach((t, i) => { if (t === 'int' && outs[i]) this.nonFloat.add(outs[i]!); });
    }
    rule.infer?.({
      node: n, a, ins,
      dims: (i) => (ins[i] ? this.dims.get(ins[i]!) : undefined),
      ints: (i) => (ins[i] ? this.ints.get(ins[i]!) : undefined),
      set: (i, v) => { if (v && outs[i]) this.dims.set(outs[i]!, v); },
      setInts: (i, v) => { if (outs[i]) this.ints.set(outs[i]!, v); },
      setFloats: (i, v) => { if (outs[i]) this.floats.set(outs[i]!, v); },
      setConstant: (i, t) => {
        if (!outs[i]) return;
        this.dims.set(outs[i]!, (t.dims ?? []).map(Number));
        this.recordConstant(outs[i]!, t);
      },
      fresh: () => `anon:${++this.symCounter}`,
    });
  }
}
