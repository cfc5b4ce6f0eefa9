// The fast paths of a classify request against plain oracles: top-k by one pass (vs sorting every class),
// decoding an upload that was already probed (vs the full decode), and preprocessing through a lookup table
// (vs the formulas of each mode written out here).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { decodeImage, decodeProbed, probeImage } from '../src/image/io.js';
import { toInputTensor } from '../src/image/preprocess.js';
import { topK } from '../src/ops/classify.js';
import { Prng } from '../src/util/prng.js';

const labels = Array.from({ length: 1000 }, (_, i) => ({ label: `c${i}` }));
const limits = { maxInputPixels: 50_000_000, decodeTimeoutMs: 20_000 };

/** The order topK promises: probability descending, ties by lower index. */
function sortedTopK(probs: Float32Array, k: number): number[] {
  return Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b).slice(0, k);
}

describe('classify request path', () => {
  it('top-k equals sorting every class, with ties and k from 1 to all classes', () => {
    const rng = new Prng(7);
    for (let trial = 0; trial < 40; trial++) {
      const n = trial < 20 ? 1000 : 7;
      // Few distinct values in half the trials: many ties, which must go lower index first.
      const probs = Float32Array.from({ length: n }, () => (trial % 2 ? rng.int(5) / 5 : rng.uniform()));
      for (const k of [1, 2, 5, n]) {
        assert.deepEqual(topK(probs, k, labels).map((p) => p.index), sortedTopK(probs, k), `trial ${trial}, k ${k}`);
      }
    }
    const top = topK(Float32Array.from([0.1, 0.7, 0.2]), 2, labels);
    assert.deepEqual(top.map((p) => [p.index, p.label]), [[1, 'c1'], [2, 'c2']]);
    assert.equal(top[0]!.probability, Float32Array.from([0.7])[0]);
  });

  it('decoding an already probed upload gives the pixels of the full decode, EXIF rotation and alpha included', async () => {
    const rng = new Prng(3);
    const W = 97;
    const H = 61;
    const rgb = Buffer.from(Array.from({ length: W * H * 3 }, () => rng.int(256)));
    const rgba = Buffer.from(Array.from({ length: W * H * 4 }, () => rng.int(256)));
    const uploads = [
      await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 90 }).toBuffer(),
      await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer(),
      await sharp(rgba, { raw: { width: W, height: H, channels: 4 } }).png().toBuffer(),
    ];
    for (const [i, bytes] of uploads.entries()) {
      for (const resize of [undefined, { width: 32, height: 32, mode: 'crop' as const }, { width: 40, height: 20, mode: 'squash' as const }]) {
        const full = await decodeImage(bytes, limits, { resize });
        const probed = await decodeProbed(bytes, await probeImage(bytes, limits), limits, { resize });
        assert.deepEqual({ ...probed, data: undefined }, { ...full, data: undefined }, `upload ${i}`);
        assert.ok(probed.data.equals(full.data), `upload ${i} pixels`);
      }
    }
    // The rotated JPEG really is rotated (orientation 6: 90° clockwise, width and height swap).
    const turned = await decodeProbed(uploads[1]!, await probeImage(uploads[1]!, limits), limits);
    assert.deepEqual([turned.width, turned.height], [H, W]);
  });

  it('preprocessing writes the values of each mode\'s formula (caffe BGR means, tf, torch)', () => {
    const rng = new Prng(11);
    const w = 13;
    const h = 9;
    const img = { data: Buffer.from(Array.from({ length: w * h * 3 }, () => rng.int(256))), width: w, height: h, channels: 3 as const };
    const formulas = {
      caffe: (p: number, c: number) => p - [103.939, 116.779, 123.68][c]!,
      tf: (p: number) => p / 127.5 - 1,
      torch: (p: number, c: number) => (p / 255 - [0.485, 0.456, 0.406][c]!) / [0.229, 0.224, 0.225][c]!,
    };
    for (const [spec, f] of Object.entries(formulas)) {
      const dst = new Float32Array(2 + 3 * w * h);
      toInputTensor(img, spec as keyof typeof formulas, dst, 2);
      const expected = new Float32Array(2 + 3 * w * h);
      for (let c = 0; c < 3; c++) {
        const src = spec === 'caffe' ? 2 - c : c;
        for (let i = 0; i < w * h; i++) expected[2 + c * w * h + i] = f(img.data[i * 3 + src]!, c);
      }
      assert.deepEqual(dst, expected, spec);
    }
  });
});
