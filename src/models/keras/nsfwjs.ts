// The trained InceptionV3 bundled in the `nsfwjs` npm package (MIT): a Keras 2.2.4 model converted to tfjs layers
// (uint8-quantized) and wrapped in JavaScript modules, dist/models/inception_v3/model.min.js + 6 shard modules.
// Read as data through the tfjs reader's bundle path; nothing of the package is executed.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { KerasImportError } from './errors.js';
import type { RawKerasFile } from './raw.js';
import { readTfjsBundle } from './read-tfjs.js';

/** Path of the package's bundled InceptionV3 model.min.js (resolved from the installed package's entry point). */
export function nsfwjsInceptionV3Path(): string {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('nsfwjs'); // …/nsfwjs/dist/cjs/index.js
  } catch {
    throw new KerasImportError('not-found', 'the nsfwjs package is not installed (npm install nsfwjs)');
  }
  return join(dirname(entry), '..', 'models', 'inception_v3', 'model.min.js');
}

export function readNsfwjsInceptionV3(): Promise<RawKerasFile> {
  return readTfjsBundle(nsfwjsInceptionV3Path());
}
