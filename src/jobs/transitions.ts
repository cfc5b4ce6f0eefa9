// Every change of a job's record in one place: each is applied to the record, persisted (job.json, previews,
// checkpoint) and then announced on the event bus, in that order, so a client that sees an event can always
// read what it announces.
import type { RawImage } from '../image/io.js';
import { encodeImage } from '../image/io.js';
import type { JobEventBus } from './event-bus.js';
import { type AnyJobKind, type JobResult, isJobDocument } from './kind.js';
import type { FinalStatus, JobError, JobRecord, Progress } from './record.js';
import type { JobStore } from './store.js';

export class JobTransitions {
  constructor(private readonly store: JobStore, private readonly events: JobEventBus) {}

  /** A new job: its inputs and record are written, then it is announced as queued. */
  created(rec: JobRecord, files: { file: string; bytes: Buffer }[]): void {
    this.store.create(rec, files);
    this.events.begin(rec.id);
    this.events.publish(rec, { event: 'status', data: { status: 'queued' } });
  }

  /** A job found in the data directory at start-up: its event numbering continues after its log. */
  async reopened(rec: JobRecord): Promise<void> {
    await this.events.resume(rec.id);
  }

  /** A job that was running when the service stopped goes back to the queue, to resume from its checkpoint. */
  requeuedAfterRestart(rec: JobRecord): void {
    rec.status = 'queued';
    this.store.save(rec);
    this.events.publish(rec, { event: 'status', data: { status: 'queued', reason: 'service restarted; the job resumes from its last checkpoint', checkpoint_step: rec.checkpoint?.step ?? 0 } });
  }

  started(rec: JobRecord): void {
    rec.status = 'running';
    rec.started_at ??= new Date().toISOString();
    this.store.save(rec);
    this.events.publish(rec, { event: 'status', data: { status: 'running' } });
  }

  /** Resuming (or restarting from zero without a checkpoint): previews of steps after `from` are dropped, to be re-made. */
  resumed(rec: JobRecord, from: number): void {
    rec.resumes++;
    const dropped = rec.previews.filter((p) => p.step > from);
    rec.previews = rec.previews.filter((p) => p.step <= from);
    rec.progress = { ...rec.progress, step: from, fraction: rec.progress.total ? from / rec.progress.total : 0, message: `resumed at step ${from}` };
    this.store.save(rec);
    this.events.publish(rec, { event: 'resumed', data: { from_step: from, previews_kept: rec.previews.length, previews_dropped: dropped.length } });
  }

  /** Progress lives in memory and in the event log; job.json catches up at the next save. */
  progressed(rec: JobRecord, p: Progress): void {
    rec.progress = p;
    this.events.publish(rec, { event: 'progress', data: { ...p } });
  }

  async previewed(rec: JobRecord, img: RawImage, step: number): Promise<void> {
    const n = rec.previews.length;
    const file = `previews/${n}.png`;
    await this.store.writeFile(rec.id, file, await encodeImage(img, 'png'));
    rec.previews.push({ n, step, file });
    this.store.save(rec);
    this.events.publish(rec, { event: 'preview', data: { n, step, content_type: 'image/png' } });
  }

  async checkpointed(rec: JobRecord, kind: AnyJobKind, state: unknown, step: number, runMs: number): Promise<void> {
    const data = await kind.serialize(state);
    await this.store.writeCheckpoint(rec.id, { step, run_ms: runMs }, data);
    rec.checkpoint = { step, run_ms: Math.round(runMs), at: new Date().toISOString() };
    this.store.save(rec);
  }

  async succeeded(rec: JobRecord, result: JobResult): Promise<void> {
    if (isJobDocument(result)) {
      await this.store.writeFile(rec.id, 'result.json', Buffer.from(JSON.stringify(result.json, null, 2) + '\n'));
      rec.result = { file: 'result.json', content_type: 'application/json' };
    } else {
      await this.store.writeFile(rec.id, 'result.png', await encodeImage(result, 'png'));
      rec.result = { file: 'result.png', content_type: 'image/png' };
    }
    await this.store.deleteCheckpoint(rec.id);
    this.finished(rec, 'succeeded');
  }

  /** The end of a job (its checkpoint file, if any, is deleted by the caller first). */
  finished(rec: JobRecord, status: FinalStatus, error?: JobError): void {
    rec.status = status;
    rec.finished_at = new Date().toISOString();
    delete rec.checkpoint;
    if (error) rec.error = error;
    if (status !== 'succeeded') rec.progress = { ...rec.progress, message: status };
    this.store.save(rec);
    this.events.publish(rec, {
      event: 'done',
      data: { status, ...(rec.result ? { result: { content_type: rec.result.content_type } } : {}), ...(error ? { error } : {}), progress: rec.progress },
    });
  }
}
