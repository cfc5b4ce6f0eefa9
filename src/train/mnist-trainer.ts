// What a framework provides for `convserve train mnist` (./mnist-ort.ts, ./mnist-tfjs.ts).
import type { TrainingBackendInfo } from './training-backend.js';
import type { ExportableModel, TrainableModel } from './trainable.js';

/** A framework's side of an MNIST run. */
export interface MnistTrainer {
  trainable: TrainableModel;
  info: TrainingBackendInfo;
  optimizer: string;
  /** Shape of one digit in the framework's layout: [1, 28, 28] (ONNX) or [28, 28, 1] (tfjs), the same floats. */
  shape: number[];
  exportable(): ExportableModel;
  release(): Promise<void>;
}
