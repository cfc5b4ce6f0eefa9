// Signals for autoscaling the workers (KEDA-style on queue depth): jobs waiting in Redis, the age of the
// oldest one, and the jobs running per kind — read from BullMQ, so every API replica reports the same.
import type { Queue } from 'bullmq';
import { Gauge, type Registry } from 'prom-client';
import type { FairScheduler } from './fair-scheduler.js';

export interface QueueSignals {
  /** Jobs waiting for a worker (in their owners' lists, or waiting, prioritized or delayed in BullMQ). */
  depth: number;
  /** Seconds the oldest waiting job has waited (0 when none waits). */
  oldestWaitSeconds: number;
  /** Jobs a worker is running now, by kind. */
  activeByKind: Record<string, number>;
}

export async function readQueueSignals(bull: Queue, fair: FairScheduler, now = Date.now()): Promise<QueueSignals> {
  const counts = await bull.getJobCounts('waiting', 'prioritized', 'delayed');
  const line = await fair.view();
  const listed = line.owners.reduce((n, o) => n + o.ids.length, 0);
  const depth = listed + (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0);
  // Both ends of the lists: which end is the oldest depends on how the job got there (added, or released).
  const ends = [...await bull.getJobs(['waiting', 'prioritized'], 0, 0, true), ...await bull.getJobs(['waiting', 'prioritized'], 0, 0, false)];
  const oldest = Math.min(...ends.map((j) => j.timestamp), line.oldestSince ?? Number.POSITIVE_INFINITY);
  const activeByKind: Record<string, number> = {};
  for (const j of await bull.getActive()) activeByKind[j.name] = (activeByKind[j.name] ?? 0) + 1;
  return { depth, oldestWaitSeconds: Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1000) : 0, activeByKind };
}

/**
 * Adds the three gauges to a prom-client registry (read from Redis at each scrape; left as they were while
 * Redis is unreachable).
 */
export function registerQueueMetrics(registry: Registry, read: () => Promise<QueueSignals | undefined>): void {
  const registers = [registry];
  let last: Promise<QueueSignals | undefined> | undefined;
  // One read per scrape, shared by the three gauges.
  const current = () => (last ??= read().catch(() => undefined).finally(() => { setImmediate(() => { last = undefined; }); }));
  new Gauge({
    name: 'convserve_job_queue_depth', help: 'Jobs waiting in Redis for a worker (all API replicas report the same).', registers,
    async collect() { const s = await current(); if (s) this.set(s.depth); },
  });
  new Gauge({
    name: 'convserve_job_queue_oldest_wait_seconds', help: 'How long the oldest waiting job has waited for a worker.', registers,
    async collect() { const s = await current(); if (s) this.set(s.oldestWaitSeconds); },
  });
  new Gauge({
    name: 'convserve_jobs_active', help: 'Jobs running on the workers now, by kind.', labelNames: ['kind'], registers,
    async collect() {
      const s = await current();
      if (!s) return;
      this.reset();
      for (const [kind, n] of Object.entries(s.activeByKind)) this.set({ kind }, n);
    },
  });
}
