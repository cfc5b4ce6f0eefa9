// The base of a fine-tune: an installed ONNX model folder, the layer its new head sits on, and the block that
// --unfreeze-top may train. VGG19 and InceptionV3 bring their feature layer and top block from their architecture
// description (src/models/architectures); any other installed model (an imported one included) is usable by naming
// its feature layer (`--feature-layer`), without a top block to unfreeze.
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
  /** The base's value the head is trained on (global-average-pooled when it is a map). */
  featureLayer: string;
  /** The block ending at the feature layer (absent: --unfreeze-top is not possible). */
  topBlock?: TopBlock;
}

/** Architectures whose top block a trainer here can rebuild (a chain of layers). */
const unfreezable = () => ARCHITECTURE_NAMES.filter((n) => ARCHITECTURES[n].topBlock.chain);

/**
 * The installed base `base`, ready to fine-tune (or a precise 4xx ProblemError). `featureLayer` overrides the
 * architecture's default and is required for a base of another architecture.
 */
export function resolveBase(modelsDir: string, base: string, unfreezeTop: boolean, featureLayer?: string): FinetuneBase {
  const registry = new ModelRegistry({ modelsDir });
  const entry = registry.get(base);
  if (!entry || entry.status === 'missing') {
    const bases = registry.list().filter((e) => e.status === 'ready').map((e) => e.name);
    const install = entry?.install ?? (isArchitectureName(base) ? [`convserve models fetch ${base}`, `convserve models synth ${base}`] : []);
    throw problem(404, 'base-not-installed', `base model '${base}' is not installed in ${registry.modelsDir}${install.length ? `; install it with: ${install.join('  or  ')}` : ''}${bases.length ? ` (installed models: ${bases.join(', ')})` : ''}`, { install });
  }
  if (entry.status !== 'ready' || !entry.manifest || !entry.modelPath) {
    throw problem(409, 'base-not-ready', `base model '${base}' is ${entry.status}${entry.error ? `: ${entry.error}` : ''}`);
  }
  const m = entry.manifest;
  const arch = m.architecture;
  if (m.input.channels !== 3) throw problem(400, 'base-unsupported', `base model '${base}' takes ${m.input.channels}-channel images; fine-tuning needs an RGB (3-channel) base`);
  if (m.preprocessing === 'mnist') throw problem(400, 'base-unsupported', `base model '${base}' uses mnist preprocessing; fine-tuning needs an RGB image model`);
  const known = isArchitectureName(arch) ? ARCHITECTURES[arch] : undefined;
  const layer = featureLayer ?? known?.featureLayer;
  if (!layer) {
    throw problem(400, 'feature-layer-required', `base model '${base}' is a ${arch} model: name the layer the new head is trained on with --feature-layer <layer> (the architectures with a default are ${ARCHITECTURE_NAMES.join(', ')})`);
  }
  // A top block exists only where the architecture's block ends: at its own feature layer.
  const topBlock = known && layer === known.featureLayer ? known.topBlock : undefined;
  if (unfreezeTop && !topBlock?.chain) {
    const supported = unfreezable().map((n) => ARCHITECTURES[n].displayName).join(' and ');
    const why = !known ? `'${base}' is a ${arch} model` : !topBlock ? `the head sits on '${layer}', not on ${known.displayName}'s feature layer '${known.featureLayer}'` : `${known.displayName}'s top block, ${topBlock.name}, branches and cannot be rebuilt layer by layer`;
    throw problem(400, 'unfreeze-unsupported', `--unfreeze-top is supported for ${supported} bases only, on their default feature layer (${why}); drop --unfreeze-top to train the head on '${base}'`);
  }
  return { name: base, dir: entry.dir, modelPath: entry.modelPath, manifest: m, architecture: arch, featureLayer: layer, topBlock };
}
