// Browser tests of the web page: Chromium (CHROMIUM_PATH, set by scripts/test-setup.mjs) driven by playwright-core against the
// full service (synthetic reduced-width VGG19 in a temp models dir). One browser, one page, reused; screenshots
// of every state go to test-output/screenshots/.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { synthesizeModel } from '../src/models/synth.js';
import { type RunningService, defaultPlugins, startService } from '../src/server/service.js';
// @ts-expect-error -- plain .mjs build script without types
import { buildWeb } from '../scripts/build-web.mjs';
// @ts-expect-error -- plain .mjs script without types
import { findTool } from '../scripts/test-setup.mjs';
import { tempDir, testConfig } from './helpers/app.js';

// `npm test` runs scripts/test-setup.mjs first, which sets CHROMIUM_PATH; run alone, this file looks for it the same way.
const CHROMIUM: string = process.env.CHROMIUM_PATH ?? findTool('chromium');
const SHOTS = join(import.meta.dirname, '..', 'test-output', 'screenshots');
const SAMPLE = join(import.meta.dirname, '..', 'samples', 'chelsea.jpg');
const MNIST = join(import.meta.dirname, '..', 'models', 'mnist-cnn');

describe('web page (Chromium)', () => {
  let svc: RunningService;
  let browser: BrowserContext;
  let page: Page;
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const section = (id: string) => page.locator(`#${id}`);

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    await buildWeb({ minify: false });
    const modelsDir = tempDir();
    // Named vgg19-small so that vgg19 itself shows as missing, with its install commands.
    await synthesizeModel('vgg19', { modelsDir, name: 'vgg19-small', width: 0.125, seed: 3 });
    await synthesizeModel('inception_v3', { modelsDir, name: 'inception_v3', width: 0.125, seed: 4 });
    if (existsSync(join(MNIST, 'manifest.json'))) cpSync(MNIST, join(modelsDir, 'mnist-cnn'), { recursive: true });
    // Blur-sweep jobs slow enough to watch and cancel: 100 ms before each step (an operator setting, not a form field).
    svc = await startService({ config: testConfig({ modelsDir, dataDir: tempDir('convserve-web-data-'), blurSweepStepDelayMs: 100 }), plugins: await defaultPlugins() });
    for (let i = 0; i < 300 && !svc.ctx.readiness.status().ready; i++) await new Promise((r) => setTimeout(r, 100));
    browser = await chromium.launchPersistentContext(tempDir('convserve-chromium-'), {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1200, height: 900 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
    await page.goto(svc.url + '/');
    await page.waitForSelector('body[data-ready=true]');
  });
  after(async () => {
    await browser?.close();
    await svc?.shutdown();
  });

  it('the page loads: models, kernels, samples; untrained models are badged', async () => {
    assert.equal(await page.title(), 'convserve — classify, filter, dream, style');
    const options = await page.locator('#model option').allTextContents();
    assert.ok(options.some((o) => o.startsWith('vgg19-small') && o.includes('untrained')), options.join(', '));
    assert.ok(options.some((o) => o.startsWith('vgg19 ') && o.includes('missing')), 'missing models are listed');
    assert.ok(await page.locator('#model option[value=vgg19]').isDisabled());
    await page.locator('#model').selectOption('vgg19-small');
    assert.ok(await page.locator('#model-info .badge.warn').isVisible(), 'untrained badge');
    await page.locator('#models-list').evaluate((el) => (el.closest('details') as HTMLDetailsElement).open = true);
    assert.match(await page.locator('#models-list').textContent() ?? '', /convserve models fetch vgg19/);
    const kernels = await page.locator('#kernel option').allTextContents();
    assert.ok(kernels.includes('edge-3') && kernels.includes('sharpen'));
    assert.ok(await page.locator('.samples button').count() >= 5);
    await shot('01-loaded');
  });

  it('upload → classify shows the same top-5 labels as the API, as a bar chart', async () => {
    await page.locator('#file').setInputFiles(SAMPLE);
    await page.locator('#current-img').waitFor();
    await page.locator('#classify-btn').click();
    await page.locator('#classify-result .bars li').first().waitFor();
    const labels = await page.locator('#classify-result .bar-label').allTextContents();
    // Oracle: the same request straight to the API.
    const form = new FormData();
    form.set('image', new Blob([readFileSync(SAMPLE)], { type: 'image/jpeg' }), 'chelsea.jpg');
    const direct = await (await fetch(`${svc.url}/v1/classify?model=vgg19-small&top=5`, { method: 'POST', body: form })).json() as { predictions: { label: string; probability: number }[] };
    assert.deepEqual(labels, direct.predictions.map((p) => p.label));
    const values = await page.locator('#classify-result .bar-value').allTextContents();
    assert.equal(values.length, 5);
    assert.ok(await page.locator('#classify-result .badge.warn').isVisible(), 'untrained weights are flagged next to the result');
    await section('classify').screenshot({ path: join(SHOTS, '02-classify.png') });
  });

  it('filter shows before/after and a download link; the custom-matrix editor validates', async () => {
    await page.locator('#kernel').selectOption('edge-3');
    assert.equal(await page.locator('#kernel-preview td').count(), 9);
    await page.locator('#filter-btn').click();
    await page.locator('#filter-result').waitFor();
    await page.waitForFunction(() => (document.getElementById('filter-after') as HTMLImageElement).naturalWidth > 0);
    const [w, h] = await page.locator('#filter-after').evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]);
    const before = await page.locator('#filter-before').evaluate((img: HTMLImageElement) => [img.naturalWidth, img.naturalHeight]);
    assert.deepEqual([w, h], before, 'same size as the input');
    assert.match(await page.locator('#filter-download').getAttribute('href') ?? '', /^blob:/);
    await section('filter').screenshot({ path: join(SHOTS, '03-filter.png') });

    await page.locator('#kernel').selectOption('custom');
    await page.locator('#custom').fill('1 2\n3 4');
    assert.match(await page.locator('#custom-msg').textContent() ?? '', /odd/);
    assert.equal(await page.locator('#custom').getAttribute('aria-invalid'), 'true');
    await page.locator('#filter-btn').click();
    assert.match(await page.locator('#filter-error').textContent() ?? '', /odd/);
    await section('filter').screenshot({ path: join(SHOTS, '04-filter-invalid-matrix.png') });
    await page.locator('#custom').fill('0 -1 0\n-1 5 -1\n0 -1 0');
    assert.match(await page.locator('#custom-msg').textContent() ?? '', /3×3/);
    await page.locator('#filter-btn').click();
    await page.waitForFunction(() => document.getElementById('filter-error')!.hidden);
  });

  // DeepDream through its panel (synthetic reduced-width InceptionV3, one small octave). The dream kind was
  // finished in parallel; should it be missing, the page says so and the same job panel (progress, previews,
  // result) is exercised with the built-in blur-sweep kind instead.
  it('a small DeepDream job runs to 100 % with live progress, previews and the result', async () => {
    const kinds = (await (await fetch(`${svc.url}/v1/job-kinds`)).json() as { kinds: { name: string }[] }).kinds.map((k) => k.name);
    const kind = kinds.includes('dream') ? 'dream' : 'blur-sweep';
    const card = kind === 'dream' ? 'dream' : 'other-jobs';
    const form = page.locator(`form[data-kind=${kind}]`);
    let steps: number;
    if (kind === 'dream') {
      await form.locator('[name=octaves]').fill('2');
      await form.locator('[name=iterations]').fill('3');
      await form.locator('[name=max_size]').fill('160');
      steps = 6;
    } else {
      assert.match(await section('dream').textContent() ?? '', /not installed/);
      await form.locator('[name=steps]').fill('10');
      await form.locator('[name=preview_every]').fill('2');
      steps = 10;
    }
    await page.locator(`#${kind}-submit`).click();
    await page.waitForFunction((k) => (document.getElementById(`${k}-progress`) as HTMLProgressElement).value > 0 || !document.getElementById(`${k}-error`)!.hidden, kind, { timeout: 60_000 });
    assert.ok(await page.locator(`#${kind}-error`).isHidden(), await page.locator(`#${kind}-error`).textContent() ?? '');
    assert.match(await page.locator(`#${kind}-status`).textContent() ?? '', new RegExp(`% · step \\d+/${steps}.* · ETA`));
    await section(card).screenshot({ path: join(SHOTS, '05-job-progress.png') });
    await page.locator(`#${kind}-result img`).waitFor({ timeout: 90_000 });
    assert.equal(await page.locator(`#${kind}-progress`).evaluate((p: HTMLProgressElement) => p.value), 1);
    assert.match(await page.locator(`#${kind}-status`).textContent() ?? '', /^100 %/);
    const { jobs } = await (await fetch(`${svc.url}/v1/jobs?kind=${kind}&limit=1`)).json() as { jobs: { status: string; previews: string[] }[] };
    assert.equal(jobs[0]!.status, 'succeeded');
    assert.ok(jobs[0]!.previews.length >= 1);
    assert.equal(await page.locator(`#${kind}-previews img`).count(), jobs[0]!.previews.length);
    await page.waitForFunction((k) => (document.querySelector(`#${k}-result img`) as HTMLImageElement).naturalWidth > 0, kind);
    assert.match(await page.locator(`#${kind}-result a[download]`).getAttribute('href') ?? '', /^\/v1\/jobs\/[\w-]+\/result$/);
    await section(card).screenshot({ path: join(SHOTS, '06-job-done.png') });
  });

  it('cancelling a running job', async () => {
    const form = page.locator('form[data-kind=blur-sweep]');
    await form.locator('[name=steps]').fill('200');
    await page.locator('#blur-sweep-submit').click();
    await page.waitForFunction(() => (document.getElementById('blur-sweep-progress') as HTMLProgressElement).value > 0);
    await page.locator('#blur-sweep-cancel').click();
    await page.waitForFunction(() => /cancelled/.test(document.getElementById('blur-sweep-status')!.textContent ?? ''));
    const { jobs } = await (await fetch(`${svc.url}/v1/jobs?kind=blur-sweep&limit=1`)).json() as { jobs: { status: string; progress: { step: number } }[] };
    assert.equal(jobs[0]!.status, 'cancelled');
    assert.ok(jobs[0]!.progress.step < 200);
    assert.ok(await page.locator('#blur-sweep-cancel').isDisabled());
    await section('other-jobs').screenshot({ path: join(SHOTS, '07-job-cancelled.png') });
  });

  it('the jobs table lists recent jobs with status and thumbnails', async () => {
    await page.locator('#jobs-refresh').click();
    await page.waitForFunction(() => document.querySelectorAll('#jobs-body tr[data-id]').length >= 2);
    const statuses = await page.locator('#jobs-body .badge').allTextContents();
    assert.deepEqual(statuses.slice(0, 2), ['cancelled', 'succeeded']);
    assert.ok(await page.locator('#jobs-body img.thumb').count() >= 1);
    await section('jobs').screenshot({ path: join(SHOTS, '08-jobs.png') });
  });

  it('an invalid file shows the server error (problem+json detail)', async () => {
    await page.locator('#file').setInputFiles({ name: 'notes.png', mimeType: 'image/png', buffer: Buffer.from('this is not an image') });
    await page.locator('#classify-btn').click();
    const err = page.locator('#classify-error');
    await err.waitFor();
    const text = await err.textContent() ?? '';
    assert.match(text, /^422 /);
    const direct = await fetch(`${svc.url}/v1/classify`, { method: 'POST', body: Buffer.from('this is not an image'), headers: { 'Content-Type': 'image/png' } });
    assert.ok(text.includes((await direct.json() as { detail: string }).detail), text);
    await section('classify').screenshot({ path: join(SHOTS, '09-invalid-file.png') });
    await shot('10-full-page');
  });

  it('keyboard: the controls are reachable by Tab and labelled', async () => {
    await page.goto(svc.url + '/');
    await page.waitForSelector('body[data-ready=true]');
    const seen: string[] = [];
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      seen.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName || ''));
    }
    for (const id of ['file', 'model', 'classify-btn', 'kernel', 'filter-btn']) assert.ok(seen.includes(id), `${id} reachable by Tab: ${seen.join(' ')}`);
    // Every form control has a label.
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')].filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label')).map((el) => el.id));
    assert.deepEqual(unlabelled, []);
  });

  it('/docs renders the OpenAPI description offline', async () => {
    await page.goto(svc.url + '/docs');
    await page.waitForSelector('body[data-ready=true]');
    const ops = await page.locator('section.op').count();
    const spec = await (await fetch(`${svc.url}/openapi.json`)).json() as { paths: Record<string, Record<string, unknown>> };
    assert.equal(ops, Object.values(spec.paths).reduce((n, p) => n + Object.keys(p).length, 0));
    assert.ok(await page.locator('#classify-h').isVisible());
    await page.screenshot({ path: join(SHOTS, '11-docs.png') });
  });
});
