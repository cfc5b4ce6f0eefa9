// The typed core (src/app/core.ts) and the per-app route registry: a core has exactly the parts it was built
// with and fails at start when it cannot build them; a plugin needing a part the core lacks stops the server
// at start; /openapi.json describes exactly the routes of its own app, for any set of plugins; the CLI builds
// cores without ever loading the HTTP layer.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { z } from 'zod';
import { createCatalogCore, createCore, hasParts } from '../src/app/core.js';
import { defineJobKind, registerJobKind } from '../src/jobs/kind.js';
import { openapiPath } from '../src/server/api.js';
import { inferencePlugin } from '../src/server/inference-plugin.js';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { metricsPlugin } from '../src/server/metrics.js';
import { RouteRegistry } from '../src/server/route-registry.js';
import { type RunningService, type ServicePlugin, startService } from '../src/server/service.js';
import { webPlugin } from '../src/server/web.js';
import { logger } from '../src/util/logger.js';
import type { CorePart } from '../src/app/core.js';
import { tempDir, testConfig, testPattern } from './helpers/app.js';
import { CLI } from './helpers/server-process.js';

type Json = Record<string, any>;

/** Every route mounted on the express app of `svc`, as `method /openapi/path`. */
function mountedRoutes(svc: RunningService<CorePart>): string[] {
  const out: string[] = [];
  const walk = (stack: any[]) => {
    for (const layer of stack) {
      if (layer.route) for (const m of Object.keys(layer.route.methods)) out.push(`${m} ${openapiPath(String(layer.route.path))}`);
      else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  const app: any = svc.server.listeners('request')[0];
  walk(app.router.stack);
  return out.sort();
}

function documentedRoutes(spec: Json): string[] {
  return Object.entries(spec.paths as Record<string, Json>).flatMap(([p, item]) => Object.keys(item).map((m) => `${m} ${p}`)).sort();
}

describe('the core', () => {
  it('has exactly the parts it was built with; close() is idempotent', async () => {
    const jobsOnly = await createCore(testConfig({ dataDir: tempDir() }), logger, { inference: false, jobs: true });
    try {
      assert.ok(hasParts(jobsOnly, ['jobs']));
      assert.equal(hasParts(jobsOnly, ['engine']), false);
      assert.equal(jobsOnly.engine, undefined);
      assert.equal(jobsOnly.classify, undefined);
      assert.ok(jobsOnly.registry.list().some((e) => e.name === 'vgg19'), 'the catalogue lists the known models');
      assert.equal(jobsOnly.readiness.status().ready, true, 'nothing to wait for without an engine');
    } finally {
      await jobsOnly.close();
      await jobsOnly.close();
    }
    const catalog = createCatalogCore(testConfig(), logger);
    assert.equal(hasParts(catalog, ['jobs']), false);
    await catalog.close();
  });

  it('fails at start when the job service cannot use its data directory', async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, 'x');
    await assert.rejects(createCore(testConfig({ dataDir: join(file, 'data') }), logger, { inference: false, jobs: true }), /ENOTDIR|not a directory/);
  });

  it('a plugin needing a part the core lacks stops the server at start (not a 503 at request time)', async () => {
    await assert.rejects(startService({ core: createCatalogCore(testConfig(), logger), plugins: [jobsPlugin] }), /'jobs' plugin needs the job service/);
    await assert.rejects(startService({ core: createCatalogCore(testConfig(), logger), plugins: [webPlugin(), inferencePlugin()] }), /'inference' plugin needs the inference engine, the model provider, classification/);
  });
});

describe('one route registry per app', () => {
  const started: RunningService<CorePart>[] = [];
  after(async () => { for (const s of started) await s.shutdown(); });

  async function serve(plugins: ServicePlugin<CorePart>[]): Promise<{ svc: RunningService<CorePart>; spec: Json }> {
    const svc = await startService({ config: testConfig({ dataDir: tempDir() }), plugins });
    started.push(svc);
    const spec = (await (await fetch(`${svc.url}/openapi.json`)).json()) as Json;
    return { svc, spec };
  }

  it('/openapi.json describes exactly the routes its app mounts, whatever the plugins (none leak between apps)', async () => {
    // The biggest set first: a smaller app started afterwards must not see its routes.
    for (const plugins of [[jobsPlugin, webPlugin(), metricsPlugin()], [webPlugin()], [webPlugin(), metricsPlugin()], [jobsPlugin, webPlugin()]]) {
      const { svc, spec } = await serve(plugins);
      const mounted = mountedRoutes(svc);
      // Concrete per-kind submit paths are documented in addition to the template route that serves them.
      const documented = documentedRoutes(spec).filter((r) => !/^post \/v1\/jobs\/[a-z0-9-]+$/.test(r));
      assert.deepEqual(documented, mounted, plugins.map((p) => p.name).join('+'));
      assert.ok(mounted.includes('get /healthz') && mounted.includes('post /v1/filter'), 'the built-in routes');
      assert.equal(mounted.includes('get /v1/jobs/{id}'), plugins.includes(jobsPlugin));
      assert.equal(mounted.includes('get /metrics'), plugins.some((p) => p.name === 'metrics'));
      assert.equal(mounted.includes('get /v1/models'), false, 'no inference plugin: no model routes');
    }
  });

  it('a job kind registered after start appears in /openapi.json with its own parameter schema', async () => {
    const { svc } = await serve([jobsPlugin, webPlugin()]);
    const name = `noop-${process.pid}`;
    registerJobKind(defineJobKind<{ n: number }, number>({
      name, description: 'Counts to n.', inputs: [], params: () => z.object({ n: z.coerce.number().int().min(1).max(7) }),
      totalSteps: (p) => p.n, init: () => 0, step: (s) => s + 1,
      finish: () => ({ data: Buffer.alloc(3), width: 1, height: 1, channels: 3 }), serialize: (s) => ({ json: s }), deserialize: (d) => Number(d.json),
    }));
    const spec = (await (await fetch(`${svc.url}/openapi.json`)).json()) as Json;
    const op = spec.paths[`/v1/jobs/${name}`]?.post;
    assert.ok(op, `POST /v1/jobs/${name} is documented`);
    assert.equal(op.parameters.find((p: Json) => p.name === 'n').schema.maximum, 7);
  });

  it('declaring the same route twice in one registry is refused', () => {
    const registry = new RouteRegistry();
    const spec = { method: 'get', path: '/x', operationId: 'x', tags: ['ops'], summary: 'x', responses: { 200: { description: 'ok' } } } as const;
    registry.router().route(spec, (_req, res) => { res.end(); });
    assert.throws(() => registry.router().route(spec, (_req, res) => { res.end(); }), /get \/x is declared twice/);
    assert.equal(new RouteRegistry().list().length, 0, 'a new registry starts empty');
  });
});

describe('the CLI builds its cores without the HTTP layer', () => {
  /** Runs the built CLI with a module-load hook; returns the result and every module URL it loaded. */
  function runTraced(args: string[], env: Record<string, string>) {
    const dir = tempDir();
    const hook = join(dir, 'hook.mjs');
    const log = join(dir, 'loaded.txt');
    writeFileSync(hook, 'let port; export function initialize(d) { port = d.port; }\nexport async function load(url, ctx, next) { port.postMessage(url); return next(url, ctx); }\n');
    const register = join(dir, 'register.mjs');
    writeFileSync(register, [
      "import { register } from 'node:module';", "import { writeFileSync } from 'node:fs';", "import { MessageChannel } from 'node:worker_threads';",
      'const urls = []; const { port1, port2 } = new MessageChannel(); port1.on("message", (u) => urls.push(u)); port1.unref();',
      `register(${JSON.stringify(pathToFileURL(hook).href)}, { data: { port: port2 }, transferList: [port2] });`,
      `process.on('exit', () => writeFileSync(${JSON.stringify(log)}, urls.join('\\n')));`,
    ].join('\n'));
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(register).href, CLI, ...args], { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'silent', NODE_TEST_CONTEXT: '', ...env }, timeout: 120_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr, loaded: readFileSync(log, 'utf8').split('\n') };
  }

  it('classify (engine + model) and models list load src/app but neither dist/server nor express', async () => {
    const modelsDir = tempDir();
    cpSync(join(import.meta.dirname, '..', 'models', 'mnist-cnn'), join(modelsDir, 'mnist-cnn'), { recursive: true });
    const png = join(tempDir(), 'digit.png');
    writeFileSync(png, (await testPattern(28, 28)).png);
    const classify = runTraced(['classify', png, '-m', 'mnist-cnn', '--top', '3', '--json'], { CONVSERVE_MODELS_DIR: modelsDir });
    assert.equal(classify.code, 0, classify.stderr);
    const out = JSON.parse(classify.stdout);
    assert.equal(out.results[0].predictions.length, 3);
    const list = runTraced(['models', 'list', '--json'], { CONVSERVE_MODELS_DIR: modelsDir });
    assert.equal(list.code, 0, list.stderr);
    assert.ok(JSON.parse(list.stdout).some((e: { name: string; status: string }) => e.name === 'mnist-cnn' && e.status === 'ready'));
    for (const [what, r] of [['classify', classify], ['models list', list]] as const) {
      assert.ok(r.loaded.some((u) => u.endsWith('/dist/app/core.js')), `${what} uses the core`);
      assert.deepEqual(r.loaded.filter((u) => u.includes('/dist/server/') || u.includes('/node_modules/express/')), [], `${what} loads no HTTP code`);
    }
  });
});
