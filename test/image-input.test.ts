import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import request from 'supertest';
import { testApp, testPattern } from './helpers/app.js';

const W = 20, H = 12;

async function encodings(): Promise<Record<string, Buffer>> {
  const { raw } = await testPattern(W, H);
  const img = () => sharp(raw, { raw: { width: W, height: H, channels: 3 } });
  const second = await sharp({ create: { width: W, height: H, channels: 3, background: '#ff0000' } }).png().toBuffer();
  const first = await img().png().toBuffer();
  return {
    jpeg: await img().jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer(),
    png: first,
    webp: await img().webp({ lossless: true }).toBuffer(),
    gif: await sharp([first, second], { join: { animated: true } }).gif().toBuffer(),
    tiff: await img().tiff({ compression: 'lzw' }).toBuffer(),
    avif: await img().avif({ lossless: true }).toBuffer(),
  };
}

/** Mean absolute difference between an identity-filtered output and the original pattern. */
async function meanDiffToPattern(body: Buffer): Promise<number> {
  const { raw } = await testPattern(W, H);
  const { data } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
  let s = 0;
  for (let i = 0; i < raw.length; i++) s += Math.abs(raw[i]! - data[i]!);
  return s / raw.length;
}

describe('image input and output', () => {
  const { app } = testApp({ maxUploadBytes: 200_000, maxInputPixels: 1_000_000 });

  it('accepts JPEG, PNG, WebP, GIF (first frame), TIFF and AVIF', async () => {
    for (const [fmt, bytes] of Object.entries(await encodings())) {
      const res = await request(app).post('/v1/filter?kernel=identity').attach('image', bytes, `x.${fmt}`).buffer(true);
      assert.equal(res.status, 200, `${fmt}: ${res.text}`);
      const meta = await sharp(res.body as Buffer).metadata();
      assert.deepEqual([meta.width, meta.height], [W, H], fmt);
      const tolerance = fmt === 'jpeg' || fmt === 'gif' ? 12 : 1;
      const diff = await meanDiffToPattern(res.body as Buffer);
      assert.ok(diff <= tolerance, `${fmt}: mean difference ${diff}`);
    }
  });

  it('accepts a raw image/* body', async () => {
    const { png } = await testPattern(W, H);
    const res = await request(app).post('/v1/filter?kernel=identity').set('Content-Type', 'image/png').send(png).buffer(true).expect(200);
    assert.ok((await meanDiffToPattern(res.body as Buffer)) <= 1);
  });

  it('encodes png (default), jpeg and webp by format parameter or Accept header', async () => {
    const { png } = await testPattern(W, H);
    const cases: [Record<string, string>, Record<string, string>, string, string][] = [
      [{}, {}, 'image/png', 'png'],
      [{ format: 'jpeg' }, {}, 'image/jpeg', 'jpeg'],
      [{ format: 'webp' }, {}, 'image/webp', 'webp'],
      [{}, { Accept: 'image/webp,image/*;q=0.8' }, 'image/webp', 'webp'],
      [{}, { Accept: 'image/jpeg' }, 'image/jpeg', 'jpeg'],
      [{ format: 'png' }, { Accept: 'image/jpeg' }, 'image/png', 'png'],
    ];
    for (const [query, headers, type, sharpFormat] of cases) {
      const res = await request(app).post('/v1/filter').query({ kernel: 'identity', ...query }).set(headers).attach('image', png, 'p.png').buffer(true).expect(200);
      assert.equal(res.headers['content-type'], type);
      assert.equal((await sharp(res.body as Buffer).metadata()).format, sharpFormat);
    }
    const bad = await request(app).post('/v1/filter').query({ kernel: 'identity', format: 'bmp' }).attach('image', png, 'p.png').expect(400);
    assert.match(bad.body.detail, /format must be one of png, jpeg, webp/);
  });

  it('applies EXIF orientation', async () => {
    const { raw } = await testPattern(W, H);
    const rotated = await sharp(raw, { raw: { width: W, height: H, channels: 3 } }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const res = await request(app).post('/v1/filter?kernel=identity').attach('image', rotated, 'r.jpg').buffer(true).expect(200);
    const meta = await sharp(res.body as Buffer).metadata();
    assert.deepEqual([meta.width, meta.height], [H, W]);
  });

  it('flattens transparency onto white', async () => {
    const transparent = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const res = await request(app).post('/v1/filter?kernel=identity').attach('image', transparent, 't.png').buffer(true).expect(200);
    const { data } = await sharp(res.body as Buffer).raw().toBuffer({ resolveWithObject: true });
    assert.ok([...data].every((v) => v === 255));
  });
});

describe('bad input answers 4xx problem+json and the server keeps serving', () => {
  const { app } = testApp({ maxUploadBytes: 200_000, maxInputPixels: 1_000_000 });

  /** A tiny PNG (signature, IHDR claiming width × height, an empty IDAT, IEND): a decompression-bomb header. */
  function pngHeader(width: number, height: number): Buffer {
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
    ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
    return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', Buffer.alloc(0)), chunk('IEND', Buffer.alloc(0))]);
  }

  function chunk(type: string, data: Buffer): Buffer {
    const typeAndData = Buffer.concat([Buffer.from(type), data]);
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(typeAndData));
    return Buffer.concat([len, typeAndData, crc]);
  }

  function crc32(buf: Buffer): number {
    let c = ~0;
    for (const b of buf) { c ^= b; for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1)); }
    return ~c >>> 0;
  }

  const cases: { name: string; send: (r: request.Test) => Promise<request.Response> | request.Test; status: number; type: string; detail?: RegExp }[] = [
    { name: 'zero bytes (raw body)', send: (r) => r.set('Content-Type', 'image/jpeg').send(Buffer.alloc(0)), status: 400, type: 'empty-image' },
    { name: 'zero-byte file (multipart)', send: (r) => r.attach('image', Buffer.alloc(0), 'e.png'), status: 400, type: 'empty-image' },
    { name: 'truncated JPEG', send: async (r) => { const { png } = await testPattern(64, 64); const jpg = await sharp(png).jpeg().toBuffer(); return r.attach('image', jpg.subarray(0, Math.floor(jpg.length / 2)), 't.jpg'); }, status: 422, type: 'undecodable-image' },
    { name: 'text sent as image/png', send: (r) => r.set('Content-Type', 'image/png').send(Buffer.from('this is not a picture')), status: 422, type: 'undecodable-image' },
    { name: 'wrong field name', send: async (r) => r.attach('picture', (await testPattern(4, 4)).png, 'p.png'), status: 400, type: 'unexpected-field', detail: /'picture'/ },
    { name: 'no file', send: (r) => r.field('kernel', 'identity'), status: 400, type: 'missing-image' },
    { name: 'no body at all', send: (r) => r, status: 400, type: 'missing-image' },
    { name: 'oversize bytes (multipart)', send: (r) => r.attach('image', Buffer.alloc(300_000, 1), 'big.png'), status: 413, type: 'upload-too-large' },
    { name: 'oversize bytes (raw)', send: (r) => r.set('Content-Type', 'image/png').send(Buffer.alloc(300_000, 1)), status: 413, type: 'upload-too-large' },
    { name: 'oversize dimensions (PNG header claiming 100k×100k)', send: (r) => r.attach('image', pngHeader(100_000, 100_000), 'bomb.png'), status: 413, type: 'image-too-many-pixels', detail: /100000×100000/ },
    { name: 'unsupported content type', send: (r) => r.set('Content-Type', 'application/pdf').send(Buffer.from('%PDF-1.4')), status: 415, type: 'unsupported-content-type' },
    { name: 'unsupported image format (SVG)', send: (r) => r.attach('image', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'), 'x.svg'), status: 415, type: 'unsupported-image-format', detail: /'svg'/ },
    { name: 'truncated multipart body', send: (r) => r.set('Content-Type', 'multipart/form-data; boundary=XYZ').send('--XYZ\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\nabc'), status: 400, type: 'invalid-upload' },
  ];

  for (const c of cases) {
    it(`${c.name} → ${c.status} ${c.type}`, async () => {
      const res = await c.send(request(app).post('/v1/filter?kernel=identity'));
      assert.equal(res.status, c.status, res.text);
      assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
      assert.equal(res.body.type, `https://convserve.dev/problems/${c.type}`);
      assert.equal(res.body.status, c.status);
      assert.ok(res.body.detail.length > 10);
      if (c.detail) assert.match(res.body.detail, c.detail);
      assert.ok(res.headers['x-request-id']);
      await request(app).get('/healthz').expect(200);
    });
  }

  it('unknown route → 404 problem+json', async () => {
    const res = await request(app).get('/v1/nope').expect(404);
    assert.match(res.headers['content-type'] ?? '', /^application\/problem\+json/);
  });

  it('echoes a caller-supplied X-Request-Id', async () => {
    const res = await request(app).get('/healthz').set('X-Request-Id', 'abc-123').expect(200);
    assert.equal(res.headers['x-request-id'], 'abc-123');
  });
});
