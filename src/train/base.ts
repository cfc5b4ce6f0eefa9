// The base of a fine-tune: an installed ONNX model folder, the layer its new head sits on, and the block that
// --unfreeze-top may train. Today both layers come from the base's architecture description
// (src/models/architectures); a base of another origin only has to name its feature layer (no top block).
import { type TopBlock, ARCHITECTURES, ARCHITECTURE_NAMES, isArchitectureName } from '../models/architectures/index.js';
import type { Manifest } from '../models/manifest.js';
import { ModelRegistry } from '../models/registry.js';
import { problem } from './dataset.js';

export interface FinetuneBase {
  name: string;
  dir: string;
  modelPath: string;
  manifest: Manifest;
  architecture: string;
  /** The base's value the head is trained on (global-average-pooled). */
  featureLayer: string;
  /** The block ending at the feature layer (absent: --unfreeze-top is not possible). */
  topBlock?: TopBlock;
}

/** Architectures whose top block a trainer here can rebuild (a chain of layers). */
const unfreezable = () => ARCHITECTURE_NAMES.filter((n) => ARCHITECTURES[n].topBlock.chain);

/** The installed base `base`, ready to fine-tune (or a precise 4xx ProblemError). */
export function resolveBase(modelsDir: string, base: string, unfreezeTop: boolean): FinetuneBase {
  const registry = new ModelRegistry({ modelsDir });
  const entry = registry.get(base);
  if (!entry || entry.status === 'missing') {
    const bases = registry.list().filter((e) => e.status === 'ready' && e.architecture !== undefined && isArchitectureName(e.architecture)).map((e) => e.name);
    const install = entry?.install ?? (isArchitectureName(base) ? [`convserve models fetch ${base}`, `convserve models synth ${base}`] : []);
    throw problem(404, 'base-not-installed', `base model '${base}' is not installed in ${registry.modelsDir}${install.length ? `; install it with: ${install.join('  or  ')}` : ''}${bases.length ? ` (installed bases: ${bases.join(', ')})` : ''}`, { install });
  }
  if (entry.status !== 'ready' || !entry.manifest || !entry.modelPath) {
    throw problem(409, 'base-not-ready', `base model '${base}' is ${entry.status}${entry.error ? `: ${entry.error}` : ''}`);
  }
  const arch = entry.manifest.architecture;
  if (!isArchitectureName(arch)) {
    throw problem(400, 'base-unsupported', `base model '${base}' is a ${arch} model; fine-tuning needs a ${ARCHITECTURE_NAMES.join(' or ')} base`);
  }
  const { featureLayer, topBlock } = ARCHITECTURES[arch];
  if (unfreezeTop && !topBlock.chain) {
    const supported = unfreezable().map((n) => ARCHITECTURES[n].displayName).join(' and ');
    throw problem(400, 'unfreeze-unsupported', `--unfreeze-top is supported for ${supported} bases only (${ARCHITECTURES[arch].displayName}'s top block, ${topBlock.name}, is too heavy to train with TensorFlow.js here); drop --unfreeze-top to train the head on '${base}'`);
  }
  return { name: base, dir: entry.dir, modelPath: entry.modelPath, manifest: entry.manifest, architecture: arch, featureLayer, topBlock };
}
