// Fine-tuning as a job (issue #12 item 5): POST /v1/jobs/finetune with a zip or a tar.gz of class folders, on a
// synthetic reduced-width VGG19 base, over HTTP (supertest against the running service): per-epoch progress
// events with loss/accuracy/val_loss/val_accuracy, the model installed and served by POST /v1/classify, the
// report as the result; cancel; a restart that resumes at the checkpointed epoch and ends with the very history an
// uninterrupted `convserve finetune` run on the same images has (the CLI is the oracle: same split, seeds and
// schedule, so the checkpoint must carry weights, Adam's state, the best epoch and the schedule); hostile archives (absolute path, `..`, symlink, too many files, zip bombs, not
// an archive, one class), each a 4xx with the service still answering.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zipSync } from 'fflate';
import sharp from 'sharp';
import request from 'supertest';
import { create as createTar } from 'tar';
import type { Config } from '../src/config.js';
import { readManifest } from '../src/models/manifest.js';
import { synthesizeModel } from '../src/models/synth.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { finetune } from '../src/train/finetune.js';
import { NEAR_CHANCE_POINTS } from '../src/train/judge.js';
import { Prng } from '../src/util/prng.js';
import { tempDir, testConfig } from './helpers/app.js';
import { readSse } from './helpers/jobs.js';

const COLOURS: Record<string, [number, number, number]> = { blue: [40, 70, 220], green: [40, 200, 60], red: [220, 40, 40] };
const PER_CLASS = 6;
/** 3 × 6 images, 1 per class held out: 15 training images, 2 steps of 8 an epoch; min_steps 0 keeps the epochs asked for. */
const TRAIN = { base: 'vgg19', epochs: '3', min_steps: '0', batch_size: '8', lr: '0.01', seed: '1' };

/** A 48×48 PNG: grey background, a square of the class colour at a random place. */
async function shapeImage(rgb: [number, number, number], rand: () => number): Promise<Buffer> {
  const bg = Math.round(70 + rand() * 110);
  const x = Math.round(4 + rand() * 16);
  const y = Math.round(4 + rand() * 16);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48"><rect width="48" height="48" fill="rgb(${bg},${bg},${bg})"/><rect x="${x}" y="${y}" width="24" height="24" fill="rgb(${rgb.join(',')})"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** `class/img-NN.png` → bytes (zero-padded names: the CLI's sorted listing is the archive's order). */
async function dataset(seed: number, classes = Object.keys(COLOURS), perClass = PER_CLASS): Promise<Record<string, Buffer>> {
  const rand = new Prng(seed).asFunction();
  const files: Record<string, Buffer> = {};
  for (const c of classes) for (let i = 0; i < perClass; i++) files[`${c}/img-${String(i).padStart(2, '0')}.png`] = await shapeImage(COLOURS[c]!, rand);
  return files;
}

const zipOf = (files: Record<string, Uint8Array>) => Buffer.from(zipSync(Object.fromEntries(Object.entries(files).map(([k, v]) => [k, [v, { level: 6 }]]))));

function writeTree(dir: string, files: Record<string, Buffer>): void {
  for (const [name, bytes] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), bytes);
  }
}

async function tarOf(dir: string, entries: string[], gzip: boolean): Promise<Buffer> {
  const file = `${dir}.tar${gzip ? '.gz' : ''}`;
  await createTar({ cwd: dir, file, gzip, portable: true }, entries);
  return readFileSync(file);
}

describe('finetune as a job (POST /v1/jobs/finetune)', () => {
  const root = tempDir('convserve-ftjob-');
  const modelsDir = join(root, 'models');
  const dataDir = join(root, 'data');
  let svc: RunningService;
  let files: Record<string, Buffer>;
  const overrides: Partial<Config> = { modelsDir, dataDir, finetuneMaxArchiveBytes: 1024 * 1024, finetuneMaxFiles: 64, finetuneMaxExtractedBytes: 4 * 1024 * 1024, checkpointEverySteps: 1 };
  const start = () => startService({ config: testConfig(overrides), plugins: [inferencePlugin(), jobsPlugin] });

  before(async () => {
    await synthesizeModel('vgg19', { modelsDir, name: 'vgg19', width: 0.125, seed: 3 });
    files = await dataset(11);
    svc = await start();
    for (let i = 0; i < 300 && !svc.ctx.readiness.status().ready; i++) await new Promise((r) => setTimeout(r, 100));
  });
  after(async () => { await svc?.shutdown(); });

  /** The same images as a folder, for `convserve finetune`. */
  const cliData = () => {
    const folder = join(root, 'cli-data');
    if (!existsSync(folder)) writeTree(folder, files);
    return folder;
  };

  const submit = (archive: Buffer, fields: Record<string, string>, filename = 'data.bin') => {
    const req = request(svc.url).post('/v1/jobs/finetune');
    for (const [k, v] of Object.entries(fields)) req.field(k, v);
    return req.attach('archive', archive, filename);
  };

  async function waitDone(id: string) {
    const events = await readSse(`${svc.url}/v1/jobs/${id}/events`, { until: (e) => e.event === 'done' });
    return { events, done: events.at(-1)! };
  }

  it('a zip of class folders trains per epoch, installs the model, and POST /v1/classify serves it at once', async () => {
    const res = await submit(zipOf(files), { ...TRAIN, name: 'colours-zip' }, 'colours.tar');
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.kind, 'finetune');
    const { events, done } = await waitDone(res.body.id);
    assert.equal(done.data.status, 'succeeded', JSON.stringify(done.data));
    const progress = events.filter((e) => e.event === 'progress');
    assert.deepEqual(progress.map((e) => e.data.step), [1, 2, 3], 'one progress event per epoch');
    for (const p of progress) {
      for (const m of ['loss', 'accuracy', 'val_loss', 'val_accuracy']) assert.ok(Number.isFinite(p.data.metrics[m]), `${m} in ${JSON.stringify(p.data.metrics)}`);
      assert.equal(p.data.total, 3);
    }

    // The result: the report of the installed model, with its verdict.
    const result = await request(svc.url).get(`/v1/jobs/${res.body.id}/result`);
    assert.equal(result.status, 200);
    assert.match(String(result.headers['content-type']), /^application\/json/);
    const report = JSON.parse(result.text);
    const onDisk = JSON.parse(readFileSync(join(modelsDir, 'colours-zip', 'report.json'), 'utf8'));
    assert.deepEqual(report.history, onDisk.history);
    assert.deepEqual(report.classes, ['blue', 'green', 'red']);
    assert.equal(report.data.root, 'uploaded archive');
    assert.ok(Array.isArray(report.warnings));
    assert.ok(report.warnings.some((w: string) => /too small to judge/.test(w)), '3 validation images: the verdict says so');
    const nearChance = report.validation.accuracy <= 1 / 3 + NEAR_CHANCE_POINTS;
    assert.equal(report.warnings.some((w: string) => /of chance/.test(w)), nearChance, `the chance-level warning iff accuracy ${report.validation.accuracy} is near chance`);
    assert.deepEqual(progress.map((p) => p.data.metrics.val_loss), report.history.map((h: { val_loss: number }) => h.val_loss), 'the events carry the report\'s epochs');
    const job = (await request(svc.url).get(`/v1/jobs/${res.body.id}`)).body;
    assert.equal(job.previews.length, 1, 'report.png as the last preview');
    const png = await request(svc.url).get(job.previews[0]).buffer(true);
    const meta = await sharp(png.body).metadata();
    assert.ok(meta.width! > 100 && meta.height! > 100);

    const m = readManifest(join(modelsDir, 'colours-zip'));
    assert.equal(m.weights.provenance, 'fine-tuned');
    assert.equal(m.weights.base, 'vgg19');

    // Served without a reload.
    const probe = files['red/img-00.png']!;
    const cls = await request(svc.url).post('/v1/classify?model=colours-zip&top=3').attach('image', probe, 'red.png');
    assert.equal(cls.status, 200, JSON.stringify(cls.body));
    const preds = cls.body.predictions as { label: string; probability: number }[];
    assert.deepEqual(preds.map((p) => p.label).sort(), ['blue', 'green', 'red']);
    assert.ok(Math.abs(preds.reduce((s, p) => s + p.probability, 0) - 1) < 1e-4);
  });

  it('a tar.gz (detected from its bytes, whatever its name) trains too; the name is then taken unless replace=true', async () => {
    const dir = join(root, 'tree');
    writeTree(join(dir, 'photos'), files); // one wrapping folder
    const tgz = await tarOf(dir, ['photos'], true);
    const res = await submit(tgz, { ...TRAIN, epochs: '2', name: 'colours-tar' }, 'data.zip');
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const { done } = await waitDone(res.body.id);
    assert.equal(done.data.status, 'succeeded', JSON.stringify(done.data));
    assert.deepEqual(JSON.parse(readFileSync(join(modelsDir, 'colours-tar', 'labels.json'), 'utf8')).map((l: { label: string }) => l.label), ['blue', 'green', 'red']);

    const taken = await submit(tgz, { ...TRAIN, name: 'colours-tar' });
    assert.equal(taken.status, 409);
    assert.equal(taken.body.type, 'https://convserve.dev/problems/finetune-name-taken');
    const official = await submit(tgz, { ...TRAIN, name: 'vgg19', base: 'vgg19', replace: 'true' });
    assert.equal(official.status, 400, 'the base itself');
    const plainTar = await tarOf(dir, ['photos'], false);
    const again = await submit(plainTar, { ...TRAIN, epochs: '1', name: 'colours-tar', replace: 'true' });
    assert.equal(again.status, 202, JSON.stringify(again.body));
    assert.equal((await waitDone(again.body.id)).done.data.status, 'succeeded');
  });

  it('cancel stops the job between epochs; nothing is installed', async () => {
    const res = await submit(zipOf(files), { ...TRAIN, epochs: '400', name: 'colours-cancelled' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    await readSse(`${svc.url}/v1/jobs/${res.body.id}/events`, { until: (e) => e.event === 'progress' });
    const c = await request(svc.url).delete(`/v1/jobs/${res.body.id}`);
    assert.ok([200, 202].includes(c.status), JSON.stringify(c.body));
    const { done } = await waitDone(res.body.id);
    assert.equal(done.data.status, 'cancelled');
    assert.ok(done.data.progress.step < 400);
    assert.equal(existsSync(join(modelsDir, 'colours-cancelled')), false);
  });

  it('a restarted server resumes the job at its checkpointed epoch, not at 0 — and trains exactly what `convserve finetune` trains', async (t) => {
    const res = await submit(zipOf(files), { ...TRAIN, epochs: '60', name: 'colours-resumed' });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const id = res.body.id as string;
    const seen = await readSse(`${svc.url}/v1/jobs/${id}/events`, { until: (e) => e.event === 'progress' && e.data.step >= 3 });
    await svc.shutdown();
    const rec = JSON.parse(readFileSync(join(dataDir, 'jobs', id, 'job.json'), 'utf8'));
    assert.equal(rec.status, 'running', 'left running on disk');
    assert.ok(rec.checkpoint.step >= 3, `checkpoint at epoch ${rec.checkpoint?.step}`);
    svc = await start();
    const rest = await readSse(`${svc.url}/v1/jobs/${id}/events`, { lastEventId: seen.at(-1)!.id, until: (e) => e.event === 'done' });
    assert.equal(rest.at(-1)!.data.status, 'succeeded', JSON.stringify(rest.at(-1)!.data));
    const resumed = rest.find((e) => e.event === 'resumed')!;
    assert.equal(resumed.data.from_step, rec.checkpoint.step);
    const firstAfter = rest.slice(rest.indexOf(resumed)).find((e) => e.event === 'progress')!;
    assert.equal(firstAfter.data.step, rec.checkpoint.step + 1, 'the first epoch after the restart follows the checkpoint');
    const report = (await request(svc.url).get(`/v1/jobs/${id}/result`)).body;
    assert.ok(report.history.length > rec.checkpoint.step);
    assert.deepEqual(report.history.map((h: { epoch: number }) => h.epoch), Array.from({ length: report.history.length }, (_, i) => i + 1));
    // The oracle: an uninterrupted `convserve finetune` run — same epochs, same early stop, same numbers, so the
    // checkpoint carried the weights, Adam's state, the best epoch and the schedule's position.
    const cli = await finetune({ data: cliData(), base: 'vgg19', name: 'colours-resumed-cli', modelsDir, epochs: 60, minSteps: 0, batchSize: 8, learningRate: 0.01, seed: 1 });
    t.diagnostic(`resumed at epoch ${rec.checkpoint.step}; ${report.history.length} epochs (best ${report.best_epoch}), validation accuracy ${report.validation.accuracy} (CLI ${cli.validation.accuracy})`);
    assert.equal(report.history.length, cli.history.length, 'the same early stop');
    assert.equal(report.best_epoch, cli.bestEpoch);
    cli.history.forEach((h, i) => {
      for (const k of ['loss', 'val_loss', 'lr'] as const) assert.ok(Math.abs(h[k] - report.history[i][k]) <= 1e-4, `epoch ${i + 1} ${k}: CLI ${h[k]} vs resumed job ${report.history[i][k]}`);
    });
  });

  describe('hostile archives: a 4xx naming the problem, the service unharmed', () => {
    const png = () => files['red/img-00.png']!;
    async function refused(archive: Buffer, status: number, slug: string, detail?: RegExp) {
      const res = await submit(archive, { ...TRAIN, name: 'hostile' });
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.match(String(res.headers['content-type']), /application\/problem\+json/);
      assert.equal(res.body.type, `https://convserve.dev/problems/${slug}`, res.body.detail);
      if (detail) assert.match(res.body.detail, detail);
      assert.equal((await request(svc.url).get('/healthz')).status, 200, 'still alive');
      assert.equal(existsSync(join(modelsDir, 'hostile')), false);
    }
    const zipWith = (extra: Record<string, Uint8Array>) => zipOf({ ...files, ...extra });

    it('an absolute path', () => refused(zipWith({ '/etc/cron.d/x.png': png() }), 422, 'unsafe-archive-entry', /'\/etc\/cron\.d\/x\.png' is an absolute path/));
    it("a '..' segment", () => refused(zipWith({ 'red/../../escape.png': png() }), 422, 'unsafe-archive-entry', /escape\.png' leaves its folder/));
    it('a symlink (tar)', async () => {
      const dir = join(root, 'linked');
      writeTree(dir, files);
      symlinkSync('/etc/passwd', join(dir, 'red', 'passwd.png'));
      await refused(await tarOf(dir, ['blue', 'green', 'red'], false), 422, 'unsafe-archive-entry', /red\/passwd\.png' is a link/);
    });
    it('too many files', () => {
      const many: Record<string, Uint8Array> = {};
      for (let i = 0; i < 70; i++) many[`blue/extra-${i}.txt`] = new Uint8Array([i]);
      return refused(zipWith(many), 413, 'archive-too-many-files', /more than 64 entries/);
    });
    it('a zip bomb that declares its size (over the unpacked limit)', () => refused(zipWith({ 'blue/zeros.png': new Uint8Array(5 * 1024 * 1024) }), 413, 'archive-too-large-unpacked', /declare/));
    it('a zip bomb that lies about its size (stopped while inflating)', () => {
      const zip = zipOf({ ...files, 'blue/zeros.png': new Uint8Array(3 * 1024 * 1024) });
      // Patch the declared (uncompressed) size of the last entry, in its central directory record, to 1000 bytes.
      const name = Buffer.from('blue/zeros.png');
      const at = zip.lastIndexOf(Buffer.concat([name]));
      const header = at - 46;
      assert.equal(zip.readUInt32LE(header), 0x02014b50);
      zip.writeUInt32LE(1000, header + 24);
      return refused(zip, 413, 'archive-bomb', /zeros\.png' inflates to more than the 1000 bytes it declares/);
    });
    it('a gzip bomb (tar.gz inflating past the limit)', async () => {
      const dir = join(root, 'gzbomb');
      writeTree(dir, { ...files, 'blue/zeros.png': Buffer.alloc(5 * 1024 * 1024) });
      await refused(await tarOf(dir, ['blue', 'green', 'red'], true), 413, 'archive-too-large-unpacked');
    });
    it('an archive over CONVSERVE_FINETUNE_MAX_ARCHIVE_BYTES', () => {
      const noise = Buffer.alloc(1024 * 1024 + 1);
      new Prng(9).fillUniform(new Float32Array(noise.buffer, noise.byteOffset, Math.floor(noise.length / 4)), -1, 1);
      return refused(noise, 413, 'upload-too-large', /'archive' is larger than 1048576 bytes/);
    });
    it('no name, or a base that is not installed', async () => {
      const noName = await request(svc.url).post('/v1/jobs/finetune').field('base', 'vgg19').attach('archive', zipOf(files), 'a.zip');
      assert.equal(noName.status, 400);
      assert.match(noName.body.detail, /name/);
      const noBase = await submit(zipOf(files), { ...TRAIN, base: 'nope', name: 'x1' });
      assert.equal(noBase.status, 404);
      assert.equal(noBase.body.type, 'https://convserve.dev/problems/finetune-base-not-installed');
    });
    it('not an archive', () => refused(png(), 415, 'not-an-archive'));
    it('one class', async () => refused(zipOf(await dataset(5, ['red'])), 422, 'one-class', /only one class \('red'\)/));
    it('a class with one image', async () => refused(zipOf({ ...files, 'mauve/only.png': png() }), 422, 'class-too-small', /'mauve' has 1 image/));
    it('an image that is not one', () => refused(zipWith({ 'green/broken.png': Buffer.from('not a png') }), 422, 'undecodable-image', /green\/broken\.png/));
  });
});
