// `convserve worker [--concurrency N]`: a job worker process for the distributed mode. It takes jobs from
// Redis (CONVSERVE_REDIS_URL) and runs them with the same engine and job kinds as the service, on the shared
// CONVSERVE_DATA_DIR and CONVSERVE_MODELS_DIR; SIGTERM/SIGINT checkpoint its running jobs and hand them back
// to the queue before it exits. The engine and registry come from the core, as for every command.
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { loadBuiltinJobKinds } from '../jobs/kind.js';
import { startRedisWorker } from '../jobs/redis/backend.js';
import { createCore } from '../app/core.js';
import { logger } from '../util/logger.js';

export function registerWorkerCommand(program: Command): void {
  program.command('worker')
    .description('Run job steps for the API replicas (distributed mode): needs CONVSERVE_REDIS_URL and the shared CONVSERVE_DATA_DIR / CONVSERVE_MODELS_DIR.')
    .option('-c, --concurrency <n>', 'jobs run at once (default CONVSERVE_WORKER_CONCURRENCY)')
    .action(async (opts: { concurrency?: string }) => {
      const env = { ...process.env, ...(opts.concurrency !== undefined ? { CONVSERVE_WORKER_CONCURRENCY: opts.concurrency } : {}) };
      const config = loadConfig(env);
      if (!config.redisUrl) throw new Error('convserve worker needs CONVSERVE_REDIS_URL (the Redis the API replicas queue jobs in)');
      await loadBuiltinJobKinds();
      const core = await createCore(config, logger);
      await core.started;
      const services = { engine: core.engine, registry: core.registry };
      let stopping: Promise<void> | undefined;
      const started = await startRedisWorker({ config, logger, services });
      const stop = (signal: NodeJS.Signals) => {
        stopping ??= (async () => {
          logger.info({ signal }, 'worker stopping: checkpointing running jobs and handing them back to the queue');
          // Bounded: without Redis, BullMQ cannot hand the jobs back (their checkpoints are written first).
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs); });
          if (await Promise.race([started.stop(), timedOut]) === 'timeout') logger.warn({ timeout_ms: config.shutdownTimeoutMs }, 'could not hand the jobs back in time (Redis unreachable?); the stalled-job check will');
          clearTimeout(timer);
          await core.close();
          logger.info('worker stopped');
          process.exit(0);
        })();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
