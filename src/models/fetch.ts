// `convserve models fetch <arch>`: download the official Keras .h5 and imagenet_class_index.json into
// `<modelsDir>/.cache`, resuming with HTTP Range after interruptions (retry with exponential backoff), check
// Keras' MD5, then import through the same path as any other .h5 (provenance `imagenet`). Only over https (plain
// http only to a loopback mirror: isAllowedDownloadUrl), and a response longer than the file's known size (or
// its own Content-Length) is cut off and deleted rather than filling the disk.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { isAllowedDownloadUrl } from '../config.js';
import { renameDurable } from '../util/fs.js';
import { ProblemError } from '../util/problem.js';
import { getArchitecture } from './architectures/index.js';
import { type ImportResult, importKerasModel } from './import.js';
import { CLASS_INDEX, DEFAULT_WEIGHTS_BASE_URL, OFFICIAL_WEIGHTS, type OfficialFile, officialUrl } from './official.js';

export interface FetchProgress {
  phase: 'download' | 'verify' | 'import' | 'done';
  file: string;
  receivedBytes: number;
  totalBytes?: number;
  /** 0–100 for the current file, when the total is known. */
  percent?: number;
}

export interface FetchOptions {
  modelsDir: string;
  /** Storage origin; default CONVSERVE_WEIGHTS_BASE_URL or https://storage.googleapis.com. */
  baseUrl?: string;
  onProgress?: (p: FetchProgress) => void;
  /** Fetch the classification model (default) or the notop (features) file. */
  includeTop?: boolean;
  /** Model folder name; default the architecture name, `<arch>_notop` for the notop file. */
  name?: string;
  /** Attempts after the first failure of one file (default 5), with exponential backoff from `backoffMs` (default 1000). */
  retries?: number;
  backoffMs?: number;
  /** Checksum overrides, for a mirror that serves other files (tests). */
  md5?: { weights?: string; labels?: string };
  /** Keep the downloaded .h5 in the cache after a successful import (default: delete it, it is 80–575 MB). */
  keepDownload?: boolean;
  /** Reduced-width variant (tests only). */
  width?: number;
  signal?: AbortSignal;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const OFFLINE_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EAI_NONAME', 'EAI_FAIL']);

function errorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

function offlineError(url: string, arch: string): ProblemError {
  const host = new URL(url).host;
  return new ProblemError(503, 'weights-offline', 'Weights storage unreachable',
    `cannot reach ${host}: offline? Use 'convserve models synth ${arch}' for untrained weights`, { host });
}

class RetryableError extends Error {}

/** MD5 of a file, streamed. */
export async function md5File(path: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Downloads `url` to `dest` (through `dest.part`), resuming a previous partial download with a Range request.
 * Verifies the MD5 before renaming into place; a mismatching file is deleted.
 */
export async function downloadFile(
  url: string, dest: string, expectedMd5: string,
  opts: { arch: string; expectedSize?: number; retries?: number; backoffMs?: number; onProgress?: (p: FetchProgress) => void; signal?: AbortSignal },
): Promise<void> {
  const file = dest.split('/').at(-1)!;
  if (!isAllowedDownloadUrl(url)) throw insecureUrl(url);
  if (existsSync(dest)) {
    opts.onProgress?.({ phase: 'verify', file, receivedBytes: statSync(dest).size });
    if ((await md5File(dest)) === expectedMd5) return;
    rmSync(dest);
  }
  const part = `${dest}.part`;
  const retries = opts.retries ?? 5;
  const backoff = opts.backoffMs ?? 1000;
  let failures = 0;
  for (;;) {
    const have = existsSync(part) ? statSync(part).size : 0;
    let received = 0;
    try {
      const res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: opts.signal });
      if (!isAllowedDownloadUrl(res.url || url)) {
        await res.body?.cancel();
        throw insecureUrl(res.url);
      }
      if (res.status === 416 && have > 0) {
        // Nothing left to send: the part file is complete (or longer than the file — restart then).
        const total = Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? NaN);
        await res.body?.cancel();
        if (total === have) break;
        rmSync(part, { force: true });
        continue;
      }
      if (res.status >= 500 || res.status === 429 || res.status === 408) {
        await res.body?.cancel();
        throw new RetryableError(`HTTP ${res.status} from ${url}`);
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel();
        throw new ProblemError(502, 'weights-download-failed', 'Download failed', `HTTP ${res.status} ${res.statusText} for ${url}`, { url, status: res.status });
      }
      let offset = 0;
      let total: number | undefined;
      if (res.status === 206) {
        const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
        offset = m ? Number(m[1]) : -1;
        if (offset !== have) {
          await res.body?.cancel();
          rmSync(part, { force: true });
          throw new RetryableError(`server resumed at byte ${offset}, expected ${have}`);
        }
        total = m && m[2] !== '*' ? Number(m[2]) : undefined;
      } else {
        const len = res.headers.get('content-length');
        total = len ? Number(len) : undefined;
      }
      total ??= opts.expectedSize;
      // The most this file may be: its known size, else what the server announced.
      const bound = opts.expectedSize ?? total;
      const fh = await open(part, offset === 0 ? 'w' : 'a');
      try {
        let at = offset;
        let lastReport = 0;
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          if (bound !== undefined && at + chunk.byteLength > bound) {
            await fh.close().catch(() => undefined);
            rmSync(part, { force: true });
            throw new ProblemError(502, 'weights-too-large', 'Download too large', `${url} sent more than the expected ${bound} bytes; the download was stopped and removed`, { url, expected_bytes: bound });
          }
          await fh.write(chunk);
          at += chunk.byteLength;
          received += chunk.byteLength;
          const now = Date.now();
          if (now - lastReport > 100) {
            lastReport = now;
            opts.onProgress?.({ phase: 'download', file, receivedBytes: at, totalBytes: total, percent: total ? (100 * at) / total : undefined });
          }
        }
        if (total !== undefined && at < total) throw new RetryableError(`connection closed after ${at} of ${total} bytes`);
        opts.onProgress?.({ phase: 'download', file, receivedBytes: at, totalBytes: total ?? at, percent: 100 });
        await fh.sync();
      } finally {
        await fh.close().catch(() => undefined);
      }
      break;
    } catch (e) {
      if (e instanceof ProblemError) throw e;
      if (opts.signal?.aborted) throw e;
      const code = errorCode(e);
      if (code && OFFLINE_CODES.has(code)) throw offlineError(url, opts.arch);
      if (received > 0) failures = 0; // progress was made: this is a new interruption, not a repeated failure
      if (failures >= retries) {
        throw new ProblemError(502, 'weights-download-failed', 'Download failed',
          `downloading ${url} failed after ${failures + 1} attempts: ${(e as Error).message}${code ? ` (${code})` : ''}; run the command again to resume`, { url });
      }
      await sleep(backoff * 2 ** failures);
      failures++;
    }
  }
  opts.onProgress?.({ phase: 'verify', file, receivedBytes: statSync(part).size });
  const got = await md5File(part);
  if (got !== expectedMd5) {
    rmSync(part, { force: true });
    throw new ProblemError(502, 'weights-checksum-mismatch', 'Downloaded file is corrupt',
      `${file}: md5 ${got} does not match the expected ${expectedMd5} (corrupt download or a mirror serving another file); the file was removed, run the command again`,
      { file, expected: expectedMd5, found: got });
  }
  renameDurable(part, dest);
}

function insecureUrl(url: string): ProblemError {
  return new ProblemError(400, 'insecure-weights-url', 'Insecure download URL',
    `${url}: weights are downloaded over https only (plain http only from a loopback host such as a local mirror); set CONVSERVE_WEIGHTS_BASE_URL to an https:// origin`, { url });
}

/** Downloads the official ImageNet weights of `arch` and imports them as `models/<arch>/`. */
export async function fetchModel(arch: string, opts: FetchOptions): Promise<ImportResult> {
  const a = getArchitecture(arch);
  const includeTop = opts.includeTop ?? true;
  const weights: OfficialFile = OFFICIAL_WEIGHTS[a.name][includeTop ? 'top' : 'notop'];
  const base = opts.baseUrl ?? process.env.CONVSERVE_WEIGHTS_BASE_URL ?? DEFAULT_WEIGHTS_BASE_URL;
  if (!isAllowedDownloadUrl(base)) throw insecureUrl(base);
  const cache = join(opts.modelsDir, '.cache');
  mkdirSync(cache, { recursive: true });
  const common = { arch: a.name, retries: opts.retries, backoffMs: opts.backoffMs, onProgress: opts.onProgress, signal: opts.signal };

  const weightsUrl = officialUrl(weights, base);
  const weightsPath = join(cache, weights.file);
  let labelsPath: string | undefined;
  if (includeTop) {
    labelsPath = join(cache, CLASS_INDEX.file);
    await downloadFile(officialUrl(CLASS_INDEX, base), labelsPath, opts.md5?.labels ?? CLASS_INDEX.md5, common);
  }
  await downloadFile(weightsUrl, weightsPath, opts.md5?.weights ?? weights.md5, { ...common, expectedSize: opts.md5?.weights ? undefined : weights.size });

  opts.onProgress?.({ phase: 'import', file: weights.file, receivedBytes: 0 });
  const result = await importKerasModel({
    name: opts.name ?? (includeTop ? a.name : `${a.name}_notop`),
    arch: a.name,
    weightsFile: weightsPath,
    labelsFile: labelsPath,
    modelsDir: opts.modelsDir,
    provenance: 'imagenet',
    source: weightsUrl,
    width: opts.width,
  });
  if (!opts.keepDownload) rmSync(weightsPath, { force: true });
  opts.onProgress?.({ phase: 'done', file: weights.file, receivedBytes: 0, percent: 100 });
  return result;
}
