// The inference side of the service over HTTP: the model catalogue (/v1/models, /v1/models/reload, /v1/info) and
// classification (/v1/classify); SIGHUP rescans the models directory. The engine, the models and their warm-up
// belong to the core (src/app/core.ts).
import { rescanModels } from '../app/models.js';
import type { ServicePlugin } from './plugin.js';
import { classifyRoutes } from './routes/classify.js';
import { explainRoutes } from './routes/explain.js';
import { modelRoutes } from './routes/models.js';

export function inferencePlugin(): ServicePlugin<'engine' | 'models' | 'classify'> {
  let onHup: (() => void) | undefined;
  return {
    name: 'inference',
    needs: ['engine', 'models', 'classify'],
    start({ core, logger }) {
      onHup = () => {
        logger.info('SIGHUP: rescanning the models directory');
        rescanModels(core);
      };
      process.on('SIGHUP', onHup);
    },
    routes(r, app) {
      modelRoutes(r, app);
      classifyRoutes(r, app);
      explainRoutes(r, app);
    },
    stop() {
      if (onHup) process.off('SIGHUP', onHup);
    },
  };
}
