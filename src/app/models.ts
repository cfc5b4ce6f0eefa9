// Keeping the loaded models in step with the models directory: a rescan (SIGHUP, POST /v1/models/reload) loads
// new or replaced models, and the background download of the official weights (CONVSERVE_AUTO_FETCH).
import type { Config } from '../config.js';
import { KNOWN_MODELS } from '../models/official.js';
import type { LoadedStatus, EngineModelProvider } from '../ops/model-provider.js';
import type { ModelRegistry } from '../models/registry.js';
import type { Logger } from '../util/logger.js';

interface ModelsParts {
  registry: ModelRegistry;
  models: EngineModelProvider;
}

export interface ReloadSummary {
  /** Models that appeared. */
  added: string[];
  /** Models whose folder was replaced (reloaded if they were loaded). */
  changed: string[];
  /** Models that disappeared. */
  removed: string[];
  models: { name: string; status: string; error?: string; engine?: LoadedStatus }[];
}

/** Rescans the models directory and loads every ready model in the background (SIGHUP). */
export function rescanModels({ registry, models }: ModelsParts): void {
  registry.rescan();
  void models.loadAllReady();
}

/**
 * Rescans the models directory (as SIGHUP does) and loads every ready model, new or changed; resolves when the
 * loads have finished (or failed), with what changed.
 */
export async function reloadModels({ registry, models }: ModelsParts): Promise<ReloadSummary> {
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

/**
 * Downloads the official weights of every known architecture that is missing, one after the other, loading
 * each when it arrives. Stops at the first failure (offline: no point trying the next one); the model then
 * stays `missing`, so clients see the commands that install it, and the reason is logged.
 */
export async function fetchMissingOfficialModels(core: ModelsParts & { config: Config; logger: Logger }): Promise<void> {
  const { config, logger, registry, models } = core;
  for (const arch of KNOWN_MODELS) {
    if (registry.get(arch)?.status !== 'missing') continue;
    logger.info({ model: arch }, 'downloading the official ImageNet weights in the background (CONVSERVE_AUTO_FETCH=false to disable)');
    try {
      await registry.fetch(arch, { baseUrl: config.weightsBaseUrl });
      await models.loadAllReady();
    } catch (e) {
      registry.clearTransient(arch);
      logger.warn({ model: arch, err: (e as Error).message }, 'background download failed; the model stays missing');
      break;
    }
  }
}
