// Keras 3 `.keras` archives: config.json (Keras 3 dialect), metadata.json (keras_version) and model.weights.h5
// (the `layers/<class>/vars/<i>` store, see read-vars.ts). h5wasm opens files only, so the weights member is
// written to a private temporary directory for the read and removed right after.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KerasImportError } from './errors.js';
import { closeH5, guardH5, openH5 } from './h5.js';
import { parseJson, versionOf } from './json-file.js';
import { rawModelTree } from './raw-config.js';
import type { RawKerasFile } from './raw.js';
import { readVarsLayout } from './read-vars.js';
import { zipMember, zipMembers } from './zip.js';

export const KERAS_ZIP_CONFIG = 'config.json';
export const KERAS_ZIP_WEIGHTS = 'model.weights.h5';
const KERAS_ZIP_METADATA = 'metadata.json';

export async function readKerasZip(path: string): Promise<RawKerasFile> {
  const zip = readFileSync(path);
  const members = zipMembers(zip, path);
  const member = (name: string) => {
    const m = members.get(name);
    if (!m) throw new KerasImportError('corrupt', `${path}: the .keras archive has no ${name}`, path);
    return zipMember(zip, m, path);
  };
  const text = (bytes: Uint8Array) => Buffer.from(bytes).toString('utf8');
  const config = parseJson(text(member(KERAS_ZIP_CONFIG)), `${path}: ${KERAS_ZIP_CONFIG}`);
  const metadata = members.has(KERAS_ZIP_METADATA) ? parseJson(text(member(KERAS_ZIP_METADATA)), `${path}: ${KERAS_ZIP_METADATA}`) : null;
  const tree = rawModelTree(config, `${path}: ${KERAS_ZIP_CONFIG}`);
  const weightsBytes = member(KERAS_ZIP_WEIGHTS);

  const dir = mkdtempSync(join(tmpdir(), 'convserve-keras-'));
  try {
    const h5Path = join(dir, KERAS_ZIP_WEIGHTS);
    writeFileSync(h5Path, weightsBytes);
    const label = `${path}: ${KERAS_ZIP_WEIGHTS}`;
    const file = await openH5(h5Path, label);
    try {
      const weights = guardH5(label, () => readVarsLayout(file, tree, label));
      return { format: 'keras3-zip', kerasVersion: versionOf(metadata) ?? versionOf(config), config, weights };
    } finally {
      closeH5(file);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
