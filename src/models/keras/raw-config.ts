// Just enough of a stored Keras model config (either dialect) to attribute weights to layers: every layer's name,
// class and own config, in stored order, with nested models (a Sequential/Functional used as a layer) expanded.
// Full normalisation (inbound nodes, dtype policies, shapes) is normalizeConfig's job, not the readers'.
import { KerasImportError } from './errors.js';

export interface RawLayerNode {
  name: string;
  className: string;
  /** The layer's own `config` object as stored. */
  config: Record<string, unknown>;
  /** Set for a nested model: its layers, in stored order. */
  children?: RawLayerNode[];
}

export interface RawModelTree {
  name: string;
  className: string;
  layers: RawLayerNode[];
}

/** Keras class names of containers whose config lists layers of their own. */
const MODEL_CLASSES = new Set(['Sequential', 'Functional', 'Model']);

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The model description inside the JSON wrappers it is found in: a tfjs `modelTopology` or a Keras 2 root
 * object may hold it under `model_config`; `to_json()` output and `config.json` are it.
 */
export function unwrapModelConfig(json: unknown): unknown {
  if (isRecord(json) && isRecord(json.model_config) && !('class_name' in json)) return json.model_config;
  return json;
}

/** The stored model config's tree, or a `bad-config` error saying what is missing (`where` names the source). */
export function rawModelTree(modelConfig: unknown, where: string): RawModelTree {
  if (!isRecord(modelConfig) || typeof modelConfig.class_name !== 'string') {
    throw new KerasImportError('bad-config', `${where}: not a Keras model config (expected an object with "class_name" and "config")`);
  }
  const layers = layerList(modelConfig, where);
  if (layers === undefined) {
    throw new KerasImportError('bad-config',
      `${where}: the model config (class ${modelConfig.class_name}) has no "layers" list; only Sequential and Functional models can be imported`);
  }
  const config = modelConfig.config;
  const name = isRecord(config) && typeof config.name === 'string' ? config.name : snakeCase(modelConfig.class_name);
  return { name, className: modelConfig.class_name, layers: layers.map((l, i) => layerNode(l, `${where}: layer #${i}`)) };
}

/** `config.layers`, or the config itself when it is a list (Keras 1/2.0 Sequential). */
function layerList(obj: Record<string, unknown>, where: string): unknown[] | undefined {
  const config = obj.config;
  if (Array.isArray(config)) return config;
  if (!isRecord(config)) throw new KerasImportError('bad-config', `${where}: "config" is not an object`);
  return Array.isArray(config.layers) ? config.layers : undefined;
}

function layerNode(raw: unknown, where: string): RawLayerNode {
  if (!isRecord(raw) || typeof raw.class_name !== 'string' || !isRecord(raw.config)) {
    throw new KerasImportError('bad-config', `${where} is not a layer object with "class_name" and "config"`);
  }
  const name = typeof raw.name === 'string' ? raw.name : raw.config.name;
  if (typeof name !== 'string' || name === '') throw new KerasImportError('bad-config', `${where} (${raw.class_name}) has no name`);
  const node: RawLayerNode = { name, className: raw.class_name, config: raw.config };
  const inner = MODEL_CLASSES.has(raw.class_name) || Array.isArray(raw.config.layers) ? layerList(raw, where) : undefined;
  if (inner) node.children = inner.map((l, i) => layerNode(l, `${where} (${name}): layer #${i}`));
  return node;
}

/** Keras' naming.to_snake_case: `Conv2D` → `conv2d`, `BatchNormalization` → `batch_normalization`, `PReLU` → `p_re_lu`. */
export function snakeCase(className: string): string {
  return className
    .replace(/\W+/g, '')
    .replace(/(.)([A-Z][a-z]+)/g, '$1_$2')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toLowerCase();
}

/** Every non-container layer of the tree with its path (`outer/inner` inside nested models), depth first. */
export function leafLayers(layers: RawLayerNode[], prefix = ''): { path: string; node: RawLayerNode }[] {
  return layers.flatMap((node) => {
    const path = prefix + node.name;
    return node.children ? leafLayers(node.children, `${path}/`) : [{ path, node }];
  });
}
