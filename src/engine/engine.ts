// The inference engine: a small pool of worker threads that own the ORT sessions, and one scheduler in
// front of them. Interactive work (classify) always runs before queued job steps (dream, style), so a
// request waits at most for the one step already running. The interactive line is bounded (429 beyond it),
// a run whose caller went away before it started is dropped, and a run may carry a deadline covering queue
// and compute. A worker that dies or hangs fails only its in-flight task (503) and is replaced; its
// sessions are reloaded on demand. Idle sessions give their memory back (see IdlePolicy).
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { startWorker } from '../util/worker-url.js';
import { tooManyRequests, unavailable } from '../util/problem.js';
import type { SessionOptionsSpec } from './protocol.js';
import { DEFAULT_CACHE_LIMITS, SessionCache } from './session-cache.js';
import { Task, TaskQueue } from './task-queue.js';
import type { EngineOptions, EngineRecycleEvent, EngineRunEvent, Feeds, IdlePolicy, RunOptions, RunResult, SessionInfo, SessionLoadOptions, SessionSource, WireTensor } from './types.js';
import { EngineWorker } from './worker-handle.js';

export type * from './types.js';

interface Registered {
  source: SessionSource;
  options: SessionLoadOptions;
  /** performance.now() of the last dispatch or completion of a run, or of a load's end. */
  lastUsed: number;
  /** Runs of it being executed now (waiting for its load or inside ORT): never idle meanwhile. */
  active: number;
}

const abortReason = (signal: AbortSignal): unknown => signal.reason ?? new DOMException('The operation was aborted.', 'AbortError');

export class Engine extends EventEmitter {
  private workers: EngineWorker[] = [];
  private readonly queue = new TaskQueue();
  private readonly sessions = new Map<string, Registered>();
  private readonly retiring = new Set<EngineWorker>();
  private stopped = false;
  private idleTimer: NodeJS.Timeout | undefined;
  /** An idle recycle is under way: the next one waits for it (two reloads never overlap). */
  private recycling = false;
  /** Moving average of interactive compute time, for Retry-After. */
  private interactiveMs = 100;
  readonly sessionOptions: SessionOptionsSpec;
  readonly limits: { interactiveQueue: number; interactiveDeadlineMs: number };
  /** Sessions built on demand (gradient graphs), bounded and released when idle. */
  readonly cache: SessionCache;
  /** Counters for /metrics and /v1/info. */
  readonly stats = { workerRestarts: 0, runs: 0, failures: 0, rejectedBusy: 0, dropped: 0, deadlineExceeded: 0, released: 0, recycled: 0 };

  constructor(private readonly opts: EngineOptions) {
    super();
    this.sessionOptions = {
      intraOpThreads: opts.threads > 0 ? opts.threads : availableParallelism(),
      executionProviders: opts.executionProviders ?? ['cpu'],
      memArena: opts.memArena ?? true,
      prepack: opts.prepack ?? true,
    };
    this.limits = { interactiveQueue: opts.interactiveQueue ?? 64, interactiveDeadlineMs: opts.interactiveDeadlineMs ?? 0 };
    this.cache = new SessionCache(this, { ...DEFAULT_CACHE_LIMITS, ...opts.cache });
  }

  async start(): Promise<void> {
    this.workers = Array.from({ length: this.opts.workers }, (_, i) => this.spawn(i));
    await Promise.all(this.workers.map((w) => w.ready));
    this.idleTimer = setInterval(() => this.sweepIdle(), this.opts.idleSweepMs ?? 1000).unref();
  }

  /** Problems that make the engine not ready (for /readyz); null when fine. */
  health(): string | null {
    if (this.stopped) return 'engine stopped';
    const alive = this.workers.filter((w) => !w.dead).length;
    return alive === 0 ? 'no inference worker alive' : null;
  }

  get workerCount(): number {
    return this.workers.length;
  }

  get queueLength(): number {
    return this.queue.length;
  }

  /** Registers a session and loads it on every worker; re-registering reloads it. */
  async load(key: string, source: SessionSource, options: SessionLoadOptions = {}): Promise<SessionInfo> {
    this.sessions.set(key, { source, options, lastUsed: performance.now(), active: 0 });
    const infos = await Promise.all(this.workers.filter((w) => !w.dead).map((w) => {
      w.loaded.delete(key);
      return this.ensureLoaded(w, key);
    }));
    return infos[0]!;
  }

  /** Forgets a session and unloads it from every worker. */
  async unload(key: string): Promise<void> {
    this.sessions.delete(key);
    await this.unloadFromWorkers(key);
  }

  /** Unloads a session from every worker but keeps it registered: the next run loads it again. */
  async release(key: string): Promise<void> {
    if (!this.sessions.has(key)) return;
    this.stats.released++;
    await this.unloadFromWorkers(key);
  }

  has(key: string): boolean {
    return this.sessions.has(key);
  }

  /** How many workers have the session loaded (or loading) now. */
  loadedOn(key: string): number {
    return this.workers.filter((w) => !w.dead && w.loaded.has(key)).length;
  }

  /** Seconds a client refused for a full queue should wait: the queue's estimated drain time, at least 1. */
  retryAfterSeconds(): number {
    const workers = Math.max(1, this.workers.filter((w) => w.available).length);
    const waiting = this.queue.count('interactive') + workers;
    return Math.max(1, Math.ceil((waiting * this.interactiveMs) / workers / 1000));
  }

  run(key: string, feeds: Feeds, opts: RunOptions = {}): Promise<RunResult> {
    if (this.stopped) return Promise.reject(unavailable('engine-stopped', 'The inference engine is shutting down.'));
    if (!this.sessions.has(key)) return Promise.reject(new Error(`engine: no session '${key}' is registered`));
    const { signal } = opts;
    const priority = opts.priority ?? 'interactive';
    if (signal?.aborted) {
      this.stats.dropped++;
      return Promise.reject(abortReason(signal));
    }
    const deadline = opts.deadline ?? (priority === 'interactive' && this.limits.interactiveDeadlineMs > 0 ? Date.now() + this.limits.interactiveDeadlineMs : undefined);
    if (priority === 'interactive' && this.queue.count('interactive') >= this.limits.interactiveQueue) {
      this.stats.rejectedBusy++;
      const s = this.retryAfterSeconds();
      return Promise.reject(tooManyRequests('engine-busy', `The inference queue is full (${this.limits.interactiveQueue} requests waiting; CONVSERVE_ENGINE_QUEUE). Retry in about ${s} s.`, s));
    }
    return new Promise<RunResult>((resolve, reject) => {
      const task = new Task(key, feeds, opts.fetches, priority, signal, resolve, reject, opts.warmUp ?? false);
      if (signal) {
        const onAbort = () => {
          if (this.queue.remove(task)) {
            this.stats.dropped++;
            task.reject(abortReason(signal));
          }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        task.onSettle(() => signal.removeEventListener('abort', onAbort));
      }
      if (deadline !== undefined) {
        const timer = setTimeout(() => this.expire(task), Math.max(0, deadline - Date.now()));
        task.onSettle(() => clearTimeout(timer));
      }
      this.queue.add(task);
      this.dispatch();
    });
  }

  /**
   * Fault injection: worker `index` exits as if it had crashed, failing the tasks already sent to it;
   * it is replaced automatically.
   */
  injectWorkerCrash(index: number): void {
    const w = this.workers[index];
    if (!w || w.dead) return;
    void w.request({ type: 'crash' }).catch(() => undefined);
  }

  /** Stops: queued tasks fail with 503, running ones finish (workers are only terminated when idle). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.idleTimer);
    this.emit('stop');
    for (const t of this.queue.drain()) t.reject(unavailable('engine-stopped', 'The inference engine is shutting down.'));
    // Terminating a worker inside a native ORT call (start-up, create or run) aborts the whole process
    // (EngineWorker.close): let each worker finish its task, bounded by the task timeout. A worker still inside
    // a native call after that (a timed-out run still computing) is closed when the call returns.
    const deadline = Date.now() + this.opts.taskTimeoutMs;
    await Promise.all([...this.workers, ...this.retiring].map(async (w) => {
      while (w.busy && !w.dead && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      let timer: NodeJS.Timeout | undefined;
      const closed = await Promise.race([w.close().then(() => true), new Promise<false>((r) => { timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now())); })]);
      clearTimeout(timer);
      if (!closed) this.opts.logger.warn({ worker: w.index }, 'engine stopped; a worker still inside a native ORT call exits when the call returns');
    }));
  }

  private expire(task: Task): void {
    if (task.isSettled) return;
    const queued = this.queue.remove(task);
    this.stats.deadlineExceeded++;
    const waited = Math.round(performance.now() - task.enqueuedAt);
    task.reject(unavailable('deadline-exceeded', `The inference did not finish within the request's deadline (${waited} ms, ${queued ? 'still waiting for a worker' : 'while computing'}); the service is busy: retry later.`, {}, this.retryAfterSeconds()));
  }

  private spawn(index: number): EngineWorker {
    const thread = startWorker(import.meta.url, 'worker');
    const w = new EngineWorker(index, thread);
    const onDeath = (reason: string) => {
      if (w.dead) return;
      w.dead = true;
      w.failAll(unavailable('engine-worker-crashed', `The inference worker stopped (${reason}); the request was not completed. It is being restarted: retry.`, {}, 1));
      if (this.stopped || w.retired) return;
      this.stats.workerRestarts++;
      this.opts.logger.error({ worker: index, reason }, 'engine worker died; restarting');
      this.replace(w);
    };
    thread.on('error', (e) => onDeath(e.message));
    thread.on('exit', (code) => onDeath(`exit code ${code}`));
    return w;
  }

  private replace(w: EngineWorker): void {
    const replacement = this.spawn(w.index);
    this.workers[w.index] = replacement;
    this.emit('worker-restart', w.index);
    replacement.ready.then(() => this.dispatch(), (e) => this.opts.logger.error({ err: e }, 'engine worker failed to start'));
  }

  /** A hung worker: replace it now, terminate it once its run returns. */
  private retire(w: EngineWorker): void {
    if (w.retired || w.dead) return;
    w.retired = true;
    this.retiring.add(w);
    this.stats.workerRestarts++;
    this.opts.logger.error({ worker: w.index, timeout_ms: this.opts.taskTimeoutMs }, 'inference timed out; replacing the worker');
    this.replace(w);
  }

  private ensureLoaded(w: EngineWorker, key: string): Promise<SessionInfo> {
    let p = w.loaded.get(key);
    if (!p) {
      const s = this.sessions.get(key);
      if (!s) return Promise.reject(new Error(`engine: no session '${key}' is registered`));
      const options = { ...this.sessionOptions, memArena: s.options.memArena ?? this.sessionOptions.memArena, spinning: s.options.spinning, prepack: s.options.prepack ?? this.sessionOptions.prepack };
      w.ranSinceLoad.delete(key);
      p = w.request({ type: 'load', key, source: s.source, options }).then((m) => {
        if (m.type !== 'loaded') throw new Error(`unexpected reply ${m.type}`);
        // Idle time counts from the end of a load: a slow one (a big graph on a busy machine) is not idle.
        s.lastUsed = performance.now();
        return { key, inputNames: m.inputNames, outputNames: m.outputNames, loadMs: m.ms, provider: m.provider };
      });
      p.catch(() => { if (w.loaded.get(key) === p) w.loaded.delete(key); });
      w.loaded.set(key, p);
    }
    return p;
  }

  /**
   * Resolves when `key` is loaded on `w` and no unload or reload of it was sent since: a message sent in the
   * same tick then reaches the session (the worker handles messages in order). A release or recycle that
   * happened while the load was under way is followed by another load.
   */
  private async loadedNow(w: EngineWorker, key: string): Promise<void> {
    for (;;) {
      const p = this.ensureLoaded(w, key);
      await p;
      if (w.loaded.get(key) === p) return;
    }
  }

  private async unloadFromWorkers(key: string): Promise<void> {
    await Promise.all(this.workers.filter((w) => !w.dead && w.loaded.has(key)).map(async (w) => {
      w.loaded.delete(key);
      w.ranSinceLoad.delete(key);
      await w.request({ type: 'unload', key });
    }));
  }

  private idlePolicy(s: Registered): IdlePolicy | undefined {
    if (s.options.idle) return s.options.idle;
    const ms = this.opts.recycleIdleMs ?? 0;
    return ms > 0 ? { afterMs: ms, action: 'recycle' } : undefined;
  }

  /**
   * Gives idle sessions' memory back. Worker messages are handled one at a time in order, so an unload or a
   * reload sent now is never interleaved with a run of the same session sent later. Recycles go one at a time
   * (one session on one worker): a reload briefly needs memory of its own, and two at once (two models, or one
   * model on two workers) would add those peaks up.
   */
  private sweepIdle(): void {
    const now = performance.now();
    for (const [key, s] of this.sessions) {
      const idle = this.idlePolicy(s);
      if (!idle || s.active > 0 || now - s.lastUsed < idle.afterMs || this.queue.hasKey(key)) continue;
      const holders = this.workers.filter((w) => w.available && w.loaded.has(key));
      if (idle.action === 'release') {
        if (holders.length === 0) continue;
        const rssBefore = rssMb();
        void this.release(key).then(
          () => this.opts.logger.info({ session: key, rss_before_mb: rssBefore, rss_mb: rssMb() }, 'idle session released'),
          (e: unknown) => this.opts.logger.warn({ err: e, session: key }, 'idle release failed'),
        );
      } else if (!this.recycling) {
        const w = holders.find((h) => h.ranSinceLoad.has(key));
        if (w) void this.recycle(w, key);
      }
    }
  }

  /**
   * Reloads `key` on `w` in place: the old session is released first (its own message, so the order is
   * visible), then the new one is created; a run arriving meanwhile waits for the new one. Never throws.
   */
  private async recycle(w: EngineWorker, key: string): Promise<void> {
    this.recycling = true;
    this.stats.recycled++;
    const t0 = performance.now();
    const step = (phase: EngineRecycleEvent['phase']) => {
      const e: EngineRecycleEvent = { key, worker: w.index, phase, ms: Math.round(performance.now() - t0), rssMb: rssMb() };
      this.opts.logger.info({ session: key, worker: w.index, phase, ms: e.ms, rss_mb: e.rssMb }, `session recycle ${phase}`);
      this.emit('recycle', e);
    };
    try {
      step('start');
      w.loaded.delete(key);
      w.ranSinceLoad.delete(key);
      const released = w.request({ type: 'unload', key }).then(() => step('released'));
      await Promise.all([released, this.ensureLoaded(w, key)]);
      step('loaded');
    } catch (e) {
      this.opts.logger.warn({ err: e, session: key }, 'idle recycle failed');
      step('failed');
    } finally {
      this.recycling = false;
    }
  }

  private dispatch(): void {
    for (const w of this.workers) {
      if (this.queue.length === 0) return;
      if (w.busy || !w.available) continue;
      const task = this.queue.next()!;
      void this.execute(w, task);
    }
  }

  private async execute(w: EngineWorker, task: Task): Promise<void> {
    if (task.isSettled) return this.dispatch();
    w.busy = true;
    const queueMs = performance.now() - task.enqueuedAt;
    const session = this.sessions.get(task.key);
    if (session) {
      session.lastUsed = performance.now();
      session.active++;
    }
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    try {
      await this.loadedNow(w, task.key);
      const feeds = typeof task.feeds === 'function' ? task.feeds() : task.feeds;
      if (feeds === null) throw new DOMException('Nothing left to run: every request of this batch was cancelled.', 'AbortError');
      const transfer = transferList(feeds);
      const reply = w.request({ type: 'run', key: task.key, feeds, fetches: task.fetches }, transfer);
      if (!task.warmUp) w.ranSinceLoad.add(task.key);
      timer = setTimeout(() => {
        // Answer the caller now; the worker keeps running until ORT returns, then is terminated.
        timedOut = true;
        this.stats.failures++;
        task.reject(unavailable('inference-timeout', `Inference took longer than ${this.opts.taskTimeoutMs} ms (CONVSERVE_INFER_TIMEOUT_MS); the worker was replaced.`, {}, 1));
        this.retire(w);
      }, this.opts.taskTimeoutMs);
      const m = await reply;
      if (m.type !== 'result') throw new Error(`unexpected reply ${m.type}`);
      this.stats.runs++;
      if (task.priority === 'interactive') this.interactiveMs = 0.8 * this.interactiveMs + 0.2 * m.ms;
      this.emit('run', { key: task.key, worker: w.index, priority: task.priority, queueMs, computeMs: m.ms, batch: Object.values(feeds)[0]?.dims[0] } satisfies EngineRunEvent);
      task.resolve({ outputs: m.outputs, computeMs: m.ms, queueMs, ...(m.inputs ? { inputs: m.inputs } : {}) });
    } catch (e) {
      if (!timedOut) {
        if (!(e instanceof DOMException && e.name === 'AbortError')) this.stats.failures++;
        task.reject(e);
      }
    } finally {
      clearTimeout(timer);
      if (session) {
        session.lastUsed = performance.now();
        session.active--;
      }
      w.busy = false;
      if (w.retired) {
        // Its late run has returned: now it can be terminated safely.
        this.retiring.delete(w);
        void w.close();
      }
      setImmediate(() => this.dispatch());
    }
  }
}

const rssMb = (): number => Math.round(process.memoryUsage.rss() / 2 ** 20);

/** The feeds' buffers, each once: moved to the worker, not copied (the caller gives them up). */
function transferList(feeds: Record<string, WireTensor>): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const t of Object.values(feeds)) if (t.data.buffer instanceof ArrayBuffer) buffers.add(t.data.buffer);
  return [...buffers];
}
