// The job area as a ServicePlugin: loads the built-in kinds, starts the JobService (store, recovery, runner,
// TTL sweeper) into ctx.services.jobs, contributes the routes, and on shutdown checkpoints running jobs.
import type { AppContext } from '../server/context.js';
import type { ServicePlugin } from '../server/service.js';
import { loadBuiltinJobKinds } from './kind.js';
import { endEventStreams, jobRoutes } from '../server/routes/jobs.js';
import { JobService } from './service.js';
import { inferenceServices } from '../server/inference-plugin.js';

export function jobService(ctx: AppContext): JobService {
  const s = ctx.services.jobs;
  if (!(s instanceof JobService)) throw new Error('the jobs plugin has not been started');
  return s;
}

export const jobsPlugin: ServicePlugin = {
  name: 'jobs',
  async start(ctx) {
    await loadBuiltinJobKinds();
    const service = new JobService({ config: ctx.config, logger: ctx.logger, services: ctx.services.engine ? inferenceServices(ctx) : undefined });
    ctx.services.jobs = service;
    await service.start();
  },
  routes: (ctx) => jobRoutes(ctx, jobService(ctx)),
  drain(ctx) {
    endEventStreams(jobService(ctx));
  },
  async stop(ctx) {
    await jobService(ctx).stop();
  },
};
