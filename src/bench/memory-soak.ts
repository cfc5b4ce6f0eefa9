#!/usr/bin/env node
// Memory soak (issue 16): RSS of a real server process idle, during and after a mixed load, and after a quiet
// period — does the memory come back?
//
//   node dist/bench/memory-soak.js [--load-seconds 20] [--idle-seconds 60] [--classify 8] [--filter 32] [--style-size 256]
//
// Needs VGG19 and InceptionV3 in CONVSERVE_MODELS_DIR (offline: `convserve models synth vgg19` and
// `convserve models synth inception_v3`). Load: `--classify` clients POSTing a 1-megapixel JPEG to
// /v1/classify (alternating vgg19 / inception_v3, so both batch), `--filter` clients POSTing a 640×480 JPEG to
// /v1/filter, while one style job (`--style-size` px) runs (the load starts at its first step); a still-running
// job is cancelled when the load ends.
// Every CONVSERVE_* variable of this environment reaches the server (compare settings that way). Prints a
// timeline on stderr and one JSON line on stdout; the timeline includes the engine's idle recycles and
// releases the server logged (each with the server's RSS at that moment), timed from the end of the load.
// After the idle period, one VGG19 classify shows what the first request after a recycle costs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig } from '../config.js';
import { startServerProcess } from './server-process.js';
import { onemegapixelJpeg } from './workloads.js';

const { values } = parseArgs({
  options: {
    'load-seconds': { type: 'string', default: '20' },
    'idle-seconds': { type: 'string', default: '60' },
    classify: { type: 'string', default: '8' },
    filter: { type: 'string', default: '32' },
    'style-size': { type: 'string', default: '256' },
  },
});
const loadMs = Number(values['load-seconds']) * 1000;
const idleMs = Number(values['idle-seconds']) * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (msg: string) => process.stderr.write(`memory-soak: ${msg}\n`);

const dataDir = mkdtempSync(join(tmpdir(), 'convserve-soak-'));
const server = await startServerProcess({ CONVSERVE_MODELS_DIR: resolve(loadConfig().modelsDir), CONVSERVE_DATA_DIR: dataDir });
const { url } = server;
// The engine's memory events, read from the server's log (pino JSON lines on its stdout).
interface MemoryEvent { t_s: number; event: string; session: string; worker?: number; ms?: number; rss_mb: number }
const memoryEvents: MemoryEvent[] = [];
let loadEnd: number | undefined;
let pendingLog = '';
server.child.stdout!.on('data', (d: Buffer) => {
  const lines = (pendingLog + d.toString()).split('\n');
  pendingLog = lines.pop() ?? '';
  for (const line of lines) {
    if (!line.includes('session recycle') && !line.includes('idle session released')) continue;
    const e = JSON.parse(line) as { msg: string; session: string; worker?: number; ms?: number; rss_mb: number };
    const ev: MemoryEvent = { t_s: Number(((Date.now() - (loadEnd ?? Date.now())) / 1000).toFixed(1)), event: e.msg, session: e.session, worker: e.worker, ms: e.ms, rss_mb: e.rss_mb };
    memoryEvents.push(ev);
    log(`${loadEnd === undefined ? 'during load' : `+${ev.t_s} s idle`}: ${ev.event} ${ev.session}${ev.ms !== undefined ? ` (${ev.ms} ms since start)` : ''}: ${ev.rss_mb} MB`);
  }
});
try {
  const models = (await (await fetch(`${url}/v1/models`)).json()) as { models: { name: string; status: string }[] };
  for (const m of ['vgg19', 'inception_v3']) {
    if (models.models.find((e) => e.name === m)?.status !== 'ready') throw new Error(`model ${m} is not ready: run \`convserve models synth ${m}\` (or fetch) first`);
  }
  await sleep(2000);
  const rssIdle = server.rssMb();
  log(`idle ${rssIdle} MB`);

  const photo = await onemegapixelJpeg();
  const small = await sharp(photo).resize(640, 480).jpeg({ quality: 85 }).toBuffer();
  const styleImg = await sharp(photo).resize(320, 240).modulate({ hue: 120 }).jpeg().toBuffer();
  const form = (fields: Record<string, Buffer>) => {
    const f = new FormData();
    for (const [name, buf] of Object.entries(fields)) f.append(name, new Blob([buf], { type: 'image/jpeg' }), `${name}.jpg`);
    return f;
  };

  const job = await fetch(`${url}/v1/style?size=${values['style-size']}&iterations=1000&recipe=gatys&preview_every=0`, { method: 'POST', body: form({ content: small, style: styleImg }) });
  if (job.status !== 202) throw new Error(`style job refused: ${job.status} ${await job.text()}`);
  const jobId = ((await job.json()) as { id: string }).id;
  // The load starts once the job is stepping (its sessions built and loaded), so it really runs alongside.
  const jobState = async () => (await (await fetch(`${url}/v1/jobs/${jobId}`)).json()) as { status: string; progress?: { step?: number }; error?: { type?: string; detail?: string } };
  const t0 = Date.now();
  for (let s = await jobState(); (s.progress?.step ?? 0) < 1 && !['succeeded', 'failed', 'cancelled'].includes(s.status); s = await jobState()) await sleep(250);
  log(`style job stepping after ${((Date.now() - t0) / 1000).toFixed(1)} s (graph builds + session loads)`);

  const statuses = new Map<string, number>();
  const count = (label: string) => statuses.set(label, (statuses.get(label) ?? 0) + 1);
  const end = Date.now() + loadMs;
  const client = async (route: string, i: number) => {
    for (let n = 0; Date.now() < end; n++) {
      const target = route === 'classify' ? `/v1/classify?model=${(i + n) % 2 ? 'inception_v3' : 'vgg19'}` : '/v1/filter?kernel=edge-3&format=jpeg';
      const res = await fetch(`${url}${target}`, { method: 'POST', body: form({ image: route === 'classify' ? photo : small }) }).catch(() => undefined);
      // Refusals are counted with their problem type (e.g. "classify 503 deadline-exceeded").
      const body = res ? Buffer.from(await res.arrayBuffer()) : undefined;
      const slug = res && !res.ok ? /problems\/([a-z-]+)/.exec(body!.toString('utf8', 0, 300))?.[1] : undefined;
      count(`${route} ${res?.status ?? 'network-error'}${slug ? ` ${slug}` : ''}`);
    }
  };
  let peak = rssIdle;
  const sampler = setInterval(() => { peak = Math.max(peak, server.rssMb()); }, 250);
  await Promise.all([
    ...Array.from({ length: Number(values.classify) }, (_, i) => client('classify', i)),
    ...Array.from({ length: Number(values.filter) }, (_, i) => client('filter', i)),
  ]);
  const jobView = await jobState();
  if (!['succeeded', 'failed', 'cancelled'].includes(jobView.status)) await fetch(`${url}/v1/jobs/${jobId}`, { method: 'DELETE' });
  loadEnd = Date.now();
  await sleep(500);
  clearInterval(sampler);
  const rssAfterLoad = server.rssMb();
  log(`after ${loadMs / 1000} s of load: ${rssAfterLoad} MB (peak ${peak} MB); style job ${jobView.status} at step ${jobView.progress?.step ?? '?'}${jobView.error ? ` (${jobView.error.type}: ${jobView.error.detail})` : ''}`);

  // RSS every 250 ms while idle, to find each recycle's peak (a 10-s sample only catches one by luck).
  const fine: { t_s: number; rss_mb: number }[] = [];
  const fineSampler = setInterval(() => fine.push({ t_s: (Date.now() - loadEnd!) / 1000, rss_mb: server.rssMb() }), 250);
  const timeline: number[] = [];
  for (let t = 0; t < idleMs; t += 10_000) {
    await sleep(Math.min(10_000, idleMs - t));
    timeline.push(server.rssMb());
    log(`+${Math.min(t + 10_000, idleMs) / 1000} s idle: ${timeline.at(-1)} MB`);
  }
  clearInterval(fineSampler);
  // Each recycle's reload: from the old session's release to the new one's load, its RSS at both ends and its peak.
  const recycles = memoryEvents.filter((e) => e.event === 'session recycle released' && e.t_s > 0).map((released) => {
    const end = memoryEvents.find((e) => e.session === released.session && e.t_s >= released.t_s && /recycle (loaded|failed)/.test(e.event));
    const during = fine.filter((f) => f.t_s >= released.t_s && (!end || f.t_s <= end.t_s)).map((f) => f.rss_mb);
    return {
      session: released.session.split('@')[0], released_s: released.t_s, seconds: end?.ms !== undefined ? end.ms / 1000 : null,
      rss_released_mb: released.rss_mb, rss_loaded_mb: end?.rss_mb ?? null, rss_peak_mb: Math.max(released.rss_mb, end?.rss_mb ?? 0, ...during),
    };
  });
  for (const r of recycles) log(`reload of ${r.session} at +${r.released_s} s (recycle took ${r.seconds ?? 'unfinished'} s): RSS ${r.rss_released_mb} → ${r.rss_loaded_mb ?? '?'} MB, peak ${r.rss_peak_mb} MB`);

  // The memory is given back, not lost: one request after the idle minute maps VGG19's weights again.
  const t1 = performance.now();
  const after = await fetch(`${url}/v1/classify?model=vgg19`, { method: 'POST', body: form({ image: photo }) });
  await after.arrayBuffer();
  const firstMs = Math.round(performance.now() - t1);
  const rssAfterRequest = server.rssMb();
  log(`one vgg19 classify after the idle minute: ${after.status} in ${firstMs} ms; RSS then ${rssAfterRequest} MB`);
  console.log(JSON.stringify({
    workload: 'memory_soak', load_s: loadMs / 1000, idle_s: idleMs / 1000, classify_clients: Number(values.classify), filter_clients: Number(values.filter), style_size: Number(values['style-size']),
    // The glibc malloc settings the server ran with (docs/memory.md): they decide whether freed memory goes back.
    malloc_env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_') || k === 'GLIBC_TUNABLES')),
    rss_idle_mb: rssIdle, rss_peak_mb: peak, rss_after_load_mb: rssAfterLoad, rss_after_idle_mb: timeline.at(-1) ?? rssAfterLoad, rss_idle_timeline_mb: timeline,
    idle_recycles: recycles, rss_idle_peak_after_30s_mb: Math.max(0, ...fine.filter((f) => f.t_s >= 30).map((f) => f.rss_mb)),
    first_classify_after_idle: { status: after.status, ms: firstMs, rss_mb: rssAfterRequest },
    responses: Object.fromEntries([...statuses].sort()), style_job: jobView.status, memory_events: memoryEvents,
  }));
} finally {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
