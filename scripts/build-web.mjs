// Builds the web page (web/) into dist/web/: esbuild bundles web/src/*.ts (plain TypeScript, no framework),
// the HTML and CSS are copied. Run by `npm run build` (and so by `npm install`); importable by tests.
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

export async function buildWeb({ outDir = `${root}dist/web`, minify = true } = {}) {
  mkdirSync(`${outDir}/assets`, { recursive: true });
  await build({
    entryPoints: [`${root}web/src/main.ts`, `${root}web/src/docs.ts`],
    outdir: `${outDir}/assets`,
    bundle: true,
    format: 'esm',
    target: ['chrome120', 'firefox120'],
    minify,
    sourcemap: true,
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'docs.html']) copyFileSync(`${root}web/${f}`, `${outDir}/${f}`);
  copyFileSync(`${root}web/style.css`, `${outDir}/assets/style.css`);
  return outDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await buildWeb();
