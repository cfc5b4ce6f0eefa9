// The inference side of the service: model registry, ORT engine (worker threads), model provider,
// classification with request batching; routes /v1/models and /v1/classify; SIGHUP and POST /v1/models/reload
// rescan the models directory; optional background download of the official weights.
import { Router } from 'express';
import { z } from 'zod';
import { Engine } from '../engine/engine.js';
import { engineOptions } from '../engine/options.js';
import { EngineModelProvider } from '../models/provider.js';
import { KNOWN_MODELS } from '../models/official.js';
import { ModelRegistry } from '../models/registry.js';
import { Classifier } from '../ops/classify.js';
import { ClassifyService, weightsInfo } from '../ops/classify-service.js';
import type { Config } from '../config.js';
import type { Logger } from '../util/logger.js';
import type { AppContext } from './context.js';
import { classifyRoutes } from './routes/classify.js';
import { route } from './api.js';
import { InfoResponse } from './api-schemas.js';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import type { BackendSelection } from '../train/backend.js';
import { runInChild } from '../train/child.js';
import type { ServicePlugin } from './service.js';

export interface InferenceServices {
  registry: ModelRegistry;
  engine: Engine;
  models: EngineModelProvider;
  classifier: Classifier;
  classify: ClassifyService;
}

export function inferenceServices(ctx: AppContext): InferenceServices {
  return ctx.services as unknown as InferenceServices;
}

/** Registry + engine + provider + classifier, wired together (the server and the CLI use the same). */
export function createInferenceServices(config: Config, logger: Logger): InferenceServices {
  const registry = new ModelRegistry({ modelsDir: config.modelsDir });
  const engine = new Engine(engineOptions(config, logger));
  const models = new EngineModelProvider(registry, engine, logger);
  const classifier = new Classifier(engine, { maxBatch: config.maxBatch, batchWaitMs: config.batchWaitMs }, config.engineWorkers);
  const classify = new ClassifyService(models, classifier, config.defaultModel);
  return { registry, engine, models, classifier, classify };
}

export const ReloadResponse = z.object({
  added: z.array(z.string()).describe('models that appeared'),
  changed: z.array(z.string()).describe('models whose folder was replaced (reloaded if they were loaded)'),
  removed: z.array(z.string()).describe('models that disappeared'),
  models: z.array(z.object({
    name: z.string(),
    status: z.string(),
    error: z.string().optional(),
    engine: z.object({ state: z.enum(['loading', 'loaded', 'failed']), load_ms: z.number().optional(), error: z.string().optional() }).optional(),
  })),
});

/**
 * Rescans the models directory (as SIGHUP does) and loads every ready model, new or changed; resolves when the
 * loads have finished (or failed).
 */
export async function reloadModels(services: InferenceServices): Promise<z.infer<typeof ReloadResponse>> {
  const { registry, models } = services;
  const stamp = (e: { status: string; manifest?: { created_at: string } }) => `${e.status}|${e.manifest?.created_at ?? ''}`;
  const before = new Map(registry.list().map((e) => [e.name, stamp(e)]));
  registry.rescan();
  await models.loadAllReady();
  const after = registry.list();
  const present = (s: string | undefined) => s !== undefined && !s.startsWith('missing|');
  return {
    added: after.filter((e) => !present(before.get(e.name)) && present(stamp(e))).map((e) => e.name),
    changed: after.filter((e) => present(before.get(e.name)) && present(stamp(e)) && before.get(e.name) !== stamp(e)).map((e) => e.name),
    removed: [...before.keys()].filter((n) => {
      const now = registry.get(n);
      return present(before.get(n)) && !(now && present(stamp(now)));
    }),
    models: after.map((e) => ({
      name: e.name, status: e.status, ...(e.error ? { error: e.error } : {}),
      ...(models.engineState(e.name) ? { engine: models.engineState(e.name) } : {}),
    })),
  };
}

export function inferencePlugin(): ServicePlugin {
  let onHup: (() => void) | undefined;
  return {
    name: 'inference',
    async start(ctx) {
      const { config, logger } = ctx;
      const services = createInferenceServices(config, logger);
      const { registry, engine, models } = services;
      Object.assign(ctx.services, services);

      const started = engine.start();
      ctx.readiness.track('engine', started);
      ctx.readiness.check('engine', () => engine.health());
      // Warm up: load every installed model so the first request does not pay for it.
      ctx.readiness.track('models', started.then(() => models.loadAllReady()));

      onHup = () => {
        logger.info('SIGHUP: rescanning the models directory');
        registry.rescan();
        void models.loadAllReady();
      };
      process.on('SIGHUP', onHup);

      if (config.autoFetch) {
        void started.then(async () => {
          for (const arch of KNOWN_MODELS) {
            if (registry.get(arch)?.status !== 'missing') continue;
            logger.info({ model: arch }, 'downloading the official ImageNet weights in the background (CONVSERVE_AUTO_FETCH=false to disable)');
            try {
              await registry.fetch(arch, { baseUrl: config.weightsBaseUrl });
              await models.loadAllReady();
            } catch (e) {
              // Back to `missing`, so clients see the commands that install it (the reason is in the log).
              registry.clearTransient(arch);
              logger.warn({ model: arch, err: (e as Error).message }, 'background download failed; the model stays missing');
              break; // offline: no point trying the next one
            }
          }
        });
      }
    },
    routes: (ctx) => {
      const r = Router();
      r.get('/v1/models', (_req, res) => {
        const { registry, models } = inferenceServices(ctx);
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
        });
      });
      route(r, {
        method: 'get', path: '/v1/info', operationId: 'info', tags: ['ops'],
        summary: 'Versions and runtimes: Node, ONNX Runtime (providers, workers, threads), the TensorFlow.js backend selection',
        description: 'The tfjs backend (tfjs-node-gpu → tfjs-node → wasm → cpu) is probed once, in a child process (tfjs never loads on the HTTP thread); until it answers, `tfjs.state` is `probing`.',
        responses: { 200: { description: 'Runtime information', content: { 'application/json': InfoResponse } } },
      }, async (_req, res) => {
        const { engine } = inferenceServices(ctx);
        res.json({
          name: 'convserve',
          version: process.env.npm_package_version ?? PACKAGE_VERSION,
          node: process.version,
          onnxruntime: {
            version: ortVersion(), execution_providers: engine.sessionOptions.executionProviders, workers: engine.workerCount,
            threads: engine.sessionOptions.intraOpThreads, runs: engine.stats.runs, worker_restarts: engine.stats.workerRestarts,
          },
          tfjs: tfjsSelection(ctx),
          models_dir: resolve(ctx.config.modelsDir),
          data_dir: resolve(ctx.config.dataDir),
        } satisfies z.input<typeof InfoResponse>);
      });
      route(r, {
        method: 'post', path: '/v1/models/reload', operationId: 'reloadModels', tags: ['classify'],
        summary: 'Rescan the models directory and load new or changed models (same as SIGHUP)',
        description: 'For a model written while the service runs (convserve finetune, models import/synth): answers when the new or replaced models are loaded.',
        responses: { 200: { description: 'What changed, and every model\'s status', content: { 'application/json': ReloadResponse } } },
      }, async (_req, res, next) => {
        try {
          ctx.logger.info('POST /v1/models/reload: rescanning the models directory');
          res.json(await reloadModels(inferenceServices(ctx)));
        } catch (e) {
          next(e);
        }
      });
      r.use(classifyRoutes(ctx));
      return r;
    },
    async stop(ctx) {
      if (onHup) process.off('SIGHUP', onHup);
      await inferenceServices(ctx).engine?.stop();
    },
  };
}

const PACKAGE_VERSION = '0.1.0';

function ortVersion(): string {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

type TfjsInfo = z.input<typeof InfoResponse>['tfjs'];
const tfjsProbes = new WeakMap<AppContext, TfjsInfo>();

/** The tfjs backend selection, probed once per service in a child process (logged when known). */
function tfjsSelection(ctx: AppContext): TfjsInfo {
  let info = tfjsProbes.get(ctx);
  if (!info) {
    info = { state: 'probing' };
    tfjsProbes.set(ctx, info);
    runInChild<unknown, unknown, BackendSelection>(new URL('../train/backend.js', import.meta.url), 'backendProbeTask', {}).then((s) => {
      tfjsProbes.set(ctx, { state: 'done', backend: s.backend, tf_backend: s.tfBackend, tried: s.tried });
      ctx.logger.info({ tfjs_backend: s.backend, tried: s.tried.map((t) => `${t.name}:${t.ok ? 'ok' : 'unavailable'}`) }, 'TensorFlow.js backend selected');
    }, (e: unknown) => {
      tfjsProbes.set(ctx, { state: 'failed', error: (e as Error).message.split('\n')[0] });
    });
  }
  return info;
}
