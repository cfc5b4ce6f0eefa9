// What this process runs on (GET /v1/info): versions, the ONNX Runtime engine's shape and counters, the tfjs
// backend selection. Never the directories: absolute paths tell a caller about the host (issue 13, item 12);
// `convserve doctor` shows them to the operator.
import { createRequire } from 'node:module';
import type { Engine } from '../engine/engine.js';
import type { TfjsInfo, TfjsProbe } from './tfjs-probe.js';

export interface RuntimeInfo {
  name: 'convserve';
  version: string;
  node: string;
  onnxruntime: { version: string; execution_providers: string[]; workers: number; threads: number; runs: number; worker_restarts: number };
  tfjs: TfjsInfo;
}

const PACKAGE_VERSION = '0.1.0';

export function runtimeInfo({ engine, tfjs }: { engine: Engine; tfjs: TfjsProbe }): RuntimeInfo {
  return {
    name: 'convserve',
    version: runtimeVersion(),
    node: process.version,
    onnxruntime: {
      version: ortVersion(), execution_providers: engine.sessionOptions.executionProviders, workers: engine.workerCount,
      threads: engine.sessionOptions.intraOpThreads, runs: engine.stats.runs, worker_restarts: engine.stats.workerRestarts,
    },
    tfjs: tfjs.state(),
  };
}

export function runtimeVersion(): string {
  return process.env.npm_package_version ?? PACKAGE_VERSION;
}

function ortVersion(): string {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
