// Durable job storage: one folder per job under <CONVSERVE_DATA_DIR>/jobs/. Every file that is rewritten is
// written atomically and durably (temporary name, fsync, rename, fsync of the folder: util/fs.ts); the event log
// is append-only (one JSON object per line).
//
//   <data>/jobs/<id>/job.json          the record (status, params, progress, previews, checkpoint info…)
//                    events.ndjson     ordered event log; line n is event id n (replayed to SSE clients)
//                    inputs/<field>-<i>.<ext>   the uploaded images, as sent
//                    checkpoint.bin    the last checkpoint of a running job (deleted when it finishes)
//                    checkpoint.prev.bin  the one before it: the fallback when the last one is torn or damaged
//                    previews/<n>.png  intermediate images, n = 0, 1, 2…
//                    result.png        the final image
//
// A folder without job.json is an interrupted submission (never acknowledged) and is deleted at start-up. A folder
// whose job.json cannot be read as a record is moved aside to <data>/quarantine/<id>/ and logged, never deleted.
//
// A checkpoint file: magic `CVCKPT2\n`, u32 LE header length, the header (JSON: step, run_ms, the kind's json,
// the buffer names and lengths), the buffers, then the SHA-256 of everything before it. (`CVCKPT1\n` files,
// without the digest, are still read.)
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { renameDurable, writeAtomic, writeAtomicAsync } from '../util/fs.js';
import { unreadableCheckpoint } from './checkpoint.js';
import { type JobEvent, JobEventSchema } from './events.js';
import type { SerializedState } from './kind.js';
import { JOB_ID_RE, type JobRecord, JobRecordSchema, describeIssues } from './record.js';

// The record types live in record.ts; re-exported here, where the HTTP schemas have always found them.
export { JOB_ID_RE, JOB_STATUSES, isTerminal, type JobRecord, type JobStatus } from './record.js';

export interface CheckpointMeta {
  step: number;
  run_ms: number;
}

/** A job folder whose job.json cannot be read as a record: moved to `quarantinedTo`, for a person to look at. */
export interface UnreadableRecord {
  id: string;
  file: string;
  problem: string;
  /** Where the folder now is (<data>/quarantine/<id>, suffixed when that name is taken). */
  quarantinedTo: string;
}

const CKPT_MAGIC_V1 = Buffer.from('CVCKPT1\n');
const CKPT_MAGIC = Buffer.from('CVCKPT2\n');
const DIGEST_BYTES = 32;
const CKPT_FILE = 'checkpoint.bin';
const CKPT_PREV_FILE = 'checkpoint.prev.bin';

/** Only the id of a logged event (numbering must continue even after a damaged line). */
const EventId = z.object({ id: z.number().int().min(1) });

const CheckpointHeader = z.object({
  step: z.number().int().min(0),
  run_ms: z.number().min(0),
  json: z.unknown(),
  buffers: z.array(z.object({ name: z.string(), length: z.number().int().min(0) })),
});

export class JobStore {
  readonly root: string;
  /** Where unreadable job folders are moved: <data>/quarantine. */
  readonly quarantineRoot: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'jobs');
    this.quarantineRoot = join(dataDir, 'quarantine');
    mkdirSync(this.root, { recursive: true });
  }

  dir(id: string): string {
    if (!JOB_ID_RE.test(id)) throw new Error(`invalid job id ${id}`);
    return join(this.root, id);
  }

  /** Writes the inputs, then the record: a job exists once job.json does. */
  create(rec: JobRecord, files: { file: string; bytes: Buffer }[]): void {
    const dir = this.dir(rec.id);
    mkdirSync(join(dir, 'inputs'), { recursive: true });
    for (const f of files) writeAtomic(join(dir, f.file), f.bytes);
    this.save(rec);
  }

  save(rec: JobRecord): void {
    writeAtomic(join(this.dir(rec.id), 'job.json'), JSON.stringify(rec));
  }

  /**
   * All stored records. Deletes leftover folders of interrupted submissions (no job.json: never acknowledged)
   * and temporary files; moves a folder whose job.json is not a valid record (unparsable, torn, foreign) to the
   * quarantine folder and reports it — a job is never deleted because it could not be read.
   */
  async loadAll(): Promise<{ records: JobRecord[]; unreadable: UnreadableRecord[] }> {
    const records: JobRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (const name of readdirSync(this.root)) {
      if (!JOB_ID_RE.test(name)) continue;
      const dir = join(this.root, name);
      const file = join(dir, 'job.json');
      if (!existsSync(file)) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      let problem: string | undefined;
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(file, 'utf8'));
      } catch (e) {
        problem = `job.json is not JSON (${e instanceof Error ? e.message : String(e)})`;
      }
      const rec = problem === undefined ? JobRecordSchema.safeParse(json) : undefined;
      if (rec && !rec.success) problem = describeIssues(rec.error);
      else if (rec?.success && rec.data.id !== name) problem = `id '${rec.data.id}' differs from its folder name`;
      if (problem !== undefined || !rec?.success) {
        unreadable.push({ id: name, file, problem: problem ?? 'unreadable', quarantinedTo: this.quarantine(name) });
        continue;
      }
      for (const f of readdirSync(dir)) if (f.includes('.tmp-')) await rm(join(dir, f), { force: true });
      records.push(rec.data);
    }
    return { records, unreadable };
  }

  /** Moves a job folder to <data>/quarantine/<id> (or <id>-<n> when that is taken); returns where it went. */
  private quarantine(id: string): string {
    mkdirSync(this.quarantineRoot, { recursive: true });
    let to = join(this.quarantineRoot, id);
    for (let n = 1; existsSync(to); n++) to = join(this.quarantineRoot, `${id}-${n}`);
    renameDurable(this.dir(id), to);
    return to;
  }

  appendEvent(id: string, ev: JobEvent): void {
    appendFileSync(join(this.dir(id), 'events.ndjson'), JSON.stringify(ev) + '\n');
  }

  /** Events with id > after, in order. A torn last line (crash mid-append) is ignored. */
  async readEvents(id: string, after = 0): Promise<JobEvent[]> {
    let text: string;
    try {
      text = await readFile(join(this.dir(id), 'events.ndjson'), 'utf8');
    } catch {
      return [];
    }
    const out: JobEvent[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      let json: unknown;
      try { json = JSON.parse(line); } catch { continue; /* torn line */ }
      const ev = JobEventSchema.safeParse(json);
      if (!ev.success) throw new Error(`${join(this.dir(id), 'events.ndjson')}: an event that is not a valid job event (${describeIssues(ev.error)})`);
      if (ev.data.id > after) out.push(ev.data);
    }
    return out;
  }

  /** Id of the last complete event in the log (0 when none): numbering continues after it. */
  async lastEventId(id: string): Promise<number> {
    let text: string;
    try {
      text = await readFile(join(this.dir(id), 'events.ndjson'), 'utf8');
    } catch {
      return 0;
    }
    let last = 0;
    for (const line of text.split('\n')) {
      let json: unknown;
      try { json = JSON.parse(line); } catch { continue; /* empty or torn line */ }
      const ev = EventId.safeParse(json);
      if (ev.success) last = Math.max(last, ev.data.id);
    }
    return last;
  }

  /**
   * Writes a checkpoint durably, keeping the previous one as checkpoint.prev.bin: a torn or damaged last
   * checkpoint then falls back to the one before instead of losing the job.
   */
  async writeCheckpoint(id: string, meta: CheckpointMeta, state: SerializedState): Promise<void> {
    const buffers = Object.entries(state.buffers ?? {});
    const header = Buffer.from(JSON.stringify({ ...meta, json: state.json, buffers: buffers.map(([name, b]) => ({ name, length: b.length })) }));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.length);
    const body = Buffer.concat([CKPT_MAGIC, len, header, ...buffers.map(([, b]) => b)]);
    const digest = createHash('sha256').update(body).digest();
    const file = this.path(id, CKPT_FILE);
    if (existsSync(file)) renameDurable(file, this.path(id, CKPT_PREV_FILE));
    await writeAtomicAsync(file, Buffer.concat([body, digest]));
  }

  /**
   * The last good checkpoint: checkpoint.bin, or checkpoint.prev.bin when the last one is torn or fails its
   * checksum (`fellBack` then says why). Undefined when there is none; an `invalid-checkpoint` problem when
   * every one there is is damaged.
   */
  async readCheckpoint(id: string): Promise<{ meta: CheckpointMeta; state: SerializedState; fellBack?: string } | undefined> {
    const last = await this.readCheckpointFile(this.path(id, CKPT_FILE));
    if (last?.ok) return last.value;
    const prev = await this.readCheckpointFile(this.path(id, CKPT_PREV_FILE));
    if (prev?.ok) return { ...prev.value, ...(last ? { fellBack: last.error.message } : {}) };
    if (last) throw last.error;
    if (prev) throw prev.error;
    return undefined;
  }

  private async readCheckpointFile(file: string): Promise<{ ok: true; value: { meta: CheckpointMeta; state: SerializedState } } | { ok: false; error: Error } | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      return undefined;
    }
    try {
      return { ok: true, value: parseCheckpoint(bytes, file) };
    } catch (e) {
      return { ok: false, error: e instanceof Error ? e : new Error(String(e)) };
    }
  }

  async deleteCheckpoint(id: string): Promise<void> {
    await rm(this.path(id, CKPT_FILE), { force: true });
    await rm(this.path(id, CKPT_PREV_FILE), { force: true });
  }

  async writeFile(id: string, rel: string, bytes: Buffer): Promise<void> {
    const path = join(this.dir(id), rel);
    mkdirSync(join(path, '..'), { recursive: true });
    await writeAtomicAsync(path, bytes);
  }

  path(id: string, rel: string): string {
    return join(this.dir(id), rel);
  }

  exists(id: string, rel: string): boolean {
    return existsSync(join(this.dir(id), rel));
  }

  async remove(id: string): Promise<void> {
    await rm(this.dir(id), { recursive: true, force: true });
  }

  /** Bytes used by one job's folder. */
  async size(id: string): Promise<number> {
    return dirSize(this.dir(id));
  }
}

/** Parses one checkpoint file (both formats); throws `invalid-checkpoint` naming what is wrong. */
function parseCheckpoint(all: Buffer, file: string): { meta: CheckpointMeta; state: SerializedState } {
  const name = `${dirname(file).split(/[\\/]/).at(-1)}/${file.split(/[\\/]/).at(-1)}`;
  const v2 = all.subarray(0, CKPT_MAGIC.length).equals(CKPT_MAGIC);
  if (!v2 && !all.subarray(0, CKPT_MAGIC_V1.length).equals(CKPT_MAGIC_V1)) throw unreadableCheckpoint(name, 'not a checkpoint file (bad magic)');
  let bytes = all;
  if (v2) {
    if (all.length < CKPT_MAGIC.length + 4 + DIGEST_BYTES) throw unreadableCheckpoint(name, 'truncated before the header');
    bytes = all.subarray(0, all.length - DIGEST_BYTES);
    const digest = createHash('sha256').update(bytes).digest();
    if (!digest.equals(all.subarray(all.length - DIGEST_BYTES))) throw unreadableCheckpoint(name, 'the SHA-256 checksum does not match (torn or damaged file)');
  }
  if (bytes.length < CKPT_MAGIC.length + 4) throw unreadableCheckpoint(name, 'truncated before the header');
  const hlen = bytes.readUInt32LE(CKPT_MAGIC.length);
  let off = CKPT_MAGIC.length + 4;
  let json: unknown;
  try {
    json = JSON.parse(bytes.subarray(off, off + hlen).toString('utf8'));
  } catch (e) {
    throw unreadableCheckpoint(name, `the header is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const header = CheckpointHeader.safeParse(json);
  if (!header.success) throw unreadableCheckpoint(name, `invalid header (${describeIssues(header.error)})`);
  off += hlen;
  const declared = header.data.buffers.reduce((n, b) => n + b.length, 0);
  if (off + declared !== bytes.length) throw unreadableCheckpoint(name, `the header declares ${declared} bytes of buffers but ${bytes.length - off} follow it`);
  const buffers: Record<string, Buffer> = {};
  for (const b of header.data.buffers) {
    buffers[b.name] = Buffer.from(bytes.subarray(off, off + b.length));
    off += b.length;
  }
  return { meta: { step: header.data.step, run_ms: header.data.run_ms }, state: { json: header.data.json, buffers } };
}

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirSize(p);
    else total += await stat(p).then((s) => s.size, () => 0);
  }
  return total;
}
