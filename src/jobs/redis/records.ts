// Reading a job's record straight from the shared data directory: in distributed mode the process that
// changed it last may be another one, and job.json (written before every announced event) is the truth.
import { readFileSync } from 'node:fs';
import { type JobRecord, JobRecordSchema } from '../record.js';
import type { JobStore } from '../store.js';

/** The record in job.json, or undefined when the job is gone (expired) or its file is not a valid record. */
export function readRecord(store: JobStore, id: string): JobRecord | undefined {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(store.path(id, 'job.json'), 'utf8'));
  } catch {
    return undefined;
  }
  const rec = JobRecordSchema.safeParse(json);
  return rec.success && rec.data.id === id ? rec.data : undefined;
}

/** Makes `target` equal to `fresh` in place, so every holder of the object sees the new state. */
export function refreshRecord(target: JobRecord, fresh: JobRecord): void {
  for (const key of OPTIONAL_FIELDS) if (fresh[key] === undefined) delete target[key];
  Object.assign(target, fresh);
}

/** The fields a record may lose (a finished job has no checkpoint any more…). */
const OPTIONAL_FIELDS = ['error', 'result', 'checkpoint', 'worker'] as const satisfies readonly (keyof JobRecord)[];
