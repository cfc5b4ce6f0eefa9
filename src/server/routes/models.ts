// The model catalogue over HTTP: GET /v1/models (status of every model, with install commands for missing
// ones), POST /v1/models/reload (rescan the models directory, as SIGHUP does), GET /v1/info (runtimes).
import type { z } from 'zod';
import { reloadModels } from '../../app/models.js';
import { runtimeInfo } from '../../app/runtime-info.js';
import { weightsInfo } from '../../ops/classify-service.js';
import { InfoResponse, ModelsResponse, ReloadResponse } from '../api-schemas.js';
import type { AppContext } from '../context.js';
import { type ApiRouter, route } from '../route-registry.js';

export function modelRoutes(r: ApiRouter, ctx: AppContext<'engine' | 'models'>): void {
  const { core } = ctx;
  route(r, {
    method: 'get', path: '/v1/models', operationId: 'listModels', tags: ['classify'], summary: 'Models and their status (ready, loading, missing with install commands, downloading, error)',
    responses: { 200: { description: 'Models', content: { 'application/json': ModelsResponse } } },
  }, (_req, res) => {
    const { registry, models } = core;
    res.json({
      models: registry.list().map((e) => ({
        name: e.name,
        status: e.status === 'ready' && models.engineState(e.name)?.state === 'loading' ? 'loading' : e.status,
        architecture: e.architecture ?? e.manifest?.architecture,
        task: e.manifest?.task,
        ...(e.manifest ? {
          input: e.manifest.input,
          classes: e.manifest.output.classes,
          preprocessing: e.manifest.preprocessing,
          weights: weightsInfo({ name: e.name, sessionKey: '', manifest: e.manifest, labels: [] }),
          created_at: e.manifest.created_at,
        } : {}),
        ...(e.percent !== undefined ? { percent: e.percent } : {}),
        ...(e.error ? { error: e.error } : {}),
        ...(e.install ? { install: e.install } : {}),
        ...(models.engineState(e.name) ? { engine: models.engineState(e.name) } : {}),
      })),
    } satisfies z.input<typeof ModelsResponse>);
  });
  route(r, {
    method: 'get', path: '/v1/info', operationId: 'info', tags: ['ops'],
    summary: 'Versions and runtimes: Node, ONNX Runtime (providers, workers, threads), the TensorFlow.js backend selection',
    description: 'The tfjs backend (tfjs-node-gpu → tfjs-node → wasm → cpu) is probed once, in a child process (tfjs never loads on the HTTP thread); until it answers, `tfjs.state` is `probing`.',
    responses: { 200: { description: 'Runtime information', content: { 'application/json': InfoResponse } } },
  }, (_req, res) => {
    res.json(runtimeInfo(core) satisfies z.input<typeof InfoResponse>);
  });
  route(r, {
    method: 'post', path: '/v1/models/reload', operationId: 'reloadModels', tags: ['classify'],
    summary: 'Rescan the models directory and load new or changed models (same as SIGHUP)',
    description: 'For a model written while the service runs (convserve finetune, models import/synth): answers when the new or replaced models are loaded.',
    responses: { 200: { description: 'What changed, and every model\'s status', content: { 'application/json': ReloadResponse } } },
  }, async (_req, res) => {
    ctx.logger.info('POST /v1/models/reload: rescanning the models directory');
    res.json(await reloadModels(core) satisfies z.input<typeof ReloadResponse>);
  });
}
