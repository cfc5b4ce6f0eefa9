// Keras model configs (the JSON of `model.to_json()`, `model_config`, `config.json`, a tfjs `modelTopology`) in
// either dialect → the dialect-free KModel of ./ir.ts.
//
// Keras 2 / tfjs: a layer is `{class_name, name, config, inbound_nodes: [[[layer, node, tensor, kwargs], …]]}`;
//   Sequential configs are a list of layers or `{name, layers}` and give the input as `batch_input_shape`.
// Keras 3: every object is `{module, class_name, config, registered_name, build_config}`; dtypes are DTypePolicy
//   objects; InputLayer has `batch_shape`; inbound nodes are `[{args: […], kwargs: {…}}]` whose tensors are
//   `{class_name: "__keras_tensor__", config: {keras_history: [layer, node, tensor]}}`.
//
// Node indices: in both dialects a reference to a nested *Functional* model counts that model's own internal node
// as node 0, so its first external call is node 1 (Keras 2 and tfjs do the same for a nested Sequential, Keras 3
// does not). KTensorRef.node here is always the 0-based index into the referenced layer's `inbound` list.
import { KerasImportError } from './errors.js';
import type { KLayer, KModel, KTensorRef } from './ir.js';

/** A config that cannot be read as a Keras model: 422 `keras-import-bad-config`. */
export function badConfig(detail: string): KerasImportError {
  return new KerasImportError('bad-config', detail);
}

type Json = Record<string, unknown>;

const MODEL_CLASSES = new Set(['Functional', 'Model', 'Sequential']);

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Keras 3 wraps objects as `{module, class_name, config, registered_name}`; Keras 2 as `{class_name, config}`. */
function isWrapped(v: unknown): v is { class_name: string; config: unknown } & Json {
  return isObject(v) && typeof v.class_name === 'string' && 'config' in v;
}

/** Config keys that never influence inference. */
const DROPPED_KEYS = /(_initializer|_regularizer|_constraint)$/;

/** Removes dialect noise from one layer config: dtype policies → strings, initializers & co. dropped, shapes renamed. */
function cleanLayerConfig(raw: Json): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(raw)) {
    if (DROPPED_KEYS.test(key)) continue;
    if (key === 'dtype') {
      out.dtype = isWrapped(value) && isObject(value.config) ? (value.config.name ?? 'float32') : value;
    } else if (key === 'batch_input_shape') {
      out.batch_shape = value;
    } else if (key === 'layers' || key === 'input_layers' || key === 'output_layers') {
      continue; // nested models are handled separately
    } else {
      out[key] = value;
    }
  }
  return out;
}

function asRef(v: unknown, where: string): KTensorRef {
  if (Array.isArray(v) && typeof v[0] === 'string') {
    return { layer: v[0], node: Number(v[1] ?? 0), tensor: Number(v[2] ?? 0) };
  }
  throw badConfig(`${where}: expected [layer, node, tensor], got ${JSON.stringify(v)?.slice(0, 120)}`);
}

/** `input_layers`/`output_layers`: `[[name, n, t], …]`, or one bare triple (Keras 3 single input), or a dict. */
function asRefList(v: unknown, where: string): KTensorRef[] {
  if (Array.isArray(v) && v.length === 3 && typeof v[0] === 'string' && typeof v[1] === 'number') return [asRef(v, where)];
  if (Array.isArray(v)) return v.map((x) => asRef(x, where));
  if (isObject(v)) return Object.values(v).map((x) => asRef(x, where));
  throw badConfig(`${where}: expected a list of [layer, node, tensor]`);
}

/** Every `__keras_tensor__` in a Keras 3 call's args, in argument order (nested lists/tuples flattened). */
function kerasTensors(v: unknown, out: KTensorRef[], where: string): void {
  if (Array.isArray(v)) {
    for (const x of v) kerasTensors(x, out, where);
  } else if (isObject(v)) {
    if (v.class_name === '__keras_tensor__' && isObject(v.config)) {
      out.push(asRef(v.config.keras_history, `${where} keras_history`));
    } else if (v.class_name === '__tuple__' && isObject(v.config)) {
      kerasTensors(v.config.value, out, where);
    }
  }
}

/** One layer call (inbound node) in either dialect → the tensors it consumed. */
function parseNode(node: unknown, where: string): KTensorRef[] {
  if (Array.isArray(node)) return node.map((x) => asRef(x, where)); // Keras 2: [[layer, node, tensor, kwargs], …]
  if (isObject(node) && 'args' in node) {
    const refs: KTensorRef[] = [];
    kerasTensors(node.args, refs, where);
    return refs;
  }
  throw badConfig(`${where}: unreadable inbound node ${JSON.stringify(node)?.slice(0, 120)}`);
}

function layerName(raw: Json, config: Json, where: string): string {
  const name = raw.name ?? config.name;
  if (typeof name !== 'string' || name === '') throw badConfig(`${where}: a layer has no name`);
  return name;
}

/** The input shape a layer declares itself (Keras 2 `batch_input_shape`, Keras 3 `batch_shape`, `input_shape`). */
function batchShapeOf(config: Json): unknown[] | undefined {
  const direct = config.batch_shape ?? config.batch_input_shape;
  if (Array.isArray(direct)) return direct;
  if (Array.isArray(config.input_shape)) return [null, ...config.input_shape];
  return undefined;
}

/** The input shape Keras 3 recorded when it built a layer (`build_config.input_shape`). */
function builtInputShape(raw: unknown): unknown[] | undefined {
  const build = isObject(raw) ? raw.build_config : undefined;
  return isObject(build) && Array.isArray(build.input_shape) ? build.input_shape : undefined;
}

/** The input shape a nested model or a Sequential expects, wherever the config recorded it. */
function modelBatchShape(model: KModel): unknown[] | undefined {
  const first = model.layers.find((l) => l.className === 'InputLayer');
  const shape = first?.config.batch_shape;
  return Array.isArray(shape) ? shape : undefined;
}

interface Parsed {
  model: KModel;
  /** True when references to this model as a layer count its internal node as node 0. */
  internalNode: boolean;
}

function parseLayer(raw: unknown, dialect3: boolean, where: string): { layer: KLayer; rawNodes: unknown[]; internalNode: boolean } {
  if (!isWrapped(raw)) throw badConfig(`${where}: a layer is not {class_name, config}`);
  const className = raw.class_name;
  const config = isObject(raw.config) ? raw.config : {};
  const name = layerName(raw, config, where);
  const rawNodes = Array.isArray(raw.inbound_nodes) ? raw.inbound_nodes : [];
  const layer: KLayer = { className, name, config: cleanLayerConfig(config), inbound: [] };
  if (!layer.config.batch_shape) {
    const shape = batchShapeOf(config);
    if (shape) layer.config.batch_shape = shape;
  }
  let internalNode = false;
  if (MODEL_CLASSES.has(className)) {
    const nested = parseModel(raw, dialect3, `${where} > ${name}`);
    layer.model = nested.model;
    internalNode = nested.internalNode;
  }
  return { layer, rawNodes, internalNode };
}

function parseFunctional(raw: Json, config: Json, dialect3: boolean, where: string): KModel {
  const rawLayers = config.layers;
  if (!Array.isArray(rawLayers)) throw badConfig(`${where}: the model config has no 'layers' list`);
  const parsed = rawLayers.map((l, i) => parseLayer(l, dialect3, `${where} layer ${i}`));
  const byName = new Map(parsed.map((p) => [p.layer.name, p]));
  const fix = (ref: KTensorRef, at: string): KTensorRef => {
    const target = byName.get(ref.layer);
    if (!target) throw badConfig(`${at}: refers to unknown layer '${ref.layer}'`);
    const node = target.internalNode ? ref.node - 1 : ref.node;
    return { ...ref, node: Math.max(0, node) };
  };
  for (const p of parsed) {
    p.layer.inbound = p.rawNodes.map((n, i) => parseNode(n, `${where} ${p.layer.name} node ${i}`).map((r) => fix(r, `layer '${p.layer.name}'`)));
  }
  const inputs = asRefList(config.input_layers, `${where} input_layers`).map((r) => fix(r, `${where} input_layers`));
  const outputs = asRefList(config.output_layers, `${where} output_layers`).map((r) => fix(r, `${where} output_layers`));
  const name = typeof config.name === 'string' ? config.name : typeof raw.name === 'string' ? raw.name : 'model';
  return { name, layers: topologicalOrder(parsed.map((p) => p.layer)), inputs, outputs };
}

/** Sequential → an explicit chain, with an InputLayer synthesised when the list does not start with one. */
function parseSequential(raw: Json, config: unknown, dialect3: boolean, where: string): KModel {
  const rawLayers = Array.isArray(config) ? config : isObject(config) ? config.layers : undefined;
  if (!Array.isArray(rawLayers)) throw badConfig(`${where}: the Sequential config has no layer list`);
  const name = isObject(config) && typeof config.name === 'string' ? config.name : 'sequential';
  const layers = rawLayers.map((l, i) => parseLayer(l, dialect3, `${where} layer ${i}`).layer);
  if (layers.length === 0) throw badConfig(`${where}: the Sequential model '${name}' has no layers`);
  if (layers[0]!.className !== 'InputLayer') {
    const first = layers[0]!;
    const shape = first.config.batch_shape
      ?? builtInputShape(rawLayers[0])
      ?? (first.model ? modelBatchShape(first.model) : undefined)
      ?? (isObject(config) ? config.build_input_shape : undefined)
      ?? builtInputShape(raw);
    if (!Array.isArray(shape)) throw badConfig(`${where}: the Sequential model '${name}' does not record its input shape`);
    layers.unshift({ className: 'InputLayer', name: `${first.name}_input`, config: { batch_shape: shape, dtype: 'float32' }, inbound: [] });
  }
  for (let i = 1; i < layers.length; i++) layers[i]!.inbound = [[{ layer: layers[i - 1]!.name, node: 0, tensor: 0 }]];
  layers[0]!.inbound = [];
  return {
    name,
    layers,
    inputs: [{ layer: layers[0]!.name, node: 0, tensor: 0 }],
    outputs: [{ layer: layers[layers.length - 1]!.name, node: 0, tensor: 0 }],
  };
}

function parseModel(raw: Json, dialect3: boolean, where: string): Parsed {
  const cls = raw.class_name;
  if (cls === 'Sequential') {
    // Keras 2, tf.keras and tfjs Sequential models are Functional subclasses (internal node 0); Keras 3's are not.
    return { model: parseSequential(raw, raw.config, dialect3, where), internalNode: !dialect3 };
  }
  if (cls === 'Functional' || cls === 'Model') {
    if (!isObject(raw.config)) throw badConfig(`${where}: the model config is not an object`);
    return { model: parseFunctional(raw, raw.config, dialect3, where), internalNode: true };
  }
  throw badConfig(`${where}: top-level class '${String(cls)}' is not a Keras model (Sequential, Functional or Model)`);
}

/**
 * Layers sorted so every layer follows the layers it consumes (stable: config order where possible). A layer
 * called several times may depend on itself through other layers; such layers keep their config order.
 */
function topologicalOrder(layers: KLayer[]): KLayer[] {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const state = new Map<string, 'visiting' | 'done'>();
  const out: KLayer[] = [];
  const visit = (l: KLayer): void => {
    const s = state.get(l.name);
    if (s === 'done') return;
    if (s === 'visiting') return; // a shared layer called again downstream: the converter orders the calls
    state.set(l.name, 'visiting');
    for (const node of l.inbound) for (const ref of node) if (ref.layer !== l.name) visit(byName.get(ref.layer)!);
    state.set(l.name, 'done');
    out.push(l);
  };
  for (const l of layers) visit(l);
  return out;
}

/** True for the Keras 3 dialect: objects carry `module` keys / tensors are `__keras_tensor__`. */
function isKeras3(raw: Json): boolean {
  return typeof raw.module === 'string' || JSON.stringify(raw).includes('"__keras_tensor__"');
}

/**
 * Any Keras model config (Keras 2, Keras 3, tfjs `modelTopology`; also the `{model_config: …}` wrapper of a tfjs
 * topology) → KModel. Throws a 422 `keras-import-bad-config` for anything that is not a readable model config.
 */
export function normalizeConfig(raw: unknown): KModel {
  let root = raw;
  if (typeof root === 'string') {
    try { root = JSON.parse(root); } catch { throw badConfig('the model config is not valid JSON'); }
  }
  if (isObject(root) && isObject(root.model_config)) root = root.model_config;
  if (!isObject(root)) throw badConfig('the model config is not a JSON object');
  return parseModel(root, isKeras3(root), 'model config').model;
}
