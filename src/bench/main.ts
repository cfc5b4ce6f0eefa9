#!/usr/bin/env node
// npm run bench [-- --only NAME] [--reps N] [--threads N]
// One JSON object per line: {"workload","shape","median_ms","min_ms","reps","threads"}, with the workloads
// defined exactly as ../shared/bench/torch_peer.py defines them (synthetic weights; forwards, gradient steps
// and one training epoch, mnist_epoch), so the two outputs can be compared line by line.

import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.js';
import { logger } from '../util/logger.js';
import { WORKLOADS, type BenchContext } from './workloads.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: '' },
    reps: { type: 'string', default: '5' },
    threads: { type: 'string', default: String(availableParallelism()) },
    list: { type: 'boolean', default: false },
  },
});

if (values.list) {
  for (const w of WORKLOADS) console.log(`${w.name.padEnd(24)} ${w.description}`);
  process.exit(0);
}

const config = loadConfig();
const ctx: BenchContext = {
  reps: Number(values.reps),
  threads: Number(values.threads),
  // Synthetic bench models live in a hidden folder the service does not list.
  benchModelsDir: resolve(join(config.modelsDir, '.bench')),
  logger,
};
const selected = WORKLOADS.filter((w) => !values.only || w.name === values.only);
if (selected.length === 0) {
  console.error(`unknown workload '${values.only}'; known: ${WORKLOADS.map((w) => w.name).join(', ')}`);
  process.exit(2);
}
for (const w of selected) {
  const r = await w.run(ctx);
  console.log(JSON.stringify({ workload: w.name, shape: r.shape, median_ms: round(median(r.times)), min_ms: round(Math.min(...r.times)), reps: r.times.length, threads: ctx.threads, ...(r.extra ?? {}) }));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
function round(x: number): number {
  return Math.round(x * 10) / 10;
}
