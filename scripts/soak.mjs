#!/usr/bin/env node
// Soak test (not part of npm test): `npm run soak -- --minutes N [--concurrency C] [--no-keys]`.
// Mixed load against a convserve server — classify (1–4 images), filter, blur-sweep jobs (submitted, followed to
// the end, the result fetched) and cheap reads — then prints the requests made, the non-2xx answers by status,
// p50/p99 latency per kind, and the server's RSS at the start, every minute and at the end.
//
// Target: CONVSERVE_URL, or else a server this script starts (node dist/cli/main.js serve: run `npm run build`
// first) on a free port with the committed mnist-cnn model and a temporary data folder. That server has API keys
// (CONVSERVE_API_KEYS inline, default quotas): one `use` key per client and an admin key for /metrics; `--no-keys`
// starts it without. Against CONVSERVE_URL: CONVSERVE_SOAK_KEY is sent as `Authorization: Bearer …` by every
// client when set (a `use` key); CONVSERVE_SOAK_ADMIN_KEY for /metrics (RSS) when it needs admin.
// A 429 is waited out as its Retry-After says (as a client should) and counted.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : def; };
const minutes = opt('minutes', 2);
const concurrency = opt('concurrency', 4);
const withKeys = !args.includes('--no-keys');
const auth = (k) => (k ? { Authorization: `Bearer ${k}` } : {});

/** Keys for a server this script starts: one `use` key per client, one admin key; the inline CONVSERVE_API_KEYS. */
function soakKeys() {
  const make = (id, scopes) => ({ id, key: `cs_${randomBytes(32).toString('base64url')}`, scopes });
  const clients = Array.from({ length: concurrency }, (_, i) => make(`soak-${i + 1}`, ['use']));
  const admin = make('soak-admin', ['use', 'admin']);
  const inline = JSON.stringify([...clients, admin].map((k) => ({ id: k.id, key_sha256: createHash('sha256').update(k.key).digest('hex'), scopes: k.scopes })));
  return { clients: clients.map((k) => k.key), admin: admin.key, inline };
}

async function startServer(keysInline) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const modelsDir = mkdtempSync(join(tmpdir(), 'convserve-soak-models-'));
  cpSync(join(root, 'models', 'mnist-cnn'), join(modelsDir, 'mnist-cnn'), { recursive: true });
  const child = spawn(process.execPath, [join(root, 'dist', 'cli', 'main.js'), 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', CONVSERVE_AUTO_FETCH: 'false', CONVSERVE_MODELS_DIR: modelsDir, CONVSERVE_DEFAULT_MODEL: 'mnist-cnn', CONVSERVE_DATA_DIR: mkdtempSync(join(tmpdir(), 'convserve-soak-data-')), ...(keysInline ? { CONVSERVE_API_KEYS: keysInline } : {}) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      const m = /"msg":"convserve listening".*?"port":(\d+)|"port":(\d+).*?"msg":"convserve listening"/.exec(buf);
      if (!m) return;
      // Found: stop collecting (the server logs a line per request; matching a growing buffer cost the soak's own CPU).
      child.stdout.off('data', onData);
      resolve(Number(m[1] ?? m[2]));
    };
    child.stdout.on('data', onData);
    child.on('exit', (code) => reject(new Error(`server exited (${code})`)));
  });
  // Keep reading (and dropping) the request logs so the server's stdout never blocks.
  child.stdout.resume();
  return { url: `http://127.0.0.1:${port}`, child };
}

async function rssMb(url, adminKey) {
  const res = await fetch(`${url}/metrics`, { headers: auth(adminKey) }).catch(() => undefined);
  if (!res || res.status !== 200) return undefined;
  const m = /^process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)$/m.exec(await res.text());
  return m ? Math.round(Number(m[1]) / 2 ** 20) : undefined;
}

const quantile = (xs, q) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

async function main() {
  const keys = !process.env.CONVSERVE_URL && withKeys ? soakKeys() : undefined;
  const own = process.env.CONVSERVE_URL ? undefined : await startServer(keys?.inline);
  const url = process.env.CONVSERVE_URL ?? own.url;
  const clientKey = (i) => keys?.clients[i] ?? process.env.CONVSERVE_SOAK_KEY;
  const adminKey = keys?.admin ?? process.env.CONVSERVE_SOAK_ADMIN_KEY ?? process.env.CONVSERVE_SOAK_KEY;
  for (let i = 0; i < 600 && (await fetch(`${url}/readyz`).then((r) => r.status, () => 0)) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
  const images = await Promise.all([28, 64, 200].map((s) => sharp({ create: { width: s, height: s, channels: 3, background: { r: s, g: 255 - s, b: 90 } } }).png().toBuffer()));
  const stats = { requests: 0, byStatus: {}, latency: {} };
  // Per minute of the run: requests and job-submission latencies (a latency that grows with the stored jobs shows here).
  const perMinute = [];
  let started = Date.now();
  const record = (kind, status, ms) => {
    const m = (perMinute[Math.floor((Date.now() - started) / 60_000)] ??= { requests: 0, submits: [] });
    m.requests++;
    if (kind === 'job-submit') m.submits.push(ms);
    stats.requests++;
    if (status < 200 || status > 299) stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    (stats.latency[kind] ??= []).push(ms);
  };
  const call = async (client, kind, path, init = {}) => {
    const t0 = performance.now();
    try {
      const res = await fetch(`${url}${path}`, { ...init, headers: { ...auth(clientKey(client)), ...(init.headers ?? {}) } });
      const body = Buffer.from(await res.arrayBuffer());
      record(kind, res.status, performance.now() - t0);
      if (res.status === 429) await new Promise((r) => setTimeout(r, 1000 * Math.min(30, Number(res.headers.get('retry-after')) || 1)));
      return { status: res.status, body };
    } catch {
      record(kind, 0, performance.now() - t0);
      return { status: 0, body: Buffer.alloc(0) };
    }
  };
  const form = (field, n) => { const f = new FormData(); for (let i = 0; i < n; i++) f.append(field, new Blob([images[i % images.length]], { type: 'image/png' }), `i${i}.png`); return f; };

  const rssStart = await rssMb(url, adminKey);
  const rssSeries = [rssStart];
  const sampler = setInterval(() => { rssMb(url, adminKey).then((mb) => rssSeries.push(mb)); }, 60_000);
  started = Date.now();
  const deadline = Date.now() + minutes * 60_000;
  let n = 0;
  const worker = async (client) => {
    while (Date.now() < deadline) {
      const r = n++ % 20;
      if (r < 9) await call(client, 'classify', '/v1/classify', { method: 'POST', body: form('image', 1 + (r % 4)) });
      else if (r < 16) await call(client, 'filter', `/v1/filter?kernel=${['edge-3', 'sharpen', 'box-blur'][r % 3]}`, { method: 'POST', body: form('image', 1) });
      else if (r < 18) await call(client, 'read', ['/v1/models', '/v1/kernels', '/v1/jobs?limit=5', '/healthz'][r % 4]);
      else {
        const sub = await call(client, 'job-submit', '/v1/job-kinds/blur-sweep/jobs?steps=5&preview_every=2', { method: 'POST', body: form('image', 1) });
        if (sub.status === 202) {
          const id = JSON.parse(sub.body.toString()).id;
          for (let i = 0; i < 600; i++) {
            const j = await call(client, 'job-poll', `/v1/jobs/${id}`);
            const status = j.status === 200 ? JSON.parse(j.body.toString()).status : 'gone';
            if (!['queued', 'running'].includes(status)) { if (status === 'succeeded') await call(client, 'job-result', `/v1/jobs/${id}/result`); break; }
            await new Promise((res) => setTimeout(res, 100));
          }
        }
      }
    }
  };
  const t0 = Date.now();
  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  clearInterval(sampler);
  const rssEnd = await rssMb(url, adminKey);
  const secs = (Date.now() - t0) / 1000;
  console.log(`soak: ${minutes} min, ${concurrency} concurrent clients against ${url}${own ? ' (started by the script)' : ''}${keys ? `, API keys configured (one use key per client)` : clientKey(0) ? ', with CONVSERVE_SOAK_KEY' : ', no key'}`);
  console.log(`requests: ${stats.requests} (${(stats.requests / secs).toFixed(1)}/s); non-2xx by status: ${JSON.stringify(stats.byStatus)}`);
  for (const [kind, xs] of Object.entries(stats.latency)) console.log(`  ${kind.padEnd(11)} n=${String(xs.length).padStart(6)}  p50 ${quantile(xs, 0.5).toFixed(1)} ms  p99 ${quantile(xs, 0.99).toFixed(1)} ms`);
  const all = Object.values(stats.latency).flat();
  console.log(`all: p50 ${quantile(all, 0.5).toFixed(1)} ms, p99 ${quantile(all, 0.99).toFixed(1)} ms; server RSS ${rssStart ?? '?'} MB at start → ${rssEnd ?? '?'} MB at end`);
  console.log(`server RSS each minute (MB): ${[...rssSeries, rssEnd].map((mb) => mb ?? '?').join(' ')}`);
  console.log(`requests each minute: ${perMinute.map((m) => m?.requests ?? 0).join(' ')}`);
  console.log(`job-submit p50 each minute (ms): ${perMinute.map((m) => (m?.submits.length ? quantile(m.submits, 0.5).toFixed(0) : '-')).join(' ')}`);
  if (own) { own.child.kill('SIGTERM'); await new Promise((r) => own.child.once('exit', r)); }
  process.exitCode = Object.keys(stats.byStatus).some((st) => Number(st) >= 500 || st === '0') ? 1 : 0;
}

await main();
