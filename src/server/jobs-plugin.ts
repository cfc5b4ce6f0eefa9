// The job area over HTTP: submit, list, status, events, results and previews of the core's JobService; as
// shutdown begins, open event streams end (clients reconnect with Last-Event-ID). The service itself (store,
// recovery, runner, TTL sweeper, checkpointing at shutdown) belongs to the core.
import { endEventStreams, jobRoutes } from './routes/jobs.js';
import type { ServicePlugin } from './plugin.js';

export const jobsPlugin: ServicePlugin<'jobs'> = {
  name: 'jobs',
  needs: ['jobs'],
  routes: (r, app) => jobRoutes(r, app, app.core.jobs),
  drain: ({ core }) => endEventStreams(core.jobs),
};
