// KerasImport (./ir.ts: a dialect-free model + its weights) → an ONNX graph with Keras inference semantics.
//
// The graph takes `input` as NCHW float32 [N, C, H, W] (a rank-3 Keras input (H, W) becomes C = 1) and every
// Keras layer's output is a value named after the layer, so any layer can be fetched later (graph-outputs.ts).
// Rank-4 tensors are NCHW inside the graph, everything else keeps the Keras axis order (layers/context.ts).
// Nested models (a Functional or Sequential used as a layer) are inlined: their layers keep their own names when
// those are free (`block5_conv3`), otherwise `<outer>/<inner>`; the nested model's output is also named after it.
// A BatchNormalization directly after a linear Conv2D/DepthwiseConv2D is folded into it: the convolution's value
// then carries the BatchNormalization's name and the conv itself is listed with `foldedInto`.
import { GraphBuilder } from '../../onnx/builder.js';
import { badConfig } from './config.js';
import { KerasImportError } from './errors.js';
import type { KLayer, KModel, KTensorRef, KerasImport } from './ir.js';
import { activationName } from './layers/activations.js';
import { type ConvertOptions, EmitContext, type KTensor, type Shape, mismatch, unsupported } from './layers/context.js';
import { EMITTERS, FOLDABLE_INTO, IDENTITY_LAYERS } from './layers/index.js';
import { bnAxis } from './layers/normalization.js';

export type { ConvertOptions } from './layers/context.js';

export type OutputKind = 'probabilities' | 'logits' | 'sigmoid' | 'features';

export interface ConvertedLayer {
  /** ONNX value name of the layer's output (its Keras name, `<outer>/<inner>` on a clash inside a nested model). */
  name: string;
  className: string;
  /** Keras order (N, H, W, C for images), batch included as null. */
  outputShape: Shape;
  /** The BatchNormalization value this convolution was folded into (the conv has no value of its own). */
  foldedInto?: string;
}

export interface KerasOnnx {
  graph: GraphBuilder;
  /** The graph input `input`: NCHW; height/width null when the model accepts any size. */
  input: { name: 'input'; height: number | null; width: number | null; channels: number; fixed: boolean };
  /** Graph output value names (Keras layer names), in the model's output order. */
  outputs: string[];
  /** What the first output means: softmax → probabilities, linear → logits, sigmoid → independent probabilities. */
  outputKind: OutputKind;
  layers: ConvertedLayer[];
}

const INPUT = 'input';

function unsupportedInput(detail: string): KerasImportError {
  return new KerasImportError('unsupported-input', detail);
}

const isModelLayer = (l: KLayer) => l.model !== undefined;

class Converter {
  readonly g: GraphBuilder;
  readonly layers: ConvertedLayer[] = [];
  private readonly consumed = new Set<string>();
  private readonly reserved: Set<string>;
  input?: KerasOnnx['input'];

  constructor(private readonly imp: KerasImport, private readonly options: ConvertOptions) {
    this.g = new GraphBuilder(imp.model.name || 'keras');
    this.reserved = new Set(imp.model.layers.map((l) => l.name));
  }

  /** Layers with a stored weight list that no layer of the model consumed. */
  unusedWeights(): string[] {
    return [...this.imp.weights].filter(([key, ws]) => ws.length > 0 && !this.consumed.has(key)).map(([key]) => key);
  }

  /** Emits `model`; `bound` are the tensors its inputs take (null for the top-level model: graph inputs). */
  emitModel(model: KModel, pathPrefix: string, bound: KTensor[] | null): KTensor[] {
    const values = new Map<string, KTensor[][]>();
    const byName = new Map(model.layers.map((l) => [l.name, l]));
    const names = new Map<string, string>();
    const nameOf = (layer: KLayer, call: number): string => {
      const key = `${layer.name}#${call}`;
      let name = names.get(key);
      if (!name) {
        const base = pathPrefix === '' || (!this.reserved.has(layer.name) && !this.g.hasValue(layer.name)) ? layer.name : `${pathPrefix}/${layer.name}`;
        name = call === 0 ? base : `${base}/call${call}`;
        if (this.g.hasValue(name) || (pathPrefix !== '' && [...names.values()].includes(name))) {
          throw badConfig(`two layers would both be named '${name}' in the converted graph`);
        }
        names.set(key, name);
      }
      return name;
    };
    const resolve = (ref: KTensorRef, consumer: string): KTensor => {
      const calls = values.get(ref.layer);
      const call = calls?.[ref.node] ?? (calls?.length === 1 ? calls[0] : undefined);
      const t = call?.[ref.tensor];
      if (!t) throw badConfig(`layer '${consumer}' consumes output ${ref.tensor} of call ${ref.node} of '${ref.layer}', which the model does not produce`);
      return t;
    };
    const pathOf = (l: KLayer) => (pathPrefix ? `${pathPrefix}/${l.name}` : l.name);
    const { foldInto, folded } = this.planFolds(model, byName);

    model.inputs.forEach((ref, i) => {
      const layer = byName.get(ref.layer);
      if (!layer || layer.className !== 'InputLayer') throw badConfig(`model input '${ref.layer}' is not an InputLayer of model '${model.name}'`);
      const t = bound ? bound[i] : this.graphInput(layer, model.inputs.length);
      if (!t) throw badConfig(`nested model '${model.name}' has ${model.inputs.length} inputs but is called with ${bound?.length ?? 0}`);
      values.set(layer.name, [[t]]);
      if (!bound) this.layers.push({ name: t.value, className: 'InputLayer', outputShape: t.shape });
    });

    // Calls are emitted as soon as their inputs exist, sweeping the layers in order (as Keras rebuilds a model):
    // a shared layer's later calls may depend on other layers that consume its earlier ones.
    const pending = model.layers.filter((l) => l.className !== 'InputLayer' && l.inbound.length > 0);
    const ready = (ref: KTensorRef) => {
      const calls = values.get(ref.layer);
      const total = byName.get(ref.layer)?.inbound.length ?? 0;
      return calls !== undefined && (calls[ref.node] !== undefined || (total <= 1 && calls.length === 1));
    };
    while (pending.length > 0) {
      let progressed = false;
      for (const layer of [...pending]) {
        const calls = values.get(layer.name) ?? [];
        while (calls.length < layer.inbound.length && layer.inbound[calls.length]!.every(ready)) {
          const call = calls.length;
          calls.push(this.emitCall(layer, call, layer.inbound[call]!.map((r) => resolve(r, layer.name)), nameOf, pathOf, foldInto, folded));
          values.set(layer.name, calls);
          progressed = true;
        }
        if (calls.length === layer.inbound.length) pending.splice(pending.indexOf(layer), 1);
      }
      if (!progressed) throw badConfig(`model '${model.name}': the calls of ${pending.map((l) => `'${l.name}'`).join(', ')} wait on each other (a cycle)`);
    }
    return model.outputs.map((ref) => resolve(ref, `${model.name} (output)`));
  }

  /** Emits one call of a layer (a nested model is inlined); records it in the layer list. */
  private emitCall(
    layer: KLayer, call: number, inputs: KTensor[], nameOf: (l: KLayer, call: number) => string, pathOf: (l: KLayer) => string,
    foldInto: Map<string, KLayer>, folded: Set<string>,
  ): KTensor[] {
    const out = nameOf(layer, call);
    if (isModelLayer(layer)) {
      const result = this.emitModel(layer.model!, pathOf(layer), inputs).map((t, i) => {
        const name = i === 0 ? out : `${out}/output${i}`;
        this.g.node('Identity', [t.value], {}, { outputs: [name] });
        return { value: name, shape: t.shape };
      });
      this.layers.push({ name: out, className: layer.className, outputShape: result[0]!.shape });
      return result;
    }
    if (folded.has(layer.name)) {
      // The conv before already produced this value under this layer's name.
      this.layers.push({ name: out, className: layer.className, outputShape: inputs[0]!.shape });
      return [inputs[0]!];
    }
    const emit = EMITTERS[layer.className];
    if (!emit) throw unsupported(layer);
    const bn = call === 0 ? foldInto.get(layer.name) : undefined;
    const ctx = new EmitContext(this.g, layer, pathOf(layer), bn ? nameOf(bn, 0) : out, this.options,
      (p) => this.imp.weights.get(p), this.consumed, bn ? { layer: bn, path: pathOf(bn) } : undefined);
    const t = emit(ctx, inputs);
    if (t.value !== ctx.out) this.g.node('Identity', [t.value], {}, { outputs: [ctx.out] });
    this.layers.push({ name: out, className: layer.className, outputShape: t.shape, ...(bn ? { foldedInto: ctx.out } : {}) });
    return [{ value: ctx.out, shape: t.shape }];
  }

  /** BatchNormalizations to fold: each directly after a linear, single-use, single-call Conv2D/DepthwiseConv2D. */
  private planFolds(model: KModel, byName: Map<string, KLayer>): { foldInto: Map<string, KLayer>; folded: Set<string> } {
    const foldInto = new Map<string, KLayer>();
    const folded = new Set<string>();
    if (this.options.foldBatchNorm === false) return { foldInto, folded };
    const uses = new Map<string, number>();
    const count = (r: KTensorRef) => uses.set(r.layer, (uses.get(r.layer) ?? 0) + 1);
    for (const l of model.layers) for (const refs of l.inbound) refs.forEach(count);
    model.outputs.forEach(count);
    for (const bn of model.layers) {
      if (bn.className !== 'BatchNormalization' || bn.inbound.length !== 1 || bn.inbound[0]!.length !== 1) continue;
      const conv = byName.get(bn.inbound[0]![0]!.layer);
      if (!conv || !FOLDABLE_INTO.has(conv.className) || conv.inbound.length !== 1) continue;
      if (activationName(conv.config.activation) !== 'linear' || uses.get(conv.name) !== 1) continue;
      if (bnAxis(bn, 4) !== 3) continue;
      foldInto.set(conv.name, bn);
      folded.add(bn.name);
    }
    return { foldInto, folded };
  }

  /** The graph input `input` (NCHW) for the model's InputLayer, and the Keras-order tensor it stands for. */
  private graphInput(layer: KLayer, inputCount: number): KTensor {
    if (inputCount !== 1) throw unsupportedInput(`the model has ${inputCount} inputs; convserve models take one image`);
    const raw = layer.config.batch_shape;
    if (!Array.isArray(raw)) throw badConfig(`input layer '${layer.name}' does not record its shape`);
    const shape: Shape = raw.map((d) => (typeof d === 'number' ? d : null));
    if (shape.length !== 4 && shape.length !== 3) {
      throw unsupportedInput(`input '${layer.name}' has shape ${JSON.stringify(raw)}; an image model takes (height, width, channels) or (height, width)`);
    }
    const fixed = shape[1] !== null && shape[2] !== null;
    if (!fixed && this.options.inputSize) {
      shape[1] ??= this.options.inputSize.height;
      shape[2] ??= this.options.inputSize.width;
    }
    const channels = shape.length === 4 ? shape[3] : 1;
    if (channels === null || channels === undefined) throw unsupportedInput(`input '${layer.name}' has an unknown channel count`);
    const dims = ['N', channels, shape[1] ?? 'H', shape[2] ?? 'W'];
    this.g.input(INPUT, 'float32', dims);
    this.input = { name: INPUT, height: shape[1] ?? null, width: shape[2] ?? null, channels, fixed };
    if (shape.length === 3) {
      return { value: this.g.node('Squeeze', [INPUT, this.g.ints([1])], {}, { outputs: [layer.name] }), shape };
    }
    if (layer.name === INPUT) return { value: INPUT, shape };
    return { value: this.g.node('Identity', [INPUT], {}, { outputs: [layer.name] }), shape };
  }
}

/** Follows identity layers and nested models back to the layer that decides what an output means. */
function outputKindOf(model: KModel, ref: KTensorRef, rank: number): OutputKind {
  if (rank === 4) return 'features';
  const layer = model.layers.find((l) => l.name === ref.layer);
  if (!layer) return 'features';
  if (layer.model) return outputKindOf(layer.model, layer.model.outputs[ref.tensor] ?? layer.model.outputs[0]!, rank);
  if (IDENTITY_LAYERS.has(layer.className)) {
    const input = layer.inbound[ref.node]?.[0] ?? layer.inbound[0]?.[0];
    return input ? outputKindOf(model, input, rank) : 'features';
  }
  if (layer.className === 'Softmax') return 'probabilities';
  if (!('activation' in layer.config) && layer.className !== 'Activation') return 'features';
  switch (activationName(layer.config.activation)) {
    case 'softmax': return 'probabilities';
    case 'sigmoid': return 'sigmoid';
    case 'linear': return 'logits';
    default: return 'features';
  }
}

/**
 * Converts an imported Keras model to ONNX. Throws 422 KerasImportErrors: `keras-import-unsupported-layer` (a class or
 * option with no conversion, naming the layer), `keras-import-mismatch` (weights missing, extra or of the wrong
 * shape), `keras-import-bad-config`, `keras-import-unsupported-input`.
 */
export function kerasToOnnx(imp: KerasImport, opts: ConvertOptions = {}): KerasOnnx {
  const options: ConvertOptions = {
    ...opts,
    hardSigmoid: opts.hardSigmoid ?? (imp.kerasVersion?.startsWith('3') ? 'keras3' : 'keras2'),
  };
  const c = new Converter(imp, options);
  const outputs = c.emitModel(imp.model, '', null);
  const unused = c.unusedWeights();
  if (unused.length > 0) {
    throw mismatch(`the file has weights for ${unused.map((u) => `'${u}'`).join(', ')}, but the model config has no weighted layer of that name`, { found: unused });
  }
  const names: string[] = [];
  for (const t of outputs) {
    if (names.includes(t.value)) continue;
    c.g.output(t.value, 'float32');
    names.push(t.value);
  }
  const first = imp.model.outputs[0]!;
  return {
    graph: c.g,
    input: c.input!,
    outputs: names,
    outputKind: outputKindOf(imp.model, first, outputs[0]!.shape.length),
    layers: c.layers,
  };
}
