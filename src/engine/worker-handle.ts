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
  /** Timed out: takes no new work, is terminated once its current run returns (terminating a worker
   * inside ORT's native run() aborts the whole process). */
  retired = false;
  private nextId = 1;
  readonly ready: Promise<void>;

  constructor(readonly index: number, readonly thread: Worker) {
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
