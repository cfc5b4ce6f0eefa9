// The job event bus (BullMQ's QueueEvents): numbers each job's events, persists them before announcing them,
// and fans them out to subscribers of one job (SSE streams) or of every job (metrics). JobEventBus is the
// seam for another backend (Redis streams); LocalEventBus keeps the log in the job's folder (JobStore).
import { EventEmitter } from 'node:events';
import type { JobEvent, JobEventInit, JobRef } from './events.js';
import type { JobStore } from './store.js';

export type JobEventListener = (ev: JobEvent) => void;
export type AnyJobEventListener = (job: JobRef, ev: JobEvent) => void;

export interface JobEventBus {
  /** Starts the numbering of a new job's events at 1. */
  begin(id: string): void;
  /** Continues the numbering of a recovered job after its last logged event. */
  resume(id: string): Promise<void>;
  /** Persists the next event of `job`, then delivers it to the subscribers; returns it. */
  publish(job: JobRef, init: JobEventInit): JobEvent;
  /** The logged events of job `id` with ids above `after`, in order. */
  history(id: string, after?: number): Promise<JobEvent[]>;
  /** Live events of one job; returns the unsubscribe function. */
  subscribe(id: string, listener: JobEventListener): () => void;
  /** Live events of every job; returns the unsubscribe function. */
  subscribeAll(listener: AnyJobEventListener): () => void;
  /** Drops what the bus keeps about a job (it expired). */
  forget(id: string): void;
}

/** Channel of every job's events on the emitter (job ids are UUIDs, so it cannot collide). */
const ANY_JOB = '*';

export class LocalEventBus implements JobEventBus {
  private readonly nextId = new Map<string, number>();
  private readonly emitter = new EventEmitter();

  constructor(private readonly store: JobStore) {
    this.emitter.setMaxListeners(0);
  }

  begin(id: string): void {
    this.nextId.set(id, 1);
  }

  async resume(id: string): Promise<void> {
    this.nextId.set(id, (await this.store.lastEventId(id)) + 1);
  }

  publish(job: JobRef, init: JobEventInit): JobEvent {
    const n = this.nextId.get(job.id) ?? 1;
    this.nextId.set(job.id, n + 1);
    const ev: JobEvent = { id: n, ...init, at: new Date().toISOString() };
    this.store.appendEvent(job.id, ev);
    // `done` is a job's last event: nothing more is numbered for it.
    if (ev.event === 'done') this.nextId.delete(job.id);
    this.emitter.emit(job.id, ev);
    this.emitter.emit(ANY_JOB, job, ev);
    return ev;
  }

  history(id: string, after = 0): Promise<JobEvent[]> {
    return this.store.readEvents(id, after);
  }

  subscribe(id: string, listener: JobEventListener): () => void {
    this.emitter.on(id, listener);
    return () => this.emitter.off(id, listener);
  }

  subscribeAll(listener: AnyJobEventListener): () => void {
    this.emitter.on(ANY_JOB, listener);
    return () => this.emitter.off(ANY_JOB, listener);
  }

  forget(id: string): void {
    this.nextId.delete(id);
  }
}
