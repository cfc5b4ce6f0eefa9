// A job kind run in-process on a core (the CLI's dream, style and blur-sweep): the same step loop as the
// service, with the core's engine and models when it has them.
import type { JobInputs } from '../jobs/kind.js';
import { type LocalRunOptions, type LocalRunResult, runJobLocally } from '../jobs/local.js';
import type { Core } from './core.js';

export type LocalJobOptions = Omit<LocalRunOptions, 'config' | 'services' | 'logger'>;

export function runLocalJob(core: Core, kind: string, inputs: JobInputs, params: Record<string, unknown>, opts: LocalJobOptions = {}): Promise<LocalRunResult> {
  const services = core.engine ? { engine: core.engine, registry: core.registry } : undefined;
  return runJobLocally(kind, inputs, params, { ...opts, config: core.config, logger: core.logger, services });
}
