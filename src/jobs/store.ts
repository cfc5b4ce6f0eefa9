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
import { writeAtomic, writeAtomicAsync } from '../util/fs.js';
import type { SerializedState } from './kind.js';
import type { Progress } from './runner.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
export const isTerminal = (s: JobStatus) => s === 'succeeded' || s === 'failed' || s === 'cancelled';

export interface JobRecord {
  id: string;
  kind: string;
  status: JobStatus;
  /** Parsed (validated) parameters. */
  params: unknown;
  inputs: { field: string; file: string; content_type: string; bytes: number }[];
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  progress: Progress;
  error?: { type: string; detail: string };
  result?: { file: string; content_type: string };
  previews: { n: number; step: number; file: string }[];
  /** The last checkpoint written (the file is checkpoint.bin). */
  checkpoint?: { step: number; run_ms: number; at: string };
  /** How many times the job was resumed after a restart. */
  resumes: number;
}

export type JobEventType = 'status' | 'progress' | 'preview' | 'resumed' | 'done';
export interface JobEvent {
  id: number;
  event: JobEventType;
  data: Record<string, unknown>;
  at: string;
}

export interface CheckpointMeta {
  step: number;
  run_ms: number;
}

const CKPT_MAGIC = Buffer.from('CVCKPT1\n');

export const JOB_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

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

  /** All stored records; deletes leftover folders of interrupted submissions and temporary files. */
  async loadAll(): Promise<JobRecord[]> {
    const out: JobRecord[] = [];
    for (const name of readdirSync(this.root)) {
      if (!JOB_ID_RE.test(name)) continue;
      const dir = join(this.root, name);
      let rec: JobRecord;
      try {
        rec = JSON.parse(readFileSync(join(dir, 'job.json'), 'utf8')) as JobRecord;
      } catch {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      for (const f of readdirSync(dir)) if (f.includes('.tmp-')) await rm(join(dir, f), { force: true });
      out.push(rec);
    }
    return out;
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
      try {
        const ev = JSON.parse(line) as JobEvent;
        if (ev.id > after) out.push(ev);
      } catch { /* torn line */ }
    }
    return out;
  }

  async lastEventId(id: string): Promise<number> {
    const evs = await this.readEvents(id);
    return evs.length ? evs[evs.length - 1]!.id : 0;
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
    const hlen = bytes.readUInt32LE(CKPT_MAGIC.length);
    let off = CKPT_MAGIC.length + 4;
    const header = JSON.parse(bytes.subarray(off, off + hlen).toString('utf8')) as CheckpointMeta & { json?: unknown; buffers: { name: string; length: number }[] };
    off += hlen;
    const buffers: Record<string, Buffer> = {};
    for (const b of header.buffers) {
      buffers[b.name] = Buffer.from(bytes.subarray(off, off + b.length));
      off += b.length;
    }
    return { meta: { step: header.step, run_ms: header.run_ms }, state: { json: header.json, buffers } };
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
