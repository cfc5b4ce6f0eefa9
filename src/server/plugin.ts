// A feature area of the HTTP service (fastify-like): it declares the core parts it needs and gets them typed;
// the server refuses to start when its core lacks one, instead of answering 503 at request time.
import type { RequestHandler } from 'express';
import { type CorePart, requireParts } from '../app/core.js';
import type { AppContext } from './context.js';
import type { ApiRouter } from './route-registry.js';

export interface ServicePlugin<N extends CorePart = never> {
  name: string;
  /** The core parts this plugin uses. */
  needs?: readonly N[];
  /** Called before listening (process-level hooks such as SIGHUP); long work belongs in the core's readiness. */
  start?(app: AppContext<N>): void;
  /** Declares and mounts the plugin's routes. */
  routes?(router: ApiRouter, app: AppContext<N>): void;
  /** Middleware that sees every request, mounted before all routes (e.g. request metrics). */
  middleware?(app: AppContext<N>): RequestHandler;
  /** Called as shutdown begins: end long-lived responses (event streams) so in-flight requests can finish. */
  drain?(app: AppContext<N>): void;
  /** Called on shutdown after the HTTP server stopped accepting and in-flight requests finished, before the core closes. */
  stop?(app: AppContext<N>): Promise<void> | void;
}

/** A plugin whose needs were checked against a core, with its context bound. */
export interface BoundPlugin {
  name: string;
  start(): void;
  routes(router: ApiRouter): void;
  middleware(): RequestHandler | undefined;
  drain(): void;
  stop(): Promise<void> | void;
}

/** Checks that the core has what `plugin` needs (throws naming the plugin and the missing parts otherwise). */
export function bindPlugin<N extends CorePart>(plugin: ServicePlugin<N>, app: AppContext): BoundPlugin {
  const core = requireParts(app.core, plugin.needs ?? [], `the '${plugin.name}' plugin`);
  const ctx: AppContext<N> = { ...app, core };
  return {
    name: plugin.name,
    start: () => plugin.start?.(ctx),
    routes: (router) => plugin.routes?.(router, ctx),
    middleware: () => plugin.middleware?.(ctx),
    drain: () => plugin.drain?.(ctx),
    stop: () => plugin.stop?.(ctx),
  };
}
