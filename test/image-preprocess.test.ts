// image/preprocess.ts: every preprocessing mode against a direct per-pixel computation of its documented
// formula (Keras preprocess_input, torchvision's ImageNet normalisation, x·scale + offset), its inverse
// against the inverse formula, the round trip, the spec parser, and manifests recording specs.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { decodeImage } from '../src/image/io.js';
import { type PreprocessingSpec, deprocess, parsePreprocessing, preprocess } from '../src/image/preprocess.js';
import type { RawImage } from '../src/image/raw.js';
import { resizeForModel } from '../src/image/resize.js';
import { type Manifest, readManifest, writeManifest } from '../src/models/manifest.js';
import { Prng } from '../src/util/prng.js';
import { ProblemError } from '../src/util/problem.js';
import { tempDir } from './helpers/app.js';

function randomImage(width: number, height: number, channels: 1 | 3, seed: number): RawImage {
  const rng = new Prng(seed);
  const data = Buffer.alloc(width * height * channels);
  for (let i = 0; i < data.length; i++) data[i] = rng.nextU32() & 255;
  return { data, width, height, channels };
}

/** The documented formula of each spec: tensor value of pixel value p in tensor channel c, and its inverse. */
interface Oracle { spec: PreprocessingSpec; channels: (1 | 3)[]; bgr: boolean; fwd: (p: number, c: number) => number; inv: (v: number, c: number) => number }
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const BGR_MEANS = [103.939, 116.779, 123.68];
const ORACLES: Oracle[] = [
  { spec: 'caffe', channels: [3], bgr: true, fwd: (p, c) => p - BGR_MEANS[c]!, inv: (v, c) => v + BGR_MEANS[c]! },
  { spec: 'tf', channels: [1, 3], bgr: false, fwd: (p) => p / 127.5 - 1, inv: (v) => (v + 1) * 127.5 },
  { spec: 'torch', channels: [3], bgr: false, fwd: (p, c) => (p / 255 - MEAN[c]!) / STD[c]!, inv: (v, c) => (v * STD[c]! + MEAN[c]!) * 255 },
  { spec: 'raw', channels: [1, 3], bgr: false, fwd: (p) => p, inv: (v) => v },
  { spec: 'mnist', channels: [1], bgr: false, fwd: (p) => p / 255, inv: (v) => v * 255 },
  { spec: 'rescale:1/255', channels: [1, 3], bgr: false, fwd: (p) => p / 255, inv: (v) => v * 255 },
  { spec: 'rescale:1/127.5:-1', channels: [1, 3], bgr: false, fwd: (p) => p / 127.5 - 1, inv: (v) => (v + 1) * 127.5 },
  { spec: 'rescale:-0.02:3', channels: [1, 3], bgr: false, fwd: (p) => 3 - 0.02 * p, inv: (v) => (3 - v) / 0.02 },
];

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b));
const clipTrunc = (v: number) => Math.max(0, Math.min(255, Math.trunc(v)));
const lumaOf = (img: RawImage, i: number) => img.channels === 1 ? img.data[i]! : (299 * img.data[i * 3]! + 587 * img.data[i * 3 + 1]! + 114 * img.data[i * 3 + 2]!) / 1000;

describe('preprocessing table: toTensor against the formulas, fromTensor its inverse', () => {
  const W = 13, H = 7, plane = W * H;
  for (const o of ORACLES) {
    for (const channels of o.channels) {
      it(`${o.spec}, ${channels} channel(s): toTensor = the formula per pixel, fromTensor(toTensor(x)) = x within rounding`, () => {
        const img = randomImage(W, H, channels, 7 + channels);
        // mnist's auto polarity would invert a mostly-light random image: this is the plain map.
        const x = preprocess(img, o.spec, { channels, invert: 'false' });
        assert.deepEqual([x.c, x.h, x.w], [channels, H, W]);
        for (let c = 0; c < channels; c++) {
          const src = o.bgr ? 2 - c : c;
          for (let i = 0; i < plane; i++) {
            const want = o.fwd(img.data[i * channels + src]!, c);
            assert.ok(close(x.data[c * plane + i]!, want), `${o.spec} c${c} px${i}: ${x.data[c * plane + i]} vs ${want}`);
          }
        }
        const back = deprocess(x, o.spec);
        assert.deepEqual([back.width, back.height, back.channels], [W, H, channels]);
        let maxDiff = 0;
        for (let i = 0; i < img.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(back.data[i]! - img.data[i]!));
        assert.ok(maxDiff <= 1, `${o.spec}: round trip off by ${maxDiff}`);
      });

      it(`${o.spec}, ${channels} channel(s): fromTensor of any tensor = the inverse formula, clipped and truncated`, () => {
        const rng = new Prng(99);
        // Tensor values spread over (and beyond) the image of 0…255 under the map, so clipping is exercised.
        const lo = Math.min(o.fwd(-40, 0), o.fwd(300, 0));
        const hi = Math.max(o.fwd(-40, 0), o.fwd(300, 0));
        const data = rng.fillUniform(new Float32Array(channels * plane), lo, hi);
        const img = deprocess({ data, c: channels, h: H, w: W }, o.spec);
        let clipped = 0;
        for (let c = 0; c < channels; c++) {
          const dst = o.bgr ? 2 - c : c;
          for (let i = 0; i < plane; i++) {
            const v = o.inv(data[c * plane + i]!, c);
            if (v < 0 || v > 255) clipped++;
            const got = img.data[i * channels + dst]!;
            // The test's inverse is written differently from the module's: allow a 1-ulp disagreement at an integer.
            assert.ok(got === clipTrunc(v) || Math.abs(v - Math.round(v)) < 1e-3, `${o.spec} c${c} px${i}: ${got} vs ${v}`);
          }
        }
        assert.ok(clipped > 0, 'some values were out of range');
      });
    }
  }

  it('a 3-channel mode gets RGB from a grey image only by refusing it (400 invalid-image), as before', () => {
    const grey = randomImage(4, 4, 1, 1);
    assert.throws(() => preprocess(grey, 'caffe'), (e: unknown) => e instanceof ProblemError && e.status === 400 && e.slug === 'invalid-image');
  });

  it('a 1-channel tensor from an RGB image uses Rec. 601 luma (tf on a grey model)', () => {
    const img = randomImage(W, H, 3, 5);
    const x = preprocess(img, 'tf', { channels: 1 });
    for (let i = 0; i < plane; i++) assert.ok(close(x.data[i]!, lumaOf(img, i) / 127.5 - 1));
  });

  it('mnist: auto inverts a mostly light image (dark digit on white) and not a dark one; true/false force it', () => {
    const light: RawImage = { data: Buffer.alloc(plane * 3, 230), width: W, height: H, channels: 3 };
    light.data[0] = 10; light.data[1] = 20; light.data[2] = 30;
    const dark: RawImage = { data: Buffer.alloc(plane, 20), width: W, height: H, channels: 1 };
    const auto = preprocess(light, 'mnist');
    assert.ok(close(auto.data[0]!, (255 - lumaOf(light, 0)) / 255));
    assert.ok(close(auto.data[5]!, (255 - 230) / 255));
    assert.ok(close(preprocess(dark, 'mnist').data[3]!, 20 / 255));
    assert.ok(close(preprocess(dark, 'mnist', { invert: 'true' }).data[3]!, 235 / 255));
    assert.ok(close(preprocess(light, 'mnist', { invert: 'false' }).data[5]!, 230 / 255));
    // Polarity belongs to mnist only: tf on a light grey image is not inverted.
    assert.ok(close(preprocess(light, 'tf', { channels: 1 }).data[5]!, 230 / 127.5 - 1));
  });

  it('a mode cannot make a tensor with a channel count it is not defined for', () => {
    assert.throws(() => preprocess(randomImage(4, 4, 3, 2), 'caffe', { channels: 1 }), /caffe.*1-channel/);
    assert.throws(() => deprocess({ data: new Float32Array(16), c: 1, h: 4, w: 4 }, 'torch'), /torch.*1-channel/);
  });
});

describe('parsePreprocessing: accepted and rejected specs', () => {
  for (const spec of ['caffe', 'tf', 'mnist', 'torch', 'raw', 'rescale:1/255', 'rescale:0.5', 'rescale:1/127.5:-1', 'rescale:-2', 'rescale:1e-3:.5', 'rescale:2:1/2', 'rescale:+3:-0.25']) {
    it(`accepts '${spec}'`, () => assert.equal(parsePreprocessing(spec).spec, spec));
  }
  it('rescale scale and offset are numbers or fractions: x·scale + offset', () => {
    const img = randomImage(5, 3, 3, 4);
    for (const [spec, scale, offset] of [['rescale:2:1/2', 2, 0.5], ['rescale:1e-3:.5', 0.001, 0.5], ['rescale:3/4', 0.75, 0]] as const) {
      const x = preprocess(img, spec);
      for (let c = 0; c < 3; c++) for (let i = 0; i < 15; i++) assert.ok(close(x.data[c * 15 + i]!, img.data[i * 3 + c]! * scale + offset));
    }
  });

  const rejected: [string, RegExp][] = [
    ['', /empty preprocessing; expected caffe, tf, mnist, torch, raw or rescale/],
    ['foo', /unknown preprocessing 'foo'; expected caffe, tf/],
    ['Caffe', /unknown preprocessing 'Caffe' \(did you mean 'caffe'\?\)/],
    ['RESCALE:1', /did you mean 'rescale:<scale>'/],
    ['rescale', /did you mean 'rescale:<scale>'/],
    ['rescale:', /'rescale:': rescale needs a scale/],
    ['rescale:0', /the scale must be non-zero/],
    ['rescale:0/5', /the scale must be non-zero/],
    ['rescale:1/0', /scale '1\/0' divides by zero/],
    ['rescale:abc', /scale 'abc' is not a number or a fraction/],
    ['rescale: 1', /scale ' 1' is not a number/],
    ['rescale:1/2/3', /scale '1\/2\/3' has more than one '\/'/],
    ['rescale:1:', /offset '' is not a number/],
    ['rescale:1:x', /offset 'x' is not a number/],
    ['rescale:1:2:3', /at most a scale and an offset/],
    ['rescale:1e999', /scale '1e999' is not finite/],
    ['tf ', /unknown preprocessing 'tf '/],
  ];
  for (const [spec, message] of rejected) {
    it(`rejects '${spec}' with a precise 400`, () => {
      assert.throws(() => parsePreprocessing(spec), (e: unknown) => {
        assert.ok(e instanceof ProblemError, String(e));
        assert.equal(e.status, 400);
        assert.equal(e.slug, 'invalid-preprocessing');
        assert.match(e.detail, message);
        return true;
      });
    });
  }
});

describe('manifests record a preprocessing spec', () => {
  const manifest = (preprocessing: string, channels: 1 | 3): Record<string, unknown> => ({
    schema: 1, name: 'm', architecture: 'imported', input: { height: 8, width: 8, channels }, output: { classes: 2 },
    preprocessing, weights: { provenance: 'trained' }, files: { sha256: {} }, created_at: '2026-01-01T00:00:00.000Z',
  });
  const folderWith = (m: Record<string, unknown>) => {
    const dir = join(tempDir(), 'm');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m));
    return dir;
  };

  it('old manifests (caffe, tf, mnist) stay readable, including the committed mnist-cnn folder', () => {
    assert.equal(readManifest(folderWith(manifest('caffe', 3))).preprocessing, 'caffe');
    assert.equal(readManifest(folderWith(manifest('tf', 3))).preprocessing, 'tf');
    assert.equal(readManifest(folderWith(manifest('mnist', 1))).preprocessing, 'mnist');
    const committed = JSON.parse(readFileSync(join('models', 'mnist-cnn', 'manifest.json'), 'utf8'));
    assert.equal(readManifest(join('models', 'mnist-cnn')).preprocessing, committed.preprocessing);
  });

  it('new specs are written and read back as given', () => {
    for (const [spec, channels] of [['torch', 3], ['raw', 1], ['rescale:1/255', 3], ['rescale:1/127.5:-1', 1]] as const) {
      const dir = folderWith(manifest('caffe', 3));
      const m: Manifest = { ...readManifest(dir), preprocessing: spec, input: { name: 'input', height: 8, width: 8, channels } };
      writeManifest(dir, m);
      assert.equal(readManifest(dir).preprocessing, spec);
      assert.equal(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')).preprocessing, spec);
    }
  });

  it('a bad spec or a spec that does not fit the input channels is a precise read error', () => {
    assert.throws(() => readManifest(folderWith(manifest('rescale:1/0', 3))), /manifest\.json: preprocessing: 'rescale:1\/0': scale '1\/0' divides by zero/);
    assert.throws(() => readManifest(folderWith(manifest('bgr', 3))), /preprocessing: unknown preprocessing 'bgr'/);
    assert.throws(() => readManifest(folderWith(manifest('mnist', 3))), /input\.channels: 'mnist' preprocessing needs 1 input channel\(s\); the input has 3/);
    assert.throws(() => readManifest(folderWith(manifest('torch', 1))), /input\.channels: 'torch' preprocessing needs 3/);
  });
});

describe('resize to a model input: one definition for decode-time and in-memory resizing', () => {
  it('decoding with resize equals decoding then resizeForModel (PNG: no shrink-on-load), crop and squash', async () => {
    const img = randomImage(61, 40, 3, 11);
    const png = await sharp(img.data, { raw: { width: 61, height: 40, channels: 3 } }).png().toBuffer();
    const limits = { maxInputPixels: 1e6, decodeTimeoutMs: 10_000 };
    const full = await decodeImage(png, limits);
    assert.deepEqual(full.data, img.data);
    for (const mode of ['crop', 'squash'] as const) {
      const atLoad = await decodeImage(png, limits, { resize: { width: 24, height: 20, mode } });
      const after = await resizeForModel(full, { width: 24, height: 20 }, mode);
      assert.deepEqual([atLoad.width, atLoad.height, after.width, after.height], [24, 20, 24, 20]);
      assert.deepEqual(atLoad.data, after.data, mode);
    }
  });

  it('squash is nearest-neighbour sampling, and an image already at the input size passes through', async () => {
    const img = randomImage(8, 6, 3, 12);
    assert.equal(await resizeForModel(img, { width: 8, height: 6 }, 'crop'), img);
    const up = await resizeForModel(img, { width: 16, height: 12 }, 'squash');
    // Doubling with nearest: output pixel (x, y) is input pixel (⌊x/2⌋, ⌊y/2⌋).
    for (let y = 0; y < 12; y++) for (let x = 0; x < 16; x++) for (let c = 0; c < 3; c++) {
      assert.equal(up.data[(y * 16 + x) * 3 + c], img.data[(Math.floor(y / 2) * 8 + Math.floor(x / 2)) * 3 + c]);
    }
  });
});
