// Child process of test/engine-abort.test.ts (a process of its own: the failure it guards against is a SIGABRT
// of the whole process, which would take the test runner down with it). Times a run out, stops the engine while
// that run is still computing in its retired worker, and reports on stdout whether the stop overtook the run.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../../src/engine/engine.js';
import { logger } from '../../src/util/logger.js';
import { convStack } from './conv-stack.js';

const dir = mkdtempSync(join(tmpdir(), 'convserve-engine-stop-'));
const big = join(dir, 'big.onnx');
convStack(big, 24, 7);
const engine = new Engine({ workers: 1, threads: 1, taskTimeoutMs: 30, logger });
await engine.start();
await engine.load('big', { path: big });
let runReturned = false;
engine.on('run', () => { runReturned = true; });
// 24 convolutions 8→8 with 7×7 kernels over 512×512: about 20 GFLOP, seconds on one thread.
const side = 512;
const slow = engine.run('big', { input: { dims: [1, 8, side, side], data: new Float32Array(8 * side * side).fill(0.5) } });
const slug = await slow.then(() => 'resolved', (e: unknown) => (e as { slug?: string }).slug ?? String(e));
await engine.stop();
const stoppedMidRun = !runReturned;
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
process.stdout.write(`${JSON.stringify({ slug, stoppedMidRun })}\n`);
