// The job event bus across processes: like LocalEventBus, each event is numbered and appended to the job's
// events.ndjson on the shared data directory first (so Last-Event-ID replays work on any replica), then it is
// delivered here and published on a Redis channel; every other process (API replicas, workers) delivers
// what it receives to its own subscribers. Only one process writes a job's events at a time (the replica that
// accepted it until a worker takes it, then that worker), and the numbering continues from the log.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Logger } from '../../util/logger.js';
import type { AnyJobEventListener, JobEventBus, JobEventListener } from '../event-bus.js';
import { type JobEvent, type JobEventInit, JobEventSchema, type JobRef } from '../events.js';
import type { JobStore } from '../store.js';
import { type RedisNames, watchConnection } from './connection.js';

/** Called for each event that another process published, before this process's subscribers see it. */
export type RemoteEventHook = (job: JobRef, ev: JobEvent) => void;

const Message = z.object({ origin: z.string(), job: z.object({ id: z.string(), kind: z.string() }), ev: JobEventSchema });

const ANY_JOB = '*';
const LoggedId = z.object({ id: z.number().int().min(1) });

export interface RedisEventBusOptions {
  store: JobStore;
  redis: Redis;
  names: RedisNames;
  logger: Logger;
  url: string;
  /** Subscribe to the other processes' events (API replicas do; a worker only publishes). */
  listen: boolean;
}

export class RedisEventBus implements JobEventBus {
  /** Tells this process's own messages apart when they come back from Redis. */
  private readonly origin = randomUUID();
  private readonly nextId = new Map<string, number>();
  private readonly emitter = new EventEmitter();
  private readonly subscriber?: Redis;
  private readonly hooks: RemoteEventHook[] = [];

  constructor(private readonly opts: RedisEventBusOptions) {
    this.emitter.setMaxListeners(0);
    if (opts.listen) {
      const sub = opts.redis.duplicate({ connectionName: 'convserve-events' });
      watchConnection(sub, opts.logger, 'events', opts.url);
      sub.on('message', (channel: string, text: string) => { if (channel === opts.names.events) this.receive(text); });
      void sub.subscribe(opts.names.events).catch((e: unknown) => opts.logger.error({ err: e }, 'could not subscribe to the job events channel'));
      this.subscriber = sub;
    }
  }

  /** Registers a hook run for every remote event before delivery (the API keeps its job table current with it). */
  onRemoteEvent(hook: RemoteEventHook): void {
    this.hooks.push(hook);
  }

  begin(id: string): void {
    this.nextId.set(id, 1);
  }

  async resume(id: string): Promise<void> {
    this.nextId.set(id, (await this.opts.store.lastEventId(id)) + 1);
  }

  publish(job: JobRef, init: JobEventInit): JobEvent {
    const n = this.nextId.get(job.id) ?? lastLoggedEventId(this.opts.store, job.id) + 1;
    this.nextId.set(job.id, n + 1);
    const ev: JobEvent = { id: n, ...init, at: new Date().toISOString() };
    this.opts.store.appendEvent(job.id, ev);
    if (ev.event === 'done') this.nextId.delete(job.id);
    this.deliver({ id: job.id, kind: job.kind }, ev);
    // Commands wait in ioredis's queue while Redis is away; the log on disk already has the event.
    this.opts.redis.publish(this.opts.names.events, JSON.stringify({ origin: this.origin, job: { id: job.id, kind: job.kind }, ev }))
      .catch((e: unknown) => this.opts.logger.warn({ err: e, job: job.id }, 'could not publish a job event on Redis'));
    return ev;
  }

  history(id: string, after = 0): Promise<JobEvent[]> {
    return this.opts.store.readEvents(id, after);
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

  async close(): Promise<void> {
    this.subscriber?.disconnect();
  }

  private receive(text: string): void {
    let msg: z.infer<typeof Message>;
    try {
      const parsed = Message.safeParse(JSON.parse(text));
      if (!parsed.success) { this.opts.logger.warn({ problem: parsed.error.message }, 'ignored a malformed message on the job events channel'); return; }
      msg = parsed.data;
    } catch {
      this.opts.logger.warn('ignored a message on the job events channel that is not JSON');
      return;
    }
    if (msg.origin === this.origin) return;
    // Whoever writes this job's events now is elsewhere: a later local publish continues from the log.
    this.nextId.delete(msg.job.id);
    for (const hook of this.hooks) {
      try { hook(msg.job, msg.ev); } catch (e) { this.opts.logger.error({ err: e, job: msg.job.id }, 'remote job event hook failed'); }
    }
    this.deliver(msg.job, msg.ev);
  }

  private deliver(job: JobRef, ev: JobEvent): void {
    this.emitter.emit(job.id, ev);
    this.emitter.emit(ANY_JOB, job, ev);
  }
}

/** Id of the last complete event in job `id`'s log (0 when none), read synchronously as publish() must be. */
function lastLoggedEventId(store: JobStore, id: string): number {
  let text: string;
  try {
    text = readFileSync(store.path(id, 'events.ndjson'), 'utf8');
  } catch {
    return 0;
  }
  let last = 0;
  for (const line of text.split('\n')) {
    let json: unknown;
    try { json = JSON.parse(line); } catch { continue; /* empty or torn line */ }
    const ev = LoggedId.safeParse(json);
    if (ev.success) last = Math.max(last, ev.data.id);
  }
  return last;
}
