// `redocly lint` with its recommended rules on the /openapi.json a full service (every plugin) serves: 0 errors.
// The warnings are reported (printed) but allowed. Also checks what the lint cannot: every /v1 operation
// requires a key, admin operations say so, open routes need none, and the deprecated alias is marked.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CorePart } from '../src/app/core.js';
import { type RunningService, defaultPlugins, startService } from '../src/server/service.js';
import { tempDir, testConfig } from './helpers/app.js';

type Json = Record<string, any>;
const REDOCLY = join(import.meta.dirname, '..', 'node_modules', '.bin', 'redocly');

describe('OpenAPI lint (redocly, recommended rules)', () => {
  let svc: RunningService<CorePart>;
  let spec: Json;
  let file: string;

  before(async () => {
    svc = await startService({ config: testConfig({ modelsDir: tempDir(), dataDir: tempDir(), engineWorkers: 1, engineThreads: 1 }), plugins: await defaultPlugins() });
    spec = await (await fetch(`${svc.url}/openapi.json`)).json() as Json;
    file = join(tempDir('convserve-lint-'), 'openapi.json');
    writeFileSync(file, JSON.stringify(spec));
  });
  after(async () => { await svc?.shutdown(); });

  it('has 0 errors', () => {
    const run = spawnSync(REDOCLY, ['lint', '--extends', 'recommended', '--format', 'json', file], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } });
    const json = run.stdout.slice(run.stdout.indexOf('{'));
    const report = JSON.parse(json) as { totals: { errors: number; warnings: number }; problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[] };
    const errors = report.problems.filter((p) => p.severity === 'error');
    assert.deepEqual(errors.map((p) => `${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`), []);
    assert.equal(report.totals.errors, 0);
    const warnings = report.problems.filter((p) => p.severity === 'warn').map((p) => `${p.ruleId} ${p.location[0]?.pointer}`);
    console.log(`redocly lint: 0 errors, ${report.totals.warnings} warnings${warnings.length ? `:\n  ${warnings.join('\n  ')}` : ''}`);
  });

  it('security: schemes declared, every /v1 operation needs a key, admin ones the admin role, open routes none', () => {
    assert.deepEqual(Object.keys(spec.components.securitySchemes).sort(), ['apiKeyHeader', 'apiKeyQuery', 'bearerKey']);
    assert.equal(spec.components.securitySchemes.bearerKey.scheme, 'bearer');
    assert.equal(spec.servers.length, 1);
    for (const [path, item] of Object.entries(spec.paths as Record<string, Json>)) {
      for (const [method, op] of Object.entries(item as Record<string, Json>)) {
        const schemes = (op.security as Record<string, string[]>[]).map((s) => Object.keys(s)[0]);
        if (path.startsWith('/v1/')) {
          assert.ok(schemes.includes('bearerKey') && schemes.includes('apiKeyHeader'), `${method} ${path} needs a key`);
          assert.ok(op.responses['401'], `${method} ${path} documents 401`);
          assert.equal(schemes.includes('apiKeyQuery'), path === '/v1/jobs/{id}/events', `${method} ${path}: ?key= only on the event stream`);
        }
        if (['/healthz', '/readyz', '/', '/docs', '/openapi.json', '/assets/{file}'].includes(path)) assert.deepEqual(op.security, [], `${method} ${path} is open`);
      }
    }
    for (const [path, method] of [['/v1/models/reload', 'post'], ['/metrics', 'get']] as const) {
      assert.deepEqual(spec.paths[path][method].security[0], { bearerKey: ['admin'] }, `${method} ${path} needs admin`);
      assert.ok(spec.paths[path][method].responses['403']);
    }
    assert.ok(spec.paths['/v1/job-kinds/{kind}/jobs'].post, 'submission by kind');
    assert.equal(spec.paths['/v1/job-kinds/blur-sweep/jobs'].post.deprecated, undefined);
    assert.equal(spec.paths['/v1/jobs/blur-sweep'].post.deprecated, true, 'the old path is a deprecated alias');
    assert.equal(spec.paths['/v1/jobs/{kind}'], undefined, 'no template identical to /v1/jobs/{id}');
    assert.ok(spec.paths['/v1/classify'].post.responses['429'], 'rate-limited routes document 429');
  });
});
