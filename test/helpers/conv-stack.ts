// A small real ONNX model for engine tests: y = relu(conv3x3(x, W_i)) repeated `depth` times on [N,8,H,W]
// (deep enough to be measurably slow at large H×W), and its float64 reference.
import { GraphBuilder } from '../../src/onnx/builder.js';

export function convStack(path: string, depth: number, seed = 1): { weights: Float32Array[] } {
  const g = new GraphBuilder('stack');
  let x = g.input('input', 'float32', ['N', 8, 'H', 'W']);
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.3;
  const weights: Float32Array[] = [];
  for (let i = 0; i < depth; i++) {
    const w = Float32Array.from({ length: 8 * 8 * 9 }, rand);
    weights.push(w);
    const conv = g.node('Conv', [x, g.weight(`w${i}`, [8, 8, 3, 3], w)], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] });
    x = g.node('Relu', [conv], {}, { outputs: i === depth - 1 ? ['output'] : undefined });
  }
  g.output('output');
  g.save(path, { externalDataFile: `${path.split('/').pop()}.bin` });
  return { weights };
}

/** Direct reference for a conv3x3+relu stack (NCHW, zero padding), float64. */
export function convStackReference(x: Float32Array, n: number, h: number, w: number, weights: Float32Array[]): Float64Array {
  let cur = Float64Array.from(x);
  for (const W of weights) {
    const out = new Float64Array(cur.length);
    for (let b = 0; b < n; b++) for (let o = 0; o < 8; o++) for (let y = 0; y < h; y++) for (let xx = 0; xx < w; xx++) {
      let acc = 0;
      for (let i = 0; i < 8; i++) for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) {
        const yy = y + ky - 1, xc = xx + kx - 1;
        if (yy < 0 || yy >= h || xc < 0 || xc >= w) continue;
        acc += W[((o * 8 + i) * 3 + ky) * 3 + kx]! * cur[((b * 8 + i) * h + yy) * w + xc]!;
      }
      out[((b * 8 + o) * h + y) * w + xx] = Math.max(0, acc);
    }
    cur = out;
  }
  return cur;
}

/** Largest absolute difference between an engine output and the reference. */
export function maxAbsError(actual: Float32Array, expected: Float64Array): number {
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(actual[i]! - expected[i]!));
  return m;
}
