import type { Command } from 'commander';
import { loadConfig } from '../config.js';

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('Start the HTTP service (same as npm start).')
    .option('-p, --port <port>', 'TCP port (overrides PORT)')
    .option('--host <host>', 'bind address (overrides HOST)')
    .action(async (opts: { port?: string; host?: string }) => {
      const env = { ...process.env, ...(opts.port !== undefined ? { PORT: opts.port } : {}), ...(opts.host ? { HOST: opts.host } : {}) };
      // The one command that needs the HTTP layer: loaded here, so the other commands never load express.
      const { startService } = await import('../server/service.js');
      await startService({ config: loadConfig(env), installSignalHandlers: true });
    });
}
