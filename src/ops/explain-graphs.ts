// The ONNX graphs behind the explanations, built from an installed classifier's model.onnx:
//
// - what a model offers: the value holding the class scores (the input of the Softmax that feeds the output,
//   i.e. the pre-softmax logits, when there is one; else the output itself) and its 4-D feature maps (the
//   layers Grad-CAM may use);
// - the Grad-CAM graph: the network is cut at the chosen layer A (its consumers read a new graph input that an
//   Identity of A feeds after differentiation), so the autodiff differentiates the head only — d score / d A
//   costs about one forward pass, nothing below A is differentiated — and the map ReLU(Σ_k mean(dS/dA_k)·A_k)
//   is computed in-graph;
// - the input-gradient graph (saliency, integrated gradients, SmoothGrad): d score / d image, reduced in-graph
//   over the batch rows so a run returns one [1,C,H,W] sum and one [H,W] saliency sum instead of every row.
//
// Both graphs take the same extra inputs: `explain_class` (a scalar class index; −1 = the top class of row 0)
// and `explain_weight` (one weight per batch row; the loss is Σ_n weight_n · score_n, so a weight-0 row — the
// image itself, the baseline — only contributes its score). Input H×W stays as the model declares it.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { appendGradients, pruneUnused } from '../onnx/autodiff.js';
import { GraphBuilder } from '../onnx/builder.js';
import { type Dim, type ModelProto, type NodeProto, type TensorProto, DataType, decodeModel, encodeModel, makeNode, onnx } from '../onnx/proto.js';
import { StaticInfo } from '../onnx/vjp/static.js';
import { ruleOf } from '../onnx/vjp/registry.js';
import { writeAtomic } from '../util/fs.js';
import { ensureSession, materializeExternal } from './grad-session.js';

/** Scalar class index to explain; a negative value asks for the top class of batch row 0. */
export const CLASS_INPUT = 'explain_class';
/** Per-row weights [N] of the differentiated score sum. */
export const WEIGHT_INPUT = 'explain_weight';
/** Outputs: per-row class scores [N], the class explained (float scalar), the Grad-CAM map [N,h,w]. */
export const SCORES = 'explain_scores';
export const CLASS_INDEX = 'explain_class_index';
export const CAM = 'explain_cam';
/** Σ over rows of d score / d image [1,C,H,W], and Σ over rows of max_c |d score / d image| [H,W]. */
export const GRAD_SUM = 'explain_grad_sum';
export const SALIENCY_SUM = 'explain_saliency_sum';
/** The graph input that replaces the Grad-CAM layer for its consumers. */
const CUT = 'explain_layer_act';

/** Ops that only move values around: a 4-D result of these is not a feature map (e.g. NCHW → NHWC before a Flatten). */
const LAYOUT_OPS = new Set(['Transpose', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast', 'Expand', 'Tile', 'Slice', 'Pad']);

export interface ModelFacts {
  /** Value holding the class scores [N, classes]. */
  score: string;
  /** True when `score` is the pre-softmax logit; false when the output is used as it is. */
  scoreIsLogit: boolean;
  /** 4-D feature maps (NCHW) the score depends on, in node order. */
  layers: string[];
  /** The model's ONNX default-domain opset. */
  opset: number;
  /** Some initializers live in an external-data file next to model.onnx. */
  externalWeights: boolean;
}

/** Reads what an explanation needs to know about a classifier graph; `output` is the probabilities output. */
export function modelFacts(model: ModelProto, output: string): ModelFacts {
  const graph = model.graph!;
  const nodes = graph.node ?? [];
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) if (o) producer.set(o, n);
  let score = output;
  let p = producer.get(score);
  while (p?.opType === 'Identity') { score = p.input![0]!; p = producer.get(score); }
  const scoreIsLogit = p?.opType === 'Softmax';
  if (scoreIsLogit) score = p!.input![0]!;
  else score = output;

  const ancestors = new Set<string>();
  const stack = [score];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (ancestors.has(v)) continue;
    ancestors.add(v);
    for (const x of producer.get(v)?.input ?? []) if (x) stack.push(x);
  }
  const info = new StaticInfo(nodes, graph.input ?? [], graph.initializer ?? [], ruleOf);
  const maps = nodes
    .filter((n) => !LAYOUT_OPS.has(n.opType ?? ''))
    .flatMap((n) => (n.output ?? []).slice(0, 1))
    .filter((v) => ancestors.has(v) && info.rank(v) === 4 && !isOneByOne(info.dims.get(v)!));
  // Architecture graphs name every Keras layer output plainly and their internals `layer/part`; prefer the former.
  const plain = maps.filter((v) => !v.includes('/'));
  const externalWeights = (graph.initializer ?? []).some((t) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL);
  return { score, scoreIsLogit, layers: plain.length > 0 ? plain : maps, opset: defaultOpset(model), externalWeights };
}

/** A global pool's [N, C, 1, 1] output is 4-D but has no spatial extent to explain. */
function isOneByOne(dims: readonly (number | string | null)[]): boolean {
  return dims[2] === 1 && dims[3] === 1;
}

function defaultOpset(model: ModelProto): number {
  const def = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return def ? Number(def.version) : 0;
}

/** Reduce ops take `axes` as an attribute up to opset 17 and as an input from 18 (ReduceSum: from 13). */
function reduce(b: GraphBuilder, op: 'ReduceSum' | 'ReduceMean' | 'ReduceMax', x: string, axes: number[], keepdims: 0 | 1, opset: number, name?: string): string {
  const opts = name ? { outputs: [name] } : {};
  if (op === 'ReduceSum' || opset >= 18) return b.node(op, [x, b.ints(axes)], { keepdims }, opts);
  return b.node(op, [x], { axes, keepdims }, opts);
}

/**
 * Appends the score head: the per-row score of the explained class (outputs SCORES and CLASS_INDEX) and the
 * scalar Σ_n weight_n · score_n to differentiate, whose name is returned.
 */
function addScoreHead(b: GraphBuilder, score: string, opset: number): string {
  const cls = b.input(CLASS_INPUT, 'float32', []);
  const weight = b.input(WEIGHT_INPUT, 'float32', ['explain_rows']);
  // Index selection is integer arithmetic: the autodiff treats it as constant (no gradient flows through it).
  const top = b.node('ArgMax', [b.node('Gather', [score, b.ints([0], [])], { axis: 0 })], { axis: 0, keepdims: 0 });
  const asked = b.node('Cast', [cls], { to: DataType.INT64 });
  const index = b.node('Where', [b.node('Less', [cls, b.scalar(0)]), top, asked]);
  const classes = b.node('Gather', [b.node('Shape', [score]), b.ints([1], [])], { axis: 0 });
  const range = b.node('Range', [b.ints([0], []), classes, b.ints([1], [])]);
  const oneHot = b.node('Cast', [b.node('Equal', [range, index])], { to: DataType.FLOAT });
  const scores = reduce(b, 'ReduceSum', b.node('Mul', [score, oneHot]), [1], 0, opset, SCORES);
  b.node('Cast', [index], { to: DataType.FLOAT }, { outputs: [CLASS_INDEX] });
  return b.node('ReduceSum', [b.node('Mul', [scores, weight])], { keepdims: 0 });
}

/**
 * Where the weights go: 'inline' materialises external-data initializers into the bytes (self-contained, like
 * dream/style); 'external' keeps their references to the model folder's weights file, for a graph written into
 * that folder (ORT then reads the weights itself, and the main thread never copies them).
 */
export type WeightsMode = 'inline' | 'external';

function finish(model: ModelProto, b: GraphBuilder, outputs: string[], modelPath: string, opset: number, weights: WeightsMode): Uint8Array {
  b.outputs.length = 0;
  for (const o of outputs) b.output(o, 'float32');
  const graph = pruneUnused(b.toGraph());
  if (weights === 'inline') materializeExternal(graph.initializer as TensorProto[], dirname(modelPath));
  return encodeModel(onnx.ModelProto.create({
    ...model,
    irVersion: Math.max(Number(model.irVersion ?? 8), 8),
    opsetImport: [...(model.opsetImport ?? []).filter((o) => o.domain && o.domain !== 'ai.onnx'), { domain: '', version: opset }],
    graph: { ...graph, valueInfo: [] },
  }));
}

/** The opset the gradient graphs are written for: ScatterElements(reduction='add') of the max-pool VJP needs ≥ 16. */
const gradOpset = (facts: ModelFacts): number => Math.max(facts.opset, 17);

/**
 * Grad-CAM graph: cut at `layer`, gradient of the selected class score w.r.t. the layer only, then the map
 * ReLU(Σ_k α_k A_k) with α_k = spatial mean of d score / d A_k. Outputs CAM [N,h,w], SCORES, CLASS_INDEX and
 * the model's probabilities output.
 */
export function buildGradcamModel(modelPath: string, output: string, facts: ModelFacts, layer: string, weights: WeightsMode = 'inline'): Uint8Array {
  const model = decodeModel(readFileSync(modelPath));
  const graph = model.graph!;
  const opset = gradOpset(facts);
  const info = new StaticInfo(graph.node ?? [], graph.input ?? [], graph.initializer ?? [], ruleOf);
  const b = GraphBuilder.fromGraph(graph);
  const dims: Dim[] = (info.dims.get(layer) ?? [null, null, null, null]).map((d, i) => (typeof d === 'number' ? d : `explain_layer_d${i}`));
  b.input(CUT, 'float32', dims);
  for (const n of b.nodes) n.input = (n.input ?? []).map((x) => (x === layer ? CUT : x));
  const loss = addScoreHead(b, facts.score, opset);
  const grad = appendGradients(b, { loss, wrt: [CUT], opset })[CUT]!;
  const alpha = reduce(b, 'ReduceMean', grad, [2, 3], 1, opset);
  b.node('Relu', [reduce(b, 'ReduceSum', b.node('Mul', [alpha, CUT]), [1], 0, opset)], {}, { outputs: [CAM] });
  // Close the cut: the layer's value feeds the head through an Identity placed right after its producer (the
  // node order stays topological), and the cut stops being a graph input.
  const at = b.nodes.findIndex((n) => (n.output ?? []).includes(layer));
  b.nodes.splice(at + 1, 0, makeNode('Identity', [layer], [CUT], {}, b.fresh('explain_cut')));
  b.inputs.splice(b.inputs.findIndex((v) => v.name === CUT), 1);
  return finish(model, b, [CAM, SCORES, CLASS_INDEX, output], modelPath, opset, weights);
}

/**
 * Input-gradient graph: d score / d image for every batch row, reduced over the rows in-graph. Outputs
 * GRAD_SUM [1,C,H,W], SALIENCY_SUM [H,W], SCORES, CLASS_INDEX and the model's probabilities output.
 */
export function buildInputGradientModel(modelPath: string, input: string, output: string, facts: ModelFacts, weights: WeightsMode = 'inline'): Uint8Array {
  const model = decodeModel(readFileSync(modelPath));
  const opset = gradOpset(facts);
  const b = GraphBuilder.fromGraph(model.graph!);
  const loss = addScoreHead(b, facts.score, opset);
  const grad = appendGradients(b, { loss, wrt: [input], opset })[input]!;
  reduce(b, 'ReduceSum', grad, [0], 1, opset, GRAD_SUM);
  reduce(b, 'ReduceSum', reduce(b, 'ReduceMax', b.node('Abs', [grad]), [1], 0, opset), [0], 0, opset, SALIENCY_SUM);
  return finish(model, b, [GRAD_SUM, SALIENCY_SUM, SCORES, CLASS_INDEX, output], modelPath, opset, weights);
}

export type GraphKind = { kind: 'gradcam'; layer: string } | { kind: 'input' };

export interface ExplainModelRef {
  modelPath: string;
  /** Identity of the model folder's contents (grad-session's modelStamp). */
  stamp: string;
  input: string;
  output: string;
  facts: ModelFacts;
}

/**
 * The engine session of one explanation graph, loaded once per (model stamp, method kind, layer) through the
 * engine's shared gradient-session cache; returns its engine key.
 *
 * The graph is written next to model.onnx (`.explain-….onnx`, its weights still referenced in the folder's
 * weights file: ORT refuses external data outside the model's directory, even through a symlink) and loaded by
 * path, so building it takes milliseconds and the weights never pass through the main thread — for VGG19 that
 * is 550 MB read, encoded and copied to the worker otherwise. A model folder that cannot be written (read-only
 * mount) falls back to self-contained bytes.
 */
export function explainSession(engine: Engine, ref: ExplainModelRef, g: GraphKind): Promise<string> {
  const key = g.kind === 'gradcam' ? `explain:${ref.stamp}:gradcam:${g.layer}` : `explain:${ref.stamp}:input`;
  const build = (weights: WeightsMode) => (g.kind === 'gradcam'
    ? buildGradcamModel(ref.modelPath, ref.output, ref.facts, g.layer, weights)
    : buildInputGradientModel(ref.modelPath, ref.input, ref.output, ref.facts, weights));
  return ensureSession(engine, key, () => {
    const bytes = build('external');
    if (!ref.facts.externalWeights) return bytes;
    const path = join(dirname(ref.modelPath), `.explain-${createHash('sha256').update(key).digest('hex').slice(0, 16)}.onnx`);
    try {
      writeAtomic(path, bytes);
      return { path };
    } catch {
      return build('inline');
    }
  });
}

const factsMemo = new Map<string, { stamp: string; facts: ModelFacts }>();

/** {@link modelFacts} of an installed model, read once per model stamp (model.onnx without its weights file is small). */
export function installedModelFacts(modelPath: string, stamp: string, output: string): ModelFacts {
  const hit = factsMemo.get(modelPath);
  if (hit && hit.stamp === stamp) return hit.facts;
  const facts = modelFacts(decodeModel(readFileSync(modelPath)), output);
  factsMemo.set(modelPath, { stamp, facts });
  return facts;
}
