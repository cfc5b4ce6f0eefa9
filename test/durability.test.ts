// Durability and integrity (issue 13, items 10–12): an unreadable job folder is quarantined, never deleted; a
// torn or damaged last checkpoint falls back to the one before it and the job still finishes with the right
// result; interrupted model writes are recovered at start; model files changed on disk are caught before a load;
// manifests and ONNX external data cannot point outside their folder; downloads stop past their size; `train
// mnist --out` will not replace a folder that is not a model.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { checkModelOutput } from '../src/cli/train.js';
import { JobStore } from '../src/jobs/store.js';
import { downloadFile } from '../src/models/fetch.js';
import { type Manifest, Manifest as ManifestSchema, writeManifest, writeModelFiles } from '../src/models/manifest.js';
import { ModelRegistry } from '../src/models/registry.js';
import { externalDataPath } from '../src/ops/grad-session.js';
import { ProblemError } from '../src/util/problem.js';
import { writeAtomic } from '../src/util/fs.js';
import { tempDir, testPattern } from './helpers/app.js';
import { blurNTimes, decodeRaw, finishedBlurJobs, getJson, pollJob, readSse, startJobsServer, submitBlur } from './helpers/jobs.js';

/** A pid that belonged to a process which has exited (what a crashed writer leaves in its temp folder names). */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '0']).pid!;

/** A small model folder whose manifest records the files' real hashes (the registry's view of a model). */
function writeModelFolder(modelsDir: string, folder: string, weights: Buffer, name = folder): string {
  const dir = join(modelsDir, folder);
  mkdirSync(dir, { recursive: true });
  const { sha256, sizes } = writeModelFiles(dir, { 'model.onnx': Buffer.from('not really onnx'), 'model.weights.bin': weights, 'labels.json': JSON.stringify([{ label: 'a' }, { label: 'b' }]) });
  const manifest: Manifest = {
    schema: 1, name, architecture: 'test', task: 'classification',
    input: { name: 'input', height: 4, width: 4, channels: 3 }, output: { name: 'probabilities', classes: 2 },
    preprocessing: 'tf', weights: { provenance: 'synthetic' },
    files: { model: 'model.onnx', weights: 'model.weights.bin', labels: 'labels.json', sha256, sizes },
    created_at: new Date().toISOString(),
  };
  writeManifest(dir, manifest);
  return dir;
}

describe('job durability', () => {
  it('a job folder whose job.json is not JSON is moved to <data>/quarantine, logged, never deleted; the others load', async () => {
    const { dataDir, ids } = await finishedBlurJobs(2, 12);
    const torn = join(dataDir, 'jobs', ids[0]!, 'job.json');
    const bytes = readFileSync(torn);
    writeFileSync(torn, bytes.subarray(0, bytes.length >> 1));

    const srv2 = await startJobsServer({ dataDir });
    try {
      assert.equal((await getJson(`${srv2.url}/v1/jobs/${ids[0]}`)).status, 404);
      assert.equal((await getJson(`${srv2.url}/v1/jobs/${ids[1]}`)).body.status, 'succeeded');
      const moved = join(dataDir, 'quarantine', ids[0]!);
      assert.equal(existsSync(join(dataDir, 'jobs', ids[0]!)), false);
      assert.ok(readFileSync(join(moved, 'job.json')).equals(bytes.subarray(0, bytes.length >> 1)), 'the torn record is kept as it was');
      assert.ok(readdirSync(join(moved, 'inputs')).length === 1, 'with its inputs');
      await srv2.jobs.sweep(Date.now() + 1000 * 3_600_000);
      assert.ok(existsSync(moved), 'expiry never reaches the quarantine');
    } finally {
      await srv2.shutdown();
    }
  });

  it('a torn last checkpoint falls back to the one before it; the resumed job ends with the exact result', async () => {
    const W = 20, H = 14, STEPS = 30;
    const { raw, png } = await testPattern(W, H);
    const srv = await startJobsServer({ checkpointEverySteps: 2, blurSweepStepDelayMs: 20 });
    const dataDir = srv.dataDir;
    const sub = await submitBlur(srv.url, png, { steps: STEPS, preview_every: 0 });
    const id: string = sub.body.id;
    await pollJob(srv.url, id, (j) => j.progress.step >= 7);
    await srv.shutdown();

    const store = new JobStore(dataDir);
    const last = await store.readCheckpoint(id);
    const prevFile = store.path(id, 'checkpoint.prev.bin');
    assert.ok(last && existsSync(prevFile), 'two checkpoints kept');
    const prevStep = (await readCheckpointStep(prevFile))!;
    assert.ok(prevStep < last.meta.step, `previous ${prevStep} < last ${last.meta.step}`);
    // Torn write: the tail of the last checkpoint is missing.
    const file = store.path(id, 'checkpoint.bin');
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 7));
    const fallback = (await store.readCheckpoint(id))!;
    assert.equal(fallback.meta.step, prevStep);
    assert.match(fallback.fellBack!, /SHA-256 checksum does not match/);

    const srv2 = await startJobsServer({ dataDir });
    try {
      const done = await srv2.jobs.waitFor(id);
      assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
      const evs = await readSse(`${srv2.url}/v1/jobs/${id}/events`);
      const resumed = evs.filter((e) => e.event === 'resumed').at(-1)!;
      assert.equal(resumed.data.from_step, prevStep, 'resumed from the previous checkpoint');
      const out = await decodeRaw(Buffer.from(await (await fetch(`${srv2.url}/v1/jobs/${id}/result`)).arrayBuffer()));
      assert.ok(out.data.equals(await blurNTimes(raw, W, H, 1, STEPS)), 'the result equals 30 blurs: no step lost or repeated');
      assert.equal(existsSync(prevFile), false, 'both checkpoints are deleted with the finished job');
    } finally {
      await srv2.shutdown();
    }
  });

  it('a flipped byte in the last checkpoint is caught by its checksum; with no good one left the problem is named', async () => {
    const dir = tempDir();
    const store = new JobStore(dir);
    const id = '00000000-0000-4000-8000-000000000001';
    mkdirSync(store.dir(id), { recursive: true });
    const pixels = Buffer.from([1, 2, 3, 4, 5, 6]);
    await store.writeCheckpoint(id, { step: 2, run_ms: 10 }, { json: { a: 1 }, buffers: { pixels } });
    await store.writeCheckpoint(id, { step: 4, run_ms: 20 }, { json: { a: 2 }, buffers: { pixels: Buffer.from([9, 9, 9, 9, 9, 9]) } });
    assert.equal((await store.readCheckpoint(id))!.meta.step, 4);
    const file = store.path(id, 'checkpoint.bin');
    const b = readFileSync(file);
    b[b.length - 40] ^= 0xff; // inside the pixel buffer: the layout still parses, only the digest tells
    writeFileSync(file, b);
    const back = (await store.readCheckpoint(id))!;
    assert.deepEqual([back.meta.step, back.state.json, [...back.state.buffers!.pixels!]], [2, { a: 1 }, [...pixels]]);
    writeFileSync(store.path(id, 'checkpoint.prev.bin'), Buffer.from('CVCKPT2\n'));
    await assert.rejects(store.readCheckpoint(id), (e: unknown) => e instanceof ProblemError && e.slug === 'invalid-checkpoint' && /checkpoint\.bin: the SHA-256 checksum does not match/.test(e.detail) && !e.detail.includes(dir));
  });

  it('writeAtomic leaves the whole new content and no temporary file', () => {
    const dir = tempDir();
    const path = join(dir, 'x.json');
    writeAtomic(path, 'old');
    writeAtomic(path, JSON.stringify({ n: 2 }));
    assert.equal(readFileSync(path, 'utf8'), '{"n":2}');
    assert.deepEqual(readdirSync(dir), ['x.json']);
  });
});

describe('model folders', () => {
  it('leftovers of interrupted model writes are recovered or removed at start; a live writer\'s temp folder is left alone', () => {
    const modelsDir = tempDir();
    const dead = deadPid();
    // Swap stopped after the old folder was moved aside, before the new one came in, and the new one is gone.
    const restored = writeModelFolder(modelsDir, `.tmp-alpha-${dead}-aa11`, Buffer.alloc(8, 1), 'alpha');
    const oldAlpha = `${restored}.old`;
    spawnSync('mv', [restored, oldAlpha]);
    // Swap stopped at the same point, new folder complete: it goes in, the old one goes.
    const newBeta = writeModelFolder(modelsDir, `.tmp-beta-${dead}-bb22`, Buffer.alloc(8, 2), 'beta');
    mkdirSync(`${newBeta}.old`);
    writeFileSync(join(`${newBeta}.old`, 'stale'), 'x');
    // Swap done, old folder not deleted; an interrupted write; a write in progress in a live process.
    writeModelFolder(modelsDir, 'gamma', Buffer.alloc(8, 3));
    mkdirSync(join(modelsDir, `.tmp-gamma-${dead}-cc33.old`));
    mkdirSync(join(modelsDir, `.tmp-delta-${dead}-dd44`));
    mkdirSync(join(modelsDir, `.tmp-live-${process.pid}-ee55`));

    const reg = new ModelRegistry({ modelsDir });
    assert.deepEqual(reg.recovered.map((r) => [r.model, r.action]).sort(), [['alpha', 'restored-old'], ['beta', 'completed-swap'], ['delta', 'deleted-tmp'], ['gamma', 'deleted-old']]);
    assert.deepEqual(readdirSync(modelsDir).sort(), [`.tmp-live-${process.pid}-ee55`, 'alpha', 'beta', 'gamma']);
    for (const m of ['alpha', 'beta', 'gamma']) assert.equal(reg.get(m)?.status, 'ready', `${m}: ${reg.get(m)?.error}`);
    assert.ok(readFileSync(join(modelsDir, 'beta', 'model.weights.bin')).equals(Buffer.alloc(8, 2)));
  });

  it('model files are hashed before a load when their size or mtime changed since the last verified load', async () => {
    const modelsDir = tempDir();
    const dir = writeModelFolder(modelsDir, 'm1', Buffer.alloc(64, 7));
    const weights = join(dir, 'model.weights.bin');
    const T = 1_700_000_000; // whole seconds: utimes restores them exactly
    utimesSync(weights, T, T);
    const reg = new ModelRegistry({ modelsDir });
    assert.equal((await reg.verifyIfChanged('m1'))?.status, 'ready');
    const stamps = JSON.parse(readFileSync(join(modelsDir, '.verified.json'), 'utf8'));
    assert.deepEqual(Object.keys(stamps.m1).sort(), ['labels.json', 'model.onnx', 'model.weights.bin']);

    // Same size, same mtime: not hashed again (that is the point of the stamps) — the bit flip goes unseen.
    writeFileSync(weights, Buffer.alloc(64, 8));
    utimesSync(weights, T, T);
    assert.equal((await new ModelRegistry({ modelsDir }).verifyIfChanged('m1'))?.status, 'ready', 'stamps survive a restart');
    // A changed mtime: hashed, and the mismatch stops the load.
    utimesSync(weights, T, T + 5);
    const reg2 = new ModelRegistry({ modelsDir });
    const bad = await reg2.verifyIfChanged('m1');
    assert.equal(bad?.status, 'error');
    assert.match(bad!.error!, /^model\.weights\.bin: sha256 .* does not match the manifest/);
    assert.equal(reg2.get('m1')?.status, 'error');
  });

  it('manifest file names are plain basenames; external-data locations stay inside the model folder', () => {
    const dir = tempDir();
    const m = writeModelFolder(dir, 'm2', Buffer.alloc(4));
    const good = readManifestJson(m);
    for (const name of ['../x.onnx', '/etc/passwd', 'a/b.onnx', '..', 'a\\b', '']) {
      assert.equal(ManifestSchema.safeParse({ ...good, files: { ...good.files, model: name } }).success, false, name);
      assert.equal(ManifestSchema.safeParse({ ...good, files: { ...good.files, sha256: { [name]: 'a'.repeat(64) } } }).success, false, `sha256 key ${name}`);
    }
    assert.equal(ManifestSchema.safeParse(good).success, true);
    assert.equal(externalDataPath(m, 'model.weights.bin', 't'), join(m, 'model.weights.bin'));
    for (const loc of ['/etc/passwd', '../m1/model.weights.bin', 'sub/../../x', '.', 'C:\\x']) assert.throws(() => externalDataPath(m, loc, 't'), /not a relative path inside the model folder/, loc);
  });

  it('train mnist --out refuses a file or a folder that is not a model; an empty folder or a model folder is fine', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'docs'));
    writeFileSync(join(dir, 'docs', 'thesis.tex'), 'x');
    writeFileSync(join(dir, 'file'), 'x');
    mkdirSync(join(dir, 'empty'));
    const model = writeModelFolder(dir, 'm3', Buffer.alloc(4));
    assert.throws(() => checkModelOutput(join(dir, 'docs')), /refusing to replace .*not a model folder \(no manifest\.json\)/);
    assert.throws(() => checkModelOutput(join(dir, 'file')), /it is a file/);
    checkModelOutput(join(dir, 'empty'));
    checkModelOutput(join(dir, 'absent'));
    checkModelOutput(model);
  });

  it('a download that runs past its expected size is stopped and removed', async () => {
    const big = Buffer.alloc(256 * 1024, 1);
    const server: Server = createServer((_req, res) => { res.writeHead(200); res.end(big); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const dir = tempDir();
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/w.h5`;
      const err = await downloadFile(url, join(dir, 'w.h5'), 'x', { arch: 'vgg19', expectedSize: 1000, retries: 0 }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof ProblemError && err.slug === 'weights-too-large', String(err));
      assert.deepEqual(readdirSync(dir), []);
      const insecure = await downloadFile('http://example.invalid/w.h5', join(dir, 'w.h5'), 'x', { arch: 'vgg19', retries: 0 }).then(() => undefined, (e: unknown) => e);
      assert.ok(insecure instanceof ProblemError && insecure.slug === 'insecure-weights-url', String(insecure));
    } finally {
      server.close();
    }
  });
});

function readManifestJson(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
}

async function readCheckpointStep(file: string): Promise<number | undefined> {
  const b = readFileSync(file);
  const hlen = b.readUInt32LE(8);
  return (JSON.parse(b.subarray(12, 12 + hlen).toString('utf8')) as { step: number }).step;
}
