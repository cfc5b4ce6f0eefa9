// Helpers for the job tests: an in-process service with the jobs plugin on a temp data dir, an SSE reader,
// and small HTTP wrappers.
import sharp from 'sharp';
import type { Config } from '../../src/config.js';
import type { JobService } from '../../src/jobs/service.js';
import { synthesizeModel } from '../../src/models/synth.js';
import { inferencePlugin } from '../../src/server/inference-plugin.js';
import { jobsPlugin } from '../../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../../src/server/service.js';
import { tempDir, testConfig, testPattern } from './app.js';

export interface JobsServer extends RunningService<'jobs'> {
  jobs: JobService;
  dataDir: string;
}

export async function startJobsServer(overrides: Partial<Config> = {}): Promise<JobsServer> {
  const dataDir = overrides.dataDir ?? tempDir('convserve-jobs-');
  const svc = await startService({ config: testConfig({ dataDir, ...overrides }), plugins: [jobsPlugin] });
  return { ...svc, jobs: svc.ctx.core.jobs, dataDir };
}

export interface Ev { id: number; event: string; data: Record<string, any> }

/**
 * Reads an SSE stream; stops when the server ends it or when `until(ev)` returns true (then disconnects).
 */
export async function readSse(url: string, opts: { lastEventId?: number; until?: (ev: Ev, all: Ev[]) => boolean } = {}): Promise<Ev[]> {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { Accept: 'text/event-stream', ...(opts.lastEventId !== undefined ? { 'Last-Event-ID': String(opts.lastEventId) } : {}) }, signal: ac.signal });
  if (res.status !== 200) throw new Error(`SSE ${url}: ${res.status} ${await res.text()}`);
  if (!String(res.headers.get('content-type')).startsWith('text/event-stream')) throw new Error('not an event stream');
  const out: Ev[] = [];
  const dec = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const fields: Record<string, string> = {};
        for (const line of block.split('\n')) {
          if (!line || line.startsWith(':')) continue;
          const j = line.indexOf(':');
          fields[line.slice(0, j)] = line.slice(j + 1).replace(/^ /, '');
        }
        if (fields.id === undefined || fields.data === undefined) continue;
        const ev = { id: Number(fields.id), event: fields.event ?? 'message', data: JSON.parse(fields.data) };
        out.push(ev);
        if (opts.until?.(ev, out)) { ac.abort(); return out; }
      }
    }
  } catch (e) {
    if (!ac.signal.aborted) throw e;
  }
  return out;
}

export async function submitBlur(base: string, png: Buffer, params: Record<string, unknown>): Promise<{ status: number; headers: Headers; body: any }> {
  const form = new FormData();
  form.set('image', new Blob([png], { type: 'image/png' }), 'in.png');
  for (const [k, v] of Object.entries(params)) form.set(k, String(v));
  const res = await fetch(`${base}/v1/jobs/blur-sweep`, { method: 'POST', body: form });
  return { status: res.status, headers: res.headers, body: await res.json() };
}

export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
}

/** Polls GET /v1/jobs/{id} until `pred` holds. */
export async function pollJob(base: string, id: string, pred: (j: any) => boolean, timeoutMs = 30_000): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    const { body } = await getJson(`${base}/v1/jobs/${id}`);
    if (pred(body)) return body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for job ${id}: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Independent oracle: sharp's blur applied `n` times to raw RGB pixels. */
export async function blurNTimes(raw: Buffer, width: number, height: number, sigma: number, n: number): Promise<Buffer> {
  let data = raw;
  for (let i = 0; i < n; i++) data = await sharp(data, { raw: { width, height, channels: 3 } }).blur(sigma).raw().toBuffer();
  return data;
}

export async function decodeRaw(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/** Sum of |horizontal| + |vertical| neighbour differences: lower = smoother. */
export function totalVariation(data: Buffer, w: number, h: number, ch: number): number {
  let tv = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < ch; c++) {
    const v = data[(y * w + x) * ch + c]!;
    if (x + 1 < w) tv += Math.abs(v - data[(y * w + x + 1) * ch + c]!);
    if (y + 1 < h) tv += Math.abs(v - data[((y + 1) * w + x) * ch + c]!);
  }
  return tv;
}

/** A service with the inference and jobs plugins over a synthetic 1/8-width InceptionV3 (with its classifier), ready. */
export async function startDreamService(prefix: string): Promise<RunningService<'engine' | 'models' | 'classify' | 'jobs'>> {
  const modelsDir = tempDir(`${prefix}models-`);
  await synthesizeModel('inception_v3', { modelsDir, name: 'inception_v3', width: 1 / 8, includeTop: true });
  const svc = await startService({
    config: testConfig({ modelsDir, dataDir: tempDir(`${prefix}data-`), defaultModel: 'inception_v3', engineWorkers: 1, engineThreads: 2 }),
    plugins: [inferencePlugin(), jobsPlugin],
  });
  for (let i = 0; i < 600 && !(await fetch(`${svc.url}/readyz`)).ok; i++) await new Promise((r) => setTimeout(r, 100));
  return svc;
}

/** Runs `count` one-step blur-sweep jobs to the end on a fresh server, stops it, and returns its data dir and the job ids. */
export async function finishedBlurJobs(count: number, side: number): Promise<{ dataDir: string; ids: string[] }> {
  const { png } = await testPattern(side, side);
  const srv = await startJobsServer();
  const ids: string[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const sub = await submitBlur(srv.url, png, { steps: 1 });
      await srv.jobs.waitFor(sub.body.id);
      ids.push(sub.body.id);
    }
  } finally {
    await srv.shutdown();
  }
  return { dataDir: srv.dataDir, ids };
}
