// `convserve jobs list|show|cancel|wait` (HTTP client of a running server) and `convserve blur-sweep`
// (runs the blur-sweep job kind in-process on a core, through the same runner as the service).
import { mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { runLocalJob } from '../app/local-jobs.js';
import { type OutputFormat, chooseOutputFormat, decodeImage, encodeImage } from '../image/io.js';
import type { Progress } from '../jobs/runner.js';
import type { JobView } from '../server/routes/job-view.js';
import { withCatalogCore } from './core.js';

const DEFAULT_URL = 'http://localhost:8080';
const baseUrl = (opts: { url?: string }) => (opts.url ?? process.env.CONVSERVE_URL ?? DEFAULT_URL).replace(/\/+$/, '');

async function api<T>(url: string, init: RequestInit = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new Error(`cannot reach ${url}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`);
  }
  const text = await res.text();
  const body = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) {
    const p = body as { detail?: string; title?: string } | undefined;
    throw new Error(`${res.status} ${p?.title ?? res.statusText}: ${p?.detail ?? text}`);
  }
  return body as T;
}

export interface SseEvent { id: number; event: string; data: Record<string, unknown> }

/**
 * Follows GET /v1/jobs/{id}/events until the `done` event, reconnecting with Last-Event-ID when the
 * connection drops (e.g. the server restarts), so no event is missed or repeated.
 */
export async function followJobEvents(base: string, id: string, onEvent: (ev: SseEvent) => void, opts: { lastEventId?: number; maxRetries?: number; signal?: AbortSignal } = {}): Promise<SseEvent> {
  let last = opts.lastEventId ?? 0;
  let failures = 0;
  for (;;) {
    try {
      const res = await fetch(`${base}/v1/jobs/${id}/events`, { headers: { Accept: 'text/event-stream', 'Last-Event-ID': String(last) }, signal: opts.signal });
      if (res.status === 404) throw Object.assign(new Error(`job ${id} not found`), { fatal: true });
      if (!res.ok || !res.body) throw new Error(`events stream: HTTP ${res.status}`);
      failures = 0;
      const decoder = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let sep: number;
        while ((sep = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          const ev = parseSseBlock(block);
          if (!ev || ev.id <= last) continue;
          last = ev.id;
          onEvent(ev);
          if (ev.event === 'done') return ev;
        }
      }
    } catch (e) {
      if ((e as { fatal?: boolean }).fatal || opts.signal?.aborted) throw e;
      if (++failures > (opts.maxRetries ?? 30)) throw e;
    }
    await sleep(1000);
  }
}

function parseSseBlock(block: string): SseEvent | undefined {
  let id: number | undefined;
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'id') id = Number(value);
    else if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (id === undefined || data.length === 0) return undefined;
  return { id, event, data: JSON.parse(data.join('\n')) as Record<string, unknown> };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What the printer shows of a `progress` event's data (a Progress as the server sends it, read defensively). */
function progressOf(d: Record<string, unknown>): Pick<Progress, 'step' | 'total' | 'message' | 'eta_s'> & { metrics: Record<string, unknown> } {
  const num = (v: unknown) => (typeof v === 'number' ? v : 0);
  return {
    step: num(d.step), total: num(d.total), message: typeof d.message === 'string' ? d.message : '',
    metrics: isRecord(d.metrics) ? d.metrics : {}, eta_s: typeof d.eta_s === 'number' ? d.eta_s : undefined,
  };
}

const fmtMetrics = (m: Record<string, unknown> | undefined) =>
  Object.entries(m ?? {}).map(([k, v]) => `${k} ${typeof v === 'number' ? Number(v.toPrecision(4)) : String(v)}`).join(' ');

const fmtEta = (s: number | undefined) => (s === undefined ? '?' : s >= 3600 ? `${Math.floor(s / 3600)}h${Math.round((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60)}s` : `${Math.round(s)}s`);

function progressBar(): cliProgress.SingleBar {
  return new cliProgress.SingleBar({
    format: '{bar} {percentage}% | step {value}/{total} | {metrics} | ETA {eta_s}',
    hideCursor: true,
    clearOnComplete: false,
    stream: process.stderr,
  }, cliProgress.Presets.shades_classic);
}

function printJob(j: JobView): void {
  console.log(`${j.id}  ${j.kind}  ${j.status}  ${j.progress.step}/${j.progress.total}${j.error ? `  error: ${j.error.type}: ${j.error.detail}` : ''}`);
  console.log(`  created ${j.created_at}${j.started_at ? `, started ${j.started_at}` : ''}${j.finished_at ? `, finished ${j.finished_at}` : ''}`);
  if (j.result) console.log(`  result ${j.result.url} (${j.result.content_type})`);
  if (j.previews.length) console.log(`  previews ${j.previews.length}: ${j.previews[j.previews.length - 1]} (latest)`);
  console.log(`  params ${JSON.stringify(j.params)}`);
}

export function registerJobsCommands(program: Command): void {
  const jobs = program.command('jobs').description('Long-running jobs on a convserve server (list, show, cancel, wait).');
  const urlOpt = ['--url <url>', `server URL (default $CONVSERVE_URL or ${DEFAULT_URL})`] as const;

  jobs.command('list')
    .description('Recent jobs, newest first.')
    .option(...urlOpt)
    .option('--status <s>', 'only these statuses (comma-separated: queued,running,succeeded,failed,cancelled)')
    .option('--kind <kind>', 'only this kind')
    .option('--limit <n>', 'at most n jobs', '50')
    .option('--json', 'machine-readable output')
    .action(async (opts: { url?: string; status?: string; kind?: string; limit: string; json?: boolean }) => {
      const q = new URLSearchParams({ limit: opts.limit, ...(opts.status ? { status: opts.status } : {}), ...(opts.kind ? { kind: opts.kind } : {}) });
      const { jobs: list } = await api<{ jobs: JobView[] }>(`${baseUrl(opts)}/v1/jobs?${q}`);
      if (opts.json) { console.log(JSON.stringify(list, null, 2)); return; }
      if (!list.length) { console.log('no jobs'); return; }
      for (const j of list) console.log(`${j.id}  ${j.kind.padEnd(12)} ${j.status.padEnd(10)} ${String(j.progress.step).padStart(5)}/${String(j.progress.total).padEnd(5)} ${j.created_at}`);
    });

  jobs.command('show <id>')
    .description('Status, progress, result and previews of one job.')
    .option(...urlOpt)
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { url?: string; json?: boolean }) => {
      const j = await api<JobView>(`${baseUrl(opts)}/v1/jobs/${encodeURIComponent(id)}`);
      if (opts.json) console.log(JSON.stringify(j, null, 2));
      else printJob(j);
    });

  jobs.command('cancel <id>')
    .description('Cancel a queued or running job (a running one stops at its next step).')
    .option(...urlOpt)
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { url?: string; json?: boolean }) => {
      const j = await api<JobView>(`${baseUrl(opts)}/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
      if (opts.json) console.log(JSON.stringify(j, null, 2));
      else console.log(`${j.id}: ${j.status === 'cancelled' ? 'cancelled' : `cancel requested (status ${j.status})`}`);
    });

  jobs.command('wait <id>')
    .description('Follow a job until it finishes (progress bar; reconnects across server restarts). Exit code 1 unless it succeeded.')
    .option(...urlOpt)
    .option('-o, --output <file>', 'download the result image here when it succeeds')
    .option('--json', 'print each event as a JSON line, then the final job')
    .action(async (id: string, opts: { url?: string; output?: string; json?: boolean }) => {
      const base = baseUrl(opts);
      const initial = await api<JobView>(`${base}/v1/jobs/${encodeURIComponent(id)}`);
      const tty = !opts.json && process.stderr.isTTY;
      const bar = tty ? progressBar() : undefined;
      bar?.start(initial.progress.total, initial.progress.step, { metrics: '', eta_s: '?' });
      await followJobEvents(base, id, (ev) => {
        if (opts.json) { console.log(JSON.stringify(ev)); return; }
        if (ev.event === 'progress') {
          const p = progressOf(ev.data);
          if (bar) bar.update(p.step, { metrics: fmtMetrics(p.metrics) || p.message, eta_s: fmtEta(p.eta_s) });
          else if (p.step === p.total || p.step % Math.max(1, Math.round(p.total / 20)) === 0) console.error(`step ${p.step}/${p.total} ${fmtMetrics(p.metrics)} ETA ${fmtEta(p.eta_s)}`);
        } else if (ev.event === 'resumed' && !bar) console.error(`resumed from step ${String(ev.data.from_step)}`);
        else if (ev.event === 'preview' && !bar) console.error(`preview ${String(ev.data.n)} at step ${String(ev.data.step)}: ${base}${String(ev.data.url)}`);
      });
      bar?.stop();
      const j = await api<JobView>(`${base}/v1/jobs/${encodeURIComponent(id)}`);
      if (opts.output && j.result) {
        const res = await fetch(`${base}${j.result.url}`);
        await writeFile(opts.output, Buffer.from(await res.arrayBuffer()));
      }
      if (opts.json) console.log(JSON.stringify(j));
      else printJob(j);
      if (j.status !== 'succeeded') process.exitCode = 1;
    });

  program.command('blur-sweep <image>')
    .description('Blur an image N times in-process through the job runner (the same code path as POST /v1/jobs/blur-sweep).')
    .requiredOption('-o, --output <file>', 'output file (.png, .jpg, .webp)')
    .option('--steps <n>', 'number of blur steps', '10')
    .option('--sigma <s>', 'Gaussian sigma of each step', '1')
    .option('--preview-every <k>', 'write a preview every k steps (with --previews)')
    .option('--previews <dir>', 'folder for preview images (preview-<step>.png)')
    .option('--json', 'print a JSON summary instead of a progress bar')
    .action((file: string, opts: { output: string; steps: string; sigma: string; previewEvery?: string; previews?: string; json?: boolean }) => withCatalogCore(async (core) => {
      const { config } = core;
      const format: OutputFormat = chooseOutputFormat(extname(opts.output).slice(1) || undefined, undefined);
      const image = await decodeImage(await readFile(file), { maxInputPixels: Math.min(config.maxInputPixels, config.maxJobPixels), decodeTimeoutMs: config.decodeTimeoutMs });
      const params: Record<string, unknown> = { steps: opts.steps, sigma: opts.sigma, ...(opts.previewEvery !== undefined ? { preview_every: opts.previewEvery } : {}) };
      if (opts.previews) mkdirSync(opts.previews, { recursive: true });
      const bar = !opts.json && process.stderr.isTTY ? progressBar() : undefined;
      let started = false;
      const out = await runLocalJob(core, 'blur-sweep', { image: [image] }, params, {
        onProgress: (p) => {
          if (!bar) return;
          if (!started) { bar.start(p.total, 0, { metrics: '', eta_s: '?' }); started = true; }
          bar.update(p.step, { metrics: p.message, eta_s: fmtEta(p.eta_s) });
        },
        onPreview: opts.previews ? async (img, step) => { await writeFile(join(opts.previews!, `preview-${step}.png`), await encodeImage(img, 'png')); } : undefined,
      });
      bar?.stop();
      await writeFile(opts.output, await encodeImage(out.result, format));
      if (opts.json) console.log(JSON.stringify({ output: opts.output, format, width: out.result.width, height: out.result.height, steps: out.steps, run_ms: Math.round(out.runMs), params: out.params }));
      else console.log(`${opts.output}: ${out.result.width}×${out.result.height} ${format}, ${out.steps} blur steps in ${Math.round(out.runMs)} ms`);
    }));
}
