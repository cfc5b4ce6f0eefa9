// Registry statuses (missing with the install commands, ready, downloading, error) and fetching the official
// files from a local loopback HTTP server: resume after an interrupted download, MD5 mismatch, offline.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadConfig } from '../src/config.js';
import { fetchModel } from '../src/models/fetch.js';
import { importKerasModel } from '../src/models/import.js';
import { readLabels, readManifest } from '../src/models/manifest.js';
import { CLASS_INDEX, OFFICIAL_WEIGHTS } from '../src/models/official.js';
import { type ModelEntry, ModelRegistry } from '../src/models/registry.js';
import { writeSyntheticKerasH5 } from '../src/models/synth.js';
import { ProblemError } from '../src/util/problem.js';

const root = mkdtempSync(join(tmpdir(), 'convserve-'));
const W = 1 / 8;
let h5Bytes: Buffer;
let classIndex: Buffer;
let server: Server;
let baseUrl: string;
const requests: { url: string; range?: string }[] = [];
/** Requests for the .h5 that get cut off after half the bytes (then the connection is destroyed). */
let interruptNext = 0;

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const vggTop = OFFICIAL_WEIGHTS.vgg19.top;

before(async () => {
  const h5 = join(root, 'served.h5');
  await writeSyntheticKerasH5('vgg19', h5, { seed: 5, includeTop: true, width: W });
  h5Bytes = readFileSync(h5);
  classIndex = Buffer.from(JSON.stringify(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [String(i), [`n${String(i).padStart(8, '0')}`, `label_${i}`]]))));
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push({ url: req.url ?? '', range: req.headers.range });
    const body = req.url === `/${vggTop.path}` ? h5Bytes : req.url === `/${CLASS_INDEX.path}` ? classIndex : undefined;
    if (!body) { res.writeHead(404).end('not found'); return; }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (start >= body.length) { res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end(); return; }
    const headers: Record<string, string | number> = { 'content-length': body.length - start, 'accept-ranges': 'bytes' };
    if (m) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    res.writeHead(m ? 206 : 200, headers);
    if (body === h5Bytes && interruptNext > 0) {
      interruptNext--;
      res.write(body.subarray(start, start + Math.floor((body.length - start) / 2)), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  await new Promise((r) => server.close(r));
  rmSync(root, { recursive: true, force: true });
});

let n = 0;
const freshDir = () => { const d = join(root, `models${++n}`); mkdirSync(d); return d; };

test('known models are listed as missing, with the exact commands that install them', () => {
  const reg = new ModelRegistry({ modelsDir: freshDir() });
  const byName = Object.fromEntries(reg.list().map((e) => [e.name, e]));
  assert.deepEqual(Object.keys(byName).sort(), ['inception_v3', 'vgg19']);
  assert.equal(byName.vgg19!.status, 'missing');
  assert.deepEqual(byName.vgg19!.install, ['convserve models fetch vgg19', 'convserve models synth vgg19']);
  assert.deepEqual(byName.inception_v3!.install, ['convserve models fetch inception_v3', 'convserve models synth inception_v3']);
});

test('ready after an import, error for a corrupt manifest or a short file, verify() checks the hashes', async () => {
  const dir = freshDir();
  const reg = new ModelRegistry({ modelsDir: dir });
  const changes: ModelEntry[] = [];
  reg.on('change', (e) => changes.push(e));
  const h5 = join(root, 'served.h5');
  const r = await importKerasModel({ name: 'vgg19', arch: 'vgg19', weightsFile: h5, modelsDir: dir, provenance: 'synthetic', width: W });
  reg.rescan();
  const ready = reg.get('vgg19')!;
  assert.equal(ready.status, 'ready');
  assert.equal(ready.modelPath, r.modelPath);
  assert.equal(ready.task, 'classification');
  assert.ok(changes.some((e) => e.name === 'vgg19' && e.status === 'ready'), 'change event for the new model');
  assert.equal((await reg.verify('vgg19')).status, 'ready');
  assert.ok(reg.get('vgg19')!.verifiedAt);

  // Same size, different bytes: only the full verify notices.
  const weights = readFileSync(r.weightsPath!);
  weights[weights.length - 1] = weights[weights.length - 1]! ^ 0xff;
  writeFileSync(r.weightsPath!, weights);
  assert.equal(reg.rescan().find((e) => e.name === 'vgg19')!.status, 'ready');
  const bad = await reg.verify('vgg19');
  assert.equal(bad.status, 'error');
  assert.match(bad.error!, /model\.weights\.bin: sha256 .* does not match the manifest/);

  writeFileSync(r.weightsPath!, weights.subarray(0, 1000));
  assert.match(reg.rescan().find((e) => e.name === 'vgg19')!.error!, /model\.weights\.bin is 1000 bytes, the manifest says \d+/);

  mkdirSync(join(dir, 'broken'));
  writeFileSync(join(dir, 'broken', 'manifest.json'), '{"schema": 1, "name": "broken"');
  mkdirSync(join(dir, 'wrong'));
  writeFileSync(join(dir, 'wrong', 'manifest.json'), JSON.stringify({ schema: 1, name: 'wrong' }));
  mkdirSync(join(dir, 'empty'));
  reg.rescan();
  assert.equal(reg.get('broken')!.status, 'error');
  assert.match(reg.get('broken')!.error!, /invalid manifest: .*JSON/);
  assert.match(reg.get('wrong')!.error!, /invalid manifest: .*architecture/);
  assert.match(reg.get('empty')!.error!, /manifest\.json is missing/);
  assert.equal(reg.get('inception_v3')!.status, 'missing');
});

test('a partial download in the cache shows as downloading (fresh) or as resumable (stale)', () => {
  const dir = freshDir();
  mkdirSync(join(dir, '.cache'));
  const part = join(dir, '.cache', `${vggTop.file}.part`);
  writeFileSync(part, Buffer.alloc(1 << 20));
  const reg = new ModelRegistry({ modelsDir: dir });
  const e = reg.get('vgg19')!;
  assert.equal(e.status, 'downloading');
  assert.ok(e.percent! > 0 && e.percent! < 1, `percent ${e.percent}`);
  const old = new Date(Date.now() - 3600_000);
  utimesSync(part, old, old);
  const stale = reg.rescan().find((x) => x.name === 'vgg19')!;
  assert.equal(stale.status, 'missing');
  assert.match(stale.error!, /partial download .* 'convserve models fetch vgg19' resumes it/);
});

test('fetch resumes an interrupted download with a Range request, checks md5, imports with labels', async () => {
  const dir = freshDir();
  const reg = new ModelRegistry({ modelsDir: dir });
  const seen: ModelEntry[] = [];
  reg.on('change', (e) => { if (e.name === 'vgg19') seen.push({ ...e }); });
  requests.length = 0;
  interruptNext = 1;
  const r = await reg.fetch('vgg19', { baseUrl, backoffMs: 10, md5: { weights: md5(h5Bytes), labels: md5(classIndex) }, width: W });
  const h5Requests = requests.filter((q) => q.url.endsWith('.h5'));
  assert.equal(h5Requests.length, 2, JSON.stringify(requests));
  assert.equal(h5Requests[0]!.range, undefined);
  assert.match(h5Requests[1]!.range ?? '', /^bytes=\d+-$/);
  assert.ok(Number(/\d+/.exec(h5Requests[1]!.range!)![0]) > 0, 'resumed from where the first attempt stopped');

  assert.equal(reg.get('vgg19')!.status, 'ready');
  assert.ok(seen.some((e) => e.status === 'downloading'), 'downloading status was reported');
  assert.equal(seen.at(-1)!.status, 'ready');
  const m = readManifest(r.dir);
  assert.equal(m.weights.provenance, 'imagenet');
  assert.equal(m.weights.source, `${baseUrl}/${vggTop.path}`);
  assert.deepEqual(readLabels(r.dir, m)[7], { wnid: 'n00000007', label: 'label_7' });
  assert.deepEqual(readdirSync(join(dir, '.cache')), [CLASS_INDEX.file], 'the .h5 is removed after import, no .part left');
});

test('an md5 mismatch is an error; the bad file is removed and no model is written', async () => {
  const dir = freshDir();
  const err = await fetchModel('vgg19', { modelsDir: dir, baseUrl, backoffMs: 10, md5: { weights: '0'.repeat(32), labels: md5(classIndex) }, width: W })
    .then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ProblemError);
  assert.equal(err.slug, 'weights-checksum-mismatch');
  assert.match(err.detail, new RegExp(`${vggTop.file}: md5 ${md5(h5Bytes)} does not match the expected 0{32}`));
  assert.ok(!existsSync(join(dir, '.cache', `${vggTop.file}.part`)));
  assert.ok(!existsSync(join(dir, 'vgg19')));
});

test('offline: one clear line suggesting synth', async () => {
  const dir = freshDir();
  const err = await fetchModel('vgg19', { modelsDir: dir, baseUrl: 'https://storage.invalid', backoffMs: 10, retries: 0 }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ProblemError, String(err));
  assert.equal(err.detail, "cannot reach storage.invalid: offline? Use 'convserve models synth vgg19' for untrained weights");
});

test('weights come over https only: plain http is refused unless the host is loopback', async () => {
  const dir = freshDir();
  const err = await fetchModel('vgg19', { modelsDir: dir, baseUrl: 'http://storage.invalid', retries: 0 }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ProblemError, String(err));
  assert.equal(err.slug, 'insecure-weights-url');
  assert.throws(() => loadConfig({ CONVSERVE_WEIGHTS_BASE_URL: 'http://mirror.example' }), /CONVSERVE_WEIGHTS_BASE_URL.*https/);
  assert.equal(loadConfig({ CONVSERVE_WEIGHTS_BASE_URL: 'http://127.0.0.1:9' }).weightsBaseUrl, 'http://127.0.0.1:9');
});

test('a missing file on the server is a plain HTTP error, not retried forever', async () => {
  const dir = freshDir();
  requests.length = 0;
  const err = await fetchModel('inception_v3', { modelsDir: dir, baseUrl, backoffMs: 10, md5: { labels: md5(classIndex) } }).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof ProblemError);
  assert.match(err.detail, /HTTP 404 .*inception_v3_weights_tf_dim_ordering_tf_kernels\.h5/);
  assert.equal(requests.filter((q) => q.url.endsWith('.h5')).length, 1);
});
