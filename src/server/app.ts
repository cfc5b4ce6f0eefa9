// The express application: request ids, structured request logs, routes, problem+json errors. Each app has its
// own RouteRegistry: the built-in routes (health, filter) and every plugin's routes are declared through it.
import { randomUUID } from 'node:crypto';
import express, { type ErrorRequestHandler, type Express } from 'express';
import { pinoHttp } from 'pino-http';
import { ProblemError, notFound } from '../util/problem.js';
import type { AppContext } from './context.js';
import type { BoundPlugin } from './plugin.js';
import { type ApiRouter, RouteRegistry } from './route-registry.js';
import { filterRoutes } from './routes/filter.js';
import { healthRoutes } from './routes/health.js';

export function createApp(ctx: AppContext, plugins: readonly BoundPlugin[] = []): Express {
  const registry = new RouteRegistry();
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'extended');

  app.use(pinoHttp({
    logger: ctx.logger,
    genReqId: (req, res) => {
      const incoming = req.headers['x-request-id'];
      const id = typeof incoming === 'string' && /^[\w.-]{1,128}$/.test(incoming) ? incoming : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
    autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' },
  }));
  // Plugin middleware that must see every request (request metrics).
  for (const p of plugins) {
    const m = p.middleware();
    if (m) app.use(m);
  }
  app.use(express.json({ limit: '1mb', type: ['application/json', 'application/*+json'] }));
  app.use(express.urlencoded({ extended: false, limit: '1mb' }));

  const mount = (declare: (router: ApiRouter) => void) => {
    const router = registry.router();
    declare(router);
    app.use(router.express);
  };
  mount((r) => healthRoutes(r, ctx));
  mount((r) => filterRoutes(r, ctx));
  for (const p of plugins) mount((r) => p.routes(r));

  app.use((req, _res, next) => next(notFound('no-such-route', `No route ${req.method} ${req.path}.`)));
  app.use(problemHandler(ctx));
  return app;
}

function problemHandler(ctx: AppContext): ErrorRequestHandler {
  return (err, req, res, _next) => {
    let problem: ProblemError;
    if (err instanceof ProblemError) problem = err;
    else if ((err as { type?: string })?.type === 'entity.parse.failed') problem = new ProblemError(400, 'invalid-json', 'Bad request', `The JSON body could not be parsed: ${(err as Error).message}`);
    else if ((err as { type?: string })?.type === 'entity.too.large') problem = new ProblemError(413, 'body-too-large', 'Content too large', 'The request body is too large.');
    else if (isClientHttpError(err)) {
      // http-errors from express/send (e.g. a path that escapes a static root → 403): the client's fault, not a 500.
      problem = new ProblemError(err.status, err.status === 403 ? 'forbidden' : err.status === 404 ? 'no-such-route' : 'bad-request', err.status === 403 ? 'Forbidden' : err.status === 404 ? 'Not found' : 'Bad request', err.message);
    }
    else {
      (req as { log?: typeof ctx.logger }).log?.error({ err }, 'unhandled error');
      problem = new ProblemError(500, 'internal-error', 'Internal server error', 'An unexpected error occurred; it has been logged with this request id.');
    }
    if (res.headersSent) { res.end(); return; }
    const id = res.getHeader('X-Request-Id');
    res.status(problem.status).set(problem.headers).type('application/problem+json')
      .send(JSON.stringify({ ...problem.toBody(req.originalUrl), ...(id ? { request_id: String(id) } : {}) }));
  };
}

function isClientHttpError(err: unknown): err is { status: number; message: string } {
  const e = err as { status?: unknown; expose?: unknown };
  return typeof e?.status === 'number' && e.status >= 400 && e.status < 500 && e.expose === true;
}
