// Parameter validation shared by every front and job kind: zod schemas with errors that name the parameter,
// and the coercions that form/query strings need.
import { z } from 'zod';
import { badRequest } from './problem.js';

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
