// The face of the product: the web page at / (built by scripts/build-web.mjs from web/ into dist/web/), its
// assets, the bundled sample images at /samples/…, the OpenAPI description at /openapi.json and its rendering
// at /docs. Nothing is loaded from the internet at run time.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NextFunction, Response } from 'express';
import { z } from 'zod';
import { unavailable } from '../util/problem.js';
import { SamplesResponse } from './api-schemas.js';
import type { ServicePlugin } from './plugin.js';
import { route } from './route-registry.js';

/** dist/web/ and samples/ of the project (the same from src/server/ under tsx and from dist/server/). */
export const WEB_DIR = fileURLToPath(new URL('../../dist/web/', import.meta.url));
export const SAMPLES_DIR = fileURLToPath(new URL('../../samples/', import.meta.url));

const SAMPLE_RE = /^[\w.-]+\.(jpe?g|png|webp)$/i;
const FileParam = z.object({ file: z.string().regex(/^[\w.-]+$/).describe('file name') });

function version(): string {
  return process.env.npm_package_version ?? '0.1.0';
}

export function webPlugin(): ServicePlugin {
  return {
    name: 'web',
    routes(r) {
      const page = (file: string) => (_req: unknown, res: Response, next: NextFunction) => {
        if (!existsSync(WEB_DIR + file)) return next(unavailable('web-not-built', `The web page is not built (dist/web/${file} is missing): run \`npm run build\`.`));
        res.set('Cache-Control', 'no-cache').sendFile(file, { root: WEB_DIR }, (err) => { if (err) next(err); });
      };
      route(r, {
        method: 'get', path: '/', operationId: 'webPage', tags: ['web'], summary: 'The web page: classify, filter, dream, style, jobs', hidden: true,
        responses: { 200: { description: 'HTML', content: { 'text/html': 'text' } } }, problems: [503],
      }, page('index.html'));
      route(r, {
        method: 'get', path: '/docs', operationId: 'apiDocs', tags: ['web'], summary: 'This API description in Swagger UI (served locally, no CDN), with try-it-out', hidden: true,
        responses: { 200: { description: 'HTML', content: { 'text/html': 'text' } } }, problems: [503],
      }, page('docs/index.html'));
      route(r, {
        method: 'get', path: '/docs/{file}', operationId: 'apiDocsAsset', tags: ['web'], summary: 'Swagger UI files (swagger-ui-dist, bundled by the build)', hidden: true, pathParams: FileParam,
        responses: { 200: { description: 'Asset', content: { 'text/javascript': 'text', 'text/css': 'text' } } }, problems: [404],
      }, (req, res, next) => {
        // As for /assets: only plain file names (NUL made send answer an undocumented 400).
        const file = String(req.params.file);
        if (!/^\w[\w.-]*$/.test(file)) return next();
        res.set('Cache-Control', 'no-cache').sendFile(file, { root: WEB_DIR + 'docs/' }, (err) => { if (err) next((err as { status?: number }).status === 404 ? undefined : err); });
      });
      route(r, {
        method: 'get', path: '/assets/{file}', operationId: 'webAsset', tags: ['web'], summary: 'Scripts and styles of the web page', hidden: true, pathParams: FileParam,
        responses: { 200: { description: 'Asset', content: { 'text/javascript': 'text', 'text/css': 'text' } } }, problems: [404],
      }, (req, res, next) => {
        // Plain file names only (the documented pattern): `..`, encoded slashes or NUL are a 404, not send's 403/400.
        const file = String(req.params.file);
        if (!/^\w[\w.-]*$/.test(file)) return next();
        res.set('Cache-Control', 'no-cache').sendFile(file, { root: WEB_DIR + 'assets/' }, (err) => { if (err) next((err as { status?: number }).status === 404 ? undefined : err); });
      });
      route(r, {
        method: 'get', path: '/samples/{file}', operationId: 'sampleImage', tags: ['web'], summary: 'A bundled sample image (see GET /v1/samples)', hidden: true, pathParams: FileParam,
        responses: { 200: { description: 'JPEG', content: { 'image/jpeg': 'binary' } } }, problems: [404],
      }, (req, res, next) => {
        const file = String(req.params.file);
        if (!SAMPLE_RE.test(file)) return next();
        res.set('Cache-Control', 'public, max-age=3600').sendFile(file, { root: SAMPLES_DIR }, (err) => { if (err) next((err as { status?: number }).status === 404 ? undefined : err); });
      });
      route(r, {
        method: 'get', path: '/v1/samples', operationId: 'listSamples', tags: ['web'], summary: 'The bundled sample images (CC0 / public domain, credits in samples/README.md)',
        responses: { 200: { description: 'Samples', content: { 'application/json': SamplesResponse } } },
      }, (_req, res) => {
        const files = existsSync(SAMPLES_DIR) ? readdirSync(SAMPLES_DIR).filter((f) => SAMPLE_RE.test(f)).sort() : [];
        res.json({ samples: files.map((f) => ({ name: f.replace(/\.\w+$/, ''), url: `/samples/${f}`, bytes: statSync(SAMPLES_DIR + f).size })) } satisfies z.input<typeof SamplesResponse>);
      });
      route(r, {
        method: 'get', path: '/openapi.json', operationId: 'openapi', tags: ['ops'], summary: 'This API description (OpenAPI 3.1), generated from the route schemas',
        responses: { 200: { description: 'OpenAPI document', content: { 'application/json': z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.record(z.string(), z.unknown()) }) } } },
      }, (_req, res) => {
        // This app's routes, as declared (job kinds registered since start included).
        res.json(r.registry.openApiDocument({ version: version() }));
      });
    },
  };
}
