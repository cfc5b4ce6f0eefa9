// A JPEG's size and EXIF orientation read from its header in JavaScript: the classify path checks an upload before
// decoding it, and for the common case (a JPEG) this answers in microseconds on the request's own thread, where
// asking libvips costs a round trip through libuv's thread pool (≈ 0.6–1 ms, more on a busy machine). Anything
// this reader is not sure about answers undefined, and the caller asks libvips as before.

export interface JpegHeader {
  width: number;
  height: number;
  /** EXIF orientation 1…8, undefined without one (as sharp's metadata reports it). */
  orientation?: number;
}

/** Frame types libvips (libjpeg) decodes and that this reader understands: baseline, extended, progressive. */
const SOF_MARKERS = new Set([0xc0, 0xc1, 0xc2]);
/** Markers without a length field. */
const STANDALONE = (m: number) => m === 0x01 || (m >= 0xd0 && m <= 0xd7);
const EXIF_ID = Buffer.from('Exif\0\0', 'latin1');

/**
 * Width, height and EXIF orientation of an 8-bit baseline/extended/progressive JPEG with 1 or 3 components, from
 * the segments before its first scan; undefined for anything else (not a JPEG, other frame types, a damaged or
 * unusual header, several EXIF blocks) — the caller then uses libvips' reader.
 */
export function readJpegHeader(bytes: Buffer): JpegHeader | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let orientation: number | undefined;
  let exifBlocks = 0;
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return undefined;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) { at++; continue; } // fill byte
    if (STANDALONE(marker)) { at += 2; continue; }
    if (marker === 0xd8 || marker === 0xd9 || marker === 0xda) return undefined; // a scan or an end before any frame header
    const length = bytes.readUInt16BE(at + 2);
    const start = at + 4;
    const end = at + 2 + length;
    if (length < 2 || end > bytes.length) return undefined;
    if (marker === 0xe1 && length >= 2 + EXIF_ID.length && bytes.subarray(start, start + EXIF_ID.length).equals(EXIF_ID)) {
      if (++exifBlocks > 1) return undefined;
      const o = exifOrientation(bytes.subarray(start + EXIF_ID.length, end));
      if (o === null) return undefined;
      orientation = o;
    } else if (SOF_MARKERS.has(marker)) {
      if (length < 8) return undefined;
      const precision = bytes[start]!;
      const height = bytes.readUInt16BE(start + 1);
      const width = bytes.readUInt16BE(start + 3);
      const components = bytes[start + 5]!;
      if (precision !== 8 || (components !== 1 && components !== 3) || width === 0 || height === 0) return undefined;
      // EXIF comes before the frame header in every JPEG writer's layout; one after it would be missed here.
      return { width, height, ...(orientation !== undefined ? { orientation } : {}) };
    } else if (marker >= 0xc3 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return undefined; // lossless, hierarchical or arithmetic-coded frames: libvips decides
    }
    at = end;
  }
  return undefined;
}

/**
 * The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block: a number 1…8, undefined when absent, null
 * when the block is malformed or the value is out of range (the caller then defers to libvips).
 */
function exifOrientation(tiff: Buffer): number | undefined | null {
  if (tiff.length < 8) return null;
  const order = tiff.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return null;
  const le = order === 'II';
  const u16 = (o: number) => (le ? tiff.readUInt16LE(o) : tiff.readUInt16BE(o));
  const u32 = (o: number) => (le ? tiff.readUInt32LE(o) : tiff.readUInt32BE(o));
  if (u16(2) !== 42) return null;
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > tiff.length) return null;
  const count = u16(ifd);
  if (ifd + 2 + count * 12 > tiff.length) return null;
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + i * 12;
    if (u16(entry) !== 0x0112) continue;
    // SHORT, one value: stored in the first two bytes of the value field.
    if (u16(entry + 2) !== 3 || u32(entry + 4) !== 1) return null;
    const value = u16(entry + 8);
    return value >= 1 && value <= 8 ? value : null;
  }
  return undefined;
}
