// Recognising the two architectures convserve knows by name (VGG19, InceptionV3) inside any imported Keras model,
// so that a full-model file of keras.applications.VGG19/InceptionV3 — with its top, without it, or as the base of
// a transfer-learning model (nsfwjs's InceptionV3 with its own head) — gets that architecture's name, defaults
// and features (dream layers, style layers, fine-tune feature layer).
//
// The evidence, independent of Keras' version-dependent automatic names (conv2d_1 vs conv2d) and of the config's
// layer order (Keras 2 lists Functional layers depth-grouped): every explicitly named layer the features rely on
// (VGG19 block1_conv1…block5_pool, InceptionV3 mixed0…mixed10) is present, and the architecture's weighted layers
// (class and every weight shape) are a sub-multiset of the model's.
import { ARCHITECTURES } from '../architectures/index.js';
import type { Architecture } from '../architectures/layers.js';
import type { KModel, KerasImport } from './ir.js';

export interface KnownTopology {
  architecture: Architecture;
  /** The model is exactly the architecture with its 1000-class ImageNet top (nothing more, nothing less). */
  imagenetTop: boolean;
  /** The model is exactly the convolutional base (include_top=False). */
  baseOnly: boolean;
}

/** The names keras.applications sets explicitly (stable across Keras versions). */
const EXPLICIT_NAME = /^(block\d_(conv\d|pool)|mixed\d+(_\d+)?)$/;

/** Every layer name of the model, nested models included; and each weighted layer's signature. */
function inventory(imp: KerasImport): { names: Set<string>; weighted: string[] } {
  const names = new Set<string>();
  const weighted: string[] = [];
  const visit = (model: KModel, prefix: string) => {
    for (const layer of model.layers) {
      names.add(layer.name);
      const path = prefix + layer.name;
      if (layer.model) {
        visit(layer.model, `${path}/`);
        continue;
      }
      const ws = imp.weights.get(path);
      if (ws && ws.length > 0) weighted.push(signature(layer.className, ws.map((w) => w.shape)));
    }
  };
  visit(imp.model, '');
  return { names, weighted };
}

const signature = (className: string, shapes: number[][]) => `${className}:${shapes.map((s) => s.join('x')).join(',')}`;

function counts(list: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const s of list) m.set(s, (m.get(s) ?? 0) + 1);
  return m;
}

/** True when every signature in `part` occurs in `whole` at least as often. */
function contains(whole: Map<string, number>, part: Map<string, number>): boolean {
  for (const [s, n] of part) if ((whole.get(s) ?? 0) < n) return false;
  return true;
}

function sameCounts(a: Map<string, number>, b: Map<string, number>): boolean {
  return a.size === b.size && contains(a, b) && contains(b, a);
}

export function recognizeTopology(imp: KerasImport): KnownTopology | undefined {
  const { names, weighted } = inventory(imp);
  const have = counts(weighted);
  for (const arch of Object.values(ARCHITECTURES)) {
    const required = arch.kerasLayerNames(false).filter((n) => EXPLICIT_NAME.test(n));
    if (required.length === 0 || !required.every((n) => names.has(n))) continue;
    const spec = (top: boolean) => counts(arch.kerasWeightSpec(top).map((l) => signature(l.className, l.weights.map((w) => w.shape))));
    const base = spec(false);
    if (!contains(have, base)) continue;
    return { architecture: arch, imagenetTop: sameCounts(have, spec(true)), baseOnly: sameCounts(have, base) };
  }
  return undefined;
}
