// The HTTP service: builds (or takes) the core its plugins need, checks every plugin's needs against it, starts
// listening, and owns the shutdown sequence (stop accepting → end event streams → let in-flight requests finish
// within a bound → plugins' clean-up → close the core: jobs checkpoint, then the engine stops → exit 0).
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Core, type CorePart, createCore, optionsFor, requireParts } from '../app/core.js';
import { type Config, loadConfig } from '../config.js';
import { logger as rootLogger } from '../util/logger.js';
import { createApp } from './app.js';
import type { AppContext } from './context.js';
import { type BoundPlugin, type ServicePlugin, bindPlugin } from './plugin.js';

export type { ServicePlugin } from './plugin.js';

export interface RunningService<N extends CorePart = never> {
  ctx: AppContext<N>;
  server: Server;
  url: string;
  shutdown(reason?: string): Promise<void>;
}

export interface ServiceOptions<N extends CorePart> {
  config?: Config;
  /** Default: every plugin of the full service. */
  plugins?: readonly ServicePlugin<N>[];
  /**
   * A core built by the caller (the service owns it from then on and closes it at shutdown). Default: a core with
   * exactly the parts the plugins need, warming up the installed models, downloading missing official weights
   * when CONVSERVE_AUTO_FETCH is on.
   */
  core?: Core;
  installSignalHandlers?: boolean;
}

/** The plugins of the full service, loaded lazily so a minimal server does not pay for ORT or tfjs. */
export async function defaultPlugins(): Promise<ServicePlugin<CorePart>[]> {
  const { plugins } = await import('./plugins.js');
  return plugins();
}

function needsOf<M extends CorePart>(plugins: readonly ServicePlugin<M>[]): M[] {
  return plugins.flatMap((p) => p.needs ?? []);
}

function bindAll<M extends CorePart>(plugins: readonly ServicePlugin<M>[], app: AppContext): BoundPlugin[] {
  return plugins.map((p) => bindPlugin(p, app));
}

export async function startService<N extends CorePart = never>(opts: ServiceOptions<N> = {}): Promise<RunningService<N>> {
  const config = opts.core?.config ?? opts.config ?? loadConfig();
  // Signal handlers go in first: a SIGTERM during start-up is remembered and honoured once the server is
  // up, instead of killing the process in the middle of loading models.
  let onSignal: (sig: NodeJS.Signals) => void = (sig) => { pendingSignal = sig; };
  let pendingSignal: NodeJS.Signals | undefined;
  if (opts.installSignalHandlers) {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => onSignal(sig));
  }
  const defaults = opts.plugins ? [] : await defaultPlugins();
  const needs = [...needsOf(opts.plugins ?? []), ...needsOf(defaults)];
  const core = opts.core ?? (await createCore(config, rootLogger, { ...optionsFor(needs), warmUp: true, autoFetch: config.autoFetch }));

  let ctx: AppContext<N>;
  let bound: BoundPlugin[] = [];
  let server: Server;
  try {
    // Each plugin checks its own needs first (the error names the plugin); then the context is typed with them all.
    const base: AppContext = { config, logger: core.logger, readiness: core.readiness, core };
    bound = [...bindAll(opts.plugins ?? [], base), ...bindAll(defaults, base)];
    ctx = { ...base, core: requireParts(core, needsOf(opts.plugins ?? []), 'the service') };
    for (const p of bound) p.start();
    const app = createApp(ctx, bound);
    server = await new Promise<Server>((resolve, reject) => {
      // Slow clients cannot hold connections open: headers and whole requests have deadlines, checked often
      // enough for the headers one to bite on time.
      const s = createServer({
        headersTimeout: config.headersTimeoutMs,
        requestTimeout: Math.max(config.requestTimeoutMs, config.headersTimeoutMs),
        connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(config.headersTimeoutMs / 4))),
      }, app);
      s.once('error', reject);
      s.listen(config.port, config.host, () => { s.off('error', reject); resolve(s); });
    });
  } catch (e) {
    for (const p of [...bound].reverse()) await Promise.resolve().then(() => p.stop()).catch(() => undefined);
    await core.close();
    throw e;
  }
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.address.includes(':') ? `[${addr.address}]` : addr.address}:${addr.port}`;
  ctx.logger.info({ url, port: addr.port }, 'convserve listening');

  let shuttingDown: Promise<void> | undefined;
  const shutdown = (reason = 'shutdown') => {
    shuttingDown ??= (async () => {
      ctx.logger.info({ reason }, 'shutting down: no new connections, waiting for in-flight requests');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const p of bound) {
        try { p.drain(); } catch (e) { ctx.logger.error({ err: e, plugin: p.name }, 'plugin drain failed'); }
      }
      server.closeIdleConnections();
      const timer = setTimeout(() => {
        ctx.logger.warn({ timeout_ms: config.shutdownTimeoutMs }, 'in-flight requests did not finish in time; closing connections');
        server.closeAllConnections();
      }, config.shutdownTimeoutMs);
      await closed;
      clearTimeout(timer);
      for (const p of [...bound].reverse()) {
        try { await p.stop(); } catch (e) { ctx.logger.error({ err: e, plugin: p.name }, 'plugin stop failed'); }
      }
      try { await core.close(); } catch (e) { ctx.logger.error({ err: e }, 'closing the core failed'); }
      ctx.logger.info('shutdown complete');
    })();
    return shuttingDown;
  };

  onSignal = (sig) => { void shutdown(sig).then(() => process.exit(0)); };
  if (pendingSignal) onSignal(pendingSignal);
  return { ctx, server, url, shutdown };
}

