import { Router } from 'express';
import type { AppContext } from '../context.js';

export function healthRoutes(ctx: AppContext): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => { res.json({ status: 'ok', uptime_s: Math.round(process.uptime()) }); });
  r.get('/readyz', (_req, res) => {
    const s = ctx.readiness.status();
    res.status(s.ready ? 200 : 503).json({ status: s.ready ? 'ready' : 'not-ready', ...s });
  });
  return r;
}
