// What a training run reports while it runs (progress events, streamed from the training child to the CLI or a
// job) and the per-epoch records it keeps for report.json.
import type { TrainingBackendInfo } from './training-backend.js';
import type { EpochRecord } from './metrics.js';

export type FinetuneProgress =
  | { type: 'scan'; classes: string[]; files: number; nonImages: number; layout: 'class-folders' | 'train-val-folders' }
  | { type: 'skipped'; file: string; reason: string }
  | {
    type: 'start'; backend: TrainingBackendInfo; base: string; architecture: string; cut: string; classes: string[];
    train: number; val: number; skipped: number; augment: boolean; cached: boolean; epochs: number; batchSize: number;
  }
  | { type: 'features'; what: string; done: number; total: number; seconds: number; imagesPerSecond: number; cached: boolean }
  | { type: 'stage'; stage: 1 | 2; description: string; epochs: number; steps: number; learningRate: number; trainable: number; optimizer?: string; schedule?: string }
  | { type: 'warning'; message: string }
  | { type: 'batch'; stage: 1 | 2; epoch: number; epochs: number; step: number; steps: number; loss: number; acc: number }
  | { type: 'epoch'; stage: 1 | 2; epoch: number; epochs: number; loss: number; acc: number; val_loss: number; val_acc: number; lr: number; seconds: number; best: boolean }
  | { type: 'early-stop'; stage: 1 | 2; epoch: number; bestEpoch: number; patience: number; unit?: 'steps' | 'epochs' }
  | { type: 'evaluate'; accuracy: number; loss: number; images: number }
  | { type: 'export'; dir: string; maxAbsDiff: number }
  | { type: 'done'; dir: string; valAccuracy: number; seconds: number };

export interface FinetuneEpoch extends EpochRecord {
  stage: 1 | 2;
  /** Epoch number within its stage. */
  stage_epoch: number;
  /** Seconds spent computing features for this epoch (augmentation only). */
  feature_seconds?: number;
}

export type TrainProgress =
  | { type: 'start'; epochs: number; steps: number; batchSize: number; train: number; val: number; test: number; backend: TrainingBackendInfo }
  | { type: 'batch'; epoch: number; epochs: number; step: number; steps: number; loss: number; acc: number }
  | { type: 'epoch'; epoch: number; epochs: number; loss: number; acc: number; val_loss: number; val_acc: number; lr: number; seconds: number; best: boolean }
  | { type: 'test'; loss: number; accuracy: number; bestEpoch: number }
  | { type: 'export'; dir: string; maxAbsDiff: number }
  | { type: 'done'; dir: string; testAccuracy: number; seconds: number };
