// Browser-facing safety and connection limits against real servers: helmet's headers (CSP, frame-ancestors,
// nosniff, Referrer-Policy), the Host allow-list (DNS rebinding), Origin checks on state-changing requests, CORS
// only when configured, the safe default bind (refused without keys, also through the CLI), slow headers cut
// off, the connection cap, and the per-job and global caps on event streams.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { z } from 'zod';
import { loadConfig } from '../src/config.js';
import { defineJobKind, registerJobKind } from '../src/jobs/kind.js';
import { sha256Hex } from '../src/util/api-keys.js';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { webPlugin } from '../src/server/web.js';
import { tempDir, testConfig, testPattern } from './helpers/app.js';

type Json = Record<string, any>;

// A job that runs until the test opens the gate (so its event stream stays open).
const KIND = `hold-${process.pid}`;
let openGate: () => void = () => undefined;
const gate = new Promise<void>((r) => { openGate = r; });
registerJobKind(defineJobKind<Record<string, never>, number>({
  name: KIND, description: 'Holds until released.', inputs: [], params: () => z.object({}).strict(),
  totalSteps: () => 1, init: () => 0, step: async (s) => { await gate; return s + 1; },
  finish: () => ({ data: Buffer.alloc(3), width: 1, height: 1, channels: 3 }), serialize: (s) => ({ json: s }), deserialize: (d) => Number(d.json),
}));

/** A request with any Host and Origin (fetch does not let a caller choose Host). */
function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('browser-facing safety', () => {
  const servers: RunningService[] = [];
  after(async () => { openGate(); for (const s of servers) await s.shutdown(); });
  const serve = async (overrides: Parameters<typeof testConfig>[0] = {}) => {
    const svc = await startService({ config: testConfig({ dataDir: tempDir('convserve-browser-'), ...overrides }), plugins: [jobsPlugin, webPlugin()] });
    servers.push(svc);
    return svc;
  };

  it('security headers on pages and API answers: CSP default-src self, frame-ancestors none, nosniff, no-referrer', async () => {
    const svc = await serve();
    for (const path of ['/', '/v1/kernels', '/no-such-page']) {
      const r = await raw(svc.url + path);
      const csp = String(r.headers['content-security-policy']);
      const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k!, v]));
      assert.deepEqual(directives.get('default-src'), ["'self'"], csp);
      assert.deepEqual(directives.get('frame-ancestors'), ["'none'"]);
      assert.deepEqual(directives.get('script-src'), ["'self'"], 'no inline scripts');
      assert.deepEqual(directives.get('style-src'), ["'self'"], 'no inline styles');
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      assert.equal(r.headers['referrer-policy'], 'no-referrer');
      assert.equal(r.headers['x-frame-options'], 'DENY');
    }
  });

  it('Host allow-list: unknown names refused without keys (DNS rebinding), IP literals, localhost and configured names served', async () => {
    const svc = await serve();
    const port = new URL(svc.url).port;
    const status = async (host: string, path = '/v1/kernels') => (await raw(svc.url + path, { headers: { Host: host } })).status;
    const evil = await raw(`${svc.url}/v1/kernels`, { headers: { Host: `rebind.attacker.example:${port}` } });
    assert.equal(evil.status, 403);
    assert.equal(JSON.parse(evil.body).type, 'https://convserve.dev/problems/host-not-allowed');
    assert.match(JSON.parse(evil.body).detail, /rebind\.attacker\.example.*CONVSERVE_ALLOWED_HOSTS/);
    assert.equal(await status(`rebind.attacker.example:${port}`, '/healthz'), 200, 'probes answer under any name');
    for (const ok of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `10.1.2.3:${port}`]) assert.equal(await status(ok), 200, ok);

    const listed = await serve({ allowedHosts: 'convserve.internal, Other.Example' });
    assert.equal((await raw(`${listed.url}/v1/kernels`, { headers: { Host: 'convserve.internal:8080' } })).status, 200);
    assert.equal((await raw(`${listed.url}/v1/kernels`, { headers: { Host: 'other.example' } })).status, 200);
    assert.equal((await raw(`${listed.url}/v1/kernels`, { headers: { Host: 'third.example' } })).status, 403);

    // With API keys and no list, any name: a rebound page has no key to send.
    const key = 'k-0123456789abcdef';
    const keyed = await serve({ apiKeys: JSON.stringify([{ id: 'u', key_sha256: sha256Hex(key), scopes: ['use'] }]) });
    assert.equal((await raw(`${keyed.url}/v1/kernels`, { headers: { Host: 'any.example', Authorization: `Bearer ${key}` } })).status, 200);
  });

  it('POST/DELETE with a foreign Origin → 403; same origin and non-browser clients pass; CORS only when configured', async () => {
    const svc = await serve();
    const png = (await testPattern(8, 8)).png;
    const { host } = new URL(svc.url);
    const post = (origin?: string, base = svc.url) => raw(`${base}/v1/filter?kernel=edge-3`, { method: 'POST', body: png, headers: { 'Content-Type': 'image/png', ...(origin ? { Origin: origin } : {}) } });
    const foreign = await post('https://evil.example');
    assert.equal(foreign.status, 403);
    assert.equal(JSON.parse(foreign.body).type, 'https://convserve.dev/problems/foreign-origin');
    assert.equal((await post('null')).status, 403, 'an opaque origin is foreign');
    assert.equal((await raw(`${svc.url}/v1/jobs/00000000-0000-4000-8000-000000000000`, { method: 'DELETE', headers: { Origin: 'https://evil.example' } })).status, 403);
    assert.equal((await post(`http://${host}`)).status, 200, 'same origin');
    assert.equal((await post()).status, 200, 'no Origin (curl, scripts)');
    const read = await raw(`${svc.url}/v1/kernels`, { headers: { Origin: 'https://evil.example' } });
    assert.equal(read.status, 200);
    assert.equal(read.headers['access-control-allow-origin'], undefined, 'CORS is off: the browser keeps the answer from the foreign page');

    const cors = await serve({ corsOrigins: 'https://app.example' });
    const pre = await raw(`${cors.url}/v1/filter`, { method: 'OPTIONS', headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
    assert.match(String(pre.headers['access-control-allow-headers']), /Authorization/);
    const allowed = await post('https://app.example', cors.url);
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal((await post('https://evil.example', cors.url)).status, 403);
  });

  it('without keys the default bind is loopback, and any other address is refused with one line unless anonymous is allowed', async () => {
    assert.equal(loadConfig({}).host, '127.0.0.1');
    await assert.rejects(startService({ config: testConfig({ host: '0.0.0.0' }), plugins: [] }), /^Error: Refusing to listen on 0\.0\.0\.0 without API keys: .*CONVSERVE_ALLOW_ANONYMOUS=true\.$/);
    const cli = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--port', '0', '--host', '0.0.0.0'], {
      cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 60_000, env: { ...process.env, HOST: '', CONVSERVE_API_KEYS: '', CONVSERVE_API_KEYS_FILE: '', CONVSERVE_ALLOW_ANONYMOUS: '', CONVSERVE_AUTO_FETCH: 'false' },
    });
    assert.equal(cli.status, 1, cli.stderr);
    assert.equal(cli.stderr.trim().split('\n').length, 1, cli.stderr);
    assert.match(cli.stderr, /^convserve: Refusing to listen on 0\.0\.0\.0 without API keys/);
    const anon = await serve({ host: '0.0.0.0', allowAnonymous: true });
    assert.match(anon.url, /^http:\/\/0\.0\.0\.0:\d+$/);
    const keyed = await serve({ host: '0.0.0.0', apiKeys: JSON.stringify([{ id: 'u', key_sha256: sha256Hex('k'), scopes: ['use'] }]) });
    assert.ok(keyed.url);
  });

  it('slow headers are cut off; connections beyond CONVSERVE_MAX_CONNECTIONS are refused', async () => {
    const svc = await serve({ headersTimeoutMs: 1000, maxConnections: 2 });
    const { hostname, port } = new URL(svc.url);
    assert.equal(svc.server.headersTimeout, 1000);
    assert.equal(svc.server.maxConnections, 2);
    const t0 = Date.now();
    const slow = connect(Number(port), hostname);
    slow.write('GET /v1/kernels HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
    const answer = await new Promise<string>((resolve) => { let got = ''; slow.on('data', (d) => { got += d; }); slow.on('close', () => resolve(got)); });
    const ms = Date.now() - t0;
    assert.ok(ms >= 900 && ms < 5000, `cut after ${ms} ms`);
    assert.match(answer, /^HTTP\/1\.1 408/, 'answered 408 Request Timeout, then closed');

    const open = [connect(Number(port), hostname), connect(Number(port), hostname)];
    await Promise.all(open.map((s) => new Promise((r) => s.once('connect', r))));
    await new Promise((r) => setTimeout(r, 100));
    const third = connect(Number(port), hostname);
    const closedAt = await new Promise<number>((resolve) => { third.on('error', () => undefined); third.once('close', () => resolve(Date.now())); third.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n'); });
    assert.ok(closedAt - t0 < 10_000, 'the third connection is closed by the server without an answer');
    for (const s of open) s.destroy();
  });

  it('event streams: a per-job cap (429) and a global cap (503), freed when a stream closes', async () => {
    const svc = await serve({ maxEventStreamsPerJob: 1, maxEventStreams: 2, jobConcurrency: 2 });
    const submit = async () => ((await (await fetch(`${svc.url}/v1/job-kinds/${KIND}/jobs`, { method: 'POST' })).json()) as Json).id as string;
    const [a, b, c] = [await submit(), await submit(), await submit()];
    const open = async (id: string) => {
      const ac = new AbortController();
      const res = await fetch(`${svc.url}/v1/jobs/${id}/events`, { signal: ac.signal });
      return { res, close: async () => { ac.abort(); await new Promise((r) => setTimeout(r, 100)); } };
    };
    const first = await open(a);
    assert.equal(first.res.status, 200);
    const again = await open(a);
    assert.equal(again.res.status, 429);
    const tooMany = (await again.res.json()) as Json;
    assert.equal(tooMany.type, 'https://convserve.dev/problems/too-many-event-streams');
    assert.ok(Number(again.res.headers.get('retry-after')) >= 1);
    const second = await open(b);
    assert.equal(second.res.status, 200);
    const third = await open(c);
    assert.equal(third.res.status, 503);
    assert.equal(((await third.res.json()) as Json).type, 'https://convserve.dev/problems/event-streams-exhausted');
    await first.close();
    const retry = await open(c);
    assert.equal(retry.res.status, 200, 'a closed stream frees its slot');
    await retry.close();
    await second.close();
  });
});
