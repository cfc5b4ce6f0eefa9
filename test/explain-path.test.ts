// The path rule of integrated gradients (src/ops/explain-maps.ts PathRule) on one-dimensional paths whose
// integrals are known in closed form: its weights integrate constants exactly, without adaptive nodes it is the
// midpoint rule, and its bisections go where the gradient jumps (a ReLU-like kink), beating the midpoint rule
// with the same number of gradient evaluations.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PathRule } from '../src/ops/explain-maps.js';

/** Drives the rule the way explain.ts does (rounds of `round`), on a scalar score f with derivative df. */
function integrate(steps: number, f: (a: number) => number, df: (a: number) => number, round = 4): { value: number; alphas: number[] } {
  const rule = new PathRule(steps, round);
  rule.setEnds(f(0), f(1));
  while (!rule.done) {
    const alphas = rule.next(round);
    if (alphas.length === 0) break;
    for (const a of alphas) rule.add(a, f(a), Float32Array.of(df(a)), df(a));
  }
  return { value: rule.integral()[0]!, alphas: rule.alphas() };
}

const midpoint = (n: number, df: (a: number) => number) => Array.from({ length: n }, (_, k) => df((k + 0.5) / n)).reduce((s, v) => s + v, 0) / n;

describe('integrated gradients path rule', () => {
  it('uses exactly `steps` evaluations, all inside (0, 1), and integrates a constant gradient exactly', () => {
    for (const steps of [1, 2, 3, 7, 16, 64]) {
      const { value, alphas } = integrate(steps, (a) => 2.5 * a, () => 2.5);
      assert.equal(alphas.length, steps);
      assert.ok(alphas.every((a) => a > 0 && a < 1));
      assert.equal(new Set(alphas).size, steps, 'no node twice');
      assert.ok(Math.abs(value - 2.5) <= 1e-6, `steps ${steps}: ${value}`);
    }
  });

  it('one evaluation is the midpoint rule; a smooth path converges like it', () => {
    const f = (a: number) => Math.sin(3 * a), df = (a: number) => 3 * Math.cos(3 * a);
    assert.ok(Math.abs(integrate(1, f, df).value - midpoint(1, df)) <= 1e-6);
    const exact = Math.sin(3);
    for (const steps of [8, 32]) assert.ok(Math.abs(integrate(steps, f, df).value - exact) <= 2 * Math.abs(midpoint(steps, df) - exact) + 1e-6);
  });

  it('bisects where the gradient jumps: a kink path integrated far better than by the midpoint rule', () => {
    // score = ReLU-like pieces: slope 1 up to 0.3137, then −4 (a unit switching on along the path), then 2 after 0.77.
    const k1 = 0.3137, k2 = 0.7712;
    const df = (a: number) => (a < k1 ? 1 : a < k2 ? -4 : 2);
    const f = (a: number) => Math.min(a, k1) - 4 * Math.max(0, Math.min(a, k2) - k1) + 2 * Math.max(0, a - k2);
    const exact = f(1) - f(0);
    for (const steps of [16, 64]) {
      const { value, alphas } = integrate(steps, f, df);
      const errRule = Math.abs(value - exact);
      const errMid = Math.abs(midpoint(steps, df) - exact);
      assert.ok(errRule < errMid / 4, `steps ${steps}: rule ${errRule}, midpoint ${errMid}`);
      const near = alphas.filter((a) => Math.abs(a - k1) < 0.05 || Math.abs(a - k2) < 0.05).length;
      assert.ok(near > (steps / 2) * 0.1 * 2, `the adaptive nodes gather at the kinks (${near} of ${steps} within 0.05)`);
    }
  });
});
