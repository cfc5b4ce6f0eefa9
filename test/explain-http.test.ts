// POST /v1/explain and `convserve explain`: the thin fronts answer exactly what the core function computes,
// render a PNG at the picture's size, and refuse bad requests with problem+json.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import request from 'supertest';
import { decodeImage } from '../src/image/io.js';
import { explain, explanationJson } from '../src/ops/explain.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { tempDir, testConfig, testPattern } from './helpers/app.js';

const run = promisify(execFile);
const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

describe('explanations over HTTP and the CLI (the committed MNIST convnet)', () => {
  const modelsDir = tempDir();
  let svc: RunningService<'engine' | 'models' | 'classify'>;
  let png: Buffer;
  before(async () => {
    cpSync(join(import.meta.dirname, '..', 'models', 'mnist-cnn'), join(modelsDir, 'mnist-cnn'), { recursive: true });
    svc = await startService({ config: testConfig({ modelsDir, defaultModel: 'mnist-cnn', explainMaxPasses: 64 }), plugins: [inferencePlugin()] });
    await svc.ctx.core.started;
    png = (await testPattern(60, 45)).png;
  });
  after(async () => { await svc.shutdown('test done'); });

  it('format=json equals the core function, for Grad-CAM and integrated gradients', async () => {
    const image = await decodeImage(png, { maxInputPixels: 1e8, decodeTimeoutMs: 10_000 });
    for (const [method, extra] of [['gradcam', {}], ['integrated-gradients', { steps: 8 }]] as const) {
      const res = await request(svc.server).post('/v1/explain').query({ method, format: 'json', ...extra }).attach('image', png, 'p.png');
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const direct = explanationJson(await explain({ engine: svc.ctx.core.engine, registry: svc.ctx.core.registry }, { model: 'mnist-cnn', image, method, ...extra }));
      assert.equal(res.body.method, method);
      assert.deepEqual(res.body.class, direct.class);
      assert.equal(res.body.layer, direct.layer);
      assert.equal(res.body.map.length, res.body.width * res.body.height);
      assert.deepEqual(res.body.map, direct.map);
      if (method === 'integrated-gradients') assert.ok(res.body.completeness && Number.isFinite(res.body.completeness.sum));
    }
  });

  it('format=png is the heatmap at the picture size', async () => {
    const res = await request(svc.server).post('/v1/explain').query({ method: 'saliency' }).attach('image', png, 'p.png').buffer(true);
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /image\/png/);
    const meta = await sharp(res.body as Buffer).metadata();
    assert.deepEqual([meta.width, meta.height], [60, 45]);
  });

  it('refuses bad requests with problem+json, and too many passes with 422', async () => {
    const cases: [Record<string, string>, number, RegExp][] = [
      [{ method: 'lime' }, 400, /method/],
      [{ class: '99' }, 422, /class/i],
      [{ layer: 'nolayer' }, 422, /nolayer/],
      [{ method: 'smoothgrad', samples: '100' }, 422, /job|pass/i],
      [{ model: 'nomodel' }, 404, /nomodel/],
      [{ bogus: '1' }, 400, /bogus|unrecognized/i],
    ];
    for (const [query, status, detail] of cases) {
      const res = await request(svc.server).post('/v1/explain').query(query).attach('image', png, 'p.png');
      assert.equal(res.status, status, `${JSON.stringify(query)} → ${res.status} ${JSON.stringify(res.body)}`);
      assert.match(res.headers['content-type'] ?? '', /application\/problem\+json/);
      assert.match(String(res.body.detail), detail);
    }
    assert.equal((await request(svc.server).get('/healthz')).status, 200);
  });

  it('convserve explain writes the PNG, and --json prints the same map as the API', async () => {
    const dir = tempDir();
    const file = join(dir, 'digit.png');
    writeFileSync(file, png);
    const env = { ...process.env, CONVSERVE_MODELS_DIR: modelsDir, CONVSERVE_DEFAULT_MODEL: 'mnist-cnn', LOG_LEVEL: 'error' };
    const out = await run(process.execPath, [CLI, 'explain', file, '--json'], { env });
    const cli = JSON.parse(out.stdout) as { map: number[]; layer: string };
    const api = await request(svc.server).post('/v1/explain').query({ format: 'json' }).attach('image', png, 'p.png');
    assert.deepEqual(cli.map, api.body.map);
    await run(process.execPath, [CLI, 'explain', file, '--method', 'saliency', '-o', join(dir, 'out.png')], { env });
    assert.equal((await sharp(join(dir, 'out.png')).metadata()).width, 60);
  });
});
