// Reading an uploaded archive (.zip, .tar, .tar.gz — told apart by their bytes, never by a file name) one entry at
// a time, bounded: the number of entries, and the bytes they unpack to — against the sizes the archive declares
// AND the bytes actually inflated (a zip entry that declares 1 KB and inflates to 1 GB is stopped after the first
// slice past its declared size). Nothing here touches the disk; safe names are ./dataset-archive.ts's concern.
import { gunzipSync } from 'node:zlib';
import { Inflate } from 'fflate';
import { Parser, type ReadEntry } from 'tar';
import { type ProblemError, tooLarge, unprocessable, unsupportedMedia } from '../util/problem.js';

export type ArchiveFormat = 'zip' | 'tar' | 'tar.gz';

export interface ArchiveLimits {
  /** Most entries (files, folders, anything else). */
  maxEntries: number;
  /** Most bytes all entries together may unpack to. */
  maxExtractedBytes: number;
}

/** One entry: its name as stored, what it is, and (files) its unpacked bytes. */
export interface ArchiveEntry {
  name: string;
  type: 'file' | 'directory' | 'link' | 'other';
  /** Files only: the entry's content. */
  data?: Buffer;
}

const CONTENT_TYPES: Record<ArchiveFormat, string> = { zip: 'application/zip', tar: 'application/x-tar', 'tar.gz': 'application/gzip' };

export const archiveContentType = (f: ArchiveFormat) => CONTENT_TYPES[f];

const isTar = (b: Buffer) => b.length >= 512 && b.subarray(257, 262).toString('latin1') === 'ustar';

/** The archive's format from its first bytes (415 `not-an-archive` otherwise). */
export function sniffArchive(bytes: Buffer): ArchiveFormat {
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 3 || bytes[2] === 5)) return 'zip';
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return 'tar.gz';
  if (isTar(bytes)) return 'tar';
  throw unsupportedMedia('not-an-archive', 'The training archive is not a .zip, .tar or .tar.gz file (judged by its content).');
}

const bad = (detail: string): ProblemError => unprocessable('bad-archive', `The training archive is damaged or unsupported: ${detail}.`);
const tooManyEntries = (limits: ArchiveLimits) => tooLarge('archive-too-many-files', `The training archive has more than ${limits.maxEntries} entries (CONVSERVE_FINETUNE_MAX_FILES).`, { limit: limits.maxEntries });
const tooBig = (limits: ArchiveLimits, what: string) => tooLarge('archive-too-large-unpacked', `The training archive unpacks to more than ${limits.maxExtractedBytes} bytes (CONVSERVE_FINETUNE_MAX_EXTRACTED_BYTES)${what}.`, { limit: limits.maxExtractedBytes });

/** Calls `visit` for every entry in archive order; throws a 4xx ProblemError when the archive breaks a limit. */
export function readArchive(bytes: Buffer, limits: ArchiveLimits, visit: (e: ArchiveEntry) => void): ArchiveFormat {
  const format = sniffArchive(bytes);
  if (format === 'zip') readZip(bytes, limits, visit);
  else readTar(format === 'tar' ? bytes : gunzipBounded(bytes, limits), limits, visit);
  return format;
}

// ------------------------------------------------------------------------------------------------ tar

/** Tar framing adds a 512-byte header per entry (plus padding): the tar stream may exceed the file bytes by that. */
function gunzipBounded(bytes: Buffer, limits: ArchiveLimits): Buffer {
  const most = limits.maxExtractedBytes + (limits.maxEntries + 4) * 1536;
  try {
    return gunzipSync(bytes, { maxOutputLength: most });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw tooBig(limits, ' (the gzip stream inflates past it)');
    throw bad(`gzip: ${(e as Error).message}`);
  }
}

const TAR_TYPES: Record<string, ArchiveEntry['type']> = { File: 'file', OldFile: 'file', ContiguousFile: 'file', Directory: 'directory', SymbolicLink: 'link', Link: 'link' };

function readTar(tar: Buffer, limits: ArchiveLimits, visit: (e: ArchiveEntry) => void): void {
  if (!isTar(tar)) throw bad('the gzip stream does not hold a tar archive');
  let entries = 0;
  let total = 0;
  let failure: unknown;
  const parser = new Parser({ strict: true });
  parser.on('entry', (e: ReadEntry) => {
    if (failure) { e.resume(); return; }
    try {
      if (++entries > limits.maxEntries) throw tooManyEntries(limits);
      const type = TAR_TYPES[e.type] ?? 'other';
      total += e.size ?? 0;
      if (total > limits.maxExtractedBytes) throw tooBig(limits, ` (entry '${e.path}' declares ${e.size} bytes)`);
      if (type !== 'file') { e.resume(); visit({ name: e.path, type }); return; }
      const chunks: Buffer[] = [];
      e.on('data', (c: Buffer) => chunks.push(c));
      e.on('end', () => {
        if (failure) return;
        try { visit({ name: e.path, type, data: Buffer.concat(chunks) }); } catch (err) { failure = err; }
      });
    } catch (err) {
      failure = err;
      e.resume();
    }
  });
  parser.on('warn', (code: string, message: string | Error) => { failure ??= bad(`${code}: ${String(message)}`); });
  parser.on('error', (err: Error) => { failure ??= bad(err.message); });
  parser.write(tar);
  parser.end();
  if (failure) throw failure;
}

// ------------------------------------------------------------------------------------------------ zip

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
/** Compressed bytes handed to the inflater at once: one slice inflates to at most ~1 MB (deflate's 1032:1). */
const SLICE = 1024;

interface ZipEntry { name: string; method: number; flags: number; compressed: number; declared: number; offset: number; mode: number; madeBy: number }

function centralDirectory(b: Buffer): ZipEntry[] {
  let e = b.length - 22;
  const stop = Math.max(0, b.length - 22 - 65_535);
  while (e >= stop && b.readUInt32LE(e) !== EOCD) e--;
  if (e < stop) throw bad('no zip end-of-central-directory record');
  const count = b.readUInt16LE(e + 10);
  let o = b.readUInt32LE(e + 16);
  if (count === 0xffff || o === 0xffffffff) throw bad('ZIP64 archives are not supported');
  const out: ZipEntry[] = [];
  for (let i = 0; i < count; i++) {
    if (o + 46 > b.length || b.readUInt32LE(o) !== CENTRAL) throw bad('a broken central directory');
    const nameLen = b.readUInt16LE(o + 28);
    const entry: ZipEntry = {
      madeBy: b.readUInt16LE(o + 4) >> 8, flags: b.readUInt16LE(o + 8), method: b.readUInt16LE(o + 10),
      compressed: b.readUInt32LE(o + 20), declared: b.readUInt32LE(o + 24), mode: b.readUInt32LE(o + 38) >>> 16,
      offset: b.readUInt32LE(o + 42), name: b.subarray(o + 46, o + 46 + nameLen).toString(b.readUInt16LE(o + 8) & 0x800 ? 'utf8' : 'latin1'),
    };
    out.push(entry);
    o += 46 + nameLen + b.readUInt16LE(o + 30) + b.readUInt16LE(o + 32);
  }
  return out;
}

/** Unix file type of the entry (made on Unix: the high 16 bits of the external attributes). */
function zipType(z: ZipEntry): ArchiveEntry['type'] {
  const unix = z.madeBy === 3 ? z.mode & 0o170000 : 0;
  if (unix === 0o120000) return 'link';
  if (unix !== 0 && unix !== 0o100000 && unix !== 0o040000) return 'other';
  return z.name.endsWith('/') || unix === 0o040000 ? 'directory' : 'file';
}

/** The entry's bytes, stopping as soon as they pass its declared size or what is left of the budget. */
function inflateZipEntry(b: Buffer, z: ZipEntry, most: number, limits: ArchiveLimits): Buffer {
  if (z.offset + 30 > b.length || b.readUInt32LE(z.offset) !== LOCAL) throw bad(`entry '${z.name}' has no local header`);
  const start = z.offset + 30 + b.readUInt16LE(z.offset + 26) + b.readUInt16LE(z.offset + 28);
  if (start + z.compressed > b.length) throw bad(`entry '${z.name}' runs past the end of the archive`);
  const raw = b.subarray(start, start + z.compressed);
  if (z.flags & 1) throw unprocessable('bad-archive', `The training archive's entry '${z.name}' is encrypted.`);
  if (z.method === 0) {
    if (raw.length !== z.declared) throw bad(`stored entry '${z.name}' is ${raw.length} bytes, its header says ${z.declared}`);
    return Buffer.from(raw);
  }
  if (z.method !== 8) throw bad(`entry '${z.name}' uses compression method ${z.method} (only stored and deflate are read)`);
  const chunks: Uint8Array[] = [];
  let got = 0;
  let ended = false;
  const inflater = new Inflate((chunk, final) => {
    chunks.push(chunk);
    got += chunk.length;
    if (final) ended = true;
  });
  for (let i = 0; i < raw.length && !ended; i += SLICE) {
    try {
      inflater.push(raw.subarray(i, Math.min(raw.length, i + SLICE)), i + SLICE >= raw.length);
    } catch (e) {
      throw bad(`entry '${z.name}': ${(e as Error).message}`);
    }
    if (got > z.declared) throw tooLarge('archive-bomb', `The training archive's entry '${z.name}' inflates to more than the ${z.declared} bytes it declares (a zip bomb?).`);
    if (got > most) throw tooBig(limits, ` (entry '${z.name}' inflated past it)`);
  }
  if (got !== z.declared) throw bad(`entry '${z.name}' inflates to ${got} bytes, its header says ${z.declared}`);
  return Buffer.concat(chunks);
}

function readZip(b: Buffer, limits: ArchiveLimits, visit: (e: ArchiveEntry) => void): void {
  const entries = centralDirectory(b);
  if (entries.length > limits.maxEntries) throw tooManyEntries(limits);
  const declared = entries.reduce((s, z) => s + z.declared, 0);
  if (declared > limits.maxExtractedBytes) throw tooBig(limits, ` (its entries declare ${declared} bytes)`);
  let used = 0;
  for (const z of entries) {
    const type = zipType(z);
    if (type !== 'file') { visit({ name: z.name, type }); continue; }
    const data = inflateZipEntry(b, z, limits.maxExtractedBytes - used, limits);
    used += data.length;
    visit({ name: z.name, type, data });
  }
}
