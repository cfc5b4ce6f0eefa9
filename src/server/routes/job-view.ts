// What the HTTP API answers for a job, built from the job service's records: the JSON view with its links
// (GET /v1/jobs/{id}), the submit answer, and the data of each Server-Sent Event (events are stored without
// URLs; the links to previews and the result are added here).
import type { JobEvent } from '../../jobs/events.js';
import type { JobSnapshot } from '../../jobs/service.js';
import type { JobError, JobStatus, JobWorkerRef, Progress } from '../../jobs/record.js';

/** What the HTTP API returns for a job. */
export interface JobView {
  id: string;
  kind: string;
  status: JobStatus;
  progress: Progress;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error?: JobError;
  result?: { url: string; content_type: string };
  previews: string[];
  params: unknown;
  queue_position?: number;
  /** Distributed mode: the worker process running the job, while it runs. */
  worker?: JobWorkerRef;
  links: JobLinks;
}

export interface JobLinks {
  self: string;
  events: string;
  result: string;
  cancel: string;
}

/** The answer to a submission (202). */
export interface JobSubmitted {
  id: string;
  kind: string;
  status: JobStatus;
  links: JobLinks;
}

export const jobUrl = (id: string) => `/v1/jobs/${id}`;
export const jobResultUrl = (id: string) => `${jobUrl(id)}/result`;
export const jobPreviewUrl = (id: string, n: number) => `${jobUrl(id)}/previews/${n}`;

export function jobLinks(id: string): JobLinks {
  const self = jobUrl(id);
  return { self, events: `${self}/events`, result: jobResultUrl(id), cancel: self };
}

// Key order is part of the API's bytes: keep it as it has always been.
export function jobView(job: JobSnapshot): JobView {
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    progress: job.progress,
    created_at: job.created_at,
    started_at: job.started_at,
    finished_at: job.finished_at,
    ...(job.error ? { error: job.error } : {}),
    ...(job.result ? { result: { url: jobResultUrl(job.id), content_type: job.result.content_type } } : {}),
    previews: job.previews.map((p) => jobPreviewUrl(job.id, p.n)),
    params: job.params,
    ...(job.queuePosition !== undefined ? { queue_position: job.queuePosition } : {}),
    ...(job.status === 'running' && job.worker ? { worker: job.worker } : {}),
    links: jobLinks(job.id),
  };
}

export function jobSubmitted(job: JobSnapshot): JobSubmitted {
  return { id: job.id, kind: job.kind, status: job.status, links: jobLinks(job.id) };
}

/** The `data` of job `id`'s event as streamed: the stored data, with URLs where a client fetches something. */
export function eventData(id: string, ev: JobEvent): Record<string, unknown> {
  switch (ev.event) {
    case 'preview': {
      const { n, step, content_type } = ev.data;
      return { n, step, url: jobPreviewUrl(id, n), content_type };
    }
    case 'done': {
      const { status, result, error, progress } = ev.data;
      return { status, ...(result ? { result: { url: jobResultUrl(id), content_type: result.content_type } } : {}), ...(error ? { error } : {}), progress };
    }
    default:
      return { ...ev.data };
  }
}
