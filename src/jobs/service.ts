// The job service: validation and admission (bounded FIFO queue), scheduling with a concurrency limit,
// persistence of records/events/previews/results/checkpoints (JobStore), resume after restart, cancel,
// the TTL + disk-budget sweeper, and live event fan-out for SSE.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config.js';
import { decodeImage, encodeImage, probeImage } from '../image/io.js';
import { parseParams } from '../util/params.js';
import type { Logger } from '../util/logger.js';
import { ProblemError, badRequest, notFound, tooManyRequests, unavailable } from '../util/problem.js';
import { type AnyJobKind, type JobContext, type JobServices, type JobInputs, getJobKind, jobKindNames } from './kind.js';
import { type LoopOutcome, type Progress, runStepLoop } from './runner.js';
import { type JobEvent, type JobEventType, type JobRecord, type JobStatus, JOB_ID_RE, JobStore, isTerminal } from './store.js';

export interface SubmitImage {
  field: string;
  bytes: Buffer;
  mimetype?: string;
}

/** What the HTTP API returns for a job. */
export interface JobView {
  id: string;
  kind: string;
  status: JobStatus;
  progress: Progress;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  error?: { type: string; detail: string };
  result?: { url: string; content_type: string };
  previews: string[];
  params: unknown;
  queue_position?: number;
  links: { self: string; events: string; result: string; cancel: string };
}

export interface ListQuery {
  status?: JobStatus[];
  kind?: string;
  limit?: number;
}

export interface JobServiceOptions {
  config: Config;
  logger: Logger;
  services?: JobServices;
}

interface Active {
  ac: AbortController;
  done: Promise<void>;
}

const EXT: Record<string, string> = { jpeg: 'jpg', png: 'png', webp: 'webp', gif: 'gif', tiff: 'tif', heif: 'heif' };
const CT: Record<string, string> = { jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif', tiff: 'image/tiff', heif: 'image/heif' };

/** Bus channel of every job's events (job ids are UUIDs, so it cannot collide). */
const ANY_EVENT = '*';

export const unknownKind = (name: string) =>
  notFound('unknown-job-kind', `Unknown job kind '${name}'. Known kinds: ${jobKindNames().join(', ') || '(none)'}.`, { known_kinds: jobKindNames() });

export class JobService {
  readonly store: JobStore;
  private readonly config: Config;
  private readonly logger: Logger;
  private readonly services: JobServices | undefined;
  private readonly jobs = new Map<string, JobRecord>();
  private readonly queue: string[] = [];
  private readonly active = new Map<string, Active>();
  private readonly nextEventId = new Map<string, number>();
  private readonly bus = new EventEmitter();
  /** Admission slots taken by submissions still being validated/written. */
  private reserved = 0;
  private stopping = false;
  private sweepTimer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;

  constructor(opts: JobServiceOptions) {
    this.config = opts.config;
    this.logger = opts.logger.child({ area: 'jobs' });
    this.services = opts.services;
    this.store = new JobStore(opts.config.dataDir);
    this.bus.setMaxListeners(0);
  }

  /** Loads the store, re-queues jobs that were running (from their checkpoint), sweeps, starts the timer and the queue. */
  async start(): Promise<void> {
    const recs = await this.store.loadAll();
    for (const r of recs) this.jobs.set(r.id, r);
    const byTime = (a: JobRecord, b: JobRecord) => (a.started_at ?? a.created_at).localeCompare(b.started_at ?? b.created_at) || a.created_at.localeCompare(b.created_at);
    const running = recs.filter((r) => r.status === 'running').sort(byTime);
    const queued = recs.filter((r) => r.status === 'queued').sort((a, b) => a.created_at.localeCompare(b.created_at));
    for (const r of [...running, ...queued]) this.nextEventId.set(r.id, (await this.store.lastEventId(r.id)) + 1);
    for (const r of running) {
      r.status = 'queued';
      this.store.save(r);
      this.emit(r.id, 'status', { status: 'queued', reason: 'service restarted; the job resumes from its last checkpoint', checkpoint_step: r.checkpoint?.step ?? 0 });
    }
    this.queue.push(...running.map((r) => r.id), ...queued.map((r) => r.id));
    if (running.length || queued.length) this.logger.info({ resumed: running.length, queued: queued.length }, 'jobs recovered from the data directory');
    await this.sweep();
    this.sweepTimer = setInterval(() => { void this.sweep(); }, this.sweepIntervalMs());
    this.sweepTimer.unref();
    this.pump();
  }

  /** Stop taking jobs; running ones are checkpointed and stay `running` on disk, to resume at the next start. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const a of this.active.values()) a.ac.abort('shutdown');
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
    await this.sweeping;
  }

  // ---- admission -------------------------------------------------------------------------------------------

  kind(name: string): AnyJobKind {
    const k = getJobKind(name);
    if (!k) throw unknownKind(name);
    return k;
  }

  /** Throws 429 (with Retry-After) when the queue is full, 503 when shutting down. */
  checkCapacity(): void {
    if (this.stopping) throw unavailable('shutting-down', 'The service is shutting down and takes no new jobs.', {}, 5);
    if (this.queue.length + this.reserved >= this.config.jobQueueLength) {
      const retry = this.retryAfterSeconds();
      throw tooManyRequests('job-queue-full', `The job queue is full (${this.config.jobQueueLength} queued jobs, CONVSERVE_JOB_QUEUE); retry in about ${retry} s.`, retry, { queue_length: this.config.jobQueueLength, retry_after_s: retry });
    }
  }

  /** Seconds until a queue slot is likely to free: the soonest finishing running job at its recent step rate. */
  retryAfterSeconds(): number {
    let best = Number.POSITIVE_INFINITY;
    for (const id of this.active.keys()) {
      const p = this.jobs.get(id)?.progress;
      if (p?.step_ms !== undefined) best = Math.min(best, ((p.total - p.step) * p.step_ms) / 1000);
    }
    if (!Number.isFinite(best)) best = 5;
    return Math.max(1, Math.min(3600, Math.ceil(best)));
  }

  /** Validates everything (kind, capacity, parameters, images) and stores the job; then it is queued. */
  async submit(kindName: string, images: SubmitImage[], rawParams: Record<string, unknown>): Promise<JobView> {
    const kind = this.kind(kindName);
    this.checkCapacity();
    this.reserved++;
    try {
      const params = parseParams(kind.params(this.config), rawParams);
      const total = kind.totalSteps(params);
      const files: { file: string; bytes: Buffer }[] = [];
      const inputs: JobRecord['inputs'] = [];
      const maxPixels = Math.min(this.config.maxInputPixels, kind.maxInputPixels?.(this.config) ?? Number.POSITIVE_INFINITY);
      for (const field of kind.inputs) {
        const mine = images.filter((i) => i.field === field.name);
        if ((field.required ?? true) && mine.length === 0) throw badRequest('missing-image', `Job kind '${kind.name}' needs an image in the file field '${field.name}'.`, { field: field.name });
        if (mine.length > (field.maxCount ?? 1)) throw badRequest('too-many-images', `Job kind '${kind.name}' takes at most ${field.maxCount ?? 1} image(s) in the field '${field.name}'; got ${mine.length}.`, { field: field.name });
        for (const [i, img] of mine.entries()) {
          const meta = await probeImage(img.bytes, { maxInputPixels: maxPixels, decodeTimeoutMs: this.config.decodeTimeoutMs });
          const file = `inputs/${field.name}-${i}.${EXT[meta.format as string] ?? 'bin'}`;
          files.push({ file, bytes: img.bytes });
          inputs.push({ field: field.name, file, content_type: CT[meta.format as string] ?? 'application/octet-stream', bytes: img.bytes.length });
        }
      }
      const stray = images.find((i) => !kind.inputs.some((f) => f.name === i.field));
      if (stray) throw badRequest('unexpected-field', `Unexpected file field '${stray.field}'. Job kind '${kind.name}' accepts: ${kind.inputs.map((f) => f.name).join(', ')}.`);
      if (this.stopping) throw unavailable('shutting-down', 'The service is shutting down and takes no new jobs.', {}, 5);

      const now = new Date().toISOString();
      const rec: JobRecord = {
        id: randomUUID(),
        kind: kind.name,
        status: 'queued',
        params,
        inputs,
        created_at: now,
        started_at: null,
        finished_at: null,
        progress: { step: 0, total, fraction: 0, message: 'queued', metrics: {} },
        previews: [],
        resumes: 0,
      };
      this.store.create(rec, files);
      this.jobs.set(rec.id, rec);
      this.nextEventId.set(rec.id, 1);
      this.emit(rec.id, 'status', { status: 'queued' });
      this.queue.push(rec.id);
      this.logger.info({ job: rec.id, kind: rec.kind, total }, 'job queued');
      return this.view(rec);
    } finally {
      this.reserved--;
      queueMicrotask(() => this.pump());
    }
  }

  // ---- queries -----------------------------------------------------------------------------------------------

  record(id: string): JobRecord {
    const rec = JOB_ID_RE.test(id) ? this.jobs.get(id) : undefined;
    if (!rec) throw notFound('no-such-job', `No job '${id}' (unknown, or expired after ${this.config.jobTtlHours} h).`);
    return rec;
  }

  get(id: string): JobView {
    return this.view(this.record(id));
  }

  list(q: ListQuery = {}): JobView[] {
    const limit = Math.max(1, Math.min(q.limit ?? 50, 1000));
    return [...this.jobs.values()]
      .filter((r) => (!q.status || q.status.includes(r.status)) && (!q.kind || r.kind === q.kind))
      .sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id))
      .slice(0, limit)
      .map((r) => this.view(r));
  }

  view(rec: JobRecord): JobView {
    const base = `/v1/jobs/${rec.id}`;
    const pos = rec.status === 'queued' ? this.queue.indexOf(rec.id) : -1;
    return {
      id: rec.id,
      kind: rec.kind,
      status: rec.status,
      progress: rec.progress,
      created_at: rec.created_at,
      started_at: rec.started_at,
      finished_at: rec.finished_at,
      ...(rec.error ? { error: rec.error } : {}),
      ...(rec.result ? { result: { url: `${base}/result`, content_type: rec.result.content_type } } : {}),
      previews: rec.previews.map((p) => `${base}/previews/${p.n}`),
      params: rec.params,
      ...(pos >= 0 ? { queue_position: pos + 1 } : {}),
      links: { self: base, events: `${base}/events`, result: `${base}/result`, cancel: base },
    };
  }

  /** Path of the result image, or a 404/409 problem. */
  resultFile(id: string): { path: string; content_type: string } {
    const rec = this.record(id);
    if (!rec.result) {
      throw new ProblemError(isTerminal(rec.status) ? 404 : 409, isTerminal(rec.status) ? 'no-result' : 'job-not-finished', isTerminal(rec.status) ? 'Not found' : 'Conflict',
        isTerminal(rec.status) ? `Job ${id} ${rec.status} without a result.` : `Job ${id} is ${rec.status}; the result is available when it has succeeded.`, { job_status: rec.status });
    }
    return { path: this.store.path(id, rec.result.file), content_type: rec.result.content_type };
  }

  previewFile(id: string, n: number): { path: string; content_type: string } {
    const rec = this.record(id);
    const p = rec.previews.find((x) => x.n === n);
    if (!p) throw notFound('no-such-preview', `Job ${id} has ${rec.previews.length} preview(s) (0…${rec.previews.length - 1}); there is no preview ${n}.`);
    return { path: this.store.path(id, p.file), content_type: 'image/png' };
  }

  /** Events after `after` (exclusive), from the persisted log. */
  async events(id: string, after = 0): Promise<JobEvent[]> {
    this.record(id);
    return this.store.readEvents(id, after);
  }

  /** Live events of every job (metrics); returns the unsubscribe function. */
  onAnyEvent(listener: (job: { id: string; kind: string }, ev: JobEvent) => void): () => void {
    const l = (job: { id: string; kind: string }, ev: JobEvent) => listener(job, ev);
    this.bus.on(ANY_EVENT, l);
    return () => this.bus.off(ANY_EVENT, l);
  }

  /** Live events of one job; returns the unsubscribe function. */
  subscribe(id: string, listener: (ev: JobEvent) => void): () => void {
    this.bus.on(id, listener);
    return () => this.bus.off(id, listener);
  }

  /** Resolves with the view once the job is finished (or rejects if it expires). */
  async waitFor(id: string): Promise<JobView> {
    const rec = this.record(id);
    if (isTerminal(rec.status)) return this.view(rec);
    return new Promise((resolve) => {
      const off = this.subscribe(id, (ev) => { if (ev.event === 'done') { off(); resolve(this.view(this.record(id))); } });
    });
  }

  // ---- cancel ------------------------------------------------------------------------------------------------

  /** Cancels a queued job at once; a running one stops at its next step (awaited up to `waitMs`). */
  async cancel(id: string, waitMs = 2000): Promise<JobView> {
    const rec = this.record(id);
    if (rec.status === 'cancelled') return this.view(rec);
    if (isTerminal(rec.status)) throw new ProblemError(409, 'job-finished', 'Conflict', `Job ${id} has already ${rec.status}; only queued or running jobs can be cancelled.`, { job_status: rec.status });
    if (rec.status === 'queued') {
      const i = this.queue.indexOf(id);
      if (i >= 0) this.queue.splice(i, 1);
      await this.store.deleteCheckpoint(id);
      this.finish(rec, 'cancelled');
      return this.view(rec);
    }
    const a = this.active.get(id);
    if (a) {
      a.ac.abort('cancel');
      let t: NodeJS.Timeout | undefined;
      await Promise.race([a.done, new Promise((r) => { t = setTimeout(r, waitMs); })]);
      clearTimeout(t);
    }
    return this.view(rec);
  }

  // ---- running -----------------------------------------------------------------------------------------------

  private pump(): void {
    while (!this.stopping && this.active.size < this.config.jobConcurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      const rec = this.jobs.get(id);
      if (!rec || rec.status !== 'queued') continue;
      const ac = new AbortController();
      const entry: Active = { ac, done: Promise.resolve() };
      this.active.set(id, entry);
      entry.done = this.run(rec, ac).catch((e: unknown) => {
        this.logger.error({ err: e, job: id }, 'job runner crashed');
      }).finally(() => {
        this.active.delete(id);
        this.pump();
      });
    }
  }

  private async run(rec: JobRecord, ac: AbortController): Promise<void> {
    const log = this.logger.child({ job: rec.id, kind: rec.kind });
    const kind = getJobKind(rec.kind);
    if (!kind) {
      this.finish(rec, 'failed', { type: 'unknown-job-kind', detail: `Job kind '${rec.kind}' is not registered in this process.` });
      return;
    }
    rec.status = 'running';
    rec.started_at ??= new Date().toISOString();
    this.store.save(rec);
    this.emit(rec.id, 'status', { status: 'running' });
    const ctx: JobContext = { jobId: rec.id, config: this.config, signal: ac.signal, logger: log, services: this.services };

    let outcome: LoopOutcome;
    try {
      const inputs: JobInputs = {};
      const maxInputPixels = Math.min(this.config.maxInputPixels, kind.maxInputPixels?.(this.config) ?? Number.POSITIVE_INFINITY);
      for (const inp of rec.inputs) {
        const img = await decodeImage(await readFile(this.store.path(rec.id, inp.file)), { maxInputPixels, decodeTimeoutMs: this.config.decodeTimeoutMs });
        (inputs[inp.field] ??= []).push(img);
      }
      let resume: { state: unknown; step: number; runMs: number } | undefined;
      const ckpt = rec.checkpoint ? await this.store.readCheckpoint(rec.id) : undefined;
      if (ckpt) {
        resume = { state: await kind.deserialize(ckpt.state, rec.params, inputs, ctx), step: ckpt.meta.step, runMs: ckpt.meta.run_ms };
      }
      const from = resume?.step ?? 0;
      if (rec.progress.step > 0 || rec.previews.length > 0 || rec.checkpoint) {
        // Resuming (or restarting from zero without a checkpoint): work after the checkpoint is redone, so
        // previews of later steps are dropped and re-made.
        rec.resumes++;
        const dropped = rec.previews.filter((p) => p.step > from);
        rec.previews = rec.previews.filter((p) => p.step <= from);
        rec.progress = { ...rec.progress, step: from, fraction: rec.progress.total ? from / rec.progress.total : 0, message: `resumed at step ${from}` };
        this.store.save(rec);
        this.emit(rec.id, 'resumed', { from_step: from, previews_kept: rec.previews.length, previews_dropped: dropped.length });
        log.info({ from_step: from }, 'job resumed from checkpoint');
      }
      const wallClockMs = Math.min(this.config.jobWallClockMs, kind.maxWallClockMs?.(this.config, rec.params) ?? Number.POSITIVE_INFINITY);
      outcome = await runStepLoop({
        kind, params: rec.params, ctx, inputs, resume, wallClockMs,
        checkpointEverySteps: this.config.checkpointEverySteps,
        checkpointEveryMs: this.config.checkpointEveryMs,
        hooks: {
          onProgress: (p) => {
            rec.progress = p;
            this.emit(rec.id, 'progress', { ...p });
          },
          onPreview: async (img, step) => {
            const n = rec.previews.length;
            const file = `previews/${n}.png`;
            await this.store.writeFile(rec.id, file, await encodeImage(img, 'png'));
            rec.previews.push({ n, step, file });
            this.store.save(rec);
            this.emit(rec.id, 'preview', { n, step, url: `/v1/jobs/${rec.id}/previews/${n}`, content_type: 'image/png' });
          },
          onCheckpoint: (state, step, runMs) => this.checkpoint(rec, kind, state, step, runMs),
        },
      });
    } catch (e) {
      if (ac.signal.aborted && ac.signal.reason === 'shutdown') {
        log.info('job interrupted by shutdown before its first step; it restarts from its checkpoint at the next start');
        return;
      }
      await this.store.deleteCheckpoint(rec.id);
      if (ac.signal.aborted && ac.signal.reason === 'cancel') { this.finish(rec, 'cancelled'); return; }
      const detail = e instanceof Error ? e.message : String(e);
      log.error({ err: e }, 'job failed');
      this.finish(rec, 'failed', { type: e instanceof ProblemError ? e.slug : 'job-error', detail });
      return;
    }

    switch (outcome.outcome) {
      case 'succeeded': {
        await this.store.writeFile(rec.id, 'result.png', await encodeImage(outcome.result, 'png'));
        rec.result = { file: 'result.png', content_type: 'image/png' };
        await this.store.deleteCheckpoint(rec.id);
        this.finish(rec, 'succeeded');
        log.info({ steps: outcome.step, run_ms: outcome.runMs }, 'job succeeded');
        return;
      }
      case 'timed-out': {
        await this.store.deleteCheckpoint(rec.id);
        this.finish(rec, 'failed', { type: 'job-time-limit', detail: `The job ran for ${Math.round(outcome.runMs)} ms, over its wall-clock limit of ${outcome.limitMs} ms (CONVSERVE_JOB_MAX_MS or the kind's own limit), after ${outcome.step} of ${rec.progress.total} steps.` });
        return;
      }
      case 'aborted': {
        if (outcome.reason === 'shutdown') {
          // Keep it `running` on disk: the next start re-queues it from this checkpoint.
          if (outcome.state !== undefined && outcome.step > (rec.checkpoint?.step ?? 0)) await this.checkpoint(rec, kind, outcome.state, outcome.step, outcome.runMs);
          log.info({ step: outcome.step }, 'job checkpointed for shutdown; it resumes at the next start');
          return;
        }
        await this.store.deleteCheckpoint(rec.id);
        this.finish(rec, 'cancelled');
        log.info({ step: outcome.step }, 'job cancelled');
      }
    }
  }

  private async checkpoint(rec: JobRecord, kind: AnyJobKind, state: unknown, step: number, runMs: number): Promise<void> {
    const data = await kind.serialize(state);
    await this.store.writeCheckpoint(rec.id, { step, run_ms: runMs }, data);
    rec.checkpoint = { step, run_ms: Math.round(runMs), at: new Date().toISOString() };
    this.store.save(rec);
  }

  private finish(rec: JobRecord, status: 'succeeded' | 'failed' | 'cancelled', error?: { type: string; detail: string }): void {
    rec.status = status;
    rec.finished_at = new Date().toISOString();
    delete rec.checkpoint;
    if (error) rec.error = error;
    if (status !== 'succeeded') rec.progress = { ...rec.progress, message: status };
    this.store.save(rec);
    const v = this.view(rec);
    this.emit(rec.id, 'done', { status, ...(v.result ? { result: v.result } : {}), ...(error ? { error } : {}), progress: rec.progress });
  }

  private emit(id: string, event: JobEventType, data: Record<string, unknown>): void {
    const n = this.nextEventId.get(id) ?? 1;
    this.nextEventId.set(id, n + 1);
    const ev: JobEvent = { id: n, event, data, at: new Date().toISOString() };
    this.store.appendEvent(id, ev);
    if (event === 'done') this.nextEventId.delete(id);
    this.bus.emit(id, ev);
    this.bus.emit(ANY_EVENT, { id, kind: this.jobs.get(id)?.kind ?? 'unknown' }, ev);
  }

  // ---- expiry ------------------------------------------------------------------------------------------------

  private sweepIntervalMs(): number {
    return Math.max(1000, Math.min(this.config.jobSweepMs, this.config.jobTtlHours * 3_600_000));
  }

  /** Deletes finished jobs older than the TTL, then the oldest finished ones while over the disk budget. */
  sweep(now = Date.now()): Promise<void> {
    this.sweeping ??= this.doSweep(now).catch((e: unknown) => { this.logger.error({ err: e }, 'job sweep failed'); }).finally(() => { this.sweeping = undefined; });
    return this.sweeping;
  }

  private async doSweep(now: number): Promise<void> {
    const ttlMs = this.config.jobTtlHours * 3_600_000;
    const finished = [...this.jobs.values()].filter((r) => isTerminal(r.status) && r.finished_at)
      .sort((a, b) => a.finished_at!.localeCompare(b.finished_at!));
    let expired = 0;
    for (const r of finished) {
      if (Date.parse(r.finished_at!) + ttlMs <= now) { await this.expire(r.id); expired++; }
    }
    const budget = this.config.jobMaxDiskMb * 1024 * 1024;
    const sizes = new Map<string, number>();
    let used = 0;
    for (const id of this.jobs.keys()) { const s = await this.store.size(id); sizes.set(id, s); used += s; }
    let evicted = 0;
    for (const r of finished) {
      if (used <= budget) break;
      if (!this.jobs.has(r.id)) continue;
      used -= sizes.get(r.id) ?? 0;
      await this.expire(r.id);
      evicted++;
    }
    if (expired || evicted) this.logger.info({ expired, evicted, bytes_used: used }, 'job sweep');
    if (used > budget) this.logger.warn({ bytes_used: used, budget }, 'job files exceed CONVSERVE_JOB_MAX_DISK_MB with only unfinished jobs left');
  }

  private async expire(id: string): Promise<void> {
    this.jobs.delete(id);
    this.nextEventId.delete(id);
    await this.store.remove(id);
  }
}
