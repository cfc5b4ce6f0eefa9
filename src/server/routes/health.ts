import type { z } from 'zod';
import { HealthResponse, ReadyResponse } from '../api-schemas.js';
import type { AppContext } from '../context.js';
import { type ApiRouter, route } from '../route-registry.js';

export function healthRoutes(r: ApiRouter, ctx: AppContext): void {
  route(r, {
    method: 'get', path: '/healthz', operationId: 'health', tags: ['ops'], summary: 'Liveness: 200 while the process is up',
    responses: { 200: { description: 'Alive', content: { 'application/json': HealthResponse } } },
  }, (_req, res) => { res.json({ status: 'ok', uptime_s: Math.round(process.uptime()) } satisfies z.input<typeof HealthResponse>); });
  route(r, {
    method: 'get', path: '/readyz', operationId: 'ready', tags: ['ops'], summary: 'Readiness: 200 when start-up work is done, else 503 with what is pending',
    responses: {
      200: { description: 'Ready', content: { 'application/json': ReadyResponse } },
      503: { description: 'Not ready (start-up tasks pending or failed, or a failed check)', content: { 'application/json': ReadyResponse } },
    },
  }, (_req, res) => {
    const s = ctx.readiness.status();
    res.status(s.ready ? 200 : 503).json({ status: s.ready ? 'ready' : 'not-ready', ...s } satisfies z.input<typeof ReadyResponse>);
  });
}
