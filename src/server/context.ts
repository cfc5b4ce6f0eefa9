// What every route module and plugin receives: the configuration, the logger, readiness, and the core — typed
// with the parts the plugin declared it needs.
import type { Config } from '../config.js';
import type { CorePart, CoreWith } from '../app/core.js';
import type { Readiness } from '../app/readiness.js';
import type { Logger } from '../util/logger.js';

export interface AppContext<N extends CorePart = never> {
  config: Config;
  logger: Logger;
  /** The core's readiness (GET /readyz). */
  readiness: Readiness;
  core: CoreWith<N>;
}
