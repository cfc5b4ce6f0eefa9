// The worker hands a run's input buffers back with its result (moved both ways, never copied), so the classifier
// can refill memory that is already touched instead of allocating fresh tensors per image.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../src/engine/engine.js';
import { logger } from '../src/util/logger.js';
import { tempDir } from './helpers/app.js';
import { convStack, convStackReference, maxAbsError } from './helpers/conv-stack.js';

describe('engine: input buffers come back with the result', () => {
  const model = join(tempDir(), 'small.onnx');
  const { weights } = convStack(model, 2);
  const engine = new Engine({ workers: 1, threads: 1, taskTimeoutMs: 30_000, logger });

  before(async () => {
    await engine.start();
    await engine.load('small', { path: model });
  });
  after(() => engine.stop());

  it('the sent buffer moves to the worker and comes back intact; refilled, it computes the new input', async () => {
    const [n, h, w] = [1, 4, 5];
    const x = Float32Array.from({ length: n * 8 * h * w }, (_, i) => Math.cos(i));
    const sent = x.slice();
    const first = await engine.run('small', { input: { dims: [n, 8, h, w], data: sent } });
    assert.equal(sent.length, 0, 'transferred, not copied: the caller\'s view is detached');
    const back = first.inputs?.input?.data;
    assert.ok(back, 'inputs handed back');
    assert.deepEqual(Array.from(back), Array.from(x));
    assert.ok(maxAbsError(first.outputs.output!.data, convStackReference(x, n, h, w, weights)) < 1e-4);

    // The returned buffer, refilled with another input, gives that input's answer.
    const y = Float32Array.from({ length: x.length }, (_, i) => Math.sin(3 * i));
    back.set(y);
    const second = await engine.run('small', { input: { dims: [n, 8, h, w], data: back } });
    assert.ok(maxAbsError(second.outputs.output!.data, convStackReference(y, n, h, w, weights)) < 1e-4);
  });
});
