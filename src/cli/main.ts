#!/usr/bin/env node
// convserve command line: thin fronts over the same core functions the HTTP routes use.
import { Command, CommanderError } from 'commander';
import { registerFilterCommand } from './filter.js';
import { registerServeCommand } from './serve.js';
import { registerConfigCommand } from './config.js';
import { extraCommands } from './registry.js';

export async function buildProgram(): Promise<Command> {
  const program = new Command();
  program
    .name('convserve')
    .description('Keras computer-vision toolbox on ONNX Runtime: classify, filter, dream, style, fine-tune.')
    .version(process.env.npm_package_version ?? '0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerServeCommand(program);
  registerFilterCommand(program);
  registerConfigCommand(program);
  for (const register of await extraCommands()) register(program);
  return program;
}

async function main(): Promise<void> {
  const program = await buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      process.exitCode = e.exitCode;
      return;
    }
    const msg = e instanceof Error ? e.message : String(e);
    if (process.argv.includes('--json')) {
      const slug = (e as { slug?: string }).slug;
      process.stderr.write(`${JSON.stringify({ error: { message: msg.split('\n')[0], ...(slug ? { type: slug } : {}) } })}\n`);
    } else process.stderr.write(`convserve: ${msg.split('\n')[0]}\n`);
    if (process.env.CONVSERVE_DEBUG) console.error(e);
    process.exitCode = 1;
  }
}

await main();
