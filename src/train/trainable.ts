// The seam between training and the framework that computes it: what a training backend provides. fit()
// (./fit.ts) trains any TrainableModel; an export writes any ExportableModel after a graph value and checks it
// against the model's own predictions. Today TensorFlow.js implements both (./tfjs-trainable.ts); an ONNX Runtime
// trainer (forward + backward graphs, optimizers in Float32Arrays) is meant to plug in here.
import type { GraphBuilder } from '../onnx/builder.js';
import type { Evaluation } from './metrics.js';

/** Examples as one row-major block: `shape` is the shape of one example ([C], [H, W, C], …). */
export interface Examples {
  data: Float32Array;
  shape: number[];
}

/** A labelled set (labels are class indices). */
export interface LabelledSet {
  x: Examples;
  y: Uint8Array;
}

/** Weights saved by {@link TrainableModel.snapshot}; release() frees them. */
export interface WeightsSnapshot {
  release(): void;
}

/** A classifier that can be trained here: what fit() needs of a framework. */
export interface TrainableModel {
  /** Trainable parameters. */
  readonly parameters: number;
  setLearningRate(lr: number): void;
  /** One optimizer step on a batch (dropout masks drawn from `dropoutSeed`); the batch's mean loss and accuracy. */
  step(batch: LabelledSet, dropoutSeed: number): Promise<{ loss: number; acc: number }>;
  /** Loss, accuracy and confusion on a labelled set, predicting `batchSize` examples at a time. */
  evaluate(set: LabelledSet, batchSize: number): Promise<Evaluation>;
  snapshot(): WeightsSnapshot;
  restore(snapshot: WeightsSnapshot): void;
}

/** A trained classifier as ONNX layers, with its own predictions as the reference the export is checked against. */
export interface ExportableModel {
  /** Appends the model's layers after `input` (a 4-D NCHW value of `g`); returns the probabilities value. */
  appendToOnnx(g: GraphBuilder, input: string): string;
  /** Probabilities of `count` examples given in the model's own input layout (channels-last maps). */
  predict(x: Examples, count: number): Promise<Float32Array>;
}
