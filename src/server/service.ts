// Composition root: builds the context and services, starts listening, and owns the shutdown sequence
// (stop accepting → let in-flight requests finish within a bound → close services → exit 0).
import type { Server } from 'node:http';
import type { RequestHandler } from 'express';
import type { AddressInfo } from 'node:net';
import { type Config, loadConfig } from '../config.js';
import { logger as rootLogger } from '../util/logger.js';
import { type RouteModule, createApp } from './app.js';
import type { AppContext } from './context.js';
import { Readiness } from './readiness.js';

/** A feature area that needs start-up work, routes, or clean-up (models, engine, jobs…). */
export interface ServicePlugin {
  name: string;
  /** Called before listening; long work should be registered with ctx.readiness.track instead of awaited. */
  start?(ctx: AppContext): Promise<void> | void;
  routes?: RouteModule;
  /** Middleware that sees every request, mounted before all routes (e.g. request metrics). */
  middleware?: (ctx: AppContext) => RequestHandler;
  /** Called as shutdown begins: end long-lived responses (event streams) so in-flight requests can finish. */
  drain?(ctx: AppContext): void;
  /** Called on shutdown after the HTTP server stopped accepting and in-flight requests finished. */
  stop?(ctx: AppContext): Promise<void> | void;
}

export interface RunningService {
  ctx: AppContext;
  server: Server;
  url: string;
  shutdown(reason?: string): Promise<void>;
}

/** The plugins of the full service, loaded lazily so a minimal server does not pay for ORT or tfjs. */
export async function defaultPlugins(): Promise<ServicePlugin[]> {
  const { plugins } = await import('./plugins.js');
  return plugins();
}

export async function startService(opts: { config?: Config; plugins?: ServicePlugin[]; installSignalHandlers?: boolean } = {}): Promise<RunningService> {
  const config = opts.config ?? loadConfig();
  const ctx: AppContext = { config, logger: rootLogger, readiness: new Readiness(), services: {} };
  // Signal handlers go in first: a SIGTERM during start-up is remembered and honoured once the server is
  // up, instead of killing the process in the middle of loading models.
  let onSignal: (sig: NodeJS.Signals) => void = (sig) => { pendingSignal = sig; };
  let pendingSignal: NodeJS.Signals | undefined;
  if (opts.installSignalHandlers) {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => onSignal(sig));
  }
  const plugins = opts.plugins ?? (await defaultPlugins());
  for (const p of plugins) await p.start?.(ctx);
  const app = createApp(ctx, plugins.flatMap((p) => (p.routes ? [p.routes] : [])), plugins.flatMap((p) => (p.middleware ? [p.middleware(ctx)] : [])));

  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.port, config.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}`;
  ctx.logger.info({ url, port: addr.port }, 'convserve listening');

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason = 'shutdown') => {
    shuttingDown ??= (async () => {
      ctx.logger.info({ reason }, 'shutting down: no new connections, waiting for in-flight requests');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const p of plugins) {
        try { p.drain?.(ctx); } catch (e) { ctx.logger.error({ err: e, plugin: p.name }, 'plugin drain failed'); }
      }
      server.closeIdleConnections();
      const timer = setTimeout(() => {
        ctx.logger.warn({ timeout_ms: config.shutdownTimeoutMs }, 'in-flight requests did not finish in time; closing connections');
        server.closeAllConnections();
      }, config.shutdownTimeoutMs);
      await closed;
      clearTimeout(timer);
      for (const p of [...plugins].reverse()) {
        try { await p.stop?.(ctx); } catch (e) { ctx.logger.error({ err: e, plugin: p.name }, 'plugin stop failed'); }
      }
      ctx.logger.info('shutdown complete');
    })();
    return shuttingDown;
  };

  onSignal = (sig) => { void shutdown(sig).then(() => process.exit(0)); };
  if (pendingSignal) onSignal(pendingSignal);
  return { ctx, server, url, shutdown };
}
