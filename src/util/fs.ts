// Small file-system helpers shared by the areas that persist things (models, jobs). Durable writes: a file is
// written under a temporary name, flushed to the disk (fsync), renamed into place, and the directory that holds
// the name is flushed too — after a crash or power loss a reader finds the old file or the new one, complete.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const tmpName = (path: string) => `${path}.tmp-${process.pid}-${Date.now()}-${randomBytes(3).toString('hex')}`;

const toBytes = (data: Uint8Array | string): Uint8Array => (typeof data === 'string' ? Buffer.from(data) : data);

/**
 * Flushes a directory's entries (a rename or a new file in it) to the disk. Some systems cannot open or fsync a
 * directory (Windows: EPERM/EISDIR; some network file systems: EINVAL); there the rename is as durable as it gets.
 */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (e) {
    if (!isUnsupportedDirSync(e)) throw e;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function isUnsupportedDirSync(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return code === 'EPERM' || code === 'EISDIR' || code === 'EINVAL' || code === 'EBADF' || code === 'ENOTSUP';
}

/** Writes `path` (truncating) and flushes it to the disk before returning. */
export function writeFileDurable(path: string, data: Uint8Array | string): void {
  const bytes = toBytes(data);
  const fd = openSync(path, 'w');
  try {
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `path` through a temporary file, fsync and a rename, so a reader (or a restart after a crash) never sees half a file. */
export function writeAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = tmpName(path);
  try {
    writeFileDurable(tmp, bytes);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

/** The asynchronous twin of writeAtomic (for large files written off the request path). */
export async function writeAtomicAsync(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = tmpName(path);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(toBytes(data));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  fsyncDir(dirname(path));
}

/** Renames `from` to `to` (a finished download, a file moved aside) and flushes both directories. */
export function renameDurable(from: string, to: string): void {
  renameSync(from, to);
  fsyncDir(dirname(to));
  if (dirname(from) !== dirname(to)) fsyncDir(dirname(from));
}

/** Flushes every file under `dir` and the folders themselves (a model folder before it is renamed into place). */
export function fsyncTree(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) fsyncTree(p);
    else if (e.isFile()) {
      const fd = openSync(p, 'r');
      try { fsyncSync(fd); } finally { closeSync(fd); }
    }
  }
  fsyncDir(dir);
}
