// The web page against a server with API keys, in Chromium: the first 401 opens the key dialog once, the key is
// kept in sessionStorage and sent on every request, a job runs with its live events (?key=) and its preview and
// result images (fetched with the key, shown as blob: URLs), and the strict CSP reports no violation.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { jobsPlugin } from '../src/server/jobs-plugin.js';
import { type RunningService, startService } from '../src/server/service.js';
import { webPlugin } from '../src/server/web.js';
import { sha256Hex } from '../src/util/api-keys.js';
// @ts-expect-error -- plain .mjs build script without types
import { buildWeb } from '../scripts/build-web.mjs';
// @ts-expect-error -- plain .mjs script without types
import { findTool } from '../scripts/test-setup.mjs';
import { tempDir, testConfig } from './helpers/app.js';

const CHROMIUM: string = process.env.CHROMIUM_PATH ?? findTool('chromium');
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
    browser = await chromium.launchPersistentContext(tempDir('convserve-chromium-'), {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1200, height: 900 },
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
    page.on('response', (r) => { if (r.status() === 401) unauthorized.push(r.url()); });
  });
  after(async () => {
    await browser?.close();
    await svc?.shutdown();
  });

  it('asks for the key once on 401, keeps it in sessionStorage, and the page loads with it', async () => {
    await page.goto(svc.url + '/');
    const dialog = page.locator('dialog.key-dialog');
    await dialog.waitFor();
    assert.equal(await page.locator('dialog.key-dialog').count(), 1, 'one dialog for all the requests that got 401');
    await dialog.locator('input[type=password]').fill(KEY);
    await dialog.locator('button[type=submit]').click();
    await page.waitForSelector('body[data-ready=true]');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('convserve.apiKey')), KEY);
    assert.ok(await page.locator('#kernel option').count() > 5, 'kernels loaded with the key');
    assert.ok(await page.locator('.samples button').count() >= 5, 'samples loaded with the key');
    assert.ok(unauthorized.length >= 1, 'the server did answer 401 first');
  });

  it('a job runs from the page: live events through ?key=, previews and result shown from blob: URLs; no CSP violation', async () => {
    await page.locator('.samples button').first().click();
    await page.waitForSelector('#current:not([hidden])');
    const form = page.locator('form[data-kind=blur-sweep]');
    await form.locator('[name=steps]').fill('4');
    await form.locator('[name=preview_every]').fill('2');
    const before401 = unauthorized.length;
    await page.locator('#blur-sweep-submit').click();
    await page.locator('#blur-sweep-result img').waitFor({ timeout: 60_000 });
    await page.waitForFunction(() => (document.querySelector('#blur-sweep-result img') as HTMLImageElement).naturalWidth > 0);
    assert.match(await page.locator('#blur-sweep-result img').getAttribute('src') ?? '', /^blob:/);
    assert.match(await page.locator('#blur-sweep-result a[download]').getAttribute('href') ?? '', /^blob:/);
    assert.equal(await page.locator('#blur-sweep-previews img').count(), 2);
    assert.match(await page.locator('#blur-sweep-status').textContent() ?? '', /^100 %/);
    assert.equal(unauthorized.length, before401, `no 401 once the key is known: ${unauthorized.slice(before401).join(', ')}`);
    assert.deepEqual(cspViolations, []);
  });
});
