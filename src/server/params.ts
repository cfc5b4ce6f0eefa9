// Request parameters may come from the query string or from multipart form fields (curl -F): merge them,
// form fields winning; validation is util/params.ts.
import type { Request } from 'express';

export function requestParams(req: Request): Record<string, unknown> {
  const body = req.body && typeof req.body === 'object' && !Buffer.isBuffer(req.body) ? (req.body as Record<string, unknown>) : {};
  return { ...(req.query as Record<string, unknown>), ...body };
}
