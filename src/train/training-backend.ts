// Which framework trains: ONNX Runtime (the default: ./ort-trainable.ts, in the engine's worker threads) or
// TensorFlow.js (`--backend tfjs`, ./tfjs-trainable.ts; tfjs is only loaded on that path). What a run records
// about it (progress, manifest, report).
import type { BackendAttempt } from './backend.js';

export const TRAINING_BACKENDS = ['ort', 'tfjs'] as const;
export type TrainingBackendName = (typeof TRAINING_BACKENDS)[number];

export interface TrainingBackendInfo {
  /** 'onnxruntime', or the tfjs candidate that won ('wasm', 'tfjs-node', …). */
  backend: string;
  /** Library and version ('onnxruntime-node 1.30.0', 'tfjs 4.22.0'). */
  framework: string;
  /** tfjs only: every backend candidate tried. */
  tried?: BackendAttempt[];
  details?: Record<string, unknown>;
}
