#!/usr/bin/env node
// npm run bench [-- --only NAME] [--reps N] [--threads N] [--list]
// One JSON object per line: {"workload","shape","median_ms","min_ms","reps","threads"}, with the workloads
// defined exactly as ../shared/bench/torch_peer.py defines them (synthetic weights; forwards, gradient steps
// and one training epoch, mnist_epoch), so the two outputs can be compared line by line.

import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { loadConfig } from '../config.js';
import { logger } from '../util/logger.js';
import { WORKLOADS, type BenchContext } from './workloads.js';

interface BenchOptions {
  only?: string;
  reps: number;
  threads: number;
  list?: boolean;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1.');
  return n;
}

const workloadTable = () => WORKLOADS.map((w) => `  ${w.name.padEnd(24)} ${w.description}`).join('\n');

const program = new Command()
  .name('npm run bench --')
  .description('Times the benchmark workloads (synthetic weights, median after a warm-up) and prints one JSON line each.')
  .option('--only <name>', 'run only this workload (see --list)')
  .option('--reps <n>', 'timed repetitions per workload', positiveInteger, 5)
  .option('--threads <n>', 'ONNX Runtime intra-op threads', positiveInteger, availableParallelism())
  .option('--list', 'list the workloads and exit')
  .addHelpText('after', `\nWorkloads:\n${workloadTable()}`)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

async function run(values: BenchOptions): Promise<void> {
  if (values.list) {
    for (const w of WORKLOADS) console.log(`${w.name.padEnd(24)} ${w.description}`);
    return;
  }
  const selected = WORKLOADS.filter((w) => !values.only || w.name === values.only);
  if (selected.length === 0) {
    console.error(`unknown workload '${values.only}'; known: ${WORKLOADS.map((w) => w.name).join(', ')}`);
    process.exitCode = 2;
    return;
  }
  const config = loadConfig();
  const ctx: BenchContext = {
    reps: values.reps,
    threads: values.threads,
    // Synthetic bench models live in a hidden folder the service does not list.
    benchModelsDir: resolve(join(config.modelsDir, '.bench')),
    logger,
  };
  for (const w of selected) {
    const r = await w.run(ctx);
    console.log(JSON.stringify({ workload: w.name, shape: r.shape, median_ms: round(median(r.times)), min_ms: round(Math.min(...r.times)), reps: r.times.length, threads: ctx.threads, ...(r.extra ?? {}) }));
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
function round(x: number): number {
  return Math.round(x * 10) / 10;
}

try {
  program.parse(process.argv);
  await run(program.opts<BenchOptions>());
} catch (e) {
  // Commander has already printed --help or the usage error; its exit code is 0 for --help, 1 otherwise.
  if (!(e instanceof CommanderError)) throw e;
  process.exitCode = e.exitCode;
}
