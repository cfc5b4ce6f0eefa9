// `npm run bench -- …` (node dist/bench/main.js, built by `npm test`) argument handling: usage on --help,
// one-line errors on bad arguments (no stack traces).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { WORKLOADS } from '../src/bench/workloads.js';

const MAIN = join(import.meta.dirname, '..', 'dist', 'bench', 'main.js');
const bench = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });

describe('bench command line', () => {
  it('--help prints the usage with every option and workload, and exits 0', () => {
    const r = bench('--help');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^Usage: npm run bench -- \[options\]/);
    for (const option of ['--only <name>', '--reps <n>', '--threads <n>', '--list']) assert.ok(r.stdout.includes(option), option);
    for (const w of WORKLOADS) assert.match(r.stdout, new RegExp(`^ +${w.name} +\\S`, 'm'), w.name);
  });

  it('bad arguments fail with a short message and no stack trace', () => {
    // Each run loads the workloads (ORT, sharp, h5wasm): one bad value stands for all of them.
    const badValue = bench('--reps', '0');
    assert.equal(badValue.status, 1);
    assert.match(badValue.stderr, /^error: option '--reps <n>' argument '0' is invalid\. .*\n\(run with --help for usage\)\n$/, badValue.stderr);
    const unknown = bench('--only', 'no_such_workload');
    assert.equal(unknown.status, 2);
    assert.equal(unknown.stderr.trim(), `unknown workload 'no_such_workload'; known: ${WORKLOADS.map((w) => w.name).join(', ')}`);
  });
});
