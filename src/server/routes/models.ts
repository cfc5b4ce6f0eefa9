// The model catalogue over HTTP: GET /v1/models (status of every model, with install commands for missing
// ones), GET /v1/models/{name} (one model: its layers, input, outputs, preprocessing, provenance), POST
// /v1/models/reload (rescan the models directory, as SIGHUP does; admin), GET /v1/info (runtimes for admins, the
// version for other keys).
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { reloadModels } from '../../app/models.js';
import { runtimeInfo, runtimeVersion } from '../../app/runtime-info.js';
import { weightsInfo } from '../../ops/classify-service.js';
import type { EngineModelProvider } from '../../ops/model-provider.js';
import type { ModelEntry } from '../../models/registry.js';
import { Labels } from '../../models/manifest.js';
import { notFound } from '../../util/problem.js';
import { InfoResponse, ModelDetailResponse, ModelsResponse, ReloadResponse } from '../api-schemas.js';
import { callerOf } from '../auth.js';
import type { AppContext } from '../context.js';
import { type ApiRouter, route } from '../route-registry.js';

/** One catalogue entry as GET /v1/models lists it. */
function modelInfo(e: ModelEntry, models: EngineModelProvider): z.input<typeof ModelsResponse>['models'][number] {
  return {
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
  };
}

/** The labels of a ready classification model, as plain strings (undefined when it has none or they are unreadable). */
function labelsOf(e: ModelEntry): string[] | undefined {
  if (!e.labelsPath) return undefined;
  const parsed = Labels.safeParse(JSON.parse(readFileSync(e.labelsPath, 'utf8')));
  return parsed.success ? parsed.data.map((l) => l.label) : undefined;
}

/** What /v1/info tells a key without the admin scope (runtimes and directories are the operators' business). */
const InfoReducedResponse = z.object({ name: z.literal('convserve'), version: z.string() });

const ModelNameParam = z.object({ name: z.string().describe('model name (GET /v1/models)') });

export function modelRoutes(r: ApiRouter, ctx: AppContext<'engine' | 'models'>): void {
  const { core } = ctx;
  route(r, {
    method: 'get', path: '/v1/models', operationId: 'listModels', tags: ['classify'], summary: 'Models and their status (ready, loading, missing with install commands, downloading, error)',
    responses: { 200: { description: 'Models', content: { 'application/json': ModelsResponse } } },
  }, (_req, res) => {
    const { registry, models } = core;
    res.json({ models: registry.list().map((e) => modelInfo(e, models)) } satisfies z.input<typeof ModelsResponse>);
  });
  route(r, {
    method: 'get', path: '/v1/models/{name}', operationId: 'getModel', tags: ['classify'],
    summary: 'One model: its layers (names, output shapes), input, outputs, preprocessing, provenance, labels',
    description: 'The layer names are what DeepDream (`layers=`) and style transfer (`style_layers=`, `content_layer=`) accept. Layers are listed for imported models (convserve models import --keras, models install).',
    pathParams: ModelNameParam,
    responses: { 200: { description: 'The model', content: { 'application/json': ModelDetailResponse } } },
    problems: [404],
  }, (req, res) => {
    const { registry, models } = core;
    const { name } = ModelNameParam.parse(req.params);
    const e = registry.get(name);
    if (!e) {
      const known = registry.list().map((m) => m.name);
      throw notFound('unknown-model', `No model named '${name}'. Models: ${known.join(', ') || '(none)'}.`, { models: known });
    }
    const m = e.manifest;
    const labels = e.status === 'ready' ? labelsOf(e) : undefined;
    res.json({
      ...modelInfo(e, models),
      ...(m ? { outputs: m.outputs ?? (m.task === 'features' ? 'features' : 'probabilities'), output: m.output } : {}),
      ...(m?.layers ? { layers: m.layers } : {}),
      ...(m?.source ? { source: m.source } : {}),
      ...(labels ? { labels } : {}),
    } satisfies z.input<typeof ModelDetailResponse>);
  });
  route(r, {
    method: 'get', path: '/v1/info', operationId: 'info', tags: ['ops'],
    summary: 'Versions and runtimes: Node, ONNX Runtime (providers, workers, threads), the TensorFlow.js backend selection',
    description: 'The tfjs backend (tfjs-node-gpu → tfjs-node → wasm → cpu) is probed once, in a child process (tfjs never loads on the HTTP thread); until it answers, `tfjs.state` is `probing`.',
    responses: { 200: { description: 'Runtime information (the name and version only for a key without the admin scope)', content: { 'application/json': z.union([InfoResponse, InfoReducedResponse]) } } },
  }, (req, res) => {
    // Without admin, nothing is computed (the first full answer starts the tfjs probe).
    if (callerOf(req).admin) res.json(runtimeInfo(core) satisfies z.input<typeof InfoResponse>);
    else res.json({ name: 'convserve', version: runtimeVersion() } satisfies z.input<typeof InfoReducedResponse>);
  });
  route(r, {
    method: 'post', path: '/v1/models/reload', operationId: 'reloadModels', tags: ['classify'], access: 'admin',
    summary: 'Rescan the models directory and load new or changed models (same as SIGHUP)',
    description: 'For a model written while the service runs (convserve finetune, models import/synth): answers when the new or replaced models are loaded.',
    responses: { 200: { description: 'What changed, and every model\'s status', content: { 'application/json': ReloadResponse } } },
  }, async (_req, res) => {
    ctx.logger.info('POST /v1/models/reload: rescanning the models directory');
    res.json(await reloadModels(core) satisfies z.input<typeof ReloadResponse>);
  });
}
