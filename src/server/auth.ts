// Who is calling: `authenticate` (mounted before every route) turns an API key (`Authorization: Bearer <key>` or
// `X-API-Key: <key>`) into req.caller; `requireAccess` (mounted by the route registry in front of each route's
// handlers, from the route's declared `access`) answers 401/403. Without configured keys every caller is the
// anonymous owner with every scope — the server is then a local tool (see bind-policy.ts).
import type { Request, RequestHandler } from 'express';
import { ANONYMOUS_CALLER, type JobCaller } from '../jobs/record.js';
import { ProblemError } from '../util/problem.js';
import type { KeySource } from '../util/api-keys.js';

/**
 * Who a request acts for (the owner recorded on its jobs; admin: may act on everything; anonymous: no keys are
 * configured, every scope, no per-key quotas). The job service takes it as is.
 */
export type Caller = JobCaller;
export { ANONYMOUS_CALLER };

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      /** Set by `authenticate` when the request carried a valid key (or no keys are configured). */
      caller?: Caller;
    }
  }
}

/** Who may call a route: anyone, any valid key, or a key with the admin scope. */
export type Access = 'public' | 'user' | 'admin';

const REALM = 'Bearer realm="convserve"';

export const unauthorized = (detail: string) =>
  new ProblemError(401, 'unauthorized', 'Unauthorized', detail, {}, { 'WWW-Authenticate': REALM });
export const forbiddenScope = (detail: string) => new ProblemError(403, 'forbidden', 'Forbidden', detail);

export interface AuthOptions {
  /** Whether the key may also come as `?key=` on `path` (EventSource cannot send headers): only the job event stream. */
  keyInQuery?: (path: string) => boolean;
}

/** The key a request presents, if any. */
function presentedKey(req: Request, opts: AuthOptions): string | undefined {
  // Node keeps only the first of repeated Authorization headers (and joins X-API-Key ones); a proxy in front may
  // read another one, so a request that presents more than one is refused rather than guessed at.
  if ((req.headersDistinct.authorization?.length ?? 0) > 1 || (req.headersDistinct['x-api-key']?.length ?? 0) > 1) {
    throw unauthorized('Send one API key in one header: this request has several Authorization or X-API-Key headers.');
  }
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(auth);
    if (!m) throw unauthorized('The Authorization header must be `Bearer <key>`.');
    return m[1];
  }
  const header = req.headers['x-api-key'];
  if (typeof header === 'string' && header) return header.trim();
  if (opts.keyInQuery?.(req.path)) {
    const q = req.query.key;
    if (typeof q === 'string' && q) return q;
  }
  return undefined;
}

/**
 * Resolves req.caller. With keys configured: a presented key must be valid (401 otherwise, on any route); a
 * request without a key gets no caller, and every /v1/* path answers 401 (so unknown /v1 paths reveal nothing).
 */
export function authenticate(keys: KeySource | undefined, opts: AuthOptions = {}): RequestHandler {
  return (req, _res, next) => {
    if (!keys) {
      req.caller = ANONYMOUS_CALLER;
      return next();
    }
    const key = presentedKey(req, opts);
    if (key === undefined) {
      if (req.path.startsWith('/v1/') || req.path === '/v1') return next(unauthorized('This server needs an API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.'));
      return next();
    }
    const holder = keys.current().lookup(key);
    if (!holder) return next(unauthorized('The API key is not valid.'));
    req.caller = { id: holder.id, admin: holder.admin, anonymous: false };
    next();
  };
}

/** Guards one route: 401 without a valid key, 403 without the admin scope where `access` is 'admin'. */
export function requireAccess(access: Access): RequestHandler {
  return (req, _res, next) => {
    if (access === 'public') return next();
    if (!req.caller) return next(unauthorized('This route needs an API key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.'));
    if (access === 'admin' && !req.caller.admin) return next(forbiddenScope(`The key '${req.caller.id}' lacks the admin scope this route needs.`));
    next();
  };
}

/** The caller of a request that passed requireAccess (a route that needs one). */
export function callerOf(req: Request): Caller {
  if (!req.caller) throw unauthorized('This route needs an API key.');
  return req.caller;
}
