// The Server-Timing header of POST /v1/classify: every stage of the request named, each a number, the stages
// adding up to no more than the total, and the JSON answer (timing_ms included) exactly as before.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { parseServerTiming } from '../src/bench/workloads.js';
import { synthesizeModel } from '../src/models/synth.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { tempDir, testConfig, testPattern } from './helpers/app.js';

const STAGES = ['mw', 'upload', 'probe', 'model', 'decode', 'preprocess', 'batch', 'queue', 'ipc', 'infer', 'post', 'json'];

/** The header's metrics in order, each with its duration, checked to be well-formed numbers. */
function stagesOf(header: string | undefined): Map<string, number> {
  assert.ok(header, 'Server-Timing header present');
  const parsed = parseServerTiming(header);
  const names = header.split(',').map((m) => m.trim().split(';')[0]!);
  assert.deepEqual(names, Object.keys(parsed), 'every metric has a duration');
  for (const [name, ms] of Object.entries(parsed)) assert.ok(Number.isFinite(ms) && ms >= 0, `${name}=${ms}`);
  return new Map(Object.entries(parsed));
}

/** Each duration is printed with 2 decimals: the sum of n of them may exceed the true sum by n × 0.005. */
function assertStagesWithinTotal(stages: Map<string, number>): void {
  const total = stages.get('total')!;
  const named = [...stages].filter(([n]) => n !== 'total');
  const sum = named.reduce((s, [, ms]) => s + ms, 0);
  assert.ok(sum <= total + named.length * 0.005 + 1e-9, `stages add up to ${sum} > total ${total}`);
}

describe('Server-Timing on POST /v1/classify', () => {
  const modelsDir = tempDir();
  let svc: RunningService<'engine' | 'models' | 'classify'>;

  before(async () => {
    await synthesizeModel('vgg19', { modelsDir, name: 'vgg19', width: 0.125, seed: 3 });
    svc = await startService({ config: testConfig({ modelsDir }), plugins: [inferencePlugin()] });
    for (let i = 0; i < 300 && !svc.ctx.readiness.status().ready; i++) await new Promise((r) => setTimeout(r, 100));
  });
  after(async () => { await svc?.shutdown(); });

  it('one image: every stage named, numbers within the total, the JSON answer unchanged', async () => {
    const { png } = await testPattern(300, 260);
    const res = await request(svc.url).post('/v1/classify?model=vgg19&top=3').attach('image', png, 'p.png').expect(200);
    const stages = stagesOf(res.headers['server-timing']);
    assert.deepEqual([...stages.keys()], [...STAGES, 'total']);
    assertStagesWithinTotal(stages);
    // The JSON contract: the same fields as before, timing_ms with its four stages, agreeing with the header.
    assert.deepEqual(Object.keys(res.body).sort(), ['batch_size', 'model', 'predictions', 'timing_ms', 'weights']);
    assert.deepEqual(Object.keys(res.body.timing_ms), ['decode', 'preprocess', 'queue', 'infer']);
    assert.match(res.headers['content-type'], /^application\/json; charset=utf-8$/);
    for (const k of ['decode', 'preprocess', 'queue', 'infer'] as const) {
      assert.ok(Math.abs(res.body.timing_ms[k] - stages.get(k)!) <= 0.011, `${k}: body ${res.body.timing_ms[k]} vs header ${stages.get(k)}`);
    }
    assert.equal(res.body.predictions.length, 3);
  });

  it('several images: the same stages (decode of all, then the first image\'s), within the total', async () => {
    const a = await testPattern(224, 224);
    const b = await testPattern(320, 240);
    const res = await request(svc.url).post('/v1/classify?model=vgg19&top=2').attach('image', a.png, 'a.png').attach('image', b.png, 'b.png').expect(200);
    const stages = stagesOf(res.headers['server-timing']);
    assert.deepEqual([...stages.keys()], [...STAGES, 'total']);
    assertStagesWithinTotal(stages);
    assert.equal(res.body.results.length, 2);
    assert.deepEqual(Object.keys(res.body.results[0].timing_ms), ['decode', 'preprocess', 'queue', 'infer']);
  });

  it('concurrent requests (batched): each answer\'s stages stay within its own total', async () => {
    const { png } = await testPattern(224, 224);
    const all = await Promise.all(Array.from({ length: 6 }, () => request(svc.url).post('/v1/classify?model=vgg19&top=1').attach('image', png, 'p.png').expect(200)));
    for (const res of all) {
      const stages = stagesOf(res.headers['server-timing']);
      assert.deepEqual([...stages.keys()], [...STAGES, 'total']);
      assertStagesWithinTotal(stages);
    }
  });

  it('reused input buffers never leak one image into the next: A, B, A answer A, B, A', async () => {
    const a = await testPattern(224, 224);
    const b = await testPattern(97, 131);
    const answer = async (png: Buffer) => (await request(svc.url).post('/v1/classify?model=vgg19&top=1000').attach('image', png, 'p.png').expect(200)).body.predictions;
    const [a1, b1, a2] = [await answer(a.png), await answer(b.png), await answer(a.png)];
    assert.deepEqual(a2, a1, 'the same image gives the same probabilities, bit for bit');
    assert.notDeepEqual(b1, a1);
  });

  it('a refused upload answers its problem without stage timings', async () => {
    const res = await request(svc.url).post('/v1/classify?model=vgg19').attach('image', Buffer.from('not an image'), 'x.png').expect(422);
    assert.match(res.headers['content-type'], /problem\+json/);
    assert.equal(res.headers['server-timing'], undefined);
  });
});
