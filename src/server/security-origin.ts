// Browser-facing request checks. DNS rebinding: a page on an attacker's name that resolves to this server
// sends that name as Host, so only known Host names are served (IP literals cannot be rebound and are always
// fine). Cross-site requests: a state-changing request (POST, DELETE…) whose Origin is neither this server nor a
// configured CORS origin is refused, so another site cannot make a visitor's browser submit jobs or reload
// models. CORS answers only for CONVSERVE_CORS_ORIGINS.
import { isIP } from 'node:net';
import type { RequestHandler } from 'express';
import type { Config } from '../config.js';
import { ProblemError } from '../util/problem.js';
import { isLoopback, keysConfigured } from './security-bind.js';

type OriginConfig = Pick<Config, 'host' | 'allowedHosts' | 'corsOrigins' | 'apiKeysFile' | 'apiKeys'>;

const list = (v: string) => v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

/** `example.com:8080` → `example.com`; `[::1]:8080` → `::1`. */
export function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const i = h.lastIndexOf(':');
  return i < 0 ? h : h.slice(0, i);
}

/**
 * Which Host names are served: IP literals, localhost, the bind host, and CONVSERVE_ALLOWED_HOSTS (`*` = any);
 * without that list, any name when API keys are configured (a rebound page has no key to send).
 */
export function hostAllowed(config: OriginConfig, hostHeader: string | undefined): boolean {
  if (hostHeader === undefined) return true; // HTTP/1.0 clients; browsers always send Host
  const name = hostName(hostHeader);
  if (isIP(name) || isLoopback(name) || name === config.host.toLowerCase()) return true;
  const allowed = list(config.allowedHosts);
  if (allowed.length === 0) return keysConfigured(config);
  return allowed.includes('*') || allowed.includes(name);
}

/** Probes stay reachable under any name (orchestrators use service names); they reveal nothing. */
export const PROBE_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

export function hostGuard(config: OriginConfig): RequestHandler {
  return (req, _res, next) => {
    if (PROBE_PATHS.has(req.path) || hostAllowed(config, req.headers.host)) return next();
    next(new ProblemError(403, 'host-not-allowed', 'Forbidden', `Host '${hostName(req.headers.host ?? '')}' is not served here (a protection against DNS rebinding); add it to CONVSERVE_ALLOWED_HOSTS.`));
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function corsAllows(config: OriginConfig, origin: string): boolean {
  const allowed = list(config.corsOrigins);
  return allowed.includes('*') || allowed.includes(origin.toLowerCase());
}

/** Whether `origin` is this server as the request addressed it (same scheme-less host and port). */
function sameOrigin(origin: string, hostHeader: string | undefined): boolean {
  try {
    return hostHeader !== undefined && new URL(origin).host.toLowerCase() === hostHeader.trim().toLowerCase();
  } catch {
    return false;
  }
}

/** 403 for a state-changing request from a foreign Origin (requests without Origin — curl, scripts — pass). */
export function originGuard(config: OriginConfig): RequestHandler {
  return (req, _res, next) => {
    const origin = req.headers.origin;
    if (SAFE_METHODS.has(req.method) || origin === undefined) return next();
    if (sameOrigin(origin, req.headers.host) || corsAllows(config, origin)) return next();
    next(new ProblemError(403, 'foreign-origin', 'Forbidden', `A ${req.method} from the origin '${origin}' is refused (cross-site request); allow it with CONVSERVE_CORS_ORIGINS.`));
  };
}

const CORS_HEADERS = {
  methods: 'GET, POST, DELETE',
  allow: 'Authorization, X-API-Key, Content-Type, Last-Event-ID, X-Request-Id',
  expose: 'Location, Retry-After, X-Request-Id, X-Convserve-Kernel, WWW-Authenticate',
};

/** CORS for CONVSERVE_CORS_ORIGINS only (keys travel in headers, never cookies: no credentials mode). */
export function cors(config: OriginConfig): RequestHandler | undefined {
  if (!list(config.corsOrigins).length) return undefined;
  return (req, res, next) => {
    const origin = req.headers.origin;
    res.vary('Origin');
    if (origin === undefined || !corsAllows(config, origin)) return next();
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Expose-Headers', CORS_HEADERS.expose);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      res.setHeader('Access-Control-Allow-Methods', CORS_HEADERS.methods);
      res.setHeader('Access-Control-Allow-Headers', CORS_HEADERS.allow);
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  };
}
