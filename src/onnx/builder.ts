// A small typed API to declare an ONNX graph (inputs, initializers, nodes, outputs) and serialise it.
// Node construction stays deliberately plain — op type, input names, attributes — so a graph can be
// read back and differentiated by the autodiff without any hidden state.
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeAtomic } from '../util/fs.js';
import {
  type AttrValue, type Dim, type ElemType, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto,
  DataType, IR_VERSION, OPSET, encodeModel, floatTensor, int64Tensor, makeNode, makeValueInfo, onnx,
} from './proto.js';

export interface NodeOptions {
  /** Output names; default one fresh name derived from the op type. A number asks for that many fresh outputs. */
  outputs?: string[] | number;
  /** Prefix of the fresh output names when `outputs` is not a list (default: the op type in lower case). */
  prefix?: string;
  name?: string;
  domain?: string;
}

export interface SerializeOptions {
  /**
   * Write initializers larger than `externalThreshold` bytes to a separate file with this name (relative to the
   * .onnx). External data loads ~3× faster in ORT than embedded weights (onnxruntime facts §3).
   */
  externalDataFile?: string;
  externalThreshold?: number;
  producer?: string;
  metadata?: Record<string, string>;
}

export interface SerializedModel {
  model: Uint8Array;
  /** Contents of the external data file, when requested and non-empty. */
  externalData?: Uint8Array;
}

const EXTERNAL_ALIGN = 4096;

export class GraphBuilder {
  readonly nodes: NodeProto[] = [];
  readonly inputs: ValueInfoProto[] = [];
  readonly outputs: ValueInfoProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly used = new Set<string>();
  private counter = 0;

  constructor(readonly name = 'graph') {}

  /**
   * A builder over an existing graph: its nodes, inputs, outputs and initializers are adopted (the arrays are
   * copied, the protos are shared, not cloned) and every value name it defines is reserved, so {@link fresh},
   * {@link node}, {@link ints} and {@link scalar} can extend it safely (used by the autodiff).
   */
  static fromGraph(graph: GraphProto, name?: string): GraphBuilder {
    const b = new GraphBuilder(name ?? graph.name ?? 'graph');
    b.nodes.push(...(graph.node ?? []));
    b.inputs.push(...(graph.input ?? []));
    b.outputs.push(...(graph.output ?? []));
    b.initializers.push(...(graph.initializer ?? []));
    for (const v of b.inputs) if (v.name) b.used.add(v.name);
    for (const t of b.initializers) if (t.name) b.used.add(t.name);
    for (const n of b.nodes) {
      for (const o of n.output ?? []) if (o) b.used.add(o);
      if (n.name) b.used.add(n.name);
    }
    return b;
  }

  /** A name not used yet in this graph, derived from `prefix`. */
  fresh(prefix: string): string {
    let candidate = prefix;
    while (this.used.has(candidate)) candidate = `${prefix}_${++this.counter}`;
    this.used.add(candidate);
    return candidate;
  }

  private claim(name: string): string {
    if (this.used.has(name)) throw new Error(`ONNX graph '${this.name}': name '${name}' is already defined`);
    this.used.add(name);
    return name;
  }

  input(name: string, elem: ElemType, dims: Dim[]): string {
    this.inputs.push(makeValueInfo(this.claim(name), elem, dims));
    return name;
  }

  /** Marks an existing value as a graph output (dims optional: ORT infers them). */
  output(name: string, elem: ElemType = 'float32', dims?: Dim[]): string {
    if (!this.used.has(name)) throw new Error(`ONNX graph '${this.name}': output '${name}' is not produced by any node`);
    this.outputs.push(makeValueInfo(name, elem, dims));
    return name;
  }

  hasValue(name: string): boolean {
    return this.used.has(name);
  }

  /** A float32 weight. The data is referenced, not copied, until serialisation. */
  weight(name: string, dims: number[], data: Float32Array): string {
    const expected = dims.reduce((a, b) => a * b, 1);
    if (data.length !== expected) {
      throw new Error(`ONNX graph '${this.name}': weight '${name}' has ${data.length} values, dims [${dims}] need ${expected}`);
    }
    this.initializers.push(floatTensor(this.claim(name), dims, data));
    return name;
  }

  /** An int64 constant (shapes, axes, pads), deduplicated by value. */
  ints(values: number[], dims: number[] = [values.length]): string {
    const key = `const_i64_${dims.join('x')}_${values.join('_').replace(/-/g, 'm')}`;
    if (this.used.has(key)) return key;
    this.initializers.push(int64Tensor(this.claim(key), dims, values));
    return key;
  }

  /** A float32 scalar (or 1-element) constant, deduplicated by value. */
  scalar(value: number, dims: number[] = []): string {
    const key = `const_f32_${dims.join('x')}_${String(value).replace(/[-.+]/g, (c) => ({ '-': 'm', '.': 'p', '+': '' })[c] ?? '')}`;
    if (this.used.has(key)) return key;
    this.initializers.push(floatTensor(this.claim(key), dims, new Float32Array([value])));
    return key;
  }

  /** Appends a node; returns its single output name (use {@link nodeMulti} for several outputs). */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}, opts: NodeOptions = {}): string {
    return this.nodeMulti(opType, inputs, attrs, opts)[0]!;
  }

  nodeMulti(opType: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}, opts: NodeOptions = {}): string[] {
    const outs = Array.isArray(opts.outputs)
      ? opts.outputs.map((o) => this.claim(o))
      : Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(opts.prefix ?? opType.toLowerCase()));
    this.nodes.push(makeNode(opType, inputs, outs, attrs, opts.name ?? this.fresh(`n_${outs[0]}`), opts.domain));
    return outs;
  }

  toGraph(): GraphProto {
    return { name: this.name, node: this.nodes, input: this.inputs, output: this.outputs, initializer: this.initializers };
  }

  serialize(opts: SerializeOptions = {}): SerializedModel {
    const threshold = opts.externalThreshold ?? 1024;
    let initializers = this.initializers;
    let externalData: Uint8Array | undefined;
    if (opts.externalDataFile) {
      const chunks: { offset: number; bytes: Uint8Array }[] = [];
      let offset = 0;
      initializers = this.initializers.map((t) => {
        const raw = t.rawData;
        if (t.dataType !== DataType.FLOAT || !raw || raw.byteLength < threshold) return t;
        offset = Math.ceil(offset / EXTERNAL_ALIGN) * EXTERNAL_ALIGN;
        chunks.push({ offset, bytes: raw });
        const ext: TensorProto = {
          name: t.name, dims: t.dims, dataType: t.dataType, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [
            { key: 'location', value: opts.externalDataFile },
            { key: 'offset', value: String(offset) },
            { key: 'length', value: String(raw.byteLength) },
          ],
        };
        offset += raw.byteLength;
        return ext;
      });
      if (chunks.length > 0) {
        externalData = new Uint8Array(offset);
        for (const c of chunks) externalData.set(c.bytes, c.offset);
      }
    }
    const graph = { ...this.toGraph(), initializer: initializers };
    const model = encodeModel({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: '', version: OPSET }],
      producerName: opts.producer ?? 'convserve',
      graph,
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    });
    return { model, externalData };
  }

  /**
   * Writes `<path>` and (if any) its external data file next to it, each through a temporary name and a
   * rename, so a reader never sees a half-written model.
   */
  save(path: string, opts: SerializeOptions = {}): { modelPath: string; dataPath?: string } {
    const out = this.serialize(opts);
    mkdirSync(dirname(path), { recursive: true });
    let dataPath: string | undefined;
    if (out.externalData && opts.externalDataFile) {
      dataPath = join(dirname(path), opts.externalDataFile);
      writeAtomic(dataPath, out.externalData);
    }
    writeAtomic(path, out.model);
    return { modelPath: path, dataPath };
  }
}

export { writeAtomic };
