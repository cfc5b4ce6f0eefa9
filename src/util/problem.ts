// RFC 9457 problem details. Every error a user can cause is a ProblemError with a stable `type` slug, so
// clients can branch on it; the HTTP layer renders it as application/problem+json.

export const PROBLEM_BASE = 'https://convserve.dev/problems/';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  [extension: string]: unknown;
}

export class ProblemError extends Error {
  constructor(
    readonly status: number,
    /** Stable kind, e.g. 'invalid-kernel'; rendered as `${PROBLEM_BASE}${slug}`. */
    readonly slug: string,
    readonly title: string,
    readonly detail: string,
    readonly extensions: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'ProblemError';
  }

  toBody(instance?: string): ProblemBody {
    return { type: PROBLEM_BASE + this.slug, title: this.title, status: this.status, detail: this.detail, ...(instance ? { instance } : {}), ...this.extensions };
  }
}

export const badRequest = (slug: string, detail: string, ext?: Record<string, unknown>) =>
  new ProblemError(400, slug, 'Bad request', detail, ext);
export const notFound = (slug: string, detail: string, ext?: Record<string, unknown>) =>
  new ProblemError(404, slug, 'Not found', detail, ext);
export const tooLarge = (slug: string, detail: string, ext?: Record<string, unknown>) =>
  new ProblemError(413, slug, 'Content too large', detail, ext);
export const unprocessable = (slug: string, detail: string, ext?: Record<string, unknown>) =>
  new ProblemError(422, slug, 'Unprocessable content', detail, ext);
export const unsupportedMedia = (slug: string, detail: string, ext?: Record<string, unknown>) =>
  new ProblemError(415, slug, 'Unsupported media type', detail, ext);
export const unavailable = (slug: string, detail: string, ext?: Record<string, unknown>, retryAfterSeconds?: number) =>
  new ProblemError(503, slug, 'Service unavailable', detail, ext, retryAfterSeconds ? { 'Retry-After': String(retryAfterSeconds) } : {});
export const tooManyRequests = (slug: string, detail: string, retryAfterSeconds: number, ext?: Record<string, unknown>) =>
  new ProblemError(429, slug, 'Too many requests', detail, ext, { 'Retry-After': String(retryAfterSeconds) });

export function isProblem(e: unknown): e is ProblemError {
  return e instanceof ProblemError;
}
