// The frozen base of a fine-tune job on the service's inference engine: its cut graph is loaded into the engine's
// worker threads and run at job priority, so interactive requests (classify) go first and the HTTP thread never
// waits on a forward pass. Cancelling the job drops batches that have not started.
import { randomUUID } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import type { BaseRunnerFactory } from './frozen-base.js';

export function engineBaseRunner(engine: Engine, signal?: AbortSignal): BaseRunnerFactory {
  return async (model) => {
    const key = `finetune-base-${randomUUID()}`;
    await engine.load(key, { bytes: model }, { memArena: false });
    return {
      run: async (input, x, dims, fetches) => (await engine.run(key, { [input]: { dims, data: x } }, { fetches, priority: 'job', signal })).outputs,
      release: () => engine.unload(key),
    };
  };
}
