// Keras HDF5 files: the full-model `.h5` of Keras 2 (`model_weights/<layer>/<layer>/<w>:0`) and Keras 3's legacy
// writer (`model_weights/<layer>/<w>`), both with a `model_config` root attribute; and weights-only files
// (`save_weights`), either the legacy layout (`layer_names` at the root) or Keras 3's `.weights.h5`
// (`layers/<class>/vars/<i>`), whose architecture comes from a separate `model.to_json()` file.
import { readListAttr, readStringAttr } from '../keras-h5.js';
import { addWeight, WeightAttributor } from './attribute.js';
import { KerasImportError } from './errors.js';
import { childGroup, closeH5, datasetAt, guardH5, type H5File, type H5Group, openH5, readWeightData } from './h5.js';
import type { KerasFileFormat, KWeight } from './ir.js';
import { parseJson } from './json-file.js';
import { rawModelTree, unwrapModelConfig } from './raw-config.js';
import type { RawKerasFile } from './raw.js';
import { readVarsLayout, varsRoot } from './read-vars.js';

export type H5Layout =
  | { kind: 'full-model'; format: 'keras2-h5' | 'keras3-legacy-h5'; root: H5Group; modelConfig: string; kerasVersion: string | null }
  | { kind: 'weights-only'; layout: 'layer-names' | 'vars'; root: H5Group; kerasVersion: string | null };

/** What a Keras HDF5 file holds, from its groups and attributes; anything else is `unknown-format`. */
export function inspectKerasH5(file: H5File, label: string): H5Layout {
  const modelWeights = childGroup(file, 'model_weights');
  const modelConfig = readStringAttr(file, 'model_config');
  const kerasVersion = readStringAttr(file, 'keras_version') ?? (modelWeights && readStringAttr(modelWeights, 'keras_version')) ?? null;
  if (modelWeights && modelConfig !== undefined) {
    return { kind: 'full-model', format: legacyDialect(modelWeights, kerasVersion, modelConfig), root: modelWeights, modelConfig, kerasVersion };
  }
  for (const root of modelWeights ? [file, modelWeights] : [file]) {
    if (readListAttr(root, 'layer_names') !== undefined) return { kind: 'weights-only', layout: 'layer-names', root, kerasVersion };
  }
  if (varsRoot(file)) return { kind: 'weights-only', layout: 'vars', root: file, kerasVersion };
  throw new KerasImportError('unknown-format',
    `${label} is an HDF5 file but not a Keras model or weights file (no 'model_config' + 'model_weights', no 'layer_names', no 'layers/…/vars')`, label);
}

/**
 * Keras 2 or Keras 3's legacy writer: the recorded version when there is one, else the layout itself (Keras 2
 * weight names carry a ':0' suffix; a Keras 3 config carries "module" keys).
 */
function legacyDialect(root: H5Group, kerasVersion: string | null, modelConfig: string): 'keras2-h5' | 'keras3-legacy-h5' {
  const major = kerasVersion === null ? NaN : Number.parseInt(kerasVersion, 10);
  if (Number.isFinite(major)) return major >= 3 ? 'keras3-legacy-h5' : 'keras2-h5';
  for (const layer of readListAttr(root, 'layer_names') ?? []) {
    const group = childGroup(root, layer);
    const names = group ? readListAttr(group, 'weight_names') ?? [] : [];
    if (names.length > 0) return names.some((n) => /:\d+$/.test(n)) ? 'keras2-h5' : 'keras3-legacy-h5';
  }
  return /"module"\s*:/.test(modelConfig) ? 'keras3-legacy-h5' : 'keras2-h5';
}

export interface GivenConfig {
  config: unknown;
  kerasVersion: string | null;
  /** Where the config came from, for messages (the --config path). */
  source: string;
}

/** Reads a Keras HDF5 file; a weights-only file needs `given` (the `model.to_json()` file given with --config). */
export async function readKerasH5(path: string, given?: GivenConfig): Promise<RawKerasFile> {
  const file = await openH5(path);
  try {
    return guardH5(path, () => readOpenKerasH5(file, path, given));
  } finally {
    closeH5(file);
  }
}

function readOpenKerasH5(file: H5File, path: string, given?: GivenConfig): RawKerasFile {
  const layout = inspectKerasH5(file, path);
  if (layout.kind === 'full-model') {
    if (given) {
      throw new KerasImportError('bad-config', `${path} is a full model file (${layout.format}) with its own config; --config is only for weights-only files`, path);
    }
    const config = unwrapModelConfig(parseJson(layout.modelConfig, `${path}: model_config attribute`));
    return { format: layout.format, kerasVersion: layout.kerasVersion, config, weights: readNamedLayout(layout.root, config, path) };
  }
  if (!given) {
    throw new KerasImportError('missing-config',
      `${path} holds weights only (model.save_weights); pass the model's architecture, the output of model.to_json(), with --config`, path);
  }
  const weights = layout.layout === 'vars'
    ? readVarsLayout(layout.root, rawModelTree(given.config, given.source), path)
    : readNamedLayout(layout.root, given.config, path, given.source);
  const format: KerasFileFormat = 'keras-weights-h5';
  return { format, kerasVersion: layout.kerasVersion ?? given.kerasVersion, config: given.config, weights };
}

/** `layer_names` → one group per layer → `weight_names` → datasets at those (relative, '/'-nested) paths. */
function readNamedLayout(root: H5Group, config: unknown, label: string, configSource = `${label}: model_config`): Map<string, KWeight[]> {
  const attributor = new WeightAttributor(rawModelTree(config, configSource));
  const weights = new Map<string, KWeight[]>();
  for (const layer of readListAttr(root, 'layer_names') ?? []) {
    const group = childGroup(root, layer);
    if (!group) throw new KerasImportError('corrupt', `${label}: layer '${layer}' is listed in layer_names but has no group`, label);
    for (const name of readListAttr(group, 'weight_names') ?? []) {
      const ds = datasetAt(group, name);
      if (!ds) throw new KerasImportError('corrupt', `${label}: weight '${name}' of layer '${layer}' has no dataset at ${group.path}/${name}`, label);
      const { shape, data } = readWeightData(ds, label);
      addWeight(weights, attributor.inGroup(layer, name), name, shape, data);
    }
  }
  return weights;
}
