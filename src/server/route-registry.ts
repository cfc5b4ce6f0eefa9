// One route registry per app instance: every route is declared with its description (api.ts) through a router
// of the app's registry, so GET /openapi.json describes exactly the routes this app mounts, whatever plugins
// it runs.
import { type RequestHandler, Router } from 'express';
import { type ApiRoute, type OpenApiOptions, expressPath, openApiDocument } from './api.js';

export type RouteHandler = RequestHandler<Record<string, string>>;

export class RouteRegistry {
  private readonly declared = new Map<string, ApiRoute>();
  private readonly derived: (() => readonly ApiRoute[])[] = [];

  /** A router whose routes are described in this registry as they are mounted. */
  router(): ApiRouter {
    return new ApiRouter(this);
  }

  /** Records a route's description; a second description of the same method and path is a programming error. */
  declare(spec: ApiRoute): void {
    const key = `${spec.method} ${spec.path}`;
    if (this.declared.has(key)) throw new Error(`route ${key} is declared twice`);
    this.declared.set(key, spec);
  }

  /**
   * Descriptions computed each time the registry is listed: concrete paths served by a declared template route
   * (one submit path per job kind registered so far, served by `POST /v1/jobs/{kind}`).
   */
  describeEach(describe: () => readonly ApiRoute[]): void {
    this.derived.push(describe);
  }

  /** Every described route, in path order. */
  list(): ApiRoute[] {
    const all = new Map(this.declared);
    for (const describe of this.derived) for (const spec of describe()) if (!all.has(`${spec.method} ${spec.path}`)) all.set(`${spec.method} ${spec.path}`, spec);
    return [...all.values()].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  }

  openApiDocument(opts: OpenApiOptions): Record<string, unknown> {
    return openApiDocument(this.list(), opts);
  }
}

/** An express router that can only gain routes together with their descriptions. */
export class ApiRouter {
  readonly express: Router = Router();

  constructor(readonly registry: RouteRegistry) {}

  /** Handlers see their path parameters as strings (no route uses a wildcard, whose parameter is an array). */
  route(spec: ApiRoute, ...handlers: RouteHandler[]): void {
    this.registry.declare(spec);
    this.express[spec.method](expressPath(spec.path), ...handlers);
  }

  /** See RouteRegistry.describeEach. */
  describeEach(describe: () => readonly ApiRoute[]): void {
    this.registry.describeEach(describe);
  }
}

/** Declares a route and mounts its handlers on `router` in one go. */
export function route(router: ApiRouter, spec: ApiRoute, ...handlers: RouteHandler[]): void {
  router.route(spec, ...handlers);
}
