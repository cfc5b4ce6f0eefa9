// The job record: what job.json holds, with the zod schema it is checked against when read back from disk
// (a record written by another version, or damaged by hand, is then a clear error instead of a wrong guess).
import { z } from 'zod';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type FinalStatus = 'succeeded' | 'failed' | 'cancelled';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
export const isTerminal = (s: JobStatus): s is FinalStatus => s === 'succeeded' || s === 'failed' || s === 'cancelled';

export const JOB_ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface Progress {
  step: number;
  total: number;
  fraction: number;
  message: string;
  metrics: Record<string, number>;
  /** Mean duration of the recent steps, ms. */
  step_ms?: number;
  /** Estimated seconds to completion at the recent step rate. */
  eta_s?: number;
}

export interface JobError {
  /** Problem slug, e.g. 'job-time-limit'. */
  type: string;
  detail: string;
}

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
  error?: JobError;
  result?: { file: string; content_type: string };
  previews: { n: number; step: number; file: string }[];
  /** The last checkpoint written (the file is checkpoint.bin). */
  checkpoint?: { step: number; run_ms: number; at: string };
  /** How many times the job was resumed after a restart. */
  resumes: number;
  /** Distributed mode: the worker process running the job (the last one, once it has finished). */
  worker?: JobWorkerRef;
}

export interface JobWorkerRef {
  id: string;
  host: string;
  pid: number;
}

const count = z.number().int().min(0);
/** A path inside the job's folder: relative, no way out of it. */
const jobFile = z.string().regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$)).+$/, 'a relative path inside the job folder');

// Key order follows the interfaces above: parsed objects are written back as job.json and sent as progress events.
export const ProgressSchema = z.object({
  step: count,
  total: count,
  fraction: z.number(),
  message: z.string(),
  metrics: z.record(z.string(), z.number()),
  step_ms: z.number().optional(),
  eta_s: z.number().optional(),
});

export const JobErrorSchema = z.object({ type: z.string(), detail: z.string() });

export const JobRecordSchema = z.object({
  id: z.string().regex(JOB_ID_RE, 'a job id (UUID)'),
  kind: z.string(),
  status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']),
  params: z.unknown(),
  inputs: z.array(z.object({ field: z.string(), file: jobFile, content_type: z.string(), bytes: count })),
  created_at: z.string(),
  started_at: z.string().nullable(),
  finished_at: z.string().nullable(),
  progress: ProgressSchema,
  error: JobErrorSchema.optional(),
  result: z.object({ file: jobFile, content_type: z.string() }).optional(),
  previews: z.array(z.object({ n: count, step: count, file: jobFile })),
  checkpoint: z.object({ step: count, run_ms: z.number().min(0), at: z.string() }).optional(),
  resumes: count,
  worker: z.object({ id: z.string(), host: z.string(), pid: z.number().int().min(0) }).optional(),
}) satisfies z.ZodType<JobRecord>;

/** One line per problem, `path: message`, for error messages about a file that failed its schema. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}
