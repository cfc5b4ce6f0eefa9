#!/usr/bin/env node
// Soak test (not part of npm test): `npm run soak -- --minutes N [--concurrency C]`.
// Mixed load against a convserve server — classify (1–4 images), filter, blur-sweep jobs (submitted, followed to
// the end, the result fetched) and cheap reads — then prints the requests made, the non-2xx answers by status,
// p50/p99 latency per kind, and the server's RSS at the start and the end.
//
// Target: CONVSERVE_URL, or else a server this script starts (node dist/cli/main.js serve: run `npm run build`
// first) on a free port with the committed mnist-cnn model and a temporary data folder.
// Keys: CONVSERVE_SOAK_KEY is sent as `Authorization: Bearer …` on every request when set (a `use` key);
// CONVSERVE_SOAK_ADMIN_KEY for /metrics (RSS) when it needs admin.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : def; };
const minutes = opt('minutes', 2);
const concurrency = opt('concurrency', 4);
const key = process.env.CONVSERVE_SOAK_KEY;
const adminKey = process.env.CONVSERVE_SOAK_ADMIN_KEY ?? key;
const auth = (k) => (k ? { Authorization: `Bearer ${k}` } : {});

async function startServer() {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const modelsDir = mkdtempSync(join(tmpdir(), 'convserve-soak-models-'));
  cpSync(join(root, 'models', 'mnist-cnn'), join(modelsDir, 'mnist-cnn'), { recursive: true });
  const child = spawn(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', CONVSERVE_AUTO_FETCH: 'false', CONVSERVE_MODELS_DIR: modelsDir, CONVSERVE_DEFAULT_MODEL: 'mnist-cnn', CONVSERVE_DATA_DIR: mkdtempSync(join(tmpdir(), 'convserve-soak-data-')) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => { buf += d; const m = /"msg":"convserve listening".*?"port":(\d+)|"port":(\d+).*?"msg":"convserve listening"/.exec(buf); if (m) resolve(Number(m[1] ?? m[2])); });
    child.on('exit', (code) => reject(new Error(`server exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}`, child };
}

async function rssMb(url) {
  const res = await fetch(`${url}/metrics`, { headers: auth(adminKey) }).catch(() => undefined);
  if (!res || res.status !== 200) return undefined;
  const m = /^process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(await res.text());
  return m ? Math.round(Number(m[1]) / 2 ** 20) : undefined;
}

const quantile = (xs, q) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

async function main() {
  const own = process.env.CONVSERVE_URL ? undefined : await startServer();
  const url = process.env.CONVSERVE_URL ?? own.url;
  for (let i = 0; i < 600 && (await fetch(`${url}/readyz`).then((r) => r.status, () => 0)) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
  const images = await Promise.all([28, 64, 200].map((s) => sharp({ create: { width: s, height: s, channels: 3, background: { r: s, g: 255 - s, b: 90 } } }).png().toBuffer()));
  const stats = { requests: 0, byStatus: {}, latency: {} };
  const record = (kind, status, ms) => {
    stats.requests++;
    if (status < 200 || status > 299) stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    (stats.latency[kind] ??= []).push(ms);
  };
  const call = async (kind, path, init = {}) => {
    const t0 = performance.now();
    try {
      const res = await fetch(`${url}${path}`, { ...init, headers: { ...auth(key), ...(init.headers ?? {}) } });
      const body = Buffer.from(await res.arrayBuffer());
      record(kind, res.status, performance.now() - t0);
      return { status: res.status, body };
    } catch {
      record(kind, 0, performance.now() - t0);
      return { status: 0, body: Buffer.alloc(0) };
    }
  };
  const form = (field, n) => { const f = new FormData(); for (let i = 0; i < n; i++) f.append(field, new Blob([images[i % images.length]], { type: 'image/png' }), `i${i}.png`); return f; };

  const rssStart = await rssMb(url);
  const deadline = Date.now() + minutes * 60_000;
  let n = 0;
  const worker = async () => {
    while (Date.now() < deadline) {
      const r = n++ % 20;
      if (r < 9) await call('classify', '/v1/classify', { method: 'POST', body: form('image', 1 + (r % 4)) });
      else if (r < 16) await call('filter', `/v1/filter?kernel=${['edge-3', 'sharpen', 'box-blur'][r % 3]}`, { method: 'POST', body: form('image', 1) });
      else if (r < 18) await call('read', ['/v1/models', '/v1/kernels', '/v1/jobs?limit=5', '/healthz'][r % 4]);
      else {
        const sub = await call('job-submit', '/v1/jobs/blur-sweep?steps=5&preview_every=2', { method: 'POST', body: form('image', 1) });
        if (sub.status === 202) {
          const id = JSON.parse(sub.body.toString()).id;
          for (let i = 0; i < 600; i++) {
            const j = await call('job-poll', `/v1/jobs/${id}`);
            const status = j.status === 200 ? JSON.parse(j.body.toString()).status : 'gone';
            if (!['queued', 'running'].includes(status)) { if (status === 'succeeded') await call('job-result', `/v1/jobs/${id}/result`); break; }
            await new Promise((res) => setTimeout(res, 100));
          }
        }
      }
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const rssEnd = await rssMb(url);
  const secs = (Date.now() - t0) / 1000;
  console.log(`soak: ${minutes} min, ${concurrency} concurrent clients against ${url}${own ? ' (started by the script)' : ''}`);
  console.log(`requests: ${stats.requests} (${(stats.requests / secs).toFixed(1)}/s); non-2xx by status: ${JSON.stringify(stats.byStatus)}`);
  for (const [kind, xs] of Object.entries(stats.latency)) console.log(`  ${kind.padEnd(11)} n=${String(xs.length).padStart(6)}  p50 ${quantile(xs, 0.5).toFixed(1)} ms  p99 ${quantile(xs, 0.99).toFixed(1)} ms`);
  const all = Object.values(stats.latency).flat();
  console.log(`all: p50 ${quantile(all, 0.5).toFixed(1)} ms, p99 ${quantile(all, 0.99).toFixed(1)} ms; server RSS ${rssStart ?? '?'} MB at start → ${rssEnd ?? '?'} MB at end`);
  if (own) { own.child.kill('SIGTERM'); await new Promise((r) => own.child.once('exit', r)); }
  process.exitCode = stats.byStatus['500'] || stats.byStatus['0'] ? 1 : 0;
}

await main();
