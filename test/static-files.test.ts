import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { type RunningService, startService } from '../src/server/service.js';
import { webPlugin } from '../src/server/web.js';
import { testConfig } from './helpers/app.js';

describe('static files (web page assets, samples)', () => {
  let svc: RunningService;
  before(async () => { svc = await startService({ config: testConfig(), plugins: [webPlugin()] }); });
  after(() => svc.shutdown());

  it('serves the bundled samples and lists them', async () => {
    const list = await request(svc.url).get('/v1/samples').expect(200);
    assert.ok(list.body.samples.some((s: { name: string }) => s.name === 'chelsea'));
    const img = await request(svc.url).get('/samples/chelsea.jpg').expect(200);
    assert.equal(img.headers['content-type'], 'image/jpeg');
  });

  for (const path of ['/assets/..%2F..%2Fpackage.json', '/samples/..%2Fpackage.json', '/samples/%2e%2e%2fREADME.md', '/assets/nope.js']) {
    it(`${path} → a 4xx problem, never a file outside the static roots or a 500`, async () => {
      const r = await request(svc.url).get(path);
      assert.ok(r.status === 403 || r.status === 404, `status ${r.status}`);
      assert.match(r.headers['content-type'] ?? '', /application\/problem\+json/);
      assert.doesNotMatch(r.text, /"name":\s*"convserve"/);
    });
  }
});
