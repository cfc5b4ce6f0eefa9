// TensorFlow.js layers models: model.json (`modelTopology` = the Keras config, `weightsManifest`) with its binary
// shards beside it, or the same bundled as JavaScript modules (model.min.js + `<shard>.min.js`, see js-bundle.ts).
import { readFileSync, statSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { addWeight, WeightAttributor } from './attribute.js';
import { KerasImportError } from './errors.js';
import type { KWeight } from './ir.js';
import { bundleExport } from './js-bundle.js';
import { parseJson, readTextFile, versionOf } from './json-file.js';
import { rawModelTree, unwrapModelConfig } from './raw-config.js';
import type { RawKerasFile } from './raw.js';
import { decodeWeight, parseManifest, weightBytes } from './tfjs-weights.js';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** How a shard listed in the manifest is found and read. */
type ShardLoader = (shardPath: string, groupIndex: number) => Uint8Array;

/** model.json + binary shards in the same directory. */
export async function readTfjsModel(path: string): Promise<RawKerasFile> {
  const json = parseJson(readTextFile(path), path);
  return fromModelJson(json, path, (shard, g) => readFileSync(shardFile(path, shard, g, '')));
}

/** A bundled model: model.min.js + `<shard>.min.js` files in the same directory, each exporting one literal. */
export async function readTfjsBundle(path: string): Promise<RawKerasFile> {
  const json = bundleExport(readTextFile(path), path);
  return fromModelJson(json, path, (shard, g) => {
    const file = shardFile(path, shard, g, '.min.js');
    // Shard modules are ASCII (base64); latin1 decodes them faster than utf8.
    const base64 = bundleExport(readFileSync(file).toString('latin1'), file);
    if (typeof base64 !== 'string') throw new KerasImportError('corrupt', `${file} does not export a base64 string`, file);
    const bytes = Buffer.from(base64, 'base64');
    // Node skips characters outside the base64 alphabet, so a damaged string decodes to fewer bytes than its length says.
    const padding = base64.endsWith('==') ? 2 : base64.endsWith('=') ? 1 : 0;
    if (bytes.length !== Math.floor(((base64.length - padding) * 3) / 4)) {
      throw new KerasImportError('corrupt', `${file} does not export valid base64 (characters outside the alphabet)`, file);
    }
    return bytes;
  });
}

/** The shard's file beside model.json; a manifest path may not leave that directory. */
function shardFile(modelPath: string, shard: string, groupIndex: number, suffix: string): string {
  const dir = dirname(resolve(modelPath));
  let name = shard;
  try { name = decodeURIComponent(shard); } catch { /* not URL-encoded */ }
  const file = resolve(dir, name + suffix);
  const rel = relative(dir, file);
  if (rel.startsWith('..') || resolve(dir, rel) !== file) {
    throw new KerasImportError('corrupt', `${modelPath}: shard path '${shard}' (weights group ${groupIndex + 1}) points outside the model's directory`, modelPath);
  }
  let isFile = false;
  try { isFile = statSync(file).isFile(); } catch { /* reported below */ }
  if (!isFile) {
    throw new KerasImportError('missing-shard', `${modelPath}: shard '${name}${suffix}' of weights group ${groupIndex + 1} is missing (expected at ${file})`, modelPath);
  }
  return file;
}

function fromModelJson(json: unknown, label: string, loadShard: ShardLoader): RawKerasFile {
  if (!isRecord(json) || !isRecord(json.modelTopology) || json.weightsManifest === undefined) {
    throw new KerasImportError('unknown-format', `${label}: not a TensorFlow.js layers model (needs "modelTopology" and "weightsManifest")`, label);
  }
  const config = unwrapModelConfig(json.modelTopology);
  const tree = rawModelTree(config, `${label}: modelTopology`);
  const attributor = new WeightAttributor(tree);
  const weights = new Map<string, KWeight[]>();
  parseManifest(json.weightsManifest, label).forEach((group, g) => {
    const shards = group.paths.map((p) => loadShard(p, g));
    const bytes = Buffer.concat(shards);
    const needed = group.weights.reduce((sum, w) => sum + weightBytes(w), 0);
    if (bytes.length !== needed) {
      throw new KerasImportError('shard-size',
        `${label}: weights group ${g + 1} has ${bytes.length} bytes in ${shards.length} shard(s), its ${group.weights.length} weights need ${needed}`, label);
    }
    let offset = 0;
    for (const w of group.weights) {
      const size = weightBytes(w);
      addWeight(weights, attributor.byName(w.name), w.name, w.shape, decodeWeight(w, bytes.subarray(offset, offset + size)));
      offset += size;
    }
  });
  return { format: 'tfjs-layers', kerasVersion: kerasVersionOf(json), config, weights };
}

/** `modelTopology.keras_version`, else the converter's `generatedBy: "keras v2.2.4"`. */
function kerasVersionOf(json: Record<string, unknown>): string | null {
  const fromTopology = versionOf(json.modelTopology);
  if (fromTopology) return fromTopology;
  const generated = typeof json.generatedBy === 'string' ? /keras v?(\d[\w.-]*)/i.exec(json.generatedBy) : null;
  return generated?.[1] ?? null;
}
