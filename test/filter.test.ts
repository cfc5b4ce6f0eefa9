import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import request from 'supertest';
import { NAMED_KERNELS } from '../src/ops/kernels.js';
import { testApp, testPattern } from './helpers/app.js';

/** Independent reference: cross-correlation with edges replicated, then scale, |·| if asked, offset, clamp. */
function directConvolution(src: Buffer, w: number, h: number, ch: number, m: number[][], scale: number, offset: number, abs: boolean): Buffer {
  const out = Buffer.alloc(w * h * ch);
  const kh = m.length, kw = m[0]!.length;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < ch; c++) {
    let s = 0;
    for (let j = 0; j < kh; j++) for (let i = 0; i < kw; i++) {
      const yy = Math.min(h - 1, Math.max(0, y + j - (kh >> 1)));
      const xx = Math.min(w - 1, Math.max(0, x + i - (kw >> 1)));
      s += m[j]![i]! * src[(yy * w + xx) * ch + c]!;
    }
    let v = s / scale;
    if (abs) v = Math.abs(v);
    out[(y * w + x) * ch + c] = Math.max(0, Math.min(255, Math.round(v + offset)));
  }
  return out;
}

function maxDiff(a: Buffer, b: Buffer): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function decodePng(body: Buffer) {
  const meta = await sharp(body).metadata();
  const s = meta.channels === 1 ? sharp(body).toColourspace('b-w') : sharp(body);
  const { data, info } = await s.raw().toBuffer({ resolveWithObject: true });
  return { data, info };
}

describe('POST /v1/filter', () => {
  const { app } = testApp();

  for (const [name, spec] of Object.entries(NAMED_KERNELS)) {
    it(`named kernel ${name} matches a direct convolution within 1 grey level`, async () => {
      const W = 23, H = 17;
      const { raw, png } = await testPattern(W, H);
      const res = await request(app).post(`/v1/filter?kernel=${name}`).attach('image', png, 'p.png').buffer(true).expect(200);
      assert.equal(res.headers['content-type'], 'image/png');
      const { data, info } = await decodePng(res.body as Buffer);
      assert.deepEqual([info.width, info.height, info.channels], [W, H, 3]);
      const sum = spec.matrix.flat().reduce((a, b) => a + b, 0);
      const scale = spec.scale ?? (sum === 0 ? 1 : sum);
      const expected = directConvolution(raw, W, H, 3, spec.matrix, scale, 0, sum === 0);
      assert.ok(maxDiff(data, expected) <= 1, `max difference ${maxDiff(data, expected)}`);
    });
  }

  it('zero-sum kernels give a visible (non-black) result on an image with edges', async () => {
    const { png } = await testPattern(32, 32);
    const res = await request(app).post('/v1/filter?kernel=edge-2').attach('image', png, 'p.png').buffer(true).expect(200);
    const { data } = await decodePng(res.body as Buffer);
    const bright = data.filter((v) => v > 64).length;
    assert.ok(bright > data.length * 0.05, `only ${bright} bright values`);
  });

  it('custom kernel from a form field with scale, offset and grayscale', async () => {
    const W = 15, H = 11;
    const { png } = await testPattern(W, H);
    const m = [[0, 0, 0, 0, 0], [0, 1, 2, 1, 0], [0, 2, -3, 2, 0], [0, 1, 2, 1, 0], [0, 0, 0, 0, 0]];
    const res = await request(app).post('/v1/filter')
      .field('kernel', JSON.stringify(m)).field('scale', '4').field('offset', '10').field('grayscale', 'true')
      .attach('image', png, 'p.png').buffer(true).expect(200);
    const { data, info } = await decodePng(res.body as Buffer);
    assert.equal(info.channels, 1);
    const grey = (await sharp(png).greyscale().toColourspace('b-w').raw().toBuffer());
    const expected = directConvolution(grey, W, H, 1, m, 4, 10, false);
    assert.ok(maxDiff(data, expected) <= 1, `max difference ${maxDiff(data, expected)}`);
  });

  it('1×1 and rectangular custom kernels work', async () => {
    const W = 9, H = 7;
    const { raw, png } = await testPattern(W, H);
    for (const m of [[[0.5]], [[1, 0, -1]], [[1], [2], [1]]]) {
      const res = await request(app).post('/v1/filter').query({ kernel: JSON.stringify(m), abs: 'false' }).attach('image', png, 'p.png').buffer(true).expect(200);
      const { data } = await decodePng(res.body as Buffer);
      const sum = m.flat().reduce((a, b) => a + b, 0);
      const expected = directConvolution(raw, W, H, 3, m, sum === 0 ? 1 : sum, 0, false);
      assert.ok(maxDiff(data, expected) <= 1, `kernel ${JSON.stringify(m)}: max difference ${maxDiff(data, expected)}`);
    }
  });

  const invalid: [string, string, RegExp][] = [
    ['even size', '[[1,1],[1,1]]', /odd/],
    ['ragged rows', '[[1,2,3],[1,2],[1,2,3]]', /Ragged/],
    ['NaN entry', '[[1,2,3],[1,"NaN",3],[1,2,3]]', /finite/],
    ['null entry', '[[1,2,3],[1,null,3],[1,2,3]]', /finite/],
    ['too large', JSON.stringify(Array.from({ length: 17 }, () => Array(17).fill(1))), /largest allowed is 15×15/],
    ['not JSON', '[[1,2', /not valid JSON/],
    ['empty', '[]', /non-empty/],
    ['unknown name', 'blurry', /Unknown kernel 'blurry'/],
  ];
  for (const [label, kernel, pattern] of invalid) {
    it(`rejects a bad kernel (${label}) with 400 and the reason`, async () => {
      const { png } = await testPattern(8, 8);
      const res = await request(app).post('/v1/filter').field('kernel', kernel).attach('image', png, 'p.png').expect(400);
      assert.match(res.headers['content-type'], /application\/problem\+json/);
      assert.match(res.body.detail, pattern);
      assert.match(res.body.type, /(invalid|unknown)-kernel$/);
    });
  }

  it('GET /v1/kernels lists every named kernel with its matrix', async () => {
    const res = await request(app).get('/v1/kernels').expect(200);
    const names = res.body.kernels.map((k: { name: string }) => k.name);
    assert.deepEqual(names.sort(), Object.keys(NAMED_KERNELS).sort());
    const edge1 = res.body.kernels.find((k: { name: string }) => k.name === 'edge-1');
    assert.deepEqual(edge1.matrix, [[1, 0, -1], [0, 0, 0], [-1, 0, 1]]);
    assert.equal(edge1.zero_sum, true);
  });
});
