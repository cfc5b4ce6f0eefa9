// The JavaScript JPEG header reader of the classify path, against libvips' own reader (sharp's metadata) as the
// oracle: the same size and EXIF orientation, the same problems for bad uploads, the same decoded pixels.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { decodeImage, decodeProbed, probeImage, probeUpload } from '../src/image/io.js';
import { readJpegHeader } from '../src/image/jpeg-header.js';
import { ProblemError } from '../src/util/problem.js';
import { Prng } from '../src/util/prng.js';

const limits = { maxInputPixels: 4_000_000, decodeTimeoutMs: 10_000 };

function pixels(width: number, height: number, channels: 1 | 3, seed: number): Buffer {
  const rng = new Prng(seed);
  return Buffer.from(Array.from({ length: width * height * channels }, () => rng.int(256)));
}

const jpegOf = (w: number, h: number, channels: 1 | 3, seed: number) => sharp(pixels(w, h, channels, seed), { raw: { width: w, height: h, channels } });

/** A JPEG with an EXIF block written by hand: byte order `order`, IFD0 holding an orientation SHORT (and a filler tag first). */
async function withHandWrittenExif(order: 'II' | 'MM', orientation: number): Promise<Buffer> {
  const base = await jpegOf(40, 30, 3, 9).jpeg().toBuffer();
  const tiff = Buffer.alloc(8 + 2 + 2 * 12 + 4);
  const w16 = (v: number, o: number) => (order === 'II' ? tiff.writeUInt16LE(v, o) : tiff.writeUInt16BE(v, o));
  const w32 = (v: number, o: number) => (order === 'II' ? tiff.writeUInt32LE(v, o) : tiff.writeUInt32BE(v, o));
  tiff.write(order, 0, 'latin1');
  w16(42, 2); w32(8, 4); w16(2, 8);
  w16(0x011a, 10); w16(3, 12); w32(1, 14); w16(72, 18); // XResolution-like filler entry
  w16(0x0112, 22); w16(3, 24); w32(1, 26); w16(orientation, 30);
  const payload = Buffer.concat([Buffer.from('Exif\0\0', 'latin1'), tiff]);
  const app1 = Buffer.concat([Buffer.from([0xff, 0xe1]), Buffer.from([(payload.length + 2) >> 8, (payload.length + 2) & 0xff]), payload]);
  return Buffer.concat([base.subarray(0, 2), app1, base.subarray(2)]);
}

/** The frame header (SOF) of `jpeg` rewritten to claim `width`×`height`. */
function claimSize(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let at = 2; at < out.length - 9;) {
    const marker = out[at + 1]!;
    if (marker === 0xc0 || marker === 0xc2) {
      out.writeUInt16BE(height, at + 5);
      out.writeUInt16BE(width, at + 7);
      return out;
    }
    at += 2 + out.readUInt16BE(at + 2);
  }
  throw new Error('no frame header');
}

async function problemOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ProblemError, String(e));
    return { status: e.status, body: e.toBody('/x') };
  }
  return 'no problem';
}

describe('JPEG header reader (classify path)', () => {
  it('size and orientation agree with libvips for baseline, progressive, grey, EXIF 1…8 and hand-written II/MM EXIF', async () => {
    const cases: [string, Buffer][] = [
      ['baseline', await jpegOf(97, 61, 3, 1).jpeg({ quality: 90 }).toBuffer()],
      ['progressive', await jpegOf(64, 80, 3, 2).jpeg({ progressive: true }).toBuffer()],
      ['grey', await jpegOf(50, 20, 1, 3).jpeg().toBuffer()],
      ['4:4:4 mozjpeg', await jpegOf(33, 17, 3, 4).jpeg({ chromaSubsampling: '4:4:4', mozjpeg: true }).toBuffer()],
      ['icc + exif', await jpegOf(30, 40, 3, 5).withMetadata({ orientation: 3 }).keepIccProfile().jpeg().toBuffer()],
    ];
    for (let o = 1; o <= 8; o++) cases.push([`orientation ${o}`, await jpegOf(45, 25, 3, 10 + o).jpeg().withMetadata({ orientation: o }).toBuffer()]);
    for (const order of ['II', 'MM'] as const) for (const o of [1, 6, 8]) cases.push([`hand ${order} ${o}`, await withHandWrittenExif(order, o)]);
    for (const [name, bytes] of cases) {
      const header = readJpegHeader(bytes);
      assert.ok(header, `${name}: read`);
      const meta = await sharp(bytes).metadata();
      assert.deepEqual(header, { width: meta.width, height: meta.height, ...(meta.orientation !== undefined ? { orientation: meta.orientation } : {}) }, name);
      // And the decode that follows gives the pixels of the full decode (rotation included).
      const full = await decodeImage(bytes, limits, { resize: { width: 32, height: 32, mode: 'crop' } });
      const fast = await decodeProbed(bytes, await probeUpload(bytes, limits), limits, { resize: { width: 32, height: 32, mode: 'crop' } });
      assert.ok(fast.data.equals(full.data) && fast.width === full.width && fast.height === full.height, `${name}: pixels`);
    }
  });

  it('leaves to libvips what it does not read: other formats, CMYK, damaged or truncated headers', async () => {
    const jpeg = await jpegOf(20, 20, 3, 6).jpeg().toBuffer();
    const others = [
      await jpegOf(20, 20, 3, 6).png().toBuffer(),
      await jpegOf(20, 20, 3, 6).toColourspace('cmyk').jpeg().toBuffer(),
      jpeg.subarray(0, 10),
      Buffer.concat([jpeg.subarray(0, 2), Buffer.from([0x00, 0x11]), jpeg.subarray(2)]),
      Buffer.alloc(0),
    ];
    for (const [i, bytes] of others.entries()) assert.equal(readJpegHeader(bytes), undefined, `case ${i}`);
  });

  it('bad uploads get the same problems as from libvips\' probe (too many pixels, zero size, not an image)', async () => {
    const jpeg = await jpegOf(20, 20, 3, 7).jpeg().toBuffer();
    const uploads = [claimSize(jpeg, 4000, 2000), claimSize(jpeg, 0, 20), Buffer.from('not an image'), Buffer.alloc(0), jpeg.subarray(0, 10)];
    for (const [i, bytes] of uploads.entries()) {
      assert.deepEqual(await problemOf(probeUpload(bytes, limits)), await problemOf(probeImage(bytes, limits)), `upload ${i}`);
    }
    assert.deepEqual(await problemOf(probeUpload(uploads[0]!, limits)).then((p) => (p as { status: number }).status), 413);
  });
});
