// The Conv2D filter gradient built from forward convolutions (src/train/wasm-conv-grad.ts) against tfjs-cpu's own
// Conv2DBackpropFilter, on random shapes: strides 1 and 2 (and 3), 'same' and 'valid', odd sizes, batch > 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, tf } from '../src/train/backend.js';
import { conv2dFilterGradViaForward, needsForwardFilterGrad } from '../src/train/wasm-conv-grad.js';
import { Prng } from '../src/util/prng.js';

type Case = { n: number; h: number; w: number; ci: number; co: number; kh: number; kw: number; s: number; pad: 'same' | 'valid' };

function cases(): Case[] {
  const r = new Prng(7).asFunction();
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const out: Case[] = [];
  for (const s of [1, 2, 3]) {
    for (const pad of ['same', 'valid'] as const) {
      for (let k = 0; k < 3; k++) {
        const kh = int(1, 5);
        const kw = int(1, 5);
        out.push({ n: int(2, 5), h: int(kh + 1, 15) | 1, w: int(kw + 1, 14), ci: int(1, 6), co: int(1, 7), kh, kw, s, pad });
      }
    }
  }
  return out;
}

function relErr(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => a.sub(b).abs().max().dataSync()[0]! / Math.max(b.abs().max().dataSync()[0]!, 1e-12));
}

test('backend: wasm is selected and has no Conv2DBackpropFilter kernel of its own', async () => {
  const sel = await selectBackend();
  assert.equal(sel.backend, 'wasm');
  assert.equal(needsForwardFilterGrad('wasm'), true);
  assert.equal(needsForwardFilterGrad('cpu'), false);
});

test('Conv2D filter and input gradients on wasm equal tfjs-cpu stock gradients (≤ 1e-4 relative)', async () => {
  await selectBackend();
  let seed = 100;
  for (const c of cases()) {
    const x = tf.randomNormal([c.n, c.h, c.w, c.ci], 0, 1, 'float32', ++seed) as tf.Tensor4D;
    const f = tf.randomNormal([c.kh, c.kw, c.ci, c.co], 0, 1, 'float32', ++seed) as tf.Tensor4D;
    // A non-trivial upstream gradient: loss = Σ conv(x, f) · r for a random r.
    const oh = c.pad === 'same' ? Math.ceil(c.h / c.s) : Math.ceil((c.h - c.kh + 1) / c.s);
    const ow = c.pad === 'same' ? Math.ceil(c.w / c.s) : Math.ceil((c.w - c.kw + 1) / c.s);
    const rr = tf.randomNormal([c.n, oh, ow, c.co], 0, 1, 'float32', ++seed);
    const loss = (xx: tf.Tensor, ff: tf.Tensor) => tf.conv2d(xx as tf.Tensor4D, ff as tf.Tensor4D, c.s, c.pad).mul(rr).sum();
    await tf.setBackend('cpu');
    const [gxCpu, gfCpu] = tf.grads(loss)([x, f]);
    await tf.setBackend('wasm');
    const [gxWasm, gfWasm] = tf.grads(loss)([x, f]);
    const label = JSON.stringify(c);
    assert.deepEqual(gfWasm!.shape, [c.kh, c.kw, c.ci, c.co], label);
    const ef = relErr(gfWasm!, gfCpu!);
    const ex = relErr(gxWasm!, gxCpu!);
    assert.ok(ef <= 1e-4, `filter gradient ${label}: relative error ${ef}`);
    assert.ok(ex <= 1e-4, `input gradient ${label}: relative error ${ex}`);
    // The helper itself on the cpu backend (forward convs on cpu) against cpu's Conv2DBackpropFilter.
    await tf.setBackend('cpu');
    const viaFwd = conv2dFilterGradViaForward(x, rr as tf.Tensor4D, [c.kh, c.kw, c.ci, c.co], c.s, c.pad);
    const ec = relErr(viaFwd, gfCpu!);
    assert.ok(ec <= 1e-4, `forward-conv helper on cpu ${label}: relative error ${ec}`);
    await tf.setBackend('wasm');
    tf.dispose([x, f, rr, gxCpu!, gfCpu!, gxWasm!, gfWasm!, viaFwd]);
  }
});
