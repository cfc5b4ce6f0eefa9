// Keras 3's weight store (`model.weights.h5` inside a `.keras` archive, or a `.weights.h5` file): variables by
// position, `layers/<g>/vars/<i>`, where `<g>` is NOT the layer's name. saving_lib._save_container_state names
// each child of a model's `layers` by snake_case of its class plus a per-class counter in order of appearance
// (conv2d, conv2d_1, …); a nested model repeats the pattern below its own group (`layers/functional/layers/…`).
// `model.layers` omits a Sequential's InputLayer and keeps a Functional's; InputLayers own no variables and have
// their own counter, so either way the other groups are unaffected. The stored config lists layers in the same
// order as `model.layers`, which is the order this walk follows.
import { KerasImportError } from './errors.js';
import { childGroup, type H5Group, isDataset, readWeightData } from './h5.js';
import type { KWeight } from './ir.js';
import { type RawLayerNode, type RawModelTree, snakeCase } from './raw-config.js';
import { variableRoles } from './weight-order.js';

/** tf-keras 2.13 wrote `_layer_checkpoint_dependencies` where Keras 3 writes `layers` (saving_lib keeps a fallback). */
const CONTAINER_NAMES = ['layers', '_layer_checkpoint_dependencies'];

/** The container group name used by this store, if it has one. */
export function varsRoot(root: H5Group): string | undefined {
  return CONTAINER_NAMES.find((n) => childGroup(root, n) !== undefined);
}

export function readVarsLayout(root: H5Group, tree: RawModelTree, label: string): Map<string, KWeight[]> {
  const weights = new Map<string, KWeight[]>();
  const container = varsRoot(root) ?? 'layers';
  const visited = new Set<string>();
  walk(root, container, tree.layers, tree.className === 'Sequential', '', { weights, visited, label, container });
  reportUnvisited(root, container, visited, label);
  return weights;
}

interface WalkState {
  weights: Map<string, KWeight[]>;
  /** Group paths of layers read, to detect stored weights that no layer claims. */
  visited: Set<string>;
  label: string;
  container: string;
}

/** The group name of each layer in a container, as saving_lib assigns them. */
export function containerGroupNames(layers: RawLayerNode[], sequential: boolean): { node: RawLayerNode; group: string }[] {
  const used = new Map<string, number>();
  const out: { node: RawLayerNode; group: string }[] = [];
  for (const node of layers) {
    if (sequential && node.className === 'InputLayer') continue;
    const base = snakeCase(node.className);
    const n = used.has(base) ? used.get(base)! + 1 : 0;
    used.set(base, n);
    out.push({ node, group: n === 0 ? base : `${base}_${n}` });
  }
  return out;
}

function walk(parent: H5Group, containerName: string, layers: RawLayerNode[], sequential: boolean, prefix: string, st: WalkState): void {
  const container = childGroup(parent, containerName);
  for (const { node, group } of containerGroupNames(layers, sequential)) {
    const groupPath = `${parent.path === '/' ? '' : parent.path}/${containerName}/${group}`;
    const g = container && childGroup(container, group);
    if (node.children) {
      if (g) walk(g, st.container, node.children, node.className === 'Sequential', `${prefix}${node.name}/`, st);
      continue;
    }
    st.visited.add(groupPath);
    const list = readLayerVars(g, node, groupPath, st.label);
    if (list.length > 0) st.weights.set(prefix + node.name, list);
  }
}

function readLayerVars(g: H5Group | undefined, node: RawLayerNode, groupPath: string, label: string): KWeight[] {
  const roles = variableRoles(node.className, node.config);
  const vars = g && childGroup(g, 'vars');
  if (!vars) {
    if (roles === undefined || roles.length === 0) return [];
    throw layoutError(label, node, groupPath, roles, 0);
  }
  const keys = vars.keys().filter((k) => /^\d+$/.test(k)).sort((a, b) => Number(a) - Number(b));
  if (roles !== undefined && roles.length !== keys.length) throw layoutError(label, node, groupPath, roles, keys.length);
  return keys.map((key, i) => {
    const ds = vars.get(key);
    if (!isDataset(ds)) throw new KerasImportError('corrupt', `${label}: ${groupPath}/vars/${key} is not a dataset`, label);
    const { shape, data } = readWeightData(ds, label);
    return { name: roles?.[i] ?? `var_${key}`, shape, data };
  });
}

function layoutError(label: string, node: RawLayerNode, groupPath: string, roles: string[], found: number): KerasImportError {
  const expected = roles.length === 0 ? 'none' : `${roles.length} (${roles.join(', ')})`;
  return new KerasImportError('weights-layout',
    `${label}: layer '${node.name}' (${node.className}) should have its weights at ${groupPath}/vars: expected ${expected}, found ${found}`, label);
}

/** Weights stored for a layer group no config layer maps to mean the config and the weights disagree. */
function reportUnvisited(root: H5Group, container: string, visited: Set<string>, label: string): void {
  const stray: string[] = [];
  const scan = (g: H5Group, path: string) => {
    for (const name of g.keys()) {
      const child = childGroup(g, name);
      if (!child) continue;
      const childPath = `${path}/${name}`;
      const vars = childGroup(child, 'vars');
      if (vars && vars.keys().length > 0 && !visited.has(childPath)) stray.push(childPath);
      const inner = childGroup(child, container);
      if (inner) scan(inner, `${childPath}/${container}`);
    }
  };
  const top = childGroup(root, container);
  if (top) scan(top, `/${container}`);
  if (stray.length > 0) {
    throw new KerasImportError('weights-layout',
      `${label}: weights stored under ${stray.slice(0, 3).join(', ')}${stray.length > 3 ? ` (and ${stray.length - 3} more)` : ''} belong to no layer of the model config`, label);
  }
}
