// Durable job storage: one folder per job under <CONVSERVE_DATA_DIR>/jobs/. Every file that is rewritten is
// written atomically (temporary name + rename); the event log is append-only (one JSON object per line).
//
//   <data>/jobs/<id>/job.json          the record (status, params, progress, previews, checkpoint info…)
//                    events.ndjson     ordered event log; line n is event id n (replayed to SSE clients)
//                    inputs/<field>-<i>.<ext>   the uploaded images, as sent
//                    checkpoint.bin    the last checkpoint of a running job (deleted when it finishes)
//                    previews/<n>.png  intermediate images, n = 0, 1, 2…
//                    result.png        the final image
//
// A folder without job.json is an interrupted submission and is deleted at start-up.
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { writeAtomic, writeAtomicAsync } from '../util/fs.js';
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

/** A job.json that exists but does not hold a valid record (left on disk, untouched, for a person to look at). */
export interface UnreadableRecord {
  id: string;
  file: string;
  problem: string;
}

const CKPT_MAGIC = Buffer.from('CVCKPT1\n');

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

  constructor(dataDir: string) {
    this.root = join(dataDir, 'jobs');
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
   * All stored records; deletes leftover folders of interrupted submissions (no job.json, or a torn one) and
   * temporary files. A job.json that is valid JSON but not a valid record is left alone and reported.
   */
  async loadAll(): Promise<{ records: JobRecord[]; unreadable: UnreadableRecord[] }> {
    const records: JobRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    for (const name of readdirSync(this.root)) {
      if (!JOB_ID_RE.test(name)) continue;
      const dir = join(this.root, name);
      const file = join(dir, 'job.json');
      let json: unknown;
      try {
        json = JSON.parse(readFileSync(file, 'utf8'));
      } catch {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      const rec = JobRecordSchema.safeParse(json);
      if (!rec.success || rec.data.id !== name) {
        unreadable.push({ id: name, file, problem: rec.success ? `id '${rec.data.id}' differs from its folder name` : describeIssues(rec.error) });
        continue;
      }
      for (const f of readdirSync(dir)) if (f.includes('.tmp-')) await rm(join(dir, f), { force: true });
      records.push(rec.data);
    }
    return { records, unreadable };
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

  async writeCheckpoint(id: string, meta: CheckpointMeta, state: SerializedState): Promise<void> {
    const buffers = Object.entries(state.buffers ?? {});
    const header = Buffer.from(JSON.stringify({ ...meta, json: state.json, buffers: buffers.map(([name, b]) => ({ name, length: b.length })) }));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.length);
    await writeAtomicAsync(join(this.dir(id), 'checkpoint.bin'), Buffer.concat([CKPT_MAGIC, len, header, ...buffers.map(([, b]) => b)]));
  }

  async readCheckpoint(id: string): Promise<{ meta: CheckpointMeta; state: SerializedState } | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.dir(id), 'checkpoint.bin'));
    } catch {
      return undefined;
    }
    if (!bytes.subarray(0, CKPT_MAGIC.length).equals(CKPT_MAGIC)) return undefined;
    const file = join(this.dir(id), 'checkpoint.bin');
    if (bytes.length < CKPT_MAGIC.length + 4) throw unreadableCheckpoint(file, 'truncated before the header');
    const hlen = bytes.readUInt32LE(CKPT_MAGIC.length);
    let off = CKPT_MAGIC.length + 4;
    let json: unknown;
    try {
      json = JSON.parse(bytes.subarray(off, off + hlen).toString('utf8'));
    } catch (e) {
      throw unreadableCheckpoint(file, `the header is not JSON (${e instanceof Error ? e.message : String(e)})`);
    }
    const header = CheckpointHeader.safeParse(json);
    if (!header.success) throw unreadableCheckpoint(file, `invalid header (${describeIssues(header.error)})`);
    off += hlen;
    const declared = header.data.buffers.reduce((n, b) => n + b.length, 0);
    if (off + declared !== bytes.length) throw unreadableCheckpoint(file, `the header declares ${declared} bytes of buffers but ${bytes.length - off} follow it`);
    const buffers: Record<string, Buffer> = {};
    for (const b of header.data.buffers) {
      buffers[b.name] = Buffer.from(bytes.subarray(off, off + b.length));
      off += b.length;
    }
    return { meta: { step: header.data.step, run_ms: header.data.run_ms }, state: { json: header.data.json, buffers } };
  }

  async deleteCheckpoint(id: string): Promise<void> {
    await rm(join(this.dir(id), 'checkpoint.bin'), { force: true });
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
