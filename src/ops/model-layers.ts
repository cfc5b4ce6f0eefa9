// The layers of a served model that DeepDream and style transfer may use by name: its 4-D feature maps.
// Where the names come from, in order:
// - the manifest's `layers` (an imported Keras model: every Keras layer, its class and NHWC output shape) —
//   those with a value in the graph (a BatchNormalization folded into its conv leaves the conv without one);
// - the architecture's Keras layer names (vgg19, inception_v3 folders written before manifests listed layers);
// - otherwise every 4-D value of the graph (a trained or hand-built model: its value names).
// Channel counts come from the manifest's shapes, else from a propagation over the graph (feature-maps.ts).
import { readFileSync } from 'node:fs';
import { getArchitecture, isArchitectureName } from '../models/architectures/index.js';
import type { ModelEntry } from '../models/registry.js';
import { type GraphProto, type TensorProto, decodeModel } from '../onnx/proto.js';
import { unprocessable } from '../util/problem.js';
import { type LayerRole, type ValueFacts, analyseGraph, minInputSide, roleOfOp, spatialSides } from './feature-maps.js';
import { modelStamp } from './grad-session.js';

export type ReadyModel = ModelEntry & { modelPath: string };

export interface FeatureLayer {
  name: string;
  /** Channel count C of the NCHW value, when known. */
  channels?: number;
  /** What produced it: a convolution, an activation, or something else (pool, BN, concat, add…). */
  role: LayerRole;
}

export interface ModelLayers {
  model: string;
  /** The feature maps the gradient ops may use, in graph order. */
  featureMaps: FeatureLayer[];
  /** Named layers that are not feature maps, with their shape (to say why they cannot be used). */
  otherLayers: Map<string, string>;
  source: 'manifest' | 'architecture' | 'graph';
  /**
   * Smallest square input side at which every given layer still has a value (≥ 1×1) and, with `crop` > 0, each
   * of them is wider than the border cropped from both sides (≥ 2·crop + 1), so a loss over the cropped maps is
   * not empty.
   */
  minSide(layers: string[], crop?: number): number;
}

const CONV_CLASSES = new Set(['Conv2D', 'Convolution2D', 'DepthwiseConv2D', 'SeparableConv2D', 'Conv2DTranspose']);
const ACTIVATION_CLASSES = new Set(['Activation', 'ReLU', 'LeakyReLU', 'PReLU', 'ELU', 'ThresholdedReLU', 'Softmax']);

function roleOfClass(className: string): LayerRole {
  return CONV_CLASSES.has(className) ? 'conv' : ACTIVATION_CLASSES.has(className) ? 'activation' : 'other';
}

/** The graph without weight data (shapes and small constants only): what the analyses read. */
function lightGraph(modelPath: string): GraphProto {
  const g = decodeModel(readFileSync(modelPath)).graph ?? {};
  const initializer = (g.initializer ?? []).map((t) => ((t.rawData?.length ?? 0) > 1024 ? { name: t.name, dims: t.dims, dataType: t.dataType } : t) as TensorProto);
  return { node: g.node ?? [], input: g.input ?? [], initializer };
}

function fromManifest(layers: NonNullable<NonNullable<ModelEntry['manifest']>['layers']>, facts: Map<string, ValueFacts>) {
  const featureMaps: FeatureLayer[] = [];
  const otherLayers = new Map<string, string>();
  for (const l of layers) {
    const f = facts.get(l.name);
    if (l.class_name === 'InputLayer' || !f || f.op === 'Constant') continue;
    const shape = `(${l.output_shape.map((d) => d ?? 'None').join(', ')})`;
    if (l.output_shape.length === 4) featureMaps.push({ name: l.name, channels: l.output_shape[3] ?? f.channels, role: roleOfClass(l.class_name) });
    else otherLayers.set(l.name, `a ${l.class_name} with output shape ${shape}`);
  }
  return { featureMaps, otherLayers };
}

function fromGraph(graph: GraphProto, facts: Map<string, ValueFacts>, names?: Set<string>) {
  const featureMaps: FeatureLayer[] = [];
  const otherLayers = new Map<string, string>();
  for (const n of graph.node ?? []) {
    const name = n.output?.[0] ?? '';
    const f = facts.get(name);
    if (!f || (names && !names.has(name))) continue;
    if (f.rank === 4) featureMaps.push({ name, channels: f.channels, role: roleOfOp(f.op) });
    else otherLayers.set(name, f.rank !== undefined ? `a ${f.rank}-D value` : 'not a 4-D feature map');
  }
  return { featureMaps, otherLayers };
}

function catalogue(entry: ReadyModel): ModelLayers {
  const graph = lightGraph(entry.modelPath);
  const facts = analyseGraph(graph);
  const m = entry.manifest;
  const arch = m && isArchitectureName(m.architecture) ? getArchitecture(m.architecture) : undefined;
  let source: ModelLayers['source'];
  let found: { featureMaps: FeatureLayer[]; otherLayers: Map<string, string> };
  if (m?.layers?.length) {
    source = 'manifest';
    found = fromManifest(m.layers, facts);
  } else if (arch) {
    source = 'architecture';
    found = fromGraph(graph, facts, new Set([...arch.kerasLayerNames(true), ...arch.kerasLayerNames(false)].filter((n) => n !== 'input_1')));
  } else {
    source = 'graph';
    found = fromGraph(graph, facts);
  }
  const sides = new Map<string, number>();
  return {
    model: entry.name,
    ...found,
    source,
    minSide(layers, crop = 0) {
      const key = `${[...layers].sort().join(',')}|${crop}`;
      let side = sides.get(key);
      if (side === undefined) {
        // The architectures keep Keras' own minimum (InceptionV3 75, VGG19 32) whatever the layers.
        const exists = arch ? arch.minSize : minInputSide(graph, layers, facts) ?? m?.input.min_side ?? 1;
        side = crop > 0 ? minSideForWidth(graph, layers, 2 * crop + 1, exists) : exists;
        sides.set(key, side);
      }
      return side;
    },
  };
}

/**
 * The smallest square input side ≥ `from` at which every one of `layers` is at least `width` × `width` (binary
 * search: the maps grow with the input); `from` when the propagation cannot follow the layers.
 */
function minSideForWidth(graph: GraphProto, layers: string[], width: number, from: number): number {
  const fits = (n: number): boolean | undefined => {
    const sides = spatialSides(graph, n, n);
    let ok = true;
    for (const l of layers) {
      const s = sides.get(l);
      if (!s) return undefined;
      if (s[0] < width || s[1] < width) ok = false;
    }
    return ok;
  };
  const MAX = 8192;
  if (fits(MAX) !== true) return from;
  if (fits(from) === true) return from;
  let lo = from + 1, hi = MAX;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (fits(mid) === true) hi = mid; else lo = mid + 1;
  }
  return lo;
}

const cache = new Map<string, ModelLayers>();

/** The usable layers of a ready model (read once per model folder version). */
export function modelLayers(entry: ReadyModel): ModelLayers {
  const key = `${modelStamp(entry)}|${entry.modelPath}`;
  let c = cache.get(key);
  if (!c) {
    c = catalogue(entry);
    if (cache.size >= 32) cache.clear();
    cache.set(key, c);
  }
  return c;
}

const LISTED = 60;

function listLayers(names: string[]): string {
  if (names.length === 0) return '(none: the model has no 4-D feature map)';
  return names.length <= LISTED ? names.join(', ') : `${names.slice(0, LISTED).join(', ')}, … (${names.length} in all; all are listed in 'available')`;
}

/**
 * The feature layers `names` of the model, or a 422 `unknown-layer` naming the parameter, the missing layer and
 * every layer the model has.
 */
export function requireLayers(ml: ModelLayers, names: string[], parameter: string): FeatureLayer[] {
  const byName = new Map(ml.featureMaps.map((l) => [l.name, l]));
  return names.map((name) => {
    const l = byName.get(name);
    if (l) return l;
    const available = ml.featureMaps.map((f) => f.name);
    const other = ml.otherLayers.get(name);
    const why = other ? `'${name}' is ${other}, not a 4-D feature map` : `Model '${ml.model}' has no layer '${name}'`;
    throw unprocessable('unknown-layer', `${parameter}: ${why}. The feature layers of '${ml.model}': ${listLayers(available)}.`, { parameter, layer: name, available });
  });
}

/** The layers usable for a Gram/dream loss with a known role (convolutions and activations), in graph order. */
export function convActivationLayers(ml: ModelLayers): FeatureLayer[] {
  const picked = ml.featureMaps.filter((l) => l.role !== 'other');
  return picked.length > 0 ? picked : ml.featureMaps;
}

/** `k` items of `list` at evenly spaced positions between fractions `from` and `to` of its length (both ends included). */
export function evenlySpaced<T>(list: T[], k: number, from = 0, to = 1): T[] {
  if (list.length === 0) return [];
  const lo = Math.round(from * (list.length - 1));
  const hi = Math.round(to * (list.length - 1));
  const n = Math.min(k, hi - lo + 1);
  const idx = n === 1 ? [hi] : Array.from({ length: n }, (_, i) => lo + Math.round((i * (hi - lo)) / (n - 1)));
  return [...new Set(idx)].map((i) => list[i]!);
}
