// The framework side of a fine-tune (ONNX Runtime by default: ./finetune-ort.ts; TensorFlow.js with
// `--backend tfjs`: ./finetune-tfjs.ts, loaded only then): the models of stage 1 (the head on pooled features) and
// stage 2 (the base's top block + the head on cached maps of the block's input).
import type { FinetuneBase } from './base.js';
import type { MapLayout } from './frozen-base.js';
import type { FinetuneSettings } from './options.js';
import type { TrainingBackendInfo } from './training-backend.js';
import type { ExportableModel, TrainableModel } from './trainable.js';

export interface StageModel {
  trainable: TrainableModel;
  /** The trained layers on a map of the base's value they read (what is appended to the cut base). */
  exportable(): ExportableModel;
  release(): Promise<void>;
}

export interface FinetuneFramework {
  info: TrainingBackendInfo;
  /** Layout of the cached spatial maps this framework trains on. */
  layout: MapLayout;
  /** Stage 1: the head on `channels`-long pooled vectors; `fromMap`: the export pools the feature map first. */
  head(channels: number, classes: number, fromMap: boolean, s: FinetuneSettings): Promise<StageModel>;
  /** Stage 2: the top block (from the base's weights) + the trained head, on maps of the block's input. */
  topAndHead(base: FinetuneBase, mapShape: number[], classes: number, s: FinetuneSettings, head: StageModel): Promise<StageModel>;
}
