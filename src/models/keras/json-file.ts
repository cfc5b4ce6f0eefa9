// JSON documents the readers load: a model config given with --config, a tfjs model.json, an archive's config.json.
import { readFileSync, statSync } from 'node:fs';
import { KerasImportError } from './errors.js';
import { unwrapModelConfig } from './raw-config.js';

/** Parses JSON text; invalid or cut-off JSON is a precise `corrupt`/`truncated` error naming `label`. */
export function parseJson(text: string, label: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    // Cut-off JSON fails at its very end (V8 says "end of JSON input", or names the last position).
    const position = /position (\d+)/.exec(reason);
    const truncated = /end of (JSON )?input/i.test(reason) || (position !== null && Number(position[1]) >= text.trimEnd().length);
    throw new KerasImportError(truncated ? 'truncated' : 'corrupt', `${label} is ${truncated ? 'truncated' : 'not valid'} JSON (${reason})`, label);
  }
}

export function readTextFile(path: string): string {
  let isFile = false;
  try { isFile = statSync(path).isFile(); } catch { /* reported below */ }
  if (!isFile) throw new KerasImportError('not-found', `${path}: no such file`, path);
  return readFileSync(path, 'utf8');
}

/**
 * The model config for a weights-only file: the output of `model.to_json()` (either dialect); a tfjs model.json
 * or an object with `model_config` is accepted too. Returns the `{class_name, config}` object and the Keras version
 * the JSON records, if any.
 */
export function readModelConfigFile(path: string): { config: unknown; kerasVersion: string | null } {
  const json = parseJson(readTextFile(path), path);
  const holder = typeof json === 'object' && json !== null && 'modelTopology' in json ? json.modelTopology : json;
  const config = unwrapModelConfig(holder);
  return { config, kerasVersion: versionOf(holder) ?? versionOf(config) };
}

/** The `keras_version` a JSON object records. */
export function versionOf(json: unknown): string | null {
  if (typeof json !== 'object' || json === null || !('keras_version' in json)) return null;
  return typeof json.keras_version === 'string' ? json.keras_version : null;
}
