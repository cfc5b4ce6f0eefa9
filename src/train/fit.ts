// The training loop, independent of the framework that computes the steps: epochs of seeded shuffled batches,
// a validation pass per epoch, the best epoch's weights kept (and restored at the end), optional early stopping —
// Keras' fit(..., callbacks=[EarlyStopping(restore_best_weights=True)]) with a learning-rate schedule.
//
// Anything that implements TrainableModel (./trainable.ts: one optimizer step on a batch, evaluation, weight
// snapshots) trains here — today TensorFlow.js (./tfjs-trainable.ts).
import type { EpochRecord, Evaluation } from './metrics.js';
import { Prng } from '../util/prng.js';
import type { LabelledSet, TrainableModel, WeightsSnapshot } from './trainable.js';

/** The training examples of each epoch: reordered (and, with augmentation, redrawn or recomputed) every epoch. */
export interface EpochSource {
  readonly size: number;
  /** Epoch `epoch`'s examples in `order` (a permutation of 0 … size−1). */
  epoch(epoch: number, order: Uint32Array): Promise<LabelledSet>;
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  learningRate: (epoch: number) => number;
  /** A per-step schedule (0-based global step), overriding `learningRate` (warm-up + cosine of a fine-tune). */
  learningRateAt?: (step: number) => number;
  /** Seed of the epoch's shuffle. */
  orderSeed: (epoch: number) => number;
  /** Seed of a batch's dropout masks. */
  dropoutSeed: (epoch: number, batch: number) => number;
  /** Which epoch is best: the lowest validation loss, or the highest validation accuracy (ties: lower loss). */
  monitor: 'val_loss' | 'val_acc';
  /** Stop after this many epochs without a better one (none: run every epoch). */
  patience?: number;
  /**
   * Early stopping counted in optimizer steps: stop once this many steps have passed since the best epoch's end —
   * but never before `minSteps` steps in all (small data: a few steps per epoch must not end a run early).
   */
  patienceSteps?: number;
  minSteps?: number;
  /** Examples per prediction when evaluating. */
  evalBatch: number;
  onBatch?: (p: { epoch: number; step: number; steps: number; loss: number; acc: number }) => void;
  onEpoch?: (record: EpochRecord, best: boolean) => void;
  onEarlyStop?: (epoch: number, bestEpoch: number) => void;
}

export interface FitResult {
  history: EpochRecord[];
  /** 1-based epoch whose weights the model holds now. */
  bestEpoch: number;
}

function better(monitor: FitOptions['monitor'], v: Evaluation, best: { loss: number; accuracy: number } | undefined): boolean {
  if (!best) return true;
  if (monitor === 'val_loss') return v.loss < best.loss;
  return v.accuracy > best.accuracy || (v.accuracy === best.accuracy && v.loss < best.loss);
}

/** Trains `model` on `train`, validating on `val` after every epoch; leaves the best epoch's weights in the model. */
export async function fit(model: TrainableModel, train: EpochSource, val: LabelledSet, o: FitOptions): Promise<FitResult> {
  const steps = Math.ceil(train.size / o.batchSize);
  const history: EpochRecord[] = [];
  let best: { epoch: number; step: number; loss: number; accuracy: number; weights: WeightsSnapshot } | undefined;
  let globalStep = 0;
  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const started = performance.now();
      const lr = o.learningRateAt ? o.learningRateAt(globalStep) : o.learningRate(epoch);
      model.setLearningRate(lr);
      const set = await train.epoch(epoch, new Prng(o.orderSeed(epoch)).permutation(train.size));
      const per = set.x.shape.reduce((p, q) => p * q, 1);
      let lossSum = 0;
      let accSum = 0;
      let seen = 0;
      for (let step = 0; step < steps; step++) {
        const from = step * o.batchSize;
        const to = Math.min(train.size, from + o.batchSize);
        if (o.learningRateAt) model.setLearningRate(o.learningRateAt(globalStep));
        globalStep++;
        const batch = { x: { data: set.x.data.subarray(from * per, to * per), shape: set.x.shape }, y: set.y.subarray(from, to) };
        const r = await model.step(batch, o.dropoutSeed(epoch, step));
        lossSum += r.loss * (to - from);
        accSum += r.acc * (to - from);
        seen += to - from;
        o.onBatch?.({ epoch, step: step + 1, steps, loss: lossSum / seen, acc: accSum / seen });
      }
      const v = await model.evaluate(val, o.evalBatch);
      const record: EpochRecord = {
        epoch, loss: lossSum / Math.max(seen, 1), acc: accSum / Math.max(seen, 1), val_loss: v.loss, val_acc: v.accuracy, lr,
        seconds: (performance.now() - started) / 1000,
      };
      history.push(record);
      const improved = better(o.monitor, v, best);
      if (improved) {
        best?.weights.release();
        best = { epoch, step: globalStep, loss: v.loss, accuracy: v.accuracy, weights: model.snapshot() };
      }
      o.onEpoch?.(record, improved);
      const patient = o.patienceSteps !== undefined
        ? globalStep - best!.step >= o.patienceSteps && globalStep >= (o.minSteps ?? 0)
        : o.patience !== undefined && epoch - best!.epoch >= o.patience;
      if (patient && epoch < o.epochs) {
        o.onEarlyStop?.(epoch, best!.epoch);
        break;
      }
    }
    model.restore(best!.weights);
    return { history, bestEpoch: best!.epoch };
  } finally {
    best?.weights.release();
  }
}

/** The examples (and labels) of `set` at the positions `order` lists, as a new set. */
export function gather(set: LabelledSet, order: ArrayLike<number>): LabelledSet {
  const per = set.x.shape.reduce((p, q) => p * q, 1);
  const data = new Float32Array(order.length * per);
  const y = new Uint8Array(order.length);
  for (let i = 0; i < order.length; i++) {
    const j = order[i]!;
    data.set(set.x.data.subarray(j * per, (j + 1) * per), i * per);
    y[i] = set.y[j]!;
  }
  return { x: { data, shape: set.x.shape }, y };
}
