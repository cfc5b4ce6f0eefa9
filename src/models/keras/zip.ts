// A small zip reader for `.keras` archives: the central directory gives each member's offset, sizes and CRC-32;
// members are stored or deflated (fflate inflates). Members are checked against their CRC so a damaged archive is
// reported as such instead of surfacing later as an HDF5 or JSON error. Zip64 sizes (members ≥ 4 GiB) are read.
import { inflateSync } from 'fflate';
import { KerasImportError } from './errors.js';

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
export const ZIP_SIGNATURE = Buffer.from([0x50, 0x4b, 0x03, 0x04]);

interface Member {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

/** The archive's member names, or a `truncated`/`corrupt` error when its directory cannot be read. */
export function zipMembers(zip: Buffer, label: string): Map<string, Member> {
  const eocd = findEocd(zip);
  if (eocd < 0) {
    throw new KerasImportError('truncated', `${label} is a zip without its end-of-archive record: the file is truncated (incomplete download or copy?)`, label);
  }
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const members = new Map<string, Member>();
  for (let i = 0; i < count; i++) {
    if (at + 46 > zip.length || zip.readUInt32LE(at) !== CENTRAL) {
      throw new KerasImportError('corrupt', `${label}: the zip directory is damaged (entry ${i + 1} of ${count})`, label);
    }
    const nameLen = zip.readUInt16LE(at + 28);
    const extraLen = zip.readUInt16LE(at + 30);
    const commentLen = zip.readUInt16LE(at + 32);
    const member: Member = {
      name: zip.toString('utf8', at + 46, at + 46 + nameLen),
      method: zip.readUInt16LE(at + 10),
      crc: zip.readUInt32LE(at + 16),
      compressedSize: zip.readUInt32LE(at + 20),
      size: zip.readUInt32LE(at + 24),
      localOffset: zip.readUInt32LE(at + 42),
    };
    applyZip64(member, zip.subarray(at + 46 + nameLen, at + 46 + nameLen + extraLen));
    members.set(member.name, member);
    at += 46 + nameLen + extraLen + commentLen;
  }
  return members;
}

/** The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes. */
function findEocd(zip: Buffer): number {
  for (let at = zip.length - 22; at >= Math.max(0, zip.length - 22 - 0xffff); at--) {
    if (zip.readUInt32LE(at) === EOCD) return at;
  }
  return -1;
}

/** Zip64 extended information (header 0x0001): the 64-bit values of the fields saturated at 0xffffffff, in order. */
function applyZip64(m: Member, extra: Buffer): void {
  for (let at = 0; at + 4 <= extra.length;) {
    const id = extra.readUInt16LE(at);
    const len = extra.readUInt16LE(at + 2);
    if (id === 0x0001) {
      let p = at + 4;
      const next = () => { const v = Number(extra.readBigUInt64LE(p)); p += 8; return v; };
      if (m.size === 0xffffffff) m.size = next();
      if (m.compressedSize === 0xffffffff) m.compressedSize = next();
      if (m.localOffset === 0xffffffff) m.localOffset = next();
      return;
    }
    at += 4 + len;
  }
}

/** One member's bytes, inflated and CRC-checked. */
export function zipMember(zip: Buffer, m: Member, label: string): Uint8Array {
  const where = `${label}: member ${m.name}`;
  if (m.localOffset + 30 > zip.length || zip.readUInt32LE(m.localOffset) !== LOCAL) {
    throw new KerasImportError('corrupt', `${where} has no local header at offset ${m.localOffset}`, label);
  }
  const start = m.localOffset + 30 + zip.readUInt16LE(m.localOffset + 26) + zip.readUInt16LE(m.localOffset + 28);
  if (start + m.compressedSize > zip.length) {
    throw new KerasImportError('truncated', `${where} needs ${m.compressedSize} bytes from offset ${start}, the file ends at ${zip.length}`, label);
  }
  const raw = zip.subarray(start, start + m.compressedSize);
  let data: Uint8Array;
  if (m.method === 0) data = raw;
  else if (m.method === 8) {
    try {
      data = inflateSync(raw, { out: new Uint8Array(m.size) });
    } catch (e) {
      throw new KerasImportError('corrupt', `${where} cannot be inflated (${e instanceof Error ? e.message : String(e)})`, label);
    }
  } else throw new KerasImportError('corrupt', `${where} uses zip compression method ${m.method}; only stored (0) and deflate (8) are supported`, label);
  if (data.length !== m.size || crc32(data) !== m.crc) {
    throw new KerasImportError('corrupt', `${where} fails its CRC-32 check: the archive is damaged`, label);
  }
  return data;
}

let table: Uint32Array | undefined;

export function crc32(bytes: Uint8Array): number {
  table ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (const b of bytes) crc = table[(crc ^ b) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
