// Prometheus metrics (prom-client) on GET /metrics: HTTP requests by route and status, engine queue wait vs
// compute time, classification batch sizes, jobs by kind and state, job step durations, engine worker restarts,
// model load time and status, and the process metrics. Each service instance has its own registry.
// The metrics are documented in docs/web-ops.md.
import type { RequestHandler } from 'express';
import { Registry, Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { Core } from '../app/core.js';
import type { EngineRunEvent } from '../engine/engine.js';
import { openapiPath } from './api.js';
import type { ServicePlugin } from './plugin.js';
import { route } from './route-registry.js';

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64];

/** A bounded label for an engine session key: `vgg19@lx3k…` → vgg19, `grad:dream:…` → grad:dream. */
export function sessionLabel(key: string): string {
  if (key.startsWith('grad:')) return key.split(':').slice(0, 2).join(':');
  return key.split('@')[0]!;
}

export class ServiceMetrics {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly unsubscribe: (() => void)[] = [];

  /** Observes whichever parts `core` has (engine, classifier, models, jobs). */
  constructor(core: Core) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.httpRequests = new Counter({ name: 'convserve_http_requests_total', help: 'HTTP requests by method, route template and status code.', labelNames: ['method', 'route', 'status'], registers });
    this.httpDuration = new Histogram({ name: 'convserve_http_request_duration_seconds', help: 'HTTP request duration (until the response is finished; event streams count their whole life).', labelNames: ['method', 'route', 'status'], buckets: DURATION_BUCKETS, registers });

    if (core.engine) {
      const engine = core.engine;
      const queue = new Histogram({ name: 'convserve_engine_queue_seconds', help: 'Time an inference run waited for a free engine worker, by session and priority.', labelNames: ['session', 'priority'], buckets: DURATION_BUCKETS, registers });
      const compute = new Histogram({ name: 'convserve_engine_compute_seconds', help: "Time inside ORT's run(), by session and priority.", labelNames: ['session', 'priority'], buckets: DURATION_BUCKETS, registers });
      const onRun = (e: EngineRunEvent) => {
        const labels = { session: sessionLabel(e.key), priority: e.priority };
        queue.observe(labels, e.queueMs / 1000);
        compute.observe(labels, e.computeMs / 1000);
      };
      engine.on('run', onRun);
      this.unsubscribe.push(() => engine.off('run', onRun));
      const restarts = new Counter({ name: 'convserve_engine_worker_restarts_total', help: 'Engine worker threads replaced after a crash or an inference timeout.', registers });
      restarts.inc(engine.stats.workerRestarts);
      const onRestart = () => restarts.inc();
      engine.on('worker-restart', onRestart);
      this.unsubscribe.push(() => engine.off('worker-restart', onRestart));
      new Gauge({ name: 'convserve_engine_queue_length', help: 'Inference runs waiting for a worker.', registers, collect() { this.set(engine.queueLength); } });
    }
    if (core.classifier) {
      const classifier = core.classifier;
      // Rebuilt from the classifier's record of batch sizes at every scrape (the record only grows).
      new Histogram({
        name: 'convserve_classify_batch_size', help: 'Images per classification batch formed by the request batcher.', buckets: BATCH_BUCKETS, registers,
        collect() { this.reset(); for (const n of classifier.batchSizes()) this.observe(n); },
      });
    }
    if (core.models) {
      const reg = core.registry;
      const models = core.models;
      new Gauge({
        name: 'convserve_model_status', help: 'Model status: 1 for the current status of each model (ready, loading, missing, downloading, error).', labelNames: ['model', 'status'], registers,
        collect() {
          this.reset();
          for (const e of reg.list()) {
            const engineState = models.engineState(e.name)?.state;
            const status = e.status === 'ready' && engineState === 'loading' ? 'loading' : e.status === 'ready' && engineState === 'failed' ? 'error' : e.status;
            this.set({ model: e.name, status }, 1);
          }
        },
      });
      new Gauge({
        name: 'convserve_model_load_seconds', help: 'Time the engine took to load (and warm up) each loaded model.', labelNames: ['model'], registers,
        collect() {
          this.reset();
          for (const e of reg.list()) {
            const ms = models.engineState(e.name)?.load_ms;
            if (ms !== undefined) this.set({ model: e.name }, ms / 1000);
          }
        },
      });
    }
    if (core.jobs) {
      const jobs = core.jobs;
      new Gauge({
        name: 'convserve_jobs', help: 'Jobs known to the service (stored, not expired) by kind and state.', labelNames: ['kind', 'state'], registers,
        collect() {
          this.reset();
          const counts = new Map<string, number>();
          for (const j of jobs.list({ limit: 1_000_000 })) counts.set(`${j.kind}\u0000${j.status}`, (counts.get(`${j.kind}\u0000${j.status}`) ?? 0) + 1);
          for (const [k, n] of counts) { const [kind, state] = k.split('\u0000'); this.set({ kind: kind!, state: state! }, n); }
        },
      });
      const finished = new Counter({ name: 'convserve_jobs_finished_total', help: 'Jobs that finished in this process, by kind and final status.', labelNames: ['kind', 'status'], registers });
      const submitted = new Counter({ name: 'convserve_jobs_submitted_total', help: 'Jobs accepted in this process, by kind.', labelNames: ['kind'], registers });
      const stepDuration = new Histogram({ name: 'convserve_job_step_duration_seconds', help: 'Time between consecutive progress events of a running job (one step, its preview and checkpoint), by kind.', labelNames: ['kind'], buckets: DURATION_BUCKETS, registers });
      const lastAt = new Map<string, number>();
      const off = jobs.onAnyEvent((job, ev) => {
        const now = performance.now();
        if (ev.event === 'status' && ev.data.status === 'running') lastAt.set(job.id, now);
        else if (ev.event === 'status' && ev.data.status === 'queued' && !ev.data.reason) submitted.inc({ kind: job.kind });
        else if (ev.event === 'resumed') lastAt.set(job.id, now);
        else if (ev.event === 'progress') {
          const t = lastAt.get(job.id);
          if (t !== undefined) stepDuration.observe({ kind: job.kind }, (now - t) / 1000);
          lastAt.set(job.id, now);
        } else if (ev.event === 'done') {
          lastAt.delete(job.id);
          finished.inc({ kind: job.kind, status: String(ev.data.status) });
        }
      });
      this.unsubscribe.push(off);
    }
    // Distributed mode: queue depth, oldest wait and active jobs per kind, from Redis (scaling signals).
    core.jobBackend?.registerMetrics(this.registry);
  }

  /** Counts every request at its end, labelled with the matched route template (`/v1/jobs/{id}`). */
  middleware(): RequestHandler {
    return (req, res, next) => {
      const t0 = performance.now();
      res.once('finish', () => this.observeRequest(req.method, req.route?.path, res.statusCode, t0));
      res.once('close', () => { if (!res.writableFinished) this.observeRequest(req.method, req.route?.path, res.statusCode, t0); });
      next();
    };
  }

  private observeRequest(method: string, routePath: unknown, status: number, t0: number): void {
    const routeLabel = typeof routePath === 'string' ? openapiPath(routePath) : status === 404 ? '(unmatched)' : '(other)';
    const labels = { method, route: routeLabel, status: String(status) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, (performance.now() - t0) / 1000);
  }

  close(): void {
    for (const u of this.unsubscribe) u();
  }
}

export function metricsPlugin(): ServicePlugin {
  let metrics: ServiceMetrics | undefined;
  return {
    name: 'metrics',
    start({ core }) {
      metrics = new ServiceMetrics(core);
    },
    middleware: () => metrics!.middleware(),
    routes(r) {
      route(r, {
        method: 'get', path: '/metrics', operationId: 'metrics', tags: ['ops'], summary: 'Prometheus metrics (text exposition format)',
        responses: { 200: { description: 'Metrics', content: { 'text/plain': 'text' } } },
      }, async (_req, res) => {
        res.set('Content-Type', metrics!.registry.contentType).send(await metrics!.registry.metrics());
      });
    },
    stop() { metrics?.close(); },
  };
}
