// Headless Chromium for the page tests: Debian's chromium (found or installed by scripts/test-setup.mjs, or
// CHROMIUM_PATH), a fresh profile, no background traffic, a desktop viewport.
import { type BrowserContext, type Page, chromium } from 'playwright-core';
// @ts-expect-error -- plain .mjs script without types
import { findTool } from '../../scripts/test-setup.mjs';
import { tempDir } from './app.js';

export async function launchChromium(): Promise<{ browser: BrowserContext; page: Page }> {
  const browser = await chromium.launchPersistentContext(tempDir('convserve-chromium-'), {
    executablePath: process.env.CHROMIUM_PATH ?? (findTool('chromium') as string),
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1200, height: 900 },
  });
  return { browser, page: browser.pages()[0] ?? (await browser.newPage()) };
}
