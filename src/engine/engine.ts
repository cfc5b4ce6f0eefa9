// The inference engine: a small pool of worker threads that own the ORT sessions, and one scheduler in
// front of them. Interactive work (classify) always runs before queued job steps (dream, style), so a
// request waits at most for the one step already running. A worker that dies or hangs fails only its
// in-flight task (503) and is replaced; its sessions are reloaded on demand.
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import type { Logger } from '../util/logger.js';
import { startWorker } from '../util/worker-url.js';
import { unavailable } from '../util/problem.js';
import type { FromWorker, SessionOptionsSpec, SessionSource, ToWorker, WireTensor } from './protocol.js';

export type { WireTensor, SessionSource } from './protocol.js';
export type Priority = 'interactive' | 'job';

export interface EngineOptions {
  workers: number;
  /** ORT intra-op threads per session; 0 = all cores. */
  threads: number;
  /** A run longer than this kills its worker and fails with 503. */
  taskTimeoutMs: number;
  executionProviders?: string[];
  logger: Logger;
}

export interface SessionInfo {
  key: string;
  inputNames: string[];
  outputNames: string[];
  loadMs: number;
  provider: string;
}

export interface RunOptions {
  priority?: Priority;
  /** Only these outputs are fetched (fetching big intermediates costs time). */
  fetches?: string[];
  signal?: AbortSignal;
}

export interface RunResult {
  outputs: Record<string, WireTensor>;
  /** Time inside ORT's run(). */
  computeMs: number;
  /** Time spent waiting for a free worker. */
  queueMs: number;
}

/** Emitted as 'run' after every successful run (metrics). */
export interface EngineRunEvent {
  key: string;
  priority: Priority;
  queueMs: number;
  computeMs: number;
  /** First dimension of the first feed (the batch size for classification). */
  batch?: number;
}

/** Feeds, or a function producing them at dispatch time (lets a batcher take whatever is pending then). */
export type Feeds = Record<string, WireTensor> | (() => Record<string, WireTensor>);

interface Task {
  key: string;
  feeds: Feeds;
  fetches?: string[];
  priority: Priority;
  enqueuedAt: number;
  resolve: (r: RunResult) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

interface Pending { resolve: (m: FromWorker) => void; reject: (e: unknown) => void }

class EngineWorker {
  readonly loaded = new Map<string, Promise<SessionInfo>>();
  readonly pending = new Map<number, Pending>();
  busy = false;
  dead = false;
  /** Timed out: takes no new work, is terminated once its current run returns (terminating a worker
   * inside ORT's native run() aborts the whole process). */
  retired = false;
  private nextId = 1;
  readonly ready: Promise<void>;

  constructor(readonly index: number, readonly thread: import('node:worker_threads').Worker) {
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => { if (m.type === 'ready') { thread.off('message', onMessage); resolve(); } };
      thread.on('message', onMessage);
      thread.once('error', reject);
    });
    thread.on('message', (m: FromWorker) => {
      if (m.type === 'ready') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'error') p.reject(new Error(m.message));
      else p.resolve(m);
    });
  }

  request(msg: WithoutId<ToWorker>, transfer: ArrayBuffer[] = []): Promise<FromWorker> {
    if (this.dead) return Promise.reject(unavailable('engine-worker-crashed', 'The inference worker stopped; retry the request.'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...msg, id } as ToWorker, transfer);
    });
  }

  failAll(error: unknown): void {
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

export class Engine extends EventEmitter {
  private workers: EngineWorker[] = [];
  private readonly queue: Task[] = [];
  private readonly sessions = new Map<string, SessionSource>();
  private stopped = false;
  readonly sessionOptions: SessionOptionsSpec;
  /** Counters for /metrics and /v1/info. */
  readonly stats = { workerRestarts: 0, runs: 0, failures: 0 };

  constructor(private readonly opts: EngineOptions) {
    super();
    this.sessionOptions = {
      intraOpThreads: opts.threads > 0 ? opts.threads : availableParallelism(),
      executionProviders: opts.executionProviders ?? ['cpu'],
    };
  }

  async start(): Promise<void> {
    this.workers = Array.from({ length: this.opts.workers }, (_, i) => this.spawn(i));
    await Promise.all(this.workers.map((w) => w.ready));
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

  /** Registers a session and loads it on every worker (warm-up included); re-registering reloads it. */
  async load(key: string, source: SessionSource): Promise<SessionInfo> {
    this.sessions.set(key, source);
    const infos = await Promise.all(this.workers.filter((w) => !w.dead).map((w) => {
      w.loaded.delete(key);
      return this.ensureLoaded(w, key);
    }));
    return infos[0]!;
  }

  async unload(key: string): Promise<void> {
    this.sessions.delete(key);
    await Promise.all(this.workers.filter((w) => !w.dead && w.loaded.has(key)).map(async (w) => {
      w.loaded.delete(key);
      await w.request({ type: 'unload', key });
    }));
  }

  has(key: string): boolean {
    return this.sessions.has(key);
  }

  run(key: string, feeds: Feeds, opts: RunOptions = {}): Promise<RunResult> {
    if (this.stopped) return Promise.reject(unavailable('engine-stopped', 'The inference engine is shutting down.'));
    if (!this.sessions.has(key)) return Promise.reject(new Error(`engine: no session '${key}' is registered`));
    return new Promise<RunResult>((resolve, reject) => {
      const task: Task = { key, feeds, fetches: opts.fetches, priority: opts.priority ?? 'interactive', enqueuedAt: performance.now(), resolve, reject, signal: opts.signal };
      // Interactive tasks go before every queued job step, after earlier interactive ones.
      if (task.priority === 'interactive') {
        const firstJob = this.queue.findIndex((t) => t.priority === 'job');
        this.queue.splice(firstJob < 0 ? this.queue.length : firstJob, 0, task);
      } else {
        this.queue.push(task);
      }
      // Aborting removes a task that is still queued; the listener goes away once the task settles, so a
      // long-lived signal (a job's) does not collect one listener per run.
      const signal = opts.signal;
      if (signal) {
        const onAbort = () => {
          const i = this.queue.indexOf(task);
          if (i >= 0) { this.queue.splice(i, 1); task.reject(signal.reason ?? new Error('aborted')); }
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const settle = <T>(fn: (v: T) => void) => (v: T) => { signal.removeEventListener('abort', onAbort); fn(v); };
        task.resolve = settle(resolve);
        task.reject = settle(reject);
      }
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
    for (const t of this.queue.splice(0)) t.reject(unavailable('engine-stopped', 'The inference engine is shutting down.'));
    // Terminating a worker inside a native ORT call (start-up, create or run) aborts the whole process:
    // wait until each worker is up and has no request outstanding, bounded by the task timeout.
    const deadline = Date.now() + this.opts.taskTimeoutMs;
    await Promise.all([...this.workers, ...this.retiring].map(async (w) => {
      // A worker still starting up is inside onnxruntime's native initialisation: let it finish first.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([w.ready.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, Math.max(0, deadline - Date.now())); })]);
      clearTimeout(timer);
      while ((w.busy || w.pending.size > 0) && !w.dead && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      w.dead = true;
      await w.thread.terminate();
    }));
  }

  private readonly retiring = new Set<EngineWorker>();

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
      const source = this.sessions.get(key);
      if (!source) return Promise.reject(new Error(`engine: no session '${key}' is registered`));
      p = w.request({ type: 'load', key, source, options: this.sessionOptions }).then((m) => {
        if (m.type !== 'loaded') throw new Error(`unexpected reply ${m.type}`);
        return { key, inputNames: m.inputNames, outputNames: m.outputNames, loadMs: m.ms, provider: m.provider };
      });
      p.catch(() => w.loaded.delete(key));
      w.loaded.set(key, p);
    }
    return p;
  }

  private dispatch(): void {
    for (const w of this.workers) {
      if (this.queue.length === 0) return;
      if (w.busy || w.dead || w.retired) continue;
      const task = this.queue.shift()!;
      void this.execute(w, task);
    }
  }

  private async execute(w: EngineWorker, task: Task): Promise<void> {
    w.busy = true;
    const queueMs = performance.now() - task.enqueuedAt;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    try {
      await this.ensureLoaded(w, task.key);
      const feeds = typeof task.feeds === 'function' ? task.feeds() : task.feeds;
      const transfer = [...new Set(Object.values(feeds).map((t) => t.data.buffer as ArrayBuffer))];
      const reply = w.request({ type: 'run', key: task.key, feeds, fetches: task.fetches }, transfer);
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
      this.emit('run', { key: task.key, priority: task.priority, queueMs, computeMs: m.ms, batch: Object.values(feeds)[0]?.dims[0] } satisfies EngineRunEvent);
      if (!timedOut) task.resolve({ outputs: m.outputs, computeMs: m.ms, queueMs });
    } catch (e) {
      if (!timedOut) {
        this.stats.failures++;
        task.reject(e);
      }
    } finally {
      clearTimeout(timer);
      w.busy = false;
      if (w.retired && !w.dead) {
        // Its late run has returned: now it can be terminated safely.
        w.dead = true;
        this.retiring.delete(w);
        void w.thread.terminate();
      }
      setImmediate(() => this.dispatch());
    }
  }
}
