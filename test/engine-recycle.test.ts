// Idle recycles (docs/memory.md): the old session is released before the new one is created, recycles never
// overlap (two models, or one model on two workers, reload one after another), and a recycled session answers
// exactly as before — also with ORT's weight pre-packing off, where the weights stay mapped from their file.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Engine, type EngineRecycleEvent, type EngineRunEvent } from '../src/engine/engine.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { logger } from '../src/util/logger.js';
import { tempDir } from './helpers/app.js';
import { convStack, convStackReference, maxAbsError } from './helpers/conv-stack.js';

const dir = tempDir();
const stackA = join(dir, 'a.onnx');
const stackB = join(dir, 'b.onnx');
const { weights: weightsA } = convStack(stackA, 2, 3);
const { weights: weightsB } = convStack(stackB, 3, 5);

/** y = x·W + b with W a constant initializer in an external-data file: the weight ORT pre-packs (MatMul B). */
const K = 96;
const M = 40;
let seed = 7;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5);
const W = Float32Array.from({ length: K * M }, rand);
const bias = Float32Array.from({ length: M }, rand);
const dense = join(dir, 'dense.onnx');
{
  const g = new GraphBuilder('dense');
  const x = g.input('input', 'float32', ['N', K]);
  const mm = g.node('MatMul', [x, g.weight('W', [K, M], W)]);
  g.node('Add', [mm, g.weight('b', [M], bias)], {}, { outputs: ['output'] });
  g.output('output');
  g.save(dense, { externalDataFile: 'dense.onnx.bin' });
}
function denseReference(x: Float32Array, n: number): Float64Array {
  const y = new Float64Array(n * M);
  for (let r = 0; r < n; r++) for (let j = 0; j < M; j++) {
    let acc = bias[j]!;
    for (let k = 0; k < K; k++) acc += x[r * K + k]! * W[k * M + j]!;
    y[r * M + j] = acc;
  }
  return y;
}

const until = async (cond: () => boolean, what: string) => {
  for (let i = 0; i < 1500 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(cond(), `timed out waiting for ${what}`);
};

describe('idle recycles', () => {
  it('a warm-up run does not make a session due for a recycle; a real run does', async () => {
    const engine = new Engine({ workers: 1, threads: 1, taskTimeoutMs: 60_000, logger, recycleIdleMs: 40, idleSweepMs: 5 });
    const events: EngineRecycleEvent[] = [];
    engine.on('recycle', (e: EngineRecycleEvent) => events.push(e));
    await engine.start();
    try {
      await engine.load('a', { path: stackA });
      const x = Float32Array.from({ length: 8 * 5 * 6 }, (_, i) => Math.sin(i / 3));
      const feed = () => ({ input: { dims: [1, 8, 5, 6], data: x.slice() } });
      const warm = await engine.run('a', feed(), { warmUp: true });
      await new Promise((r) => setTimeout(r, 400)); // ten idle periods
      assert.equal(events.length, 0, 'no recycle after a warm-up run only');
      const real = await engine.run('a', feed());
      assert.deepEqual([...real.outputs.output!.data as Float32Array], [...warm.outputs.output!.data as Float32Array]);
      await until(() => events.some((e) => e.phase === 'loaded'), 'the recycle after a real run');
      assert.deepEqual(events.map((e) => e.phase), ['start', 'released', 'loaded']);
    } finally {
      await engine.stop();
    }
  });

  it('release the old session before loading the new one, one recycle at a time across sessions and workers; results unchanged', async () => {
    const engine = new Engine({ workers: 2, threads: 1, taskTimeoutMs: 60_000, logger, recycleIdleMs: 40, idleSweepMs: 5 });
    const events: EngineRecycleEvent[] = [];
    engine.on('recycle', (e: EngineRecycleEvent) => events.push(e));
    const ranOn = new Set<string>();
    engine.on('run', (e: EngineRunEvent) => ranOn.add(`${e.key}@${e.worker}`));
    await engine.start();
    try {
      await engine.load('a', { path: stackA });
      await engine.load('b', { path: stackB });
      const x = Float32Array.from({ length: 8 * 5 * 6 }, (_, i) => Math.cos(i / 4));
      const feed = () => ({ input: { dims: [1, 8, 5, 6], data: x.slice() } });
      // Two runs of each at once: both workers take one, so up to four (session, worker) pairs need a recycle.
      const before = await Promise.all([engine.run('a', feed()), engine.run('a', feed()), engine.run('b', feed()), engine.run('b', feed())]);
      const expected = [...ranOn].sort();
      const recycled = () => events.filter((e) => e.phase === 'loaded').map((e) => `${e.key}@${e.worker}`).sort();
      await until(() => recycled().length >= expected.length, 'a recycle of every (session, worker) pair that ran');
      assert.deepEqual(recycled(), expected, 'each (session, worker) pair that ran is recycled once');
      assert.equal(events.filter((e) => e.phase === 'failed').length, 0);
      const ran = new Set<string>();

      // Strictly sequential: start, released, loaded of one (session, worker), then the next one's start.
      assert.equal(events.length, 3 * engine.stats.recycled);
      for (let i = 0; i < events.length; i += 3) {
        const [start, released, loaded] = events.slice(i, i + 3);
        assert.deepEqual([start!.phase, released!.phase, loaded!.phase], ['start', 'released', 'loaded'], `recycle ${i / 3}`);
        assert.ok(start!.key === released!.key && released!.key === loaded!.key && start!.worker === released!.worker && released!.worker === loaded!.worker);
        ran.add(`${start!.key}@${start!.worker}`);
      }
      assert.ok([...ran].some((k) => k.startsWith('a@')) && [...ran].some((k) => k.startsWith('b@')), 'both sessions recycled');
      assert.equal(engine.loadedOn('a'), 2);
      assert.equal(engine.loadedOn('b'), 2);

      const after = await Promise.all([engine.run('a', feed()), engine.run('b', feed())]);
      assert.deepEqual([...after[0].outputs.output!.data], [...before[0]!.outputs.output!.data]);
      assert.deepEqual([...after[1].outputs.output!.data], [...before[2]!.outputs.output!.data]);
      assert.ok(maxAbsError(after[0].outputs.output!.data, convStackReference(x, 1, 5, 6, weightsA)) < 1e-4);
      assert.ok(maxAbsError(after[1].outputs.output!.data, convStackReference(x, 1, 5, 6, weightsB)) < 1e-4);
    } finally {
      await engine.stop();
    }
  });

  it('with weight pre-packing off (weights mapped from their file) a MatMul model is exact before and after a recycle', async () => {
    const engine = new Engine({ workers: 1, threads: 1, taskTimeoutMs: 60_000, logger, recycleIdleMs: 40, idleSweepMs: 5, prepack: false });
    const phases: string[] = [];
    engine.on('recycle', (e: EngineRecycleEvent) => phases.push(e.phase));
    await engine.start();
    try {
      await engine.load('dense', { path: dense });
      await engine.load('dense-prepacked', { path: dense }, { prepack: true });
      const n = 5;
      const x = Float32Array.from({ length: n * K }, (_, i) => Math.sin(i / 7));
      const expected = denseReference(x, n);
      const feed = () => ({ input: { dims: [n, K], data: x.slice() } });
      const first = await engine.run('dense', feed());
      assert.ok(maxAbsError(first.outputs.output!.data, expected) < 1e-4);
      const packed = await engine.run('dense-prepacked', feed());
      assert.ok(maxAbsError(packed.outputs.output!.data, expected) < 1e-4);
      await until(() => phases.filter((p) => p === 'loaded').length === 2, 'both recycles');
      assert.deepEqual(phases, ['start', 'released', 'loaded', 'start', 'released', 'loaded']);
      const again = await engine.run('dense', feed());
      assert.deepEqual([...again.outputs.output!.data], [...first.outputs.output!.data]);
    } finally {
      await engine.stop();
    }
  });
});
