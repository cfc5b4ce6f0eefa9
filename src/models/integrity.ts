// Model file integrity at load: the SHA-256 of every file the manifest lists is checked when the file's size or
// modification time differs from the last verified load (hashing VGG19's 550 MB at every start would cost
// seconds; a file replaced or damaged on disk changes one of the two). What was verified is remembered in
// memory and in `<modelsDir>/.verified.json`, so a restart does not hash unchanged files again.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomic } from '../util/fs.js';

const Stamp = z.object({ size: z.number(), mtime_ms: z.number(), sha256: z.string() });
type Stamp = z.infer<typeof Stamp>;
const Sidecar = z.record(z.string(), z.record(z.string(), Stamp));

export const VERIFIED_FILE = '.verified.json';

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

export interface IntegrityResult {
  /** Files hashed this time (their size or mtime had changed, or were never verified). */
  hashed: string[];
  /** The first file whose hash differs from the manifest, if any. */
  mismatch?: { file: string; expected: string; found: string };
}

export class VerifiedStamps {
  private stamps: z.infer<typeof Sidecar>;
  private readonly file: string;

  constructor(modelsDir: string) {
    this.file = join(modelsDir, VERIFIED_FILE);
    this.stamps = readSidecar(this.file);
  }

  /** Hashes the files of `dir` whose size/mtime changed since their last verification; remembers the good ones. */
  async check(name: string, dir: string, expected: Record<string, string>): Promise<IntegrityResult> {
    const known = this.stamps[name] ?? {};
    const next: Record<string, Stamp> = {};
    const hashed: string[] = [];
    for (const [file, sha256] of Object.entries(expected)) {
      const path = join(dir, file);
      const st = statSync(path);
      const prev = known[file];
      if (prev && prev.size === st.size && prev.mtime_ms === st.mtimeMs && prev.sha256 === sha256) {
        next[file] = prev;
        continue;
      }
      const found = await sha256File(path);
      hashed.push(file);
      if (found !== sha256) {
        delete this.stamps[name];
        this.save();
        return { hashed, mismatch: { file, expected: sha256, found } };
      }
      next[file] = { size: st.size, mtime_ms: st.mtimeMs, sha256 };
    }
    this.stamps[name] = next;
    if (hashed.length) this.save();
    return { hashed };
  }

  private save(): void {
    // A read-only models volume keeps the stamps in memory only: the next process hashes once more.
    try { writeAtomic(this.file, JSON.stringify(this.stamps)); } catch { /* memory only */ }
  }
}

function readSidecar(file: string): z.infer<typeof Sidecar> {
  try {
    const parsed = Sidecar.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    return parsed.success ? parsed.data : {};
  } catch {
    return {};
  }
}
