// The events of a job, typed per event name. They are facts about the job (no URLs: the HTTP layer adds its
// links when it streams them); each is persisted in the job's event log and numbered 1, 2, 3… per job, so a
// client can resume a stream after the last id it saw.
import { z } from 'zod';
import { type FinalStatus, type JobError, JobErrorSchema, type JobStatus, type Progress, ProgressSchema } from './record.js';

export interface JobEventData {
  /** Entered the queue (`reason` when re-queued by a restart) or started running. */
  status: { status: JobStatus; reason?: string; checkpoint_step?: number };
  progress: Progress;
  /** Preview number `n` (0, 1, 2…) was taken after `step` steps. */
  preview: { n: number; step: number; content_type: string };
  /** Continued after a restart from the checkpoint at `from_step`; later previews were dropped. */
  resumed: { from_step: number; previews_kept: number; previews_dropped: number };
  /** The last event of a job. */
  done: { status: FinalStatus; result?: { content_type: string }; error?: JobError; progress: Progress };
}

export type JobEventType = keyof JobEventData;
export const JOB_EVENT_TYPES: readonly JobEventType[] = ['status', 'progress', 'preview', 'resumed', 'done'];

/** What an emitter says: the event name and its data (typed by the name). */
export type JobEventInit = { [E in JobEventType]: { event: E; data: JobEventData[E] } }[JobEventType];

/** One event as stored and delivered: `{ id, event, data, at }`, with `data` typed by `event`. */
export type JobEvent = JobEventInit & { id: number; at: string };

/** Who an event is about (subscribers to every job get this with each event). */
export interface JobRef {
  id: string;
  kind: string;
}

const count = z.number().int().min(0);
const status = z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
const envelope = { id: z.number().int().min(1), at: z.string() };

// Key order matches the emitters, so an event read back serialises as it was written. Logs written before
// events dropped their URLs carry `url` fields; parsing strips them.
export const JobEventSchema = z.discriminatedUnion('event', [
  z.object({ ...envelope, event: z.literal('status'), data: z.object({ status, reason: z.string().optional(), checkpoint_step: count.optional() }) }),
  z.object({ ...envelope, event: z.literal('progress'), data: ProgressSchema }),
  z.object({ ...envelope, event: z.literal('preview'), data: z.object({ n: count, step: count, content_type: z.string() }) }),
  z.object({ ...envelope, event: z.literal('resumed'), data: z.object({ from_step: count, previews_kept: count, previews_dropped: count }) }),
  z.object({
    ...envelope,
    event: z.literal('done'),
    data: z.object({
      status: z.enum(['succeeded', 'failed', 'cancelled']),
      result: z.object({ content_type: z.string() }).optional(),
      error: JobErrorSchema.optional(),
      progress: ProgressSchema,
    }),
  }),
]) satisfies z.ZodType<JobEvent>;
