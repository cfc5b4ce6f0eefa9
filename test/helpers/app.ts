// Test helpers: an app with the real routes and a config that tests may override.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { createCatalogCore } from '../../src/app/core.js';
import { type Config, loadConfig } from '../../src/config.js';
import { createApp } from '../../src/server/app.js';
import type { AppContext } from '../../src/server/context.js';
import { type ServicePlugin, bindPlugin } from '../../src/server/plugin.js';
import { logger } from '../../src/util/logger.js';

export function testConfig(overrides: Partial<Config> = {}): Config {
  return loadConfig({}, { port: 0, host: '127.0.0.1', autoFetch: false, ...overrides });
}

/** The context of an app on a core without engine and jobs (the built-in routes: health, filter). */
export function testContext(overrides: Partial<Config> = {}): AppContext {
  const core = createCatalogCore(testConfig(overrides), logger);
  return { config: core.config, logger, readiness: core.readiness, core };
}

/** An express app (for supertest) with the built-in routes and `plugins`, whose needs the core must meet. */
export function testApp(overrides: Partial<Config> = {}, plugins: readonly ServicePlugin[] = []) {
  const ctx = testContext(overrides);
  const bound = plugins.map((p) => bindPlugin(p, ctx));
  for (const p of bound) p.start();
  return { ctx, app: createApp(ctx, bound) };
}

export function tempDir(prefix = 'convserve-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A deterministic RGB test pattern (gradients plus a checker), as raw pixels and PNG. */
export async function testPattern(width: number, height: number): Promise<{ raw: Buffer; png: Buffer }> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = Math.round((x / Math.max(1, width - 1)) * 255);
      raw[i + 1] = Math.round((y / Math.max(1, height - 1)) * 255);
      raw[i + 2] = ((x >> 2) + (y >> 2)) % 2 ? 230 : 20;
    }
  }
  const png = await sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
  return { raw, png };
}
