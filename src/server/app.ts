// The express application: request ids, structured request logs, security (headers, Host and Origin checks,
// CORS, API keys: security-*.ts, auth.ts), routes, problem+json errors. Each app has its own RouteRegistry: the
// built-in routes (health, filter) and every plugin's routes are declared through it, each with its access.
import { randomUUID } from 'node:crypto';
import express, { type ErrorRequestHandler, type Express } from 'express';
import { pinoHttp } from 'pino-http';
import { ProblemError, notFound } from '../util/problem.js';
import { authenticate } from './auth.js';
import { KeySource } from '../util/api-keys.js';
import type { AppContext } from './context.js';
import type { BoundPlugin } from './plugin.js';
import { type ApiRouter, RouteRegistry } from './route-registry.js';
import { securityHeaders } from './security-headers.js';
import { startStageClock } from './server-timing.js';
import { cors, hostGuard, originGuard } from './security-origin.js';
import { interactiveRateLimit } from './security-rate.js';
import { filterRoutes } from './routes/filter.js';
import { healthRoutes } from './routes/health.js';

/** The `key` query parameter (accepted on the event stream) never reaches the logs. */
export function redactKey(url: string): string {
  return url.replace(/([?&]key=)[^&#]*/gi, '$1[redacted]');
}

/** Throws (at start) when the configured API keys cannot be read or are invalid. */
export function createApp(ctx: AppContext, plugins: readonly BoundPlugin[] = []): Express {
  const { config } = ctx;
  const keys = KeySource.fromConfig(config, (message) => ctx.logger.error({ problem: message }, 'the API keys file changed but is not valid; the previous keys stay in use'));
  const registry = new RouteRegistry({ interactiveLimit: interactiveRateLimit(config) });
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'extended');

  app.use(startStageClock); // first: the Server-Timing of a route counts everything in front of it
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
    serializers: { req: (req: { url: string }) => ({ ...req, url: redactKey(req.url) }) },
  }));
  // Plugin middleware that must see every request (request metrics), refused ones included.
  for (const p of plugins) {
    const m = p.middleware();
    if (m) app.use(m);
  }
  app.use(securityHeaders());
  app.use(hostGuard(config));
  const corsMiddleware = cors(config);
  if (corsMiddleware) app.use(corsMiddleware);
  app.use(originGuard(config));
  app.use(authenticate(keys, { keyInQuery: (path) => registry.allowsKeyInQuery(path) }));
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
