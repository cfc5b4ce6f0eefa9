import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, it } from 'node:test';
import { tempDir, testPattern } from './helpers/app.js';
import { startServerProcess } from './helpers/server-process.js';

describe('graceful shutdown', () => {
  it('a request in flight when SIGTERM arrives completes, then the process exits 0', async () => {
    const server = await startServerProcess();
    try {
      const { png } = await testPattern(64, 48);
      // Send the headers and half the body, signal, then the rest: the request is provably in flight.
      const response = new Promise<{ status: number; type: string; bytes: number }>((resolve, reject) => {
        const req = http.request(`${server.url}/v1/filter?kernel=edge-3`, { method: 'POST', headers: { 'Content-Type': 'image/png', 'Content-Length': png.length } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), bytes: Buffer.concat(chunks).length }));
        });
        req.on('error', reject);
        req.write(png.subarray(0, png.length >> 1));
        setTimeout(() => {
          server.child.kill('SIGTERM');
          setTimeout(() => req.end(png.subarray(png.length >> 1)), 300);
        }, 200);
      });
      const res = await response;
      assert.equal(res.status, 200);
      assert.equal(res.type, 'image/png');
      assert.ok(res.bytes > 100);
      const exit = await server.exited;
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.match(server.logs.join(''), /shutdown complete/);
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it('an open job event stream does not hold up shutdown', async () => {
    const server = await startServerProcess({ CONVSERVE_DATA_DIR: tempDir(), CONVSERVE_SHUTDOWN_TIMEOUT_MS: '60000', CONVSERVE_BLUR_SWEEP_STEP_DELAY_MS: '100' });
    try {
      const { png } = await testPattern(32, 32);
      const form = new FormData();
      form.append('image', new Blob([png], { type: 'image/png' }), 'p.png');
      const submit = await fetch(`${server.url}/v1/jobs/blur-sweep?steps=200`, { method: 'POST', body: form });
      assert.equal(submit.status, 202);
      const { id } = (await submit.json()) as { id: string };
      const stream = await fetch(`${server.url}/v1/jobs/${id}/events`);
      assert.equal(stream.status, 200);
      const reader = stream.body!.getReader();
      await reader.read(); // the stream is open
      const t = Date.now();
      server.child.kill('SIGTERM');
      while (!(await reader.read()).done) { /* the server ends the stream */ }
      assert.deepEqual(await server.exited, { code: 0, signal: null });
      // Far below the 60 s in-flight bound: the stream was ended, not waited for.
      assert.ok(Date.now() - t < 30_000);
    } finally {
      server.child.kill('SIGKILL');
    }
  });

  it('SIGINT with no traffic exits 0 promptly', async () => {
    const server = await startServerProcess();
    server.child.kill('SIGINT');
    const exit = await server.exited;
    assert.deepEqual(exit, { code: 0, signal: null }, server.logs.join('').slice(-4000));
  });
});
