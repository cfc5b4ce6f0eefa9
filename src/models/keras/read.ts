// The one entry point for reading a Keras or TensorFlow.js model file: detect the layout from the content, then
// read it with its reader. Readers only read: nothing is written (a `.keras` archive's weights pass through a
// private temporary file that is removed at once).
import { detectKerasFile } from './detect.js';
import { KerasImportError } from './errors.js';
import { readModelConfigFile } from './json-file.js';
import type { RawKerasFile } from './raw.js';
import { readKerasH5 } from './read-h5.js';
import { readKerasZip } from './read-keras-zip.js';
import { readTfjsBundle, readTfjsModel } from './read-tfjs.js';

export interface ReadKerasOptions {
  /** The architecture for a weights-only `.h5`: a `model.to_json()` file (the CLI's --config). */
  configPath?: string;
}

export async function readKerasFile(path: string, opts: ReadKerasOptions = {}): Promise<RawKerasFile> {
  const detected = await detectKerasFile(path);
  if (opts.configPath !== undefined && !detected.needsConfig) {
    throw new KerasImportError('bad-config', `${path} is a full model (${detected.format}) with its own config; --config is only for weights-only .h5 files`, path);
  }
  switch (detected.format) {
    case 'keras2-h5':
    case 'keras3-legacy-h5':
      return readKerasH5(path);
    case 'keras-weights-h5': {
      if (opts.configPath === undefined) return readKerasH5(path); // reports the missing --config
      const { config, kerasVersion } = readModelConfigFile(opts.configPath);
      return readKerasH5(path, { config, kerasVersion, source: opts.configPath });
    }
    case 'keras3-zip':
      return readKerasZip(path);
    case 'tfjs-layers':
      return detected.container === 'json' ? readTfjsModel(path) : readTfjsBundle(path);
  }
}
