// Attributes weights stored under names (HDF5 `weight_names`, tfjs manifest names) to layers of the stored config.
// A plain layer's weights are named `<layer>/<role>:0` (or `<scope>/<layer>/<role>`, or just `<role>` in Keras 3.0–3.4
// legacy files); a nested model's weights sit under the nested model but are named by its *inner* layers
// (`block1_conv1/kernel:0` inside group `vgg19`), so they are matched against the inner layers' names.
// A name that matches no layer keeps its own key: the converter reports such weights as a config/weights mismatch.
import type { KWeight } from './ir.js';
import { leafLayers, type RawLayerNode, type RawModelTree } from './raw-config.js';
import { roleFromStoredName } from './weight-order.js';

export interface Attribution {
  /** Key in RawKerasFile.weights: `layer` or `outer/inner`. */
  path: string;
  /** The layer's class ('' when the name matches no layer of the config). */
  className: string;
}

export class WeightAttributor {
  private readonly top: Map<string, RawLayerNode>;
  private readonly leaves: { path: string; node: RawLayerNode }[];

  constructor(tree: RawModelTree) {
    this.top = new Map(tree.layers.map((l) => [l.name, l]));
    this.leaves = leafLayers(tree.layers);
  }

  /** A weight of the HDF5 layer group `group` (a top-level layer name), stored as `storedName`. */
  inGroup(group: string, storedName: string): Attribution {
    const node = this.top.get(group);
    if (!node) return { path: group, className: '' };
    if (!node.children) return { path: group, className: node.className };
    const inner = leafLayers(node.children, `${group}/`);
    const scopes = scopesOf(storedName);
    return matchScopes(inner, scopes) ?? { path: [group, ...scopes].join('/'), className: '' };
  }

  /** A weight known only by its name (tfjs manifests: `conv2d_1/kernel`, `block1_conv1/kernel` for a nested layer). */
  byName(storedName: string): Attribution {
    const scopes = scopesOf(storedName);
    const exact = this.leaves.find((l) => l.path === scopes.join('/'));
    if (exact) return { path: exact.path, className: exact.node.className };
    return matchScopes(this.leaves, scopes) ?? { path: scopes.join('/'), className: '' };
  }
}

/** The name's scopes: everything before the role (`a/b/kernel:0` → ['a', 'b']). */
function scopesOf(storedName: string): string[] {
  return storedName.split('/').slice(0, -1);
}

/** The layer named by the innermost scope that names one (`model/dense/kernel` → dense). */
function matchScopes(layers: { path: string; node: RawLayerNode }[], scopes: string[]): Attribution | undefined {
  for (let i = scopes.length - 1; i >= 0; i--) {
    const hit = layers.find((l) => l.node.name === scopes[i]);
    if (hit) return { path: hit.path, className: hit.node.className };
  }
  return undefined;
}

/** Appends one weight to its layer's list (file order is Keras variable order within a layer). */
export function addWeight(weights: Map<string, KWeight[]>, at: Attribution, storedName: string, shape: number[], data: Float32Array): void {
  const list = weights.get(at.path) ?? [];
  list.push({ name: roleFromStoredName(at.className, storedName), shape, data });
  weights.set(at.path, list);
}
