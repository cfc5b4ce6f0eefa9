// Which Keras/tfjs layout a file holds, decided from its content (never its extension):
//   HDF5 signature  → full model (`model_config` + `model_weights`; Keras 2 or Keras 3 legacy), or weights only
//                     (`layer_names`, or Keras 3 `layers/…/vars`) which needs the architecture via --config;
//   zip signature   → Keras 3 `.keras` archive (config.json + model.weights.h5);
//   JSON            → TensorFlow.js layers model.json (`modelTopology` + `weightsManifest`);
//   JavaScript      → a tfjs model bundled as a browserify module (the nsfwjs package).
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { KerasImportError } from './errors.js';
import { closeH5, guardH5, openH5 } from './h5.js';
import { isExportBundle } from './js-bundle.js';
import { parseJson, readTextFile } from './json-file.js';
import { inspectKerasH5 } from './read-h5.js';
import { KERAS_ZIP_CONFIG, KERAS_ZIP_WEIGHTS } from './read-keras-zip.js';
import { ZIP_SIGNATURE, zipMembers } from './zip.js';

export type DetectedKerasFile =
  | { format: 'keras2-h5' | 'keras3-legacy-h5' | 'keras3-zip'; needsConfig: false }
  | { format: 'keras-weights-h5'; needsConfig: true }
  | { format: 'tfjs-layers'; needsConfig: false; container: 'json' | 'js-bundle' };

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
/** HDF5 allows a user block before the superblock: the signature may sit at 0, 512, 1024, 2048, …. */
const HDF5_OFFSETS = [0, 512, 1024, 2048, 4096, 8192];

export async function detectKerasFile(path: string): Promise<DetectedKerasFile> {
  const head = readHead(path);
  if (head.length === 0) throw new KerasImportError('unknown-format', `${path} is empty`, path);
  if (isHdf5(path, head)) return detectH5(path);
  if (head.subarray(0, 4).equals(ZIP_SIGNATURE)) return detectZip(path);
  const text = head.toString('utf8').replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('{')) return detectJson(path);
  if (text.startsWith('!function(') && isExportBundle(readTextFile(path))) return { format: 'tfjs-layers', needsConfig: false, container: 'js-bundle' };
  throw new KerasImportError('unknown-format',
    `${path} is not a Keras or TensorFlow.js model: expected an HDF5 .h5, a .keras zip or a tfjs model.json (its first bytes are ${describeBytes(head)})`, path);
}

/** The first 4 KiB, or a `not-found` error. */
function readHead(path: string): Buffer {
  let isFile = false;
  try { isFile = statSync(path).isFile(); } catch { /* reported below */ }
  if (!isFile) throw new KerasImportError('not-found', `${path}: no such file`, path);
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(4096);
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
  }
}

function isHdf5(path: string, head: Buffer): boolean {
  if (head.subarray(0, 8).equals(HDF5_SIGNATURE)) return true;
  const fd = openSync(path, 'r');
  try {
    return HDF5_OFFSETS.slice(1).some((at) => {
      const sig = Buffer.alloc(8);
      return readSync(fd, sig, 0, 8, at) === 8 && sig.equals(HDF5_SIGNATURE);
    });
  } finally {
    closeSync(fd);
  }
}

async function detectH5(path: string): Promise<DetectedKerasFile> {
  const file = await openH5(path);
  try {
    const layout = guardH5(path, () => inspectKerasH5(file, path));
    return layout.kind === 'full-model' ? { format: layout.format, needsConfig: false } : { format: 'keras-weights-h5', needsConfig: true };
  } finally {
    closeH5(file);
  }
}

function detectZip(path: string): DetectedKerasFile {
  const members = zipMembers(readFileSync(path), path);
  if (members.has(KERAS_ZIP_CONFIG) && members.has(KERAS_ZIP_WEIGHTS)) return { format: 'keras3-zip', needsConfig: false };
  const names = [...members.keys()];
  throw new KerasImportError('unknown-format',
    `${path} is a zip but not a Keras 3 .keras archive (needs ${KERAS_ZIP_CONFIG} and ${KERAS_ZIP_WEIGHTS}; it holds ${names.slice(0, 5).join(', ') || 'nothing'}${names.length > 5 ? ', …' : ''})`, path);
}

function detectJson(path: string): DetectedKerasFile {
  const parsed = parseJson(readTextFile(path), path);
  const json: Record<string, unknown> = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? { ...parsed } : {};
  const has = (key: string) => key in json;
  if (has('modelTopology') && has('weightsManifest')) {
    if (json.format === 'graph-model') {
      throw new KerasImportError('unknown-format', `${path} is a TensorFlow.js graph model (converted from a SavedModel); only layers models (Keras) can be imported`, path);
    }
    return { format: 'tfjs-layers', needsConfig: false, container: 'json' };
  }
  if (has('class_name') && has('config')) {
    throw new KerasImportError('unknown-format', `${path} is a Keras model config without weights; pass it with --config next to the weights .h5`, path);
  }
  throw new KerasImportError('unknown-format', `${path} is JSON but not a TensorFlow.js layers model.json (needs "modelTopology" and "weightsManifest")`, path);
}

function describeBytes(head: Buffer): string {
  return [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

