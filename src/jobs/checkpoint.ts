// Reading a kind's checkpoint back: its JSON is checked against the kind's zod schema and every buffer against
// the size the JSON implies, so a damaged or foreign checkpoint fails the job with a clear `invalid-checkpoint`
// error (naming the field or buffer) instead of resuming from garbage.
import type { z } from 'zod';
import { ProblemError } from '../util/problem.js';
import type { SerializedState } from './kind.js';
import { describeIssues } from './record.js';

export interface CheckedCheckpoint<J> {
  json: J;
  /** The buffer `name`, which must hold exactly `bytes` bytes. */
  buffer(name: string, bytes: number): Buffer;
  /** Buffers whose names start with `prefix`, keyed by the rest of the name (sizes are the caller's to check). */
  buffersWithPrefix(prefix: string): Record<string, Buffer>;
}

export function invalidCheckpoint(kind: string, detail: string): ProblemError {
  return new ProblemError(500, 'invalid-checkpoint', 'Invalid checkpoint', `The ${kind} checkpoint cannot be resumed: ${detail}.`);
}

/** A checkpoint file that cannot be read back (bad header, truncated buffers). */
export function unreadableCheckpoint(file: string, detail: string): ProblemError {
  return new ProblemError(500, 'invalid-checkpoint', 'Invalid checkpoint', `${file}: ${detail}.`);
}

export function checkCheckpoint<S extends z.ZodType>(kind: string, schema: S, data: SerializedState): CheckedCheckpoint<z.output<S>> {
  const parsed = schema.safeParse(data.json);
  if (!parsed.success) throw invalidCheckpoint(kind, describeIssues(parsed.error));
  const buffers = data.buffers ?? {};
  return {
    json: parsed.data,
    buffer(name, bytes) {
      const b = buffers[name];
      if (!b) throw invalidCheckpoint(kind, `the buffer '${name}' is missing`);
      if (b.length !== bytes) throw invalidCheckpoint(kind, `the buffer '${name}' holds ${b.length} bytes, ${bytes} expected`);
      return b;
    },
    buffersWithPrefix(prefix) {
      const out: Record<string, Buffer> = {};
      for (const [k, v] of Object.entries(buffers)) if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
      return out;
    },
  };
}
