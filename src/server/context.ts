// What every route module receives: configuration, logger, readiness, and the long-lived services.
// Services are optional so the HTTP layer can be started (and tested) with just the parts it needs.
import type { Config } from '../config.js';
import type { Logger } from '../util/logger.js';
import type { Readiness } from './readiness.js';

export interface Services {
  [name: string]: unknown;
}

export interface AppContext {
  config: Config;
  logger: Logger;
  readiness: Readiness;
  services: Services;
}
