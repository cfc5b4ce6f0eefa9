// The composition root, free of HTTP: one typed object holding the long-lived parts of convserve (model
// registry, inference engine, model provider, classification, job service), built the same way for the HTTP
// service, every CLI command and the tests. The fronts take what they need from it; nothing casts.
import type { Config } from '../config.js';
import { Engine } from '../engine/engine.js';
import { engineOptions } from '../engine/options.js';
import { type JobServices, loadBuiltinJobKinds } from '../jobs/kind.js';
import { JobService } from '../jobs/service.js';
import { type RedisJobBackend, createRedisJobBackend } from '../jobs/redis/backend.js';
import { EngineModelProvider } from '../ops/model-provider.js';
import { ModelRegistry } from '../models/registry.js';
import { Classifier } from '../ops/classify.js';
import { ClassifyService } from '../ops/classify-service.js';
import type { Logger } from '../util/logger.js';
import { fetchMissingOfficialModels, installMissingEmbeddedModels } from './models.js';
import { Readiness } from './readiness.js';
import { TfjsProbe } from './tfjs-probe.js';

export interface CoreOptions {
  /** The inference side: engine (worker threads), model provider, classification. Default true. */
  inference?: boolean;
  /** The job service (store, recovery of interrupted jobs, runner, TTL sweeper). Default false. */
  jobs?: boolean;
  /** Load every installed model once the engine is up, as a readiness task (the service's warm-up). Default false. */
  warmUp?: boolean;
  /** Download the missing official weights in the background once the engine is up. Default false. */
  autoFetch?: boolean;
  /** Install the missing embedded models (no network) in the background once the engine is up, before any download. Default false. */
  autoInstall?: boolean;
}

export interface Core {
  readonly config: Config;
  readonly logger: Logger;
  /** Start-up tasks (engine, model warm-up) and health checks; GET /readyz renders it. */
  readonly readiness: Readiness;
  /** The models directory's catalogue. Always present: it only reads the directory. */
  readonly registry: ModelRegistry;
  /** The TensorFlow.js backend selection, probed once in a child process when first asked for. */
  readonly tfjs: TfjsProbe;
  readonly engine?: Engine;
  readonly models?: EngineModelProvider;
  readonly classifier?: Classifier;
  readonly classify?: ClassifyService;
  readonly jobs?: JobService;
  /** The Redis (BullMQ) side of the jobs in distributed mode (CONVSERVE_REDIS_URL); absent in embedded mode. */
  readonly jobBackend?: RedisJobBackend;
  /** Settles when the engine's workers are up (at once without an engine); rejects when they cannot start. */
  readonly started: Promise<void>;
  /** Stops the job service (running jobs checkpoint, to resume at the next start), then the engine. Idempotent. */
  close(): Promise<void>;
}

/** The optional parts of a core; a consumer (HTTP plugin, CLI command) names the ones it needs. */
export type CorePart = 'engine' | 'models' | 'classifier' | 'classify' | 'jobs';
export const INFERENCE_PARTS = ['engine', 'models', 'classifier', 'classify'] as const satisfies readonly CorePart[];
export type InferencePart = (typeof INFERENCE_PARTS)[number];

/** A core known to have the parts `N`. */
export type CoreWith<N extends CorePart> = Core & Required<Pick<Core, N>>;
export type InferenceCore = CoreWith<InferencePart>;

const PART_NAMES: Record<CorePart, string> = {
  engine: 'the inference engine', models: 'the model provider', classifier: 'the classifier', classify: 'classification', jobs: 'the job service',
};

export function hasParts<N extends CorePart>(core: Core, parts: readonly N[]): core is CoreWith<N> {
  return parts.every((p) => core[p] !== undefined);
}

/** The core, typed with `parts`, or an Error naming what `who` needs and how to build a core that has it. */
export function requireParts<N extends CorePart>(core: Core, parts: readonly N[], who: string): CoreWith<N> {
  if (hasParts(core, parts)) return core;
  const missing: CorePart[] = parts.filter((p) => core[p] === undefined);
  const hints = [...(missing.some((p) => p !== 'jobs') ? ['without { inference: false }'] : []), ...(missing.includes('jobs') ? ['with { jobs: true }'] : [])];
  throw new Error(`${who} needs ${missing.map((p) => PART_NAMES[p]).join(', ')}, but the core was created without it (build it ${hints.join(' and ')})`);
}

/** The options that build a core with `parts` (the server builds the core its plugins need). */
export function optionsFor(parts: readonly CorePart[]): Pick<CoreOptions, 'inference' | 'jobs'> {
  return { inference: parts.some((p) => p !== 'jobs'), jobs: parts.includes('jobs') };
}

export function createCore(config: Config, logger: Logger, options: CoreOptions & { inference: false; jobs: true }): Promise<CoreWith<'jobs'>>;
export function createCore(config: Config, logger: Logger, options: CoreOptions & { inference: false }): Promise<Core>;
export function createCore(config: Config, logger: Logger, options: CoreOptions & { inference?: true; jobs: true }): Promise<CoreWith<InferencePart | 'jobs'>>;
export function createCore(config: Config, logger: Logger, options?: CoreOptions & { inference?: true }): Promise<InferenceCore>;
export function createCore(config: Config, logger: Logger, options?: CoreOptions): Promise<Core>;
/**
 * Builds the core. The engine's workers start in the background (`started`, and the readiness task `engine`);
 * the job service is started before this resolves (it recovers interrupted jobs), so a data directory that
 * cannot be used fails here, at start.
 */
export async function createCore(config: Config, logger: Logger, options: CoreOptions = {}): Promise<Core> {
  const base = createCatalogCore(config, logger);
  const { readiness, registry } = base;
  const inference = options.inference === false ? undefined : createInference(config, logger, registry);
  if (!inference) return options.jobs ? withJobs(base, undefined) : base;

  const { engine, models } = inference;
  const started = engine.start();
  readiness.track('engine', started);
  readiness.check('engine', () => engine.health());
  // Warm up: load every installed model so the first request does not pay for it.
  if (options.warmUp) readiness.track('models', started.then(() => models.loadAllReady()));
  if (options.autoInstall || options.autoFetch) {
    void started.then(async () => {
      if (options.autoInstall) await installMissingEmbeddedModels({ config, logger, registry, models });
      if (options.autoFetch) await fetchMissingOfficialModels({ config, logger, registry, models });
    }, () => undefined);
  }

  const core: Core = { ...base, ...inference, started, close: once(() => engine.stop()) };
  if (!options.jobs) return core;
  try {
    return await withJobs(core, { engine, registry });
  } catch (e) {
    await started.catch(() => undefined);
    await engine.stop();
    throw e;
  }
}

/** A core without the engine and the job service (configuration, the model catalogue, readiness), built at once. */
export function createCatalogCore(config: Config, logger: Logger): Core {
  return {
    config, logger, readiness: new Readiness(), registry: new ModelRegistry({ modelsDir: config.modelsDir }), tfjs: new TfjsProbe(logger),
    started: Promise.resolve(), close: () => Promise.resolve(),
  };
}

/**
 * `core` plus a started job service; closing stops the jobs (they checkpoint) before the rest of the core. With
 * CONVSERVE_REDIS_URL the queue, events and dispatch are BullMQ's (jobs run in `convserve worker` processes, and
 * here too with `serve --worker`); Redis' reachability becomes the readiness check `redis`.
 */
async function withJobs(core: Core, services: JobServices | undefined): Promise<Core> {
  await loadBuiltinJobKinds();
  const { config, logger } = core;
  const jobBackend = config.redisUrl ? createRedisJobBackend({ config, logger, services, runWorker: config.serveWorker }) : undefined;
  const jobs = new JobService({ config, logger, services, ...(jobBackend ? { queue: jobBackend.queue, events: jobBackend.events, dispatch: jobBackend.dispatch } : {}) });
  await jobs.start();
  if (jobBackend) {
    core.readiness.check('redis', jobBackend.readiness);
    await jobBackend.start();
  }
  return { ...core, jobs, ...(jobBackend ? { jobBackend } : {}), close: once(async () => { await jobBackend?.stop(); await jobs.stop(); await core.close(); }) };
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= fn());
}

function createInference(config: Config, logger: Logger, registry: ModelRegistry): Required<Pick<Core, InferencePart>> {
  const engine = new Engine(engineOptions(config, logger));
  const models = new EngineModelProvider(registry, engine, logger);
  const classifier = new Classifier(engine, { maxBatch: config.maxBatch, batchWaitMs: config.batchWaitMs }, config.engineWorkers);
  const classify = new ClassifyService(models, classifier, config.defaultModel);
  return { engine, models, classifier, classify };
}
