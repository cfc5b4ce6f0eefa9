import assert from 'node:assert/strict';
import { it } from 'node:test';
import * as ort from 'onnxruntime-node';
// The package's own entry point (package.json "exports" → dist/index.js), as a user would import it.
import { GraphBuilder, gradientGraph } from 'convserve';

it("gradientGraph through the public contract: import { gradientGraph } from 'convserve'", async () => {
  // loss = Σ (x·w)² over a [1,3] input; d loss/dx = 2·(x·w)·w.
  const g = new GraphBuilder('tiny');
  g.input('x', 'float32', [1, 3]);
  const w = [0.5, -2, 3];
  const y = g.node('Mul', ['x', g.weight('w', [3], Float32Array.from(w))]);
  g.node('ReduceSumSquare', [y], { keepdims: 0 }, { outputs: ['total'] });
  g.output('total');
  const bytes = gradientGraph(g.serialize().model, { loss: 'total', wrt: ['x'] });
  assert.ok(bytes instanceof Uint8Array);
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  assert.ok(session.outputNames.includes('loss') && session.outputNames.includes('x_grad'));
  const x = [1, 2, -1];
  const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from(x), [1, 3]) });
  const expectedLoss = x.reduce((s, xi, i) => s + (xi * w[i]!) ** 2, 0);
  assert.ok(Math.abs((out.loss!.data as Float32Array)[0]! - expectedLoss) < 1e-4);
  const grad = Array.from(out.x_grad!.data as Float32Array);
  grad.forEach((gi, i) => assert.ok(Math.abs(gi - 2 * x[i]! * w[i]! * w[i]!) < 1e-4, `grad[${i}] = ${gi}`));
});
