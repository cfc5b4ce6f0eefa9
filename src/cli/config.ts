import type { Command } from 'commander';
import { SETTINGS, configMarkdown, loadConfig } from '../config.js';

export function registerConfigCommand(program: Command): void {
  program
    .command('config')
    .description('Print the effective configuration (environment variables, defaults, limits).')
    .option('--json', 'machine-readable output')
    .option('--markdown', 'the documentation table (as in the README)')
    .action((opts: { json?: boolean; markdown?: boolean }) => {
      if (opts.markdown) { console.log(configMarkdown()); return; }
      const config = loadConfig();
      if (opts.json) { console.log(JSON.stringify(config, null, 2)); return; }
      for (const [key, s] of Object.entries(SETTINGS)) {
        console.log(`${s.env.padEnd(32)} ${String(config[key as keyof typeof config]).padEnd(12)} ${s.description}`);
      }
    });
}
