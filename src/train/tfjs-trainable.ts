// TensorFlow.js behind the training seam (./trainable.ts): a compiled tfjs LayersModel trained batch by batch with
// Adam and categorical cross-entropy (the softmax classifier the Keras recipes use), and exported as ONNX layers.
import type { GraphBuilder } from '../onnx/builder.js';
import { tf } from './backend.js';
import { appendTfjsLayers } from './export-onnx.js';
import { type Evaluation, Scorer } from './metrics.js';
import type { Examples, ExportableModel, LabelledSet, TrainableModel, WeightsSnapshot } from './trainable.js';

/** Adam whose learning rate a schedule may change between steps (tfjs keeps it protected). */
class ScheduledAdam extends tf.AdamOptimizer {
  constructor(learningRate: number) {
    super(learningRate, 0.9, 0.999);
  }

  setLearningRate(lr: number): void {
    this.learningRate = lr;
  }
}

class TfjsSnapshot implements WeightsSnapshot {
  constructor(readonly tensors: tf.Tensor[]) {}

  release(): void {
    this.tensors.forEach((t) => t.dispose());
  }
}

/**
 * A seeded tfjs Dropout layer draws the same mask on every call: give each batch its own seed so the masks vary
 * (as unseeded Keras dropout does) and still replay exactly from --seed. tfjs keeps the seed private, hence
 * Reflect.set.
 */
export function reseedDropout(model: tf.LayersModel, seed: number): void {
  let k = 0;
  for (const l of model.layers) {
    if (l.getClassName() === 'Dropout') Reflect.set(l, 'seed', (seed * 7919 + ++k * 104_729) % 2_147_483_647 || 1);
  }
}

const toTensor = (x: Examples, count: number) => tf.tensor(x.data, [count, ...x.shape]);

export class TfjsTrainable implements TrainableModel {
  private readonly optimizer: ScheduledAdam;

  constructor(readonly model: tf.LayersModel, learningRate: number, private readonly classes: number) {
    this.optimizer = new ScheduledAdam(learningRate);
    model.compile({ optimizer: this.optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  }

  get parameters(): number {
    return this.model.countParams();
  }

  setLearningRate(lr: number): void {
    this.optimizer.setLearningRate(lr);
  }

  async step(batch: LabelledSet, dropoutSeed: number): Promise<{ loss: number; acc: number }> {
    reseedDropout(this.model, dropoutSeed);
    const xs = toTensor(batch.x, batch.y.length);
    const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(batch.y, 'int32'), this.classes).toFloat());
    try {
      const out = await this.model.trainOnBatch(xs, ys);
      if (!Array.isArray(out) || out.length < 2) throw new Error('tfjs trainOnBatch returned no accuracy (model compiled without metrics?)');
      return { loss: out[0]!, acc: out[1]! };
    } finally {
      xs.dispose();
      ys.dispose();
    }
  }

  async evaluate(set: LabelledSet, batchSize: number): Promise<Evaluation> {
    const n = set.y.length;
    const per = set.x.shape.reduce((a, b) => a * b, 1);
    const scorer = new Scorer(this.classes, set.y);
    for (let s = 0; s < n; s += batchSize) {
      const e = Math.min(n, s + batchSize);
      const probs = tf.tidy(() => this.model.predict(toTensor({ data: set.x.data.subarray(s * per, e * per), shape: set.x.shape }, e - s)) as tf.Tensor);
      const p = (await probs.data()) as Float32Array;
      probs.dispose();
      scorer.add(p, e - s);
    }
    return scorer.result();
  }

  snapshot(): WeightsSnapshot {
    return new TfjsSnapshot(this.model.getWeights().map((w) => w.clone()));
  }

  restore(snapshot: WeightsSnapshot): void {
    if (!(snapshot instanceof TfjsSnapshot)) throw new Error('TfjsTrainable.restore: not a snapshot of a tfjs model');
    this.model.setWeights(snapshot.tensors);
  }
}

/** `layers` (the chain `model` is made of, on a channels-last map) as an ExportableModel. */
export function tfjsExportable(model: tf.LayersModel, layers: tf.layers.Layer[]): ExportableModel {
  return {
    appendToOnnx: (g: GraphBuilder, input: string) => appendTfjsLayers(g, layers, input, 'NCHW').output,
    async predict(x: Examples, count: number): Promise<Float32Array> {
      const probs = tf.tidy(() => model.predict(toTensor(x, count)) as tf.Tensor);
      try {
        return (await probs.data()) as Float32Array;
      } finally {
        probs.dispose();
      }
    },
  };
}
