// Request parameters may come from the query string or from multipart form fields (curl -F): merge them,
// form fields winning, and validate with zod so every error names the parameter.
import type { Request } from 'express';
import { z } from 'zod';
import { badRequest } from '../util/problem.js';

export function requestParams(req: Request): Record<string, unknown> {
  const body = req.body && typeof req.body === 'object' && !Buffer.isBuffer(req.body) ? (req.body as Record<string, unknown>) : {};
  return { ...(req.query as Record<string, unknown>), ...body };
}

export function parseParams<S extends z.ZodType>(schema: S, params: Record<string, unknown>): z.infer<S> {
  const r = schema.safeParse(params);
  if (!r.success) {
    const detail = r.error.issues.map((i) => `${i.path.join('.') || '(parameters)'}: ${i.message}`).join('; ');
    throw badRequest('invalid-parameter', detail, { errors: r.error.issues.map((i) => ({ parameter: i.path.join('.'), message: i.message })) });
  }
  return r.data;
}

/** Query/form booleans: true/false/1/0/yes/no/on/off. */
export const zBool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes' || v === 'on');

export const zNumber = z.coerce.number().refine(Number.isFinite, 'must be a finite number');
