// What this process runs on (GET /v1/info): versions, the ONNX Runtime engine's shape and counters, the tfjs
// backend selection, and the directories.
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import type { Config } from '../config.js';
import type { Engine } from '../engine/engine.js';
import type { TfjsInfo, TfjsProbe } from './tfjs-probe.js';

export interface RuntimeInfo {
  name: 'convserve';
  version: string;
  node: string;
  onnxruntime: { version: string; execution_providers: string[]; workers: number; threads: number; runs: number; worker_restarts: number };
  tfjs: TfjsInfo;
  models_dir: string;
  data_dir: string;
}

const PACKAGE_VERSION = '0.1.0';

export function runtimeInfo({ config, engine, tfjs }: { config: Config; engine: Engine; tfjs: TfjsProbe }): RuntimeInfo {
  return {
    name: 'convserve',
    version: process.env.npm_package_version ?? PACKAGE_VERSION,
    node: process.version,
    onnxruntime: {
      version: ortVersion(), execution_providers: engine.sessionOptions.executionProviders, workers: engine.workerCount,
      threads: engine.sessionOptions.intraOpThreads, runs: engine.stats.runs, worker_restarts: engine.stats.workerRestarts,
    },
    tfjs: tfjs.state(),
    models_dir: resolve(config.modelsDir),
    data_dir: resolve(config.dataDir),
  };
}

function ortVersion(): string {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
