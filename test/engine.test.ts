import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../src/engine/engine.js';
import { ProblemError } from '../src/util/problem.js';
import { logger } from '../src/util/logger.js';
import { tempDir } from './helpers/app.js';
import { convStack, convStackReference, maxAbsError } from './helpers/conv-stack.js';

describe('engine (ORT in worker threads)', () => {
  const dir = tempDir();
  const small = join(dir, 'small.onnx');
  const big = join(dir, 'big.onnx');
  const { weights } = convStack(small, 2);
  convStack(big, 24, 7);
  const engine = new Engine({ workers: 1, threads: 2, taskTimeoutMs: 30_000, logger });

  before(async () => {
    await engine.start();
    await engine.load('small', { path: small });
    await engine.load('big', { path: big });
  });
  after(() => engine.stop());

  it('runs a session in the worker and returns the right numbers', async () => {
    const n = 2, h = 5, w = 6;
    const x = Float32Array.from({ length: n * 8 * h * w }, (_, i) => Math.sin(i));
    const expected = convStackReference(x, n, h, w, weights);
    const r = await engine.run('small', { input: { dims: [n, 8, h, w], data: x.slice() } });
    const y = r.outputs.output!;
    assert.deepEqual(y.dims, [n, 8, h, w]);
    const maxErr = maxAbsError(y.data, expected);
    assert.ok(maxErr < 1e-4, `max error ${maxErr}`);
    assert.ok(r.computeMs >= 0 && r.queueMs >= 0);
  });

  it('keeps the event loop free while inference runs', async () => {
    const x = new Float32Array(1 * 8 * 256 * 256).fill(0.5);
    let ticks = 0, maxGap = 0, last = performance.now();
    const timer = setInterval(() => { const now = performance.now(); maxGap = Math.max(maxGap, now - last); last = now; ticks++; }, 5);
    const r = await engine.run('big', { input: { dims: [1, 8, 256, 256], data: x } });
    clearInterval(timer);
    // Ticks kept coming during the run: the thread was not blocked for its whole duration.
    assert.ok(ticks >= Math.floor(r.computeMs / 50), `only ${ticks} ticks during a ${r.computeMs.toFixed(0)} ms run (longest gap ${maxGap.toFixed(0)} ms)`);
  });

  it('runs interactive work before queued job steps', async () => {
    const order: string[] = [];
    const feed = () => ({ input: { dims: [1, 8, 64, 64], data: new Float32Array(8 * 64 * 64).fill(0.1) } });
    const jobs = [1, 2, 3].map((i) => engine.run('big', feed(), { priority: 'job' }).then(() => order.push(`job${i}`)));
    const interactive = engine.run('small', feed(), { priority: 'interactive' }).then(() => order.push('interactive'));
    await Promise.all([...jobs, interactive]);
    // job1 was already running when the interactive request arrived; it goes next, before job2 and job3.
    assert.deepEqual(order, ['job1', 'interactive', 'job2', 'job3']);
  });

  it('a long-lived AbortSignal does not collect a listener per run; aborting drops a queued task', async () => {
    const controller = new AbortController();
    const feed = () => ({ input: { dims: [1, 8, 4, 4], data: new Float32Array(8 * 16).fill(1) } });
    for (let i = 0; i < 20; i++) await engine.run('small', feed(), { signal: controller.signal, priority: 'job' });
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
    const busy = engine.run('big', { input: { dims: [1, 8, 128, 128], data: new Float32Array(8 * 128 * 128).fill(0.5) } });
    const queued = engine.run('small', feed(), { signal: controller.signal, priority: 'job' });
    controller.abort(new Error('stop'));
    await assert.rejects(queued, /stop/);
    await busy;
  });

  it('a dying worker fails its in-flight task with 503 and is replaced', async () => {
    const x = () => ({ input: { dims: [1, 8, 256, 256], data: new Float32Array(8 * 256 * 256).fill(0.5) } });
    engine.injectWorkerCrash(0); // the worker exits on this message, before it reads the run below
    const inflight = engine.run('big', x());
    await assert.rejects(inflight, (e: unknown) => e instanceof ProblemError && e.status === 503 && e.slug === 'engine-worker-crashed');
    assert.equal(engine.stats.workerRestarts, 1);
    const again = await engine.run('small', { input: { dims: [1, 8, 4, 4], data: new Float32Array(8 * 16).fill(1) } });
    assert.deepEqual(again.outputs.output!.dims, [1, 8, 4, 4]);
    assert.equal(engine.health(), null);
  });

  it('a run over the time limit answers 503 and the worker is replaced without killing the process', async () => {
    // The slow run (24 convolutions 8→8, 7×7, over 512×512: about 20 GFLOP) takes seconds on any machine; the
    // limit leaves a tiny run room even on a loaded one (30 ms did not: the follow-up run timed out under load).
    const strict = new Engine({ workers: 1, threads: 1, taskTimeoutMs: 250, logger });
    await strict.start();
    try {
      await strict.load('big', { path: big });
      const slow = strict.run('big', { input: { dims: [1, 8, 512, 512], data: new Float32Array(8 * 512 * 512).fill(0.5) } });
      await assert.rejects(slow, (e: unknown) => e instanceof ProblemError && e.status === 503 && e.slug === 'inference-timeout');
      assert.equal(strict.stats.workerRestarts, 1);
      const ok = await strict.run('big', { input: { dims: [1, 8, 4, 4], data: new Float32Array(8 * 16).fill(1) } });
      assert.deepEqual(ok.outputs.output!.dims, [1, 8, 4, 4]);
      assert.equal(strict.stats.workerRestarts, 1, 'the replacement worker served the next run');
    } finally {
      await strict.stop();
    }
  });
});
