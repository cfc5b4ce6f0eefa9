// Builds the web page (web/) into dist/web/: esbuild bundles web/src/main.ts (plain TypeScript, no framework),
// the HTML and CSS are copied, and Swagger UI (swagger-ui-dist) is copied into dist/web/docs/ so /docs works
// offline. Run by `npm run build` (and so by `npm install`); importable by tests.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const swaggerDir = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** The files of swagger-ui-dist that /docs serves (the standalone bundle has everything it needs). */
const SWAGGER_FILES = ['swagger-ui-bundle.js', 'swagger-ui.css', 'LICENSE', 'NOTICE'];

export async function buildWeb({ outDir = `${root}dist/web`, minify = true } = {}) {
  mkdirSync(`${outDir}/assets`, { recursive: true });
  mkdirSync(`${outDir}/docs`, { recursive: true });
  await build({
    entryPoints: [`${root}web/src/main.ts`],
    outdir: `${outDir}/assets`,
    bundle: true,
    format: 'esm',
    target: ['chrome120', 'firefox120', 'safari17'],
    minify,
    sourcemap: true,
    logLevel: 'warning',
  });
  copyFileSync(`${root}web/index.html`, `${outDir}/index.html`);
  copyFileSync(`${root}web/style.css`, `${outDir}/assets/style.css`);
  copyFileSync(`${swaggerDir}/favicon-32x32.png`, `${outDir}/assets/favicon.png`);
  for (const f of ['index.html', 'init.js', 'docs.css']) copyFileSync(`${root}web/docs/${f}`, `${outDir}/docs/${f}`);
  for (const f of SWAGGER_FILES) copyFileSync(`${swaggerDir}/${f}`, `${outDir}/docs/${f}`);
  return outDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildWeb();
