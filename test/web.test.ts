// Browser tests of the web page: Chromium (CHROMIUM_PATH, set by scripts/test-setup.mjs) driven by playwright-core against the
// full service (synthetic reduced-width VGG19 / InceptionV3 in a temp models dir). One browser, one page, reused;
// screenshots of every tab at desktop and mobile widths go to test-output/screenshots/.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { synthesizeModel } from '../src/models/synth.js';
import { type RunningService, defaultPlugins, startService } from '../src/server/service.js';
// @ts-expect-error -- plain .mjs build script without types
import { buildWeb } from '../scripts/build-web.mjs';
import { tempDir, testConfig } from './helpers/app.js';
import { launchChromium } from './helpers/browser.js';

const SHOTS = join(import.meta.dirname, '..', 'test-output', 'screenshots');
const SAMPLE = join(import.meta.dirname, '..', 'samples', 'chelsea.jpg');
const STYLE_IMAGE = join(import.meta.dirname, '..', 'samples', 'brick.jpg');
const MNIST = join(import.meta.dirname, '..', 'models', 'mnist-cnn');
const AXE = join(import.meta.dirname, '..', 'node_modules', 'axe-core', 'axe.min.js');
const TABS = ['classify', 'filter', 'dream', 'style', 'finetune'];

describe('web page (Chromium)', () => {
  let svc: RunningService;
  let browser: BrowserContext;
  let page: Page;
  const problems: string[] = [];
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const openTab = async (id: string) => { await page.locator(`#tab-${id}`).click(); await page.locator(`#panel-${id}`).waitFor(); };
  const jobsOf = async (kind: string) => (await (await fetch(`${svc.url}/v1/jobs?kind=${kind}&limit=1`)).json() as { jobs: { id: string; status: string; previews: string[]; progress: { step: number } }[] }).jobs;

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    await buildWeb({ minify: false });
    const modelsDir = tempDir();
    // Named vgg19-small so that vgg19 itself shows as missing, with its install commands.
    await synthesizeModel('vgg19', { modelsDir, name: 'vgg19-small', width: 0.125, seed: 3 });
    await synthesizeModel('inception_v3', { modelsDir, name: 'inception_v3', width: 0.125, seed: 4 });
    if (existsSync(join(MNIST, 'manifest.json'))) cpSync(MNIST, join(modelsDir, 'mnist-cnn'), { recursive: true });
    svc = await startService({ config: testConfig({ modelsDir, dataDir: tempDir('convserve-web-data-') }), plugins: await defaultPlugins() });
    for (let i = 0; i < 300 && !svc.ctx.readiness.status().ready; i++) await new Promise((r) => setTimeout(r, 100));
    ({ browser, page } = await launchChromium());
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('response', (r) => { if (r.status() >= 400 && !r.url().includes('/v1/classify')) problems.push(`HTTP ${r.status()} ${r.url()}`); });
    await page.goto(svc.url + '/');
    await page.waitForSelector('body[data-ready=true]');
  });
  after(async () => {
    await browser?.close();
    await svc?.shutdown();
  });

  it('first view: image well and task tabs, no placeholders, no probe kinds; models with provenance', async () => {
    assert.equal(await page.title(), 'convserve — classify, filter, dream, style');
    assert.deepEqual(await page.locator('[role=tab]').allTextContents(), ['Classify', 'Filter', 'DeepDream', 'Style', 'Fine-tune']);
    assert.ok(await page.locator('#current').isHidden(), 'no image shown before one is picked');
    const broken = await page.evaluate(() => [...document.images].filter((i) => i.checkVisibility() && !(i.complete && i.naturalWidth > 0)).map((i) => i.outerHTML));
    assert.deepEqual(broken, []);
    assert.doesNotMatch(await page.locator('main').textContent() ?? '', /blur-sweep/);
    const options = await page.locator('#model option').allTextContents();
    assert.ok(options.some((o) => o.startsWith('vgg19-small') && o.includes('untrained') && o.includes('224×224')), options.join(', '));
    assert.ok(await page.locator('#model option[value=vgg19]').isDisabled(), 'missing models are listed, disabled');
    await page.locator('#models summary').click();
    assert.match(await page.locator('#models-list').textContent() ?? '', /convserve models fetch vgg19/);
    assert.ok(await page.locator('.samples button').count() >= 5);
    // The advanced fold has the schema's fields, without bound hints.
    assert.ok(await page.locator('#classify-p-resize').count() === 1);
    assert.doesNotMatch(await page.locator('#panel-classify').textContent() ?? '', /max \d|min \d/);
  });

  it('tabs are keyboard operable (arrows, Home, End)', async () => {
    await page.locator('#tab-classify').focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'tab-filter');
    assert.ok(await page.locator('#panel-filter').isVisible());
    assert.ok(await page.locator('#panel-classify').isHidden());
    await page.keyboard.press('End');
    assert.equal(await page.locator('#tab-finetune').getAttribute('aria-selected'), 'true');
    await page.keyboard.press('Home');
    assert.equal(await page.locator('#tab-classify').getAttribute('aria-selected'), 'true');
  });

  it('classify shows the same top-5 labels as the API, with copy-as-curl', async () => {
    await page.locator('#file').setInputFiles(SAMPLE);
    await page.locator('#current-img').waitFor();
    await page.locator('#model').selectOption('vgg19-small');
    await page.locator('#classify-btn').click();
    await page.locator('#classify-result .bars li').first().waitFor();
    const labels = await page.locator('#classify-result .bar-label').allTextContents();
    const form = new FormData();
    form.set('image', new Blob([readFileSync(SAMPLE)], { type: 'image/jpeg' }), 'chelsea.jpg');
    const direct = await (await fetch(`${svc.url}/v1/classify?model=vgg19-small&top=5`, { method: 'POST', body: form })).json() as { predictions: { label: string }[] };
    assert.deepEqual(labels, direct.predictions.map((p) => p.label));
    await page.locator('#classify-curl').click();
    const curl = await page.locator('#classify-curl-text').textContent() ?? '';
    assert.match(curl, /-F 'image=@chelsea\.jpg'/);
    assert.match(curl, /-F 'model=vgg19-small'/);
    await shot('classify-desktop');
  });

  it('filter: kernel gallery with live thumbnails; before/after slider; custom matrix validates', async () => {
    await openTab('filter');
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('.kernels img.kthumb')].filter((i) => i.naturalWidth > 0).length >= 10, undefined, { timeout: 30_000 });
    await page.locator('label[for=kernel-edge-3]').click();
    assert.equal(await page.locator('#kernel-preview td').count(), 9);
    await page.locator('#filter-btn').click();
    await page.waitForFunction(() => (document.getElementById('filter-compare-after') as HTMLImageElement | null)?.naturalWidth! > 0);
    const size = await page.locator('#filter-compare-after').evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]);
    assert.deepEqual(size, [451, 300]);
    assert.match(await page.locator('#filter-download').getAttribute('href') ?? '', /^blob:/);
    // The slider moves with the keyboard and clips the result.
    await page.locator('#filter-compare-range').focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.locator('#filter-compare').evaluate((el: HTMLElement) => el.style.getPropertyValue('--pos')), '51%');
    await shot('filter-desktop');
    await page.locator('label[for=kernel-custom]').click();
    await page.locator('#custom').fill('1 2\n3 4');
    assert.match(await page.locator('#custom-msg').textContent() ?? '', /odd/);
    await page.locator('#filter-btn').click();
    assert.match(await page.locator('#filter-error').textContent() ?? '', /odd/);
    await page.locator('#custom').fill('0 -1 0\n-1 5 -1\n0 -1 0');
    await page.locator('#filter-btn').click();
    await page.waitForFunction(() => document.getElementById('filter-error')!.hidden);
  });

  it('DeepDream: progress with ETA, live previews, the final image, run again', async () => {
    await openTab('dream');
    await page.locator('#panel-dream summary').click();
    await page.locator('#dream-p-octaves').fill('2');
    await page.locator('#dream-p-iterations').fill('3');
    await page.locator('#dream-size').selectOption('256');
    await page.locator('#dream-p-max_size').fill('240');
    await page.locator('#dream-submit').click();
    await page.waitForFunction(() => (document.getElementById('dream-progress') as HTMLProgressElement).value > 0 || !document.getElementById('dream-error')!.hidden, undefined, { timeout: 60_000 });
    assert.ok(await page.locator('#dream-error').isHidden(), await page.locator('#dream-error').textContent() ?? '');
    assert.match(await page.locator('#dream-status').textContent() ?? '', /% · step \d+\/6.* · ETA/);
    await page.locator('#dream-compare-after').waitFor({ timeout: 90_000 });
    await page.waitForFunction(() => (document.getElementById('dream-compare-after') as HTMLImageElement).naturalWidth > 0);
    const [job] = await jobsOf('dream');
    assert.equal(job!.status, 'succeeded');
    assert.ok(job!.previews.length >= 1);
    assert.equal(Number(await page.locator('#dream-live-preview').getAttribute('data-previews')), job!.previews.length, 'every preview was shown live');
    assert.equal(await page.locator('#dream-progress').evaluate((p: HTMLProgressElement) => p.value), 1);
    await page.locator('#dream-curl').click();
    assert.match(await page.locator('#dream-curl-text').textContent() ?? '', /-F 'octaves=2'[\s\S]*-F 'iterations=3'/);
    await shot('dream-desktop');
    await page.locator('#dream-again').click();
    // The status line still says 100 % from the first run until the new job is submitted: wait for the server to
    // list a new job (only the page can have made it) that has finished, then for the page to show it done.
    let again: Awaited<ReturnType<typeof jobsOf>>[number] | undefined;
    for (let i = 0; i < 900; i++) {
      [again] = await jobsOf('dream');
      if (again && again.id !== job!.id && !['queued', 'running'].includes(again.status)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.notEqual(again!.id, job!.id);
    assert.equal(again!.status, 'succeeded');
    await page.waitForFunction(() => document.querySelector('#dream-status')?.textContent?.startsWith('100 %') && !(document.getElementById('dream-submit') as HTMLButtonElement).disabled, undefined, { timeout: 30_000 });
  });

  it('Style: a style image, live previews and the result', async () => {
    await openTab('style');
    await page.locator('#style-image').setInputFiles(STYLE_IMAGE);
    await page.locator('#style-model').selectOption('vgg19-small');
    await page.locator('#panel-style summary').click();
    await page.locator('#style-p-size').fill('48');
    await page.locator('#style-p-iterations').fill('4');
    await page.locator('#style-p-preview_every').fill('2');
    await page.locator('#style-submit').click();
    await page.locator('#style-compare-after').waitFor({ timeout: 90_000 });
    assert.ok(await page.locator('#style-error').isHidden(), await page.locator('#style-error').textContent() ?? '');
    const [job] = await jobsOf('style');
    assert.equal(job!.status, 'succeeded');
    assert.ok(Number(await page.locator('#style-live-preview').getAttribute('data-previews')) >= 1);
    await shot('style-desktop');
  });

  it('cancel a running job, and the gallery lists the jobs', async () => {
    await openTab('dream');
    await page.locator('#dream-p-octaves').fill('1');
    await page.locator('#dream-p-iterations').fill('400');
    await page.locator('#dream-submit').click();
    await page.waitForFunction(() => (document.getElementById('dream-progress') as HTMLProgressElement).value > 0, undefined, { timeout: 60_000 });
    await page.locator('#dream-cancel').click();
    await page.waitForFunction(() => /cancelled/.test(document.getElementById('dream-status')!.textContent ?? ''), undefined, { timeout: 30_000 });
    const [job] = await jobsOf('dream');
    assert.equal(job!.status, 'cancelled');
    assert.ok(job!.progress.step < 400);
    await page.locator('#gallery-refresh').click();
    await page.waitForFunction(() => document.querySelectorAll('#gallery-list li[data-id]').length >= 4);
    const statuses = await page.locator('#gallery-list li').evaluateAll((els) => els.map((e) => `${e.querySelector('strong')?.textContent} ${e.getAttribute('data-status')}`));
    assert.deepEqual(statuses.slice(0, 2), ['dream cancelled', 'style succeeded']);
    assert.ok(await page.locator('#gallery-list img.thumb').count() >= 3);
    await page.locator('#gallery').screenshot({ path: join(SHOTS, 'gallery.png') });
  });

  it('axe: no serious or critical violations on any tab; 375 px: no horizontal scroll', async () => {
    // Evaluated through the DevTools protocol: the page's CSP (script-src 'self') rightly refuses inline scripts.
    await page.evaluate(readFileSync(AXE, 'utf8'));
    for (const width of [1200, 375]) {
      await page.setViewportSize({ width, height: 800 });
      for (const tab of TABS) {
        await openTab(tab);
        // Contrast, names and roles do not depend on the width: axe runs once per tab (desktop), scroll at both.
        const found = width === 375 ? [] : await page.evaluate(async () => {
          const axe = (window as unknown as { axe: { run: (c: Document) => Promise<{ violations: { id: string; impact: string; nodes: { target: unknown }[] }[] }> } }).axe;
          return (await axe.run(document)).violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${JSON.stringify(v.nodes.map((n) => n.target))}`);
        });
        assert.deepEqual(found, [], `${tab} at ${width} px`);
        const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
        assert.ok(scroll <= inner, `${tab} at ${width} px scrolls horizontally: ${scroll} > ${inner}`);
        if (width === 375) await shot(`${tab}-mobile`);
      }
    }
    await page.setViewportSize({ width: 1200, height: 900 });
  });

  it('every control is labelled; no console errors or failed requests on the page', async () => {
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')].filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label')).map((el) => el.id));
    assert.deepEqual(unlabelled, []);
    assert.deepEqual(problems, []);
  });

  it('an invalid file shows the server error (problem+json detail)', async () => {
    await openTab('classify');
    await page.locator('#file').setInputFiles({ name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('this is not an image') });
    await page.locator('#classify-btn').click();
    await page.locator('#classify-error').waitFor();
    assert.match(await page.locator('#classify-error').textContent() ?? '', /^422 /);
    problems.length = 0; // the refused upload is logged by Chromium as a failed request, on purpose
  });

  it('/docs is Swagger UI, served locally; try-it-out on /v1/kernels succeeds', async () => {
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(svc.url + '/docs');
    await page.waitForSelector('body[data-ready=true]');
    const op = page.locator('#operations-filter-listKernels').first();
    await op.locator('.opblock-summary').click();
    await op.locator('button.try-out__btn').click();
    await op.locator('button.execute').click();
    await op.locator('.responses-wrapper .live-responses-table .response-col_status').first().waitFor();
    assert.equal((await op.locator('.live-responses-table tbody .response-col_status').first().textContent())?.trim(), '200');
    assert.match(await op.locator('.live-responses-table .microlight').first().textContent() ?? '', /edge-3/);
    assert.deepEqual(requests.filter((u) => !u.startsWith(svc.url)), [], 'nothing from the internet');
    await page.screenshot({ path: join(SHOTS, 'docs.png') });
    assert.deepEqual(problems, []);
  });
});
