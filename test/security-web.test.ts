// The web page against a server with API keys, in Chromium: the first 401 opens the key dialog once, the key is
// kept in sessionStorage and sent on every request (a filter runs and its result is shown from a blob: URL), and
// the strict CSP reports no violation.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { webPlugin } from '../src/server/web.js';
import { sha256Hex } from '../src/util/api-keys.js';
// @ts-expect-error -- plain .mjs build script without types
import { buildWeb } from '../scripts/build-web.mjs';
import { tempDir, testConfig } from './helpers/app.js';
import { launchChromium } from './helpers/browser.js';

const KEY = 'cs_web-test-key-0123456789';

describe('web page with API keys (Chromium)', () => {
  let svc: RunningService;
  let browser: BrowserContext;
  let page: Page;
  const cspViolations: string[] = [];
  const unauthorized: string[] = [];

  before(async () => {
    await buildWeb({ minify: false });
    svc = await startService({
      config: testConfig({ dataDir: tempDir('convserve-web-keys-'), apiKeys: JSON.stringify([{ id: 'web', key_sha256: sha256Hex(KEY), scopes: ['use'] }]) }),
      plugins: [jobsPlugin, webPlugin()],
    });
    ({ browser, page } = await launchChromium());
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
    page.on('response', (r) => { if (r.status() === 401) unauthorized.push(r.url()); });
  });
  after(async () => {
    await browser?.close();
    await svc?.shutdown();
  });

  it('asks for the key once on 401, keeps it in sessionStorage, and the page loads with it', async () => {
    await page.goto(svc.url + '/');
    const dialog = page.locator('#key-dialog[open]');
    await dialog.waitFor();
    assert.equal(await page.locator('#key-dialog[open]').count(), 1, 'one dialog for all the requests that got 401');
    await page.locator('#key-input').fill(KEY);
    await dialog.locator('button[value=save]').click();
    await page.waitForFunction(() => document.querySelectorAll('.samples button').length >= 5, undefined, { timeout: 30_000 });
    assert.equal(await page.evaluate((k) => Object.values(sessionStorage).includes(k), KEY), true, 'the key is kept in sessionStorage');
    assert.ok(unauthorized.length >= 1, 'the server did answer 401 first');
  });

  it('a filter runs from the page with the key: result shown from a blob: URL; no 401 afterwards, no CSP violation', async () => {
    const before401 = unauthorized.length;
    await page.locator('.samples button').first().click();
    await page.locator('#tab-filter').click();
    await page.locator('#panel-filter').waitFor();
    await page.locator('#filter-btn').click();
    await page.waitForFunction(() => (document.getElementById('filter-compare-after') as HTMLImageElement | null)?.naturalWidth! > 0, undefined, { timeout: 60_000 });
    assert.match(await page.locator('#filter-download').getAttribute('href') ?? '', /^blob:/);
    assert.equal(unauthorized.length, before401, `no 401 once the key is known: ${unauthorized.slice(before401).join(', ')}`);
    assert.deepEqual(cspViolations, []);
  });
});
