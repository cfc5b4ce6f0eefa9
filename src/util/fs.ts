// Small file-system helpers shared by the areas that persist things (models, jobs).
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';

const tmpName = (path: string) => `${path}.tmp-${process.pid}-${Date.now()}-${randomBytes(3).toString('hex')}`;

/** Writes `path` through a temporary file and a rename, so a reader (or a restart after a crash) never sees half a file. */
export function writeAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = tmpName(path);
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

/** The asynchronous twin of writeAtomic (for large files written off the request path). */
export async function writeAtomicAsync(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = tmpName(path);
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
