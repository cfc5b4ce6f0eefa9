// Admission of new jobs: everything is checked before a job exists — the kind, a free place in the bounded
// queue and in the owner's share of it (429 with Retry-After otherwise, 503 while shutting down), the parameters
// against the kind's schema, each image's header (format, pixel limit) and the owner's pixels per hour. A
// submission holds a queue place while it is validated, so concurrent uploads cannot overfill the queue.
import { randomUUID } from 'node:crypto';
import type { Config } from '../config.js';
import { probeImage } from '../image/io.js';
import { parseParams } from '../util/params.js';
import { badRequest, tooManyRequests, unavailable } from '../util/problem.js';
import { type AnyJobKind, type JobServices, requireJobKind } from './kind.js';
import type { JobQueue } from './queue.js';
import { PixelQuota } from './quota.js';
import type { JobCaller, JobRecord } from './record.js';

export interface SubmitImage {
  field: string;
  bytes: Buffer;
  mimetype?: string;
}

/** A validated job, not yet stored: its record and the input files to write with it. */
export interface AdmittedJob {
  record: JobRecord;
  files: { file: string; bytes: Buffer }[];
  /** Width × height summed over the input images (the owner's pixels-per-hour quota). */
  pixels: number;
}

export interface AdmissionDeps {
  config: Config;
  queue: JobQueue;
  /** True once the service stops taking jobs. */
  isStopping(): boolean;
  /** Seconds until a queue place is likely to free (the Retry-After of a 429). */
  retryAfterSeconds(): number;
  /** The engine and registry, for kinds that check their parameters against the models (JobKind.check). */
  services?: JobServices;
  /** True when `bytes` more fit in the job disk budget (counting queued and running jobs). */
  makeRoom?(bytes: number): Promise<boolean>;
}

const EXT: Record<string, string> = { jpeg: 'jpg', png: 'png', webp: 'webp', gif: 'gif', tiff: 'tif', heif: 'heif' };
const CT: Record<string, string> = { jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif', tiff: 'image/tiff', heif: 'image/heif' };

const shuttingDown = () => unavailable('shutting-down', 'The service is shutting down and takes no new jobs.', {}, 5);

export class JobAdmission {
  /** Queue places held by submissions still being validated or written, in total and by owner. */
  private reserved = 0;
  private readonly reservedBy = new Map<string, number>();
  private readonly pixels: PixelQuota;

  constructor(private readonly deps: AdmissionDeps) {
    this.pixels = new PixelQuota(deps.config);
  }

  /** Throws 429 (with Retry-After) when the queue or the caller's share of it is full, 503 when shutting down. */
  checkCapacity(caller: JobCaller): void {
    const { config, queue } = this.deps;
    if (this.deps.isStopping()) throw shuttingDown();
    queue.checkAvailable?.();
    if (queue.length + this.reserved >= config.jobQueueLength) {
      const retry = this.deps.retryAfterSeconds();
      throw tooManyRequests('job-queue-full', `The job queue is full (${config.jobQueueLength} queued jobs, CONVSERVE_JOB_QUEUE); retry in about ${retry} s.`, retry, { queue_length: config.jobQueueLength, retry_after_s: retry });
    }
    if (caller.anonymous) return;
    const mine = queue.lengthOf(caller.id) + (this.reservedBy.get(caller.id) ?? 0);
    if (mine >= config.ownerQueuedJobs) {
      const retry = this.deps.retryAfterSeconds();
      throw tooManyRequests('owner-queue-full', `The key '${caller.id}' already has ${mine} queued jobs, the most one key may have (CONVSERVE_OWNER_QUEUED_JOBS=${config.ownerQueuedJobs}); retry in about ${retry} s.`, retry, { queued: mine, limit: config.ownerQueuedJobs, retry_after_s: retry });
    }
    // An owner whose hour is used up is told before its upload is read (the exact check follows validation).
    this.pixels.checkNotExhausted(caller.id);
  }

  /**
   * Validates a submission and hands the new job to `accept` (which stores and queues it) while still holding
   * its queue place; returns what `accept` returns. Throws a ProblemError naming what is wrong.
   */
  async admit<T>(kindName: string, images: SubmitImage[], rawParams: Record<string, unknown>, caller: JobCaller, accept: (job: AdmittedJob) => T): Promise<T> {
    const kind = requireJobKind(kindName);
    if (this.deps.queue.refresh) await this.deps.queue.refresh();
    this.checkCapacity(caller);
    this.hold(caller.id, +1);
    try {
      const job = await this.validate(kind, images, rawParams, caller.id);
      await this.checkDisk(job.files.reduce((n, f) => n + f.bytes.length, 0));
      if (this.deps.isStopping()) throw shuttingDown();
      if (!caller.anonymous) this.pixels.check(caller.id, job.pixels);
      const out = accept(job);
      if (!caller.anonymous) this.pixels.record(caller.id, job.pixels);
      return out;
    } finally {
      this.hold(caller.id, -1);
    }
  }

  private hold(owner: string, delta: number): void {
    this.reserved += delta;
    const n = (this.reservedBy.get(owner) ?? 0) + delta;
    if (n > 0) this.reservedBy.set(owner, n);
    else this.reservedBy.delete(owner);
  }

  private async checkDisk(bytes: number): Promise<void> {
    if (!this.deps.makeRoom || (await this.deps.makeRoom(bytes))) return;
    const { config } = this.deps;
    const retry = this.deps.retryAfterSeconds();
    throw unavailable('job-disk-full', `The job files would exceed their disk budget (${config.jobMaxDiskMb} MB, CONVSERVE_JOB_MAX_DISK_MB) with only queued and running jobs left; retry in about ${retry} s.`, { budget_mb: config.jobMaxDiskMb }, retry);
  }

  private async validate(kind: AnyJobKind, images: SubmitImage[], rawParams: Record<string, unknown>, owner: string): Promise<AdmittedJob> {
    const { config } = this.deps;
    let params = parseParams(kind.params(config), rawParams);
    kind.check?.(params, this.deps.services);
    const files: AdmittedJob['files'] = [];
    const inputs: JobRecord['inputs'] = [];
    let pixels = 0;
    const sizes: Record<string, { width: number; height: number }[]> = {};
    const maxPixels = Math.min(config.maxInputPixels, kind.maxInputPixels?.(config) ?? Number.POSITIVE_INFINITY);
    for (const field of kind.inputs) {
      const mine = images.filter((i) => i.field === field.name);
      if ((field.required ?? true) && mine.length === 0) throw badRequest('missing-image', `Job kind '${kind.name}' needs ${field.file ? 'a file' : 'an image'} in the file field '${field.name}'.`, { field: field.name });
      if (mine.length > (field.maxCount ?? 1)) throw badRequest('too-many-images', `Job kind '${kind.name}' takes at most ${field.maxCount ?? 1} image(s) in the field '${field.name}'; got ${mine.length}.`, { field: field.name });
      for (const [i, img] of mine.entries()) {
        if (field.file) {
          // A non-image file (an archive): its kind says what it is; admitFiles below checks what is in it.
          const { contentType, extension } = field.file.sniff(img.bytes);
          const file = `inputs/${field.name}-${i}.${extension}`;
          files.push({ file, bytes: img.bytes });
          inputs.push({ field: field.name, file, content_type: contentType, bytes: img.bytes.length });
          continue;
        }
        const meta = await probeImage(img.bytes, { maxInputPixels: maxPixels, decodeTimeoutMs: config.decodeTimeoutMs });
        const format = String(meta.format);
        pixels += (meta.width ?? 0) * (meta.height ?? 0);
        (sizes[field.name] ??= []).push({ width: meta.width ?? 0, height: meta.height ?? 0 });
        const file = `inputs/${field.name}-${i}.${EXT[format] ?? 'bin'}`;
        files.push({ file, bytes: img.bytes });
        inputs.push({ field: field.name, file, content_type: CT[format] ?? 'application/octet-stream', bytes: img.bytes.length });
      }
    }
    const stray = images.find((i) => !kind.inputs.some((f) => f.name === i.field));
    if (stray) throw badRequest('unexpected-field', `Unexpected file field '${stray.field}'. Job kind '${kind.name}' accepts: ${kind.inputs.map((f) => f.name).join(', ')}.`);
    kind.checkInputs?.(params, sizes, config, this.deps.services);
    const fileInputs = images.filter((i) => kind.inputs.some((f) => f.name === i.field && f.file));
    if (kind.admitFiles) params = await kind.admitFiles(fileInputs.map((i) => ({ field: i.field, bytes: i.bytes })), params, config);
    const total = kind.totalSteps(params);
    const record: JobRecord = {
      id: randomUUID(),
      kind: kind.name,
      owner,
      status: 'queued',
      params,
      inputs,
      created_at: new Date().toISOString(),
      started_at: null,
      finished_at: null,
      progress: { step: 0, total, fraction: 0, message: 'queued', metrics: {} },
      previews: [],
      resumes: 0,
    };
    return { record, files, pixels };
  }
}
