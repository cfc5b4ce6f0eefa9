// The core of a CLI command: configuration from the environment, a logger that stays quiet unless LOG_LEVEL
// says otherwise, closed when the command ends (also when it fails).
import { type Core, type InferenceCore, createCatalogCore, createCore } from '../app/core.js';
import { type Config, loadConfig } from '../config.js';
import { type Logger, logger } from '../util/logger.js';

function cliLogger(): Logger {
  return logger.child({}, { level: process.env.LOG_LEVEL ?? 'warn' });
}

/** Runs `fn` on a core with the inference engine (its workers started) and the model provider. */
export async function withInferenceCore<T>(fn: (core: InferenceCore) => Promise<T>, config: Config = loadConfig()): Promise<T> {
  const core = await createCore(config, cliLogger());
  try {
    await core.started;
    return await fn(core);
  } finally {
    await core.close();
  }
}

/** Runs `fn` on a core without the engine: configuration and the models directory's catalogue. */
export async function withCatalogCore<T>(fn: (core: Core) => Promise<T> | T, config: Config = loadConfig()): Promise<T> {
  const core = createCatalogCore(config, cliLogger());
  try {
    return await fn(core);
  } finally {
    await core.close();
  }
}
