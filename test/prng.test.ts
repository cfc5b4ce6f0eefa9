// util/prng.ts: determinism per seed, the fast fill against the one-at-a-time generator, and the moments of
// the uniform and normal helpers.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Prng } from '../src/util/prng.js';

describe('Prng (sfc32)', () => {
  it('the same seed gives the same sequence; different seeds give different ones', () => {
    const a = new Prng(42), b = new Prng(42), c = new Prng(43);
    const xs = Array.from({ length: 64 }, () => a.nextU32());
    assert.deepEqual(Array.from({ length: 64 }, () => b.nextU32()), xs);
    assert.notDeepEqual(Array.from({ length: 64 }, () => c.nextU32()), xs);
    assert.ok(xs.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32));
  });

  it('fillUniform (state in locals) continues exactly the stream nextU32 produces', () => {
    const fast = new Prng(7), slow = new Prng(7);
    fast.nextU32(); slow.nextU32();
    const out = fast.fillUniform(new Float32Array(1000), -3, 5);
    for (let i = 0; i < out.length; i++) assert.equal(out[i], Math.fround(-3 + slow.nextU32() * (8 / 4294967296)));
    assert.equal(fast.nextU32(), slow.nextU32(), 'the state is written back after the fill');
  });

  it('uniform() and int(n): the range and the first two moments', () => {
    const rng = new Prng(3);
    const n = 20000;
    let s = 0, s2 = 0;
    const counts = new Array<number>(10).fill(0);
    for (let i = 0; i < n; i++) {
      const u = rng.uniform();
      assert.ok(u >= 0 && u < 1);
      s += u; s2 += u * u;
      counts[rng.int(10)]!++;
    }
    assert.ok(Math.abs(s / n - 0.5) < 0.01, `mean ${s / n}`);
    assert.ok(Math.abs(s2 / n - (s / n) ** 2 - 1 / 12) < 0.005, 'variance 1/12');
    // Each of 10 bins expects 2000 (σ ≈ 42): 5σ bounds.
    for (const k of counts) assert.ok(Math.abs(k - n / 10) < 220, `bin count ${k}`);
  });

  it('normal(mean, std) and fillNormal: mean, standard deviation, and the 1σ / 2σ masses of a Gaussian', () => {
    const rng = new Prng(5);
    const x = rng.fillNormal(new Float32Array(40000), 2, 3);
    let s = 0, s2 = 0, in1 = 0, in2 = 0;
    for (const v of x) {
      s += v; s2 += v * v;
      const z = Math.abs((v - 2) / 3);
      if (z < 1) in1++;
      if (z < 2) in2++;
    }
    const mean = s / x.length;
    const std = Math.sqrt(s2 / x.length - mean * mean);
    assert.ok(Math.abs(mean - 2) < 0.05, `mean ${mean}`);
    assert.ok(Math.abs(std - 3) < 0.05, `std ${std}`);
    assert.ok(Math.abs(in1 / x.length - 0.6827) < 0.01, `P(|z|<1) = ${in1 / x.length}`);
    assert.ok(Math.abs(in2 / x.length - 0.9545) < 0.006, `P(|z|<2) = ${in2 / x.length}`);
  });

  it('permutation(n) is a permutation, seeded; asFunction draws the same stream as uniform()', () => {
    const p = new Prng(9).permutation(1000);
    assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i));
    assert.deepEqual(new Prng(9).permutation(1000), p);
    assert.ok(p.some((v, i) => v !== i));
    const f = new Prng(11).asFunction(), g = new Prng(11);
    for (let i = 0; i < 10; i++) assert.equal(f(), g.uniform());
  });
});
