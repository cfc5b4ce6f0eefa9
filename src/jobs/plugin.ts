// The job area as a ServicePlugin: loads the built-in kinds, starts the JobService (store, recovery, runner,
// TTL sweeper) into ctx.services.jobs, contributes the routes, and on shutdown checkpoints running jobs.
// With CONVSERVE_REDIS_URL the service's queue, events and dispatch are the Redis ones (src/jobs/redis/):
// jobs run in worker processes (and here too with CONVSERVE_SERVE_WORKER / `serve --worker`).
import type { AppContext } from '../server/context.js';
import type { ServicePlugin } from '../server/service.js';
import { loadBuiltinJobKinds } from './kind.js';
import { endEventStreams, jobRoutes } from '../server/routes/jobs.js';
import { JobService } from './service.js';
import { inferenceServices } from '../server/inference-plugin.js';
import { type RedisJobBackend, createRedisJobBackend } from './redis/backend.js';

export function jobService(ctx: AppContext): JobService {
  const s = ctx.services.jobs;
  if (!(s instanceof JobService)) throw new Error('the jobs plugin has not been started');
  return s;
}

/** The Redis backend of the jobs, when the service runs in distributed mode. */
export function jobBackend(ctx: AppContext): RedisJobBackend | undefined {
  return ctx.services.jobBackend as RedisJobBackend | undefined;
}

export const jobsPlugin: ServicePlugin = {
  name: 'jobs',
  async start(ctx) {
    await loadBuiltinJobKinds();
    const services = ctx.services.engine ? inferenceServices(ctx) : undefined;
    const backend = ctx.config.redisUrl ? createRedisJobBackend({ config: ctx.config, logger: ctx.logger, services, runWorker: ctx.config.serveWorker }) : undefined;
    const service = new JobService({ config: ctx.config, logger: ctx.logger, services, ...(backend ? { queue: backend.queue, events: backend.events, dispatch: backend.dispatch } : {}) });
    ctx.services.jobs = service;
    await service.start();
    if (backend) {
      ctx.services.jobBackend = backend;
      ctx.readiness.check('redis', backend.readiness);
      await backend.start();
    }
  },
  routes: (ctx) => jobRoutes(ctx, jobService(ctx)),
  drain(ctx) {
    endEventStreams(jobService(ctx));
  },
  async stop(ctx) {
    await jobBackend(ctx)?.stop();
    await jobService(ctx).stop();
  },
};
