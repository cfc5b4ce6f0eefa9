// /openapi.json against reality, and /metrics after real traffic. One full service (every plugin) with a synthetic
// reduced-width VGG19: every express route must be described in the spec, every operation is called, and every
// real response (status, content type, JSON body) must match what the spec declares (ajv, JSON Schema 2020-12).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { synthesizeModel } from '../src/models/synth.js';
import type { CorePart } from '../src/app/core.js';
import { type RunningService, defaultPlugins, startService } from '../src/server/service.js';
import { openapiPath } from '../src/server/api.js';
// @ts-expect-error -- plain .mjs build script without types
import { buildWeb } from '../scripts/build-web.mjs';
import { tempDir, testConfig, testPattern } from './helpers/app.js';
import { pollJob, readSse } from './helpers/jobs.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;
type Json = Record<string, any>;

/** Every route mounted on the express app, as [method, OpenAPI path]. */
function expressRoutes(app: any): [string, string][] {
  const out: [string, string][] = [];
  const walk = (stack: any[]) => {
    for (const layer of stack) {
      if (layer.route) for (const m of Object.keys(layer.route.methods)) { if (m !== '_all') out.push([m, openapiPath(String(layer.route.path))]); }
      else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk(app.router.stack);
  return out;
}

describe('OpenAPI description and Prometheus metrics', () => {
  let svc: RunningService<CorePart>;
  let spec: Json;
  let ajv: Ajv2020;
  const covered = new Set<string>();
  let png: Buffer;

  before(async () => {
    await buildWeb();
    const modelsDir = tempDir();
    await synthesizeModel('vgg19', { modelsDir, name: 'vgg19', width: 0.125, seed: 3 });
    // 20 ms before each blur-sweep step (an operator setting): the 200-step job below is still running when its result is asked for.
    svc = await startService({ config: testConfig({ modelsDir, dataDir: tempDir('convserve-oa-data-'), blurSweepStepDelayMs: 20 }), plugins: await defaultPlugins() });
    for (let i = 0; i < 300 && !svc.ctx.readiness.status().ready; i++) await new Promise((r) => setTimeout(r, 100));
    spec = await (await fetch(`${svc.url}/openapi.json`)).json() as Json;
    ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    png = (await testPattern(64, 48)).png;
  });
  after(async () => { await svc?.shutdown(); });

  /** Calls the API and checks status, content type and body against the operation `method path` of the spec. */
  async function call(method: string, opPath: string, url: string, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
    const op = spec.paths[opPath]?.[method] as Json | undefined;
    assert.ok(op, `${method} ${opPath} is in the spec`);
    const res = await fetch(svc.url + url, { ...init, method: method.toUpperCase() });
    const ct = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const declared = op.responses[String(res.status)] as Json | undefined;
    assert.ok(declared, `${method} ${url}: status ${res.status} is declared (${Object.keys(op.responses).join(', ')})`);
    const content = (declared.content ?? {}) as Record<string, Json>;
    const key = Object.keys(content).find((k) => k === ct || (k.endsWith('/*') && ct.startsWith(k.slice(0, -1))));
    assert.ok(key, `${method} ${url} → ${res.status} ${ct}: content type declared (${Object.keys(content).join(', ')})`);
    let body: any;
    if (ct.endsWith('json')) {
      body = await res.json();
      const validate = ajv.compile({ ...content[key]!.schema, components: spec.components });
      assert.ok(validate(body), `${method} ${url} → ${res.status}: body matches the schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`);
    } else if (ct === 'text/event-stream') {
      await res.body?.cancel();
    } else {
      body = Buffer.from(await res.arrayBuffer());
    }
    covered.add(`${method} ${opPath}`);
    return { status: res.status, body, headers: res.headers };
  }

  const image = (field = 'image', extra: Record<string, string> = {}) => {
    const form = new FormData();
    form.set(field, new Blob([png], { type: 'image/png' }), 'p.png');
    for (const [k, v] of Object.entries(extra)) form.set(k, v);
    return { body: form };
  };

  it('every express route is described in the spec (and nothing else)', () => {
    const real = expressRoutes(svc.server.listeners('request')[0]).map(([m, p]) => `${m} ${p}`).sort();
    const documented = Object.entries(spec.paths as Record<string, Json>).flatMap(([p, item]) => Object.keys(item).map((m) => `${m} ${p}`));
    // POST /v1/jobs/{kind} (old, deprecated) is documented by its per-kind paths: its template would be identical to /v1/jobs/{id}.
    for (const r of real) assert.ok(documented.includes(r) || r === 'post /v1/jobs/{kind}', `${r} is documented`);
    // Concrete per-kind submit paths are documented in addition to the template routes that serve them.
    for (const d of documented) assert.ok(real.includes(d) || /^post \/v1\/(jobs\/[a-z0-9-]+|job-kinds\/[a-z0-9-]+\/jobs)$/.test(d), `${d} exists`);
    for (const d of documented.filter((x) => /^post \/v1\/jobs\/[a-z0-9-]+$/.test(x))) assert.equal(spec.paths[d.slice(5)].post.deprecated, true, `${d} is a deprecated alias`);
    assert.equal(spec.openapi, '3.1.0');
    for (const kind of ['blur-sweep']) {
      const body = spec.paths[`/v1/job-kinds/${kind}/jobs`].post.requestBody.content['multipart/form-data'].schema;
      assert.equal(body.properties.steps.maximum, svc.ctx.config.maxJobIterations, 'the limits come from the kind\'s zod schema');
    }
  });

  it('every operation answers what the spec declares (status, content type, body schema)', async () => {
    await call('get', '/healthz', '/healthz');
    await call('get', '/readyz', '/readyz');
    // /v1/info: the tfjs backend is probed once in a child process; poll until it is known.
    let info = (await call('get', '/v1/info', '/v1/info')).body;
    for (let i = 0; i < 300 && info.tfjs.state === 'probing'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      info = (await call('get', '/v1/info', '/v1/info')).body;
    }
    assert.equal(info.tfjs.state, 'done', JSON.stringify(info.tfjs));
    assert.ok(['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'].includes(info.tfjs.backend));
    assert.deepEqual(info.tfjs.tried.map((t: { name: string }) => t.name).slice(0, 2), ['tfjs-node-gpu', 'tfjs-node']);
    assert.match(info.onnxruntime.version, /^\d+\.\d+/);
    await call('get', '/openapi.json', '/openapi.json');
    await call('get', '/metrics', '/metrics');
    await call('get', '/', '/');
    await call('get', '/docs', '/docs');
    await call('get', '/docs/{file}', '/docs/init.js');
    await call('get', '/docs/{file}', '/docs/swagger-ui.css');
    await call('get', '/assets/{file}', '/assets/main.js');
    await call('get', '/assets/{file}', '/assets/nope.js');
    const samples = await call('get', '/v1/samples', '/v1/samples');
    assert.ok(samples.body.samples.length > 0);
    const jpeg = await call('get', '/samples/{file}', samples.body.samples[0].url);
    assert.deepEqual([...jpeg.body.subarray(0, 2)], [0xff, 0xd8]);
    await call('get', '/samples/{file}', '/samples/missing.jpg');
    assert.equal(readFileSync(join(import.meta.dirname, '..', 'samples', samples.body.samples[0].url.split('/').pop())).length, jpeg.body.length);

    await call('get', '/v1/kernels', '/v1/kernels');
    await call('post', '/v1/filter', '/v1/filter?kernel=edge-3', image());
    await call('post', '/v1/filter', '/v1/filter?kernel=[[1,2]]', image());
    await call('post', '/v1/filter', '/v1/filter', { body: 'text', headers: { 'Content-Type': 'text/plain' } });

    await call('get', '/v1/models', '/v1/models');
    const reloaded = await call('post', '/v1/models/reload', '/v1/models/reload');
    assert.ok(reloaded.body.models.some((m: any) => m.name === 'vgg19'));
    if (spec.paths['/v1/models/reload']) await call('post', '/v1/models/reload', '/v1/models/reload');
    assert.equal((await call('get', '/v1/models/{name}', '/v1/models/vgg19')).body.name, 'vgg19');
    assert.equal((await call('get', '/v1/models/{name}', '/v1/models/no-such-model')).status, 404);
    const one = await call('post', '/v1/classify', '/v1/classify?model=vgg19&top=3', image());
    assert.equal(one.body.predictions.length, 3);
    const form = new FormData();
    for (const n of ['a.png', 'b.png']) form.append('image', new Blob([png], { type: 'image/png' }), n);
    const many = await call('post', '/v1/classify', '/v1/classify?model=vgg19', { body: form });
    assert.equal(many.body.results.length, 2);
    await call('post', '/v1/classify', '/v1/classify?model=nope', image());
    await call('post', '/v1/classify', '/v1/classify?model=inception_v3', image()); // missing: 503
    await call('post', '/v1/classify', '/v1/classify', { body: Buffer.from('not an image'), headers: { 'Content-Type': 'image/png' } });
    await call('post', '/v1/explain', '/v1/explain?model=vgg19&format=json', image());
    await call('post', '/v1/explain', '/v1/explain?model=vgg19&method=saliency', image());
    await call('post', '/v1/explain', '/v1/explain?model=vgg19&layer=nolayer', image());

    await call('get', '/v1/job-kinds', '/v1/job-kinds');
    const sub = await call('post', '/v1/jobs/blur-sweep', '/v1/jobs/blur-sweep', image('image', { steps: '4', preview_every: '2' }));
    assert.equal(sub.status, 202);
    await call('post', '/v1/job-kinds/{kind}/jobs', '/v1/job-kinds/frobnicate/jobs', image());
    await call('post', '/v1/job-kinds/blur-sweep/jobs', '/v1/job-kinds/blur-sweep/jobs?steps=0', image());
    await call('post', '/v1/jobs/blur-sweep', '/v1/jobs/blur-sweep?steps=0', image());
    for (const kind of ['dream', 'style', 'finetune']) {
      const installed = spec.paths[`/v1/jobs/${kind}`] !== undefined;
      const field = kind === 'style' ? 'content' : kind === 'finetune' ? 'archive' : 'image';
      if (installed) await call('post', `/v1/jobs/${kind}`, `/v1/jobs/${kind}?no_such_param=1`, image(field));
      if (installed) await call('post', `/v1/job-kinds/${kind}/jobs`, `/v1/job-kinds/${kind}/jobs?no_such_param=1`, image(field));
      if (kind !== 'finetune') await call('post', `/v1/${kind}`, `/v1/${kind}?no_such_param=1`, image(field));
    }
    const done = await pollJob(svc.url, sub.body.id, (j) => j.status === 'succeeded');
    await call('get', '/v1/jobs', '/v1/jobs?limit=5');
    await call('get', '/v1/jobs', '/v1/jobs?status=bogus');
    await call('get', '/v1/jobs/{id}', `/v1/jobs/${done.id}`);
    await call('get', '/v1/jobs/{id}', '/v1/jobs/00000000-0000-4000-8000-000000000000');
    await call('get', '/v1/jobs/{id}/events', `/v1/jobs/${done.id}/events`);
    await call('get', '/v1/jobs/{id}/events', '/v1/jobs/nope/events');
    await call('get', '/v1/jobs/{id}/previews/{n}', `/v1/jobs/${done.id}/previews/0`);
    await call('get', '/v1/jobs/{id}/previews/{n}', `/v1/jobs/${done.id}/previews/x`);
    await call('get', '/v1/jobs/{id}/result', `/v1/jobs/${done.id}/result`);
    await call('delete', '/v1/jobs/{id}', `/v1/jobs/${done.id}`); // 409: finished
    const running = await call('post', '/v1/jobs/blur-sweep', '/v1/jobs/blur-sweep', image('image', { steps: '200' }));
    await call('get', '/v1/jobs/{id}/result', `/v1/jobs/${running.body.id}/result`); // 409: not finished
    const cancelled = await call('delete', '/v1/jobs/{id}', `/v1/jobs/${running.body.id}`);
    assert.ok([200, 202].includes(cancelled.status));

    const all = Object.entries(spec.paths as Record<string, Json>).flatMap(([p, item]) => Object.keys(item).map((m) => `${m} ${p}`));
    const missed = all.filter((op) => !covered.has(op));
    assert.deepEqual(missed, [], 'every documented operation was exercised');
  });

  it('/metrics: request counts and durations, engine queue vs compute, batch sizes, jobs, steps, restarts, models, process', async () => {
    // Traffic of our own (the previous test made more): a job whose steps are observed, and a worker restart.
    const sub = await (await fetch(`${svc.url}/v1/jobs/blur-sweep`, { method: 'POST', ...image('image', { steps: '5' }) })).json() as { id: string };
    await readSse(`${svc.url}/v1/jobs/${sub.id}/events`);
    const engine = svc.ctx.core.engine;
    const restarted = new Promise((r) => engine.once('worker-restart', r));
    engine.injectWorkerCrash(0);
    await restarted;
    await (await fetch(`${svc.url}/v1/classify?model=vgg19`, { method: 'POST', ...image() })).json(); // on the new worker

    const res = await fetch(`${svc.url}/metrics`);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    const series = new Map<string, number>();
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*(?:\{.*\})?) (\S+)$/.exec(line);
      if (m) series.set(m[1]!, Number(m[2]));
    }
    const get = (name: string, labels: Record<string, string> = {}) => {
      const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      let sum: number | undefined;
      for (const [k, v] of series) {
        const i = k.indexOf('{');
        const [n, l] = i < 0 ? [k, ''] : [k.slice(0, i), k.slice(i)];
        if (n === name && want.every((w) => l.includes(w))) sum = (sum ?? 0) + v;
      }
      return sum;
    };
    const classifyOk = get('convserve_http_requests_total', { method: 'POST', route: '/v1/classify', status: '200' })!;
    assert.ok(classifyOk >= 3, `classify 200s: ${classifyOk}`);
    assert.ok(get('convserve_http_requests_total', { route: '/v1/jobs/{id}', status: '404' })! >= 1, text.split('\n').filter((l) => l.startsWith('convserve_http_requests_total')).join('\n'));
    assert.equal(get('convserve_http_request_duration_seconds_count', { method: 'POST', route: '/v1/classify', status: '200' }), classifyOk);
    assert.ok(get('convserve_http_request_duration_seconds_sum', { route: '/v1/classify', status: '200' })! > 0, 'metrics check 5');

    const runs = get('convserve_engine_compute_seconds_count', { session: 'vgg19', priority: 'interactive' })!;
    assert.ok(runs >= 3, `engine runs ${runs}`);
    assert.equal(get('convserve_engine_queue_seconds_count', { session: 'vgg19', priority: 'interactive' }), runs);
    assert.ok(get('convserve_engine_compute_seconds_sum', { session: 'vgg19' })! > 0, 'metrics check 10');
    assert.ok(get('convserve_engine_queue_seconds_sum', { session: 'vgg19' })! >= 0, 'metrics check 11');

    const batches = get('convserve_classify_batch_size_count')!;
    assert.equal(batches, runs - 1, 'one batch per classification engine run (the other run is the warm-up at load)');
    assert.ok(get('convserve_classify_batch_size_sum')! >= 4, 'the two-image request and the singles'); // 1+2+1+…
    assert.equal(get('convserve_classify_batch_size_bucket', { le: '64' }), batches);

    assert.ok(get('convserve_jobs', { kind: 'blur-sweep', state: 'succeeded' })! >= 2, 'metrics check 18');
    assert.ok(get('convserve_jobs', { kind: 'blur-sweep', state: 'cancelled' })! >= 1, 'metrics check 19');
    assert.ok(get('convserve_jobs_finished_total', { kind: 'blur-sweep', status: 'succeeded' })! >= 2, 'metrics check 20');
    assert.ok(get('convserve_jobs_submitted_total', { kind: 'blur-sweep' })! >= 3, 'metrics check 21');
    assert.ok(get('convserve_job_step_duration_seconds_count', { kind: 'blur-sweep' })! >= 4 + 3, 'steps 2…n of each finished job');
    assert.ok(get('convserve_job_step_duration_seconds_sum', { kind: 'blur-sweep' })! > 0, 'metrics check 23');

    assert.equal(get('convserve_engine_worker_restarts_total'), 1);
    assert.equal(get('convserve_model_status', { model: 'vgg19', status: 'ready' }), 1);
    assert.equal(get('convserve_model_status', { model: 'inception_v3', status: 'missing' }), 1);
    const load = get('convserve_model_load_seconds', { model: 'vgg19' })!;
    assert.ok(load > 0 && load < 600, `load ${load}`);

    assert.ok(get('process_cpu_user_seconds_total')! > 0, 'metrics check 31');
    assert.ok(get('nodejs_heap_size_used_bytes')! > 0, 'metrics check 32');
  });
});
