// Browser tests of the page's newer parts, in Chromium against the full service (a synthetic reduced-width
// VGG19): the heatmap of a classification label (POST /v1/explain from the Classify result: the request's class
// and method, the picture shown, a method switch asking again, the 422 of a method over the pass limit), and the
// Fine-tune tab (it renders, checks its inputs, shows the server's problem+json, and trains a model from a zip that
// the Classify tab then uses, heatmap included). Axe and the 375-px width for both. Screenshots to test-output/screenshots/.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { zipSync } from 'fflate';
import sharp from 'sharp';
import { synthesizeModel } from '../src/models/synth.js';
import { type RunningService, defaultPlugins, startService } from '../src/server/service.js';
// @ts-expect-error -- plain .mjs build script without types
import { buildWeb } from '../scripts/build-web.mjs';
import { tempDir, testConfig } from './helpers/app.js';
import { launchChromium } from './helpers/browser.js';

const SHOTS = join(import.meta.dirname, '..', 'test-output', 'screenshots');
const SAMPLE = join(import.meta.dirname, '..', 'samples', 'chelsea.jpg');
const AXE = join(import.meta.dirname, '..', 'node_modules', 'axe-core', 'axe.min.js');
const COLOURS: Record<string, [number, number, number]> = { blue: [40, 70, 220], green: [40, 200, 60], red: [220, 40, 40] };
/** Integrated gradients asks for 32 passes by default: over this limit it answers 422; SmoothGrad (16) fits. */
const MAX_PASSES = 16;

/** A multipart body the page sent, as recorded by the fetch spy: strings, and files by name. */
type SentForm = Record<string, string | { file: string; size: number }>;

/**
 * Records the FormData of every POST the page makes to `path` (Chromium does not expose multipart bodies with
 * files to the DevTools protocol). The request itself goes out unchanged.
 */
const SPY = `(() => {
  if (window.__sent) return;
  window.__sent = [];
  const real = window.fetch;
  window.fetch = (url, init) => {
    if (init && init.body instanceof FormData) {
      const form = {};
      for (const [k, v] of init.body.entries()) form[k] = typeof v === 'string' ? v : { file: v.name, size: v.size };
      window.__sent.push({ path: new URL(String(url), location.href).pathname, form });
    }
    return real(url, init);
  };
})()`;

/** Largest per-channel difference between RGBA pixels and an encoded image of the same size (sharp decodes it). */
async function maxPixelDiff(rgba: { width: number; height: number; data: number[] }, encoded: Buffer): Promise<number> {
  const y = await sharp(encoded).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([rgba.width, rgba.height], [y.info.width, y.info.height]);
  let max = 0;
  for (let i = 0; i < rgba.data.length; i++) if (i % 4 !== 3) max = Math.max(max, Math.abs(rgba.data[i]! - y.data[i]!));
  return max;
}

describe('web page: explanation heatmaps and the Fine-tune tab (Chromium)', () => {
  let svc: RunningService;
  let browser: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const refused: string[] = [];
  const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const openTab = async (id: string) => { await page.locator(`#tab-${id}`).click(); await page.locator(`#panel-${id}`).waitFor(); };
  const explainResponse = () => page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/explain' && r.request().method() === 'POST');
  type Spied = { __sent: { path: string; form: SentForm }[] };
  const sentCount = (path: string) => page.evaluate((p) => (window as unknown as Spied).__sent.filter((s) => s.path === p).length, path);
  /** The `n`-th (from 0) form the page posted to `path`, once it has been posted. */
  const sentForm = async (path: string, n: number): Promise<SentForm> => {
    await page.waitForFunction(([p, k]) => (window as unknown as Spied).__sent.filter((s) => s.path === p).length > k, [path, n] as const);
    return page.evaluate(([p, k]) => (window as unknown as Spied).__sent.filter((s) => s.path === p)[k]!.form, [path, n] as const);
  };
  const axeViolations = () => page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run: (c: Document) => Promise<{ violations: { id: string; impact: string; nodes: { target: unknown }[] }[] }> } }).axe;
    return (await axe.run(document)).violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${JSON.stringify(v.nodes.map((n) => n.target))}`);
  });
  /** At 375 px: the page does not scroll sideways, and no visible element reaches past its card (the page hides
   * horizontal overflow, so a too-wide element would be cut off rather than scroll); what is inside a scrolling
   * box only has to keep the box itself inside. */
  const overflowAt375 = async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    return page.evaluate(() => {
      const out = document.documentElement.scrollWidth > window.innerWidth ? [`scrollWidth ${document.documentElement.scrollWidth}`] : [];
      for (const e of document.querySelectorAll('main .card *')) {
        const card = e.closest('.card')!;
        let inScroller = false;
        for (let a = e.parentElement; a && a !== card; a = a.parentElement) if (getComputedStyle(a).overflowX !== 'visible') inScroller = true;
        if (inScroller || !e.checkVisibility()) continue;
        const right = e.getBoundingClientRect().right;
        const limit = card.getBoundingClientRect().right - parseFloat(getComputedStyle(card).borderRightWidth);
        if (right > limit + 0.5) out.push(`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}.${e.className} ${Math.round(right)} > ${Math.round(limit)}`);
      }
      return out.slice(0, 10);
    });
  };
  /** The direct API answer for the same explanation, as the oracle of what the page shows. */
  const directExplain = async (cls: string, method: string) => {
    const form = new FormData();
    form.set('image', new Blob([readFileSync(SAMPLE)], { type: 'image/jpeg' }), 'chelsea.jpg');
    for (const [k, v] of Object.entries({ model: 'vgg19-small', class: cls, method, format: 'png' })) form.set(k, v);
    const res = await fetch(`${svc.url}/v1/explain`, { method: 'POST', body: form });
    assert.equal(res.status, 200);
    return Buffer.from(await res.arrayBuffer());
  };

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    await buildWeb({ minify: false });
    const modelsDir = tempDir();
    await synthesizeModel('vgg19', { modelsDir, name: 'vgg19-small', width: 0.125, seed: 3 });
    svc = await startService({ config: testConfig({ modelsDir, dataDir: tempDir('convserve-webx-data-'), explainMaxPasses: MAX_PASSES }), plugins: await defaultPlugins() });
    for (let i = 0; i < 300 && !svc.ctx.readiness.status().ready; i++) await new Promise((r) => setTimeout(r, 100));
    ({ browser, page } = await launchChromium());
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('response', (r) => { if (r.status() >= 400) refused.push(`${r.status()} ${new URL(r.url()).pathname}`); });
    await page.goto(svc.url + '/');
    await page.waitForSelector('body[data-ready=true]');
    await page.evaluate(readFileSync(AXE, 'utf8'));
    await page.evaluate(SPY);
  });
  after(async () => {
    await browser?.close();
    await svc?.shutdown();
  });

  it('a pressed label asks /v1/explain for its class index with Grad-CAM and shows the heatmap the API gives', async () => {
    await page.locator('#file').setInputFiles(SAMPLE);
    await page.locator('#current-img').waitFor();
    await page.locator('#model').selectOption('vgg19-small');
    await page.locator('#classify-btn').click();
    await page.locator('#classify-result .bars li').first().waitFor();
    const buttons = page.locator('#classify-result .bars button.label-button');
    assert.equal(await buttons.count(), 5);
    assert.deepEqual(await buttons.evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-pressed'))), ['false', 'false', 'false', 'false', 'false']);
    assert.equal(await page.locator('#explain-method').inputValue(), 'gradcam', 'Grad-CAM is the default method');

    // The classify answer's indices are what the labels send.
    const form = new FormData();
    form.set('image', new Blob([readFileSync(SAMPLE)], { type: 'image/jpeg' }), 'chelsea.jpg');
    const direct = await (await fetch(`${svc.url}/v1/classify?model=vgg19-small&top=5`, { method: 'POST', body: form })).json() as { predictions: { index: number; label: string }[] };
    const second = direct.predictions[1]!;

    // Keyboard: focus the second label and press Enter.
    const n = await sentCount('/v1/explain');
    const answered = explainResponse();
    await buttons.nth(1).focus();
    await page.keyboard.press('Enter');
    const sent = await sentForm('/v1/explain', n);
    assert.deepEqual(sent, { image: { file: 'chelsea.jpg', size: readFileSync(SAMPLE).length }, model: 'vgg19-small', class: String(second.index), method: 'gradcam', format: 'png' });
    const res = await answered;
    assert.equal(res.status(), 200);
    await page.waitForFunction(() => { const i = document.getElementById('explain-img') as HTMLImageElement; return !document.getElementById('explain-figure')!.hidden && i.complete && i.naturalWidth > 0; });
    const size = await page.locator('#explain-img').evaluate((i: HTMLImageElement) => [i.naturalWidth, i.naturalHeight]);
    assert.deepEqual(size, [451, 300], 'the heatmap is blended over the picture at its size');
    assert.deepEqual(await buttons.evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-pressed'))), ['false', 'true', 'false', 'false', 'false']);
    const caption = await page.locator('#explain-caption').textContent() ?? '';
    assert.ok(caption.includes('Grad-CAM') && caption.includes(second.label) && caption.includes(`class ${second.index}`), caption);
    assert.ok(await page.locator('#explain-error').isHidden());
    // What the page shows is what the API answers for that class and method (decoded pixels, within rounding).
    const shown = await page.locator('#explain-img').evaluate((i: HTMLImageElement) => {
      const c = document.createElement('canvas');
      c.width = i.naturalWidth;
      c.height = i.naturalHeight;
      const g = c.getContext('2d')!;
      g.drawImage(i, 0, 0);
      return { width: c.width, height: c.height, data: [...g.getImageData(0, 0, c.width, c.height).data] };
    });
    assert.ok(await maxPixelDiff(shown, await directExplain(String(second.index), 'gradcam')) <= 2);
    // …and not another class's map (so the comparison above can tell them apart).
    assert.ok(await maxPixelDiff(shown, await directExplain(String(direct.predictions[0]!.index), 'gradcam')) > 2);
    await shot('classify-explain-desktop');
  });

  it('switching the method asks again for the pressed label; another label presses alone', async () => {
    const buttons = page.locator('#classify-result .bars button.label-button');
    const pressedIndex = await buttons.nth(1).getAttribute('data-index');
    let n = await sentCount('/v1/explain');
    await page.locator('#explain-method').selectOption('saliency');
    let sent = await sentForm('/v1/explain', n);
    assert.equal(sent.method, 'saliency');
    assert.equal(sent.class, pressedIndex);
    await page.waitForFunction(() => (document.getElementById('explain-img') as HTMLImageElement).dataset.method === 'saliency' && !document.getElementById('explain-figure')!.hasAttribute('aria-busy'));
    assert.match(await page.locator('#explain-caption').textContent() ?? '', /^Saliency · /);
    assert.ok(await page.locator('#explain-img').evaluate((i: HTMLImageElement) => i.naturalWidth > 0));

    n = await sentCount('/v1/explain');
    await buttons.first().click();
    sent = await sentForm('/v1/explain', n);
    assert.equal(sent.class, await buttons.first().getAttribute('data-index'));
    assert.equal(sent.method, 'saliency');
    await page.waitForFunction((c) => (document.getElementById('explain-img') as HTMLImageElement).dataset.class === c, sent.class);
    assert.deepEqual(await buttons.evaluateAll((bs) => bs.map((b) => b.getAttribute('aria-pressed'))), ['true', 'false', 'false', 'false', 'false']);
  });

  it('a method over the pass limit shows the 422 problem detail; the next method clears it', async () => {
    const n = await sentCount('/v1/explain');
    await page.locator('#explain-method').selectOption('integrated-gradients');
    assert.equal((await sentForm('/v1/explain', n)).method, 'integrated-gradients');
    await page.locator('#explain-error').waitFor();
    const text = await page.locator('#explain-error').textContent() ?? '';
    assert.match(text, /^422 /);
    assert.match(text, new RegExp(`limited to ${MAX_PASSES}`), 'the server\'s detail is shown');
    assert.ok(refused.includes('422 /v1/explain'));
    await page.locator('#explain-method').selectOption('smoothgrad');
    await page.waitForFunction(() => (document.getElementById('explain-img') as HTMLImageElement).dataset.method === 'smoothgrad', undefined, { timeout: 60_000 });
    assert.ok(await page.locator('#explain-error').isHidden());
    assert.match(await page.locator('#explain-caption').textContent() ?? '', /^SmoothGrad · /);
  });

  it('classify with heatmap: no serious axe violation; no horizontal scroll at 375 px', async () => {
    assert.deepEqual(await axeViolations(), []);
    assert.deepEqual(await overflowAt375(), []);
    await shot('classify-explain-mobile');
    await page.setViewportSize({ width: 1200, height: 900 });
  });

  it('Fine-tune tab: renders its inputs, checks archive and name, shows the server\'s problem+json', async () => {
    await openTab('finetune');
    for (const id of ['finetune-archive', 'finetune-base', 'finetune-name', 'finetune-epochs', 'finetune-submit']) assert.ok(await page.locator(`#${id}`).isVisible(), id);
    assert.equal(await page.locator('#finetune-archive').getAttribute('type'), 'file');
    assert.ok((await page.locator('#finetune-base option').allTextContents()).some((o) => o.startsWith('vgg19-small')));
    const submits = () => sentCount('/v1/jobs/finetune');
    const before = await submits();

    await page.locator('#finetune-submit').click();
    assert.match(await page.locator('#finetune-error').textContent() ?? '', /Choose an archive/);
    assert.equal(await page.locator('#finetune-archive').getAttribute('aria-invalid'), 'true');

    await page.locator('#finetune-archive').setInputFiles({ name: 'flowers.zip', mimeType: 'application/zip', buffer: Buffer.from('this is not an archive') });
    await page.locator('#finetune-submit').click();
    assert.match(await page.locator('#finetune-error').textContent() ?? '', /Name the new model/);
    assert.equal(await page.locator('#finetune-name').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.locator('#finetune-archive').getAttribute('aria-invalid'), 'false');

    await page.locator('#finetune-name').fill('My Flowers');
    await page.locator('#finetune-submit').click();
    assert.match(await page.locator('#finetune-error').textContent() ?? '', /is not a model name/);
    assert.equal(await submits(), before, 'nothing is sent until the inputs are valid');

    // Valid inputs reach the server, which refuses this "archive" (415: not a zip or tar); the page shows the
    // problem+json and keeps working.
    await page.locator('#finetune-name').fill('my-flowers');
    const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/jobs/finetune');
    await page.locator('#finetune-submit').click();
    const sent = await sentForm('/v1/jobs/finetune', before);
    assert.deepEqual(sent, { archive: { file: 'flowers.zip', size: 22 }, base: 'vgg19-small', name: 'my-flowers', ...(await page.locator('#finetune-epochs').inputValue() ? { epochs: await page.locator('#finetune-epochs').inputValue() } : {}) });
    const status = (await answered).status();
    assert.equal(status, 415);
    await page.waitForFunction(() => /^4\d\d /.test(document.getElementById('finetune-error')!.textContent ?? ''));
    const shown = await page.locator('#finetune-error').textContent() ?? '';
    assert.match(shown, new RegExp(`^${status} `));
    const problem = await (await fetch(`${svc.url}/v1/jobs/finetune`, { method: 'POST', body: (() => { const f = new FormData(); f.set('archive', new Blob([Buffer.from('this is not an archive')]), 'flowers.zip'); f.set('name', 'my-flowers'); f.set('base', 'vgg19-small'); return f; })() })).json() as { detail: string };
    assert.ok(shown.includes(problem.detail), `the page shows the server's detail: ${shown}`);
    assert.ok(await page.locator('#finetune-submit').isEnabled(), 'the tab can be used again');
    assert.ok(await page.locator('#finetune-metrics').count() === 0 || await page.locator('#finetune-metrics').isHidden(), 'no metrics without a job');
    await shot('finetune-desktop');
  });

  it('Fine-tune tab end to end: a zip of class folders trains, one table row per epoch, then Classify with the new model and its heatmap', async () => {
    const files: Record<string, Uint8Array> = {};
    let k = 0;
    for (const [cls, rgb] of Object.entries(COLOURS)) {
      for (let i = 0; i < 6; i++, k++) {
        const bg = 70 + ((k * 37) % 110);
        const x = 4 + ((k * 7) % 16);
        const y = 4 + ((k * 11) % 16);
        const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48"><rect width="48" height="48" fill="rgb(${bg},${bg},${bg})"/><rect x="${x}" y="${y}" width="24" height="24" fill="rgb(${rgb.join(',')})"/></svg>`;
        files[`${cls}/img-${i}.png`] = await sharp(Buffer.from(svg)).png().toBuffer();
      }
    }
    await openTab('finetune');
    await page.locator('#finetune-archive').setInputFiles({ name: 'colours.zip', mimeType: 'application/zip', buffer: Buffer.from(zipSync(files)) });
    await page.locator('#finetune-base').selectOption('vgg19-small');
    await page.locator('#finetune-name').fill('colours');
    await page.locator('#finetune-epochs').fill('3');
    await page.locator('#panel-finetune summary').click();
    await page.locator('#finetune-p-min_steps').fill('0');
    await page.locator('#finetune-p-batch_size').fill('8');
    await page.locator('#finetune-p-lr').fill('0.01');
    await page.locator('#finetune-submit').click();
    await page.locator('#finetune-use').waitFor({ timeout: 240_000 });
    assert.ok(await page.locator('#finetune-error').isHidden(), await page.locator('#finetune-error').textContent() ?? '');
    const jobs = await (await fetch(`${svc.url}/v1/jobs?kind=finetune&limit=1`)).json() as { jobs: { status: string; progress: { step: number } }[] };
    assert.equal(jobs.jobs[0]!.status, 'succeeded');
    assert.equal(await page.locator('#finetune-metrics tbody tr').count(), jobs.jobs[0]!.progress.step, 'one row per epoch run');
    assert.ok(await page.locator('#finetune-metrics tbody tr').count() >= 1);
    await shot('finetune-done');

    await page.locator('#finetune-use').click();
    await page.waitForFunction(() => document.getElementById('tab-classify')?.getAttribute('aria-selected') === 'true');
    assert.equal(await page.locator('#model').inputValue(), 'colours');
    await page.locator('#file').setInputFiles(SAMPLE);
    await page.locator('#current-img').waitFor();
    // The earlier tests' result is still on the page: wait for this classification's own answer.
    const classified = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/classify', { timeout: 60_000 });
    await page.locator('#classify-btn').click();
    assert.equal((await classified).status(), 200);
    await page.waitForFunction(() => document.querySelector('#classify-result p.muted')?.textContent?.startsWith('colours ') || !document.getElementById('classify-error')!.hidden, undefined, { timeout: 60_000 });
    assert.ok(await page.locator('#classify-error').isHidden(), await page.locator('#classify-error').textContent() ?? '');
    assert.deepEqual((await page.locator('#classify-result .bar-label').allTextContents()).sort(), Object.keys(COLOURS).sort(), 'the new model\'s own labels');
    await page.locator('#classify-result .label-button').first().click();
    await page.waitForFunction(() => (document.getElementById('explain-img') as HTMLImageElement | null)?.naturalWidth! > 0 || !document.getElementById('explain-error')!.hidden, undefined, { timeout: 60_000 });
    assert.ok(await page.locator('#explain-error').isHidden(), await page.locator('#explain-error').textContent() ?? '');
  });

  it('Fine-tune tab: no serious axe violation; no horizontal scroll at 375 px; no page errors', async () => {
    assert.deepEqual(await axeViolations(), []);
    assert.deepEqual(await overflowAt375(), []);
    await shot('finetune-mobile');
    await page.setViewportSize({ width: 1200, height: 900 });
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')].filter((el) => !(el as HTMLInputElement).labels?.length && !el.getAttribute('aria-label')).map((el) => el.id));
    assert.deepEqual(unlabelled, []);
    assert.deepEqual(pageErrors, []);
    const asked = (r: string) => r === '422 /v1/explain' || /^4\d\d \/v1\/jobs\/finetune$/.test(r);
    assert.deepEqual(refused.filter((r) => !asked(r)), [], 'only the refusals the tests asked for');
  });
});
