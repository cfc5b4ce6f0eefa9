import type { Command } from 'commander';
import { loadConfig } from '../config.js';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('Start the HTTP service (same as npm start).')
    .option('-p, --port <port>', 'TCP port (overrides PORT)')
    .option('--host <host>', 'bind address (overrides HOST)')
    .option('--worker', 'with CONVSERVE_REDIS_URL: also run job steps in this process (sets CONVSERVE_SERVE_WORKER)')
    .action(async (opts: { port?: string; host?: string; worker?: boolean }) => {
      const env = { ...process.env, ...(opts.port !== undefined ? { PORT: opts.port } : {}), ...(opts.host ? { HOST: opts.host } : {}), ...(opts.worker ? { CONVSERVE_SERVE_WORKER: 'true' } : {}) };
      // The one command that needs the HTTP layer: loaded here, so the other commands never load express.
      const { startService } = await import('../server/service.js');
      await startService({ config: loadConfig(env), installSignalHandlers: true });
    });
}
