// The main thread's handle on one ORT worker thread: request/reply by message id, and what the scheduler
// needs to know about it (busy, dead, retired, which sessions it has loaded, which ran since loading).
import type { Worker } from 'node:worker_threads';
import { unavailable } from '../util/problem.js';
import type { FromWorker, ToWorker } from './protocol.js';
import type { SessionInfo } from './types.js';

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

interface Pending { resolve: (m: FromWorker) => void; reject: (e: unknown) => void }

export class EngineWorker {
  readonly loaded = new Map<string, Promise<SessionInfo>>();
  /** Sessions run since they were (re)loaded here: only those have grown an arena worth recycling. */
  readonly ranSinceLoad = new Set<string>();
  readonly pending = new Map<number, Pending>();
  busy = false;
  dead = false;
  /** Timed out: takes no new work, is terminated once its current run returns (see {@link close}). */
  retired = false;
  private nextId = 1;
  readonly ready: Promise<void>;
  /** The thread has finished start-up (onnxruntime's native initialisation included). */
  private started = false;
  private exited = false;
  private closing: { done: Promise<void>; resolve: () => void } | undefined;

  constructor(readonly index: number, readonly thread: Worker) {
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (m: FromWorker) => { if (m.type === 'ready') { thread.off('message', onMessage); this.started = true; resolve(); this.closeIfIdle(); } };
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
      this.closeIfIdle();
    });
    thread.once('exit', () => { this.exited = true; this.closing?.resolve(); });
  }

  /**
   * Terminates the thread, but never inside onnxruntime's native code: at once when it is up and has no request
   * outstanding, else as soon as its start-up or its last outstanding request (a load, a run) returns. Resolves
   * when the thread has exited.
   *
   * Why: InferenceSession.create() and run() are synchronous native calls on the worker's thread.
   * worker.terminate() during one cannot interrupt it; it tears the worker's JS environment down underneath,
   * and when the call returns, node-addon-api fails to build its results in the dead environment and throws a
   * C++ Napi::Error that no JS frame can catch: std::terminate, SIGABRT, the whole process gone. (Reproduced
   * on Node 20: engine.stop() while a timed-out run was still computing; on Node 22/24 a worker's faster
   * start-up made test/engine.test.ts's timeout case hit it 1 run in 3–4.)
   */
  close(): Promise<void> {
    if (!this.closing) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => { resolve = r; });
      this.closing = { done, resolve };
      this.closeIfIdle();
    }
    return this.closing.done;
  }

  private closeIfIdle(): void {
    if (this.exited) this.closing?.resolve();
    if (!this.closing || this.exited || !this.started || this.pending.size > 0) return;
    // No further request reaches the thread: request() now answers 503.
    this.dead = true;
    const done = this.closing.resolve;
    this.thread.terminate().then(done, done);
  }

  /** Usable for new work. */
  get available(): boolean {
    return !this.dead && !this.retired;
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
