// Security headers for everything the server answers (helmet). The page and /docs load only their own
// scripts and styles from /assets (no inline script or style, no CDN: see web/), show uploaded and produced
// images as blob: URLs, and talk to this origin only; nobody may frame them.
import type { RequestHandler } from 'express';
import helmet from 'helmet';

/** The Content-Security-Policy directives (exported for the tests and the README). */
export const CSP_DIRECTIVES = {
  'default-src': ["'self'"],
  'script-src': ["'self'"],
  // No 'unsafe-inline': the page sets styles only through the CSSOM (element.style), which CSP allows.
  'style-src': ["'self'"],
  'img-src': ["'self'", 'blob:', 'data:'],
  'connect-src': ["'self'"],
  'font-src': ["'self'"],
  'object-src': ["'none'"],
  'base-uri': ["'self'"],
  'form-action': ["'self'"],
  'frame-ancestors': ["'none'"],
} as const;

export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: Object.fromEntries(Object.entries(CSP_DIRECTIVES).map(([k, v]) => [k, [...v]])) },
    referrerPolicy: { policy: 'no-referrer' },
    // The service speaks plain HTTP; HSTS belongs to the TLS terminator in front of it.
    strictTransportSecurity: false,
    // Responses are images and JSON fetched by this origin; cross-origin readers go through CORS (security-origin.ts).
    crossOriginResourcePolicy: { policy: 'same-origin' },
    xFrameOptions: { action: 'deny' },
  });
}
