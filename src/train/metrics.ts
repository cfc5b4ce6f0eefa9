// What training measures, independent of the framework that trains: one epoch's record, and the scores of a
// classifier on a labelled set (loss, accuracy, confusion matrix, per-class precision/recall).

/** One epoch of a training run, as report.json's `history` lists it. */
export interface EpochRecord {
  epoch: number;
  loss: number;
  acc: number;
  val_loss: number;
  val_acc: number;
  lr: number;
  seconds: number;
}

export interface Evaluation {
  /** Mean categorical cross-entropy. */
  loss: number;
  accuracy: number;
  /** confusion[true][predicted] */
  confusion: number[][];
  /** Predicted class of each example. */
  predictions: Uint8Array;
}

export interface ClassMetrics { label: string; precision: number; recall: number; support: number }

/** Largest ONNX-vs-framework difference of the output probabilities accepted at export time. */
export const EXPORT_TOLERANCE = 1e-5;

/**
 * Accumulates the scores of softmax outputs batch by batch: argmax prediction, confusion, and the cross-entropy
 * of the true class (probabilities clamped at 1e-7, as Keras does).
 */
export class Scorer {
  private readonly confusion: number[][];
  private readonly predictions: Uint8Array;
  private lossSum = 0;
  private correct = 0;
  private seen = 0;

  constructor(private readonly classes: number, private readonly labels: Uint8Array) {
    this.confusion = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
    this.predictions = new Uint8Array(labels.length);
  }

  /** Scores the next `count` examples, whose probabilities are `probs` ([count, classes], row-major). */
  add(probs: Float32Array, count: number): void {
    const k = this.classes;
    for (let i = 0; i < count; i++, this.seen++) {
      const truth = this.labels[this.seen]!;
      let best = 0;
      for (let c = 1; c < k; c++) if (probs[i * k + c]! > probs[i * k + best]!) best = c;
      this.predictions[this.seen] = best;
      this.confusion[truth]![best]!++;
      if (best === truth) this.correct++;
      this.lossSum += -Math.log(Math.max(probs[i * k + truth]!, 1e-7));
    }
  }

  result(): Evaluation {
    const n = this.labels.length;
    return { loss: this.lossSum / n, accuracy: this.correct / n, confusion: this.confusion, predictions: this.predictions };
  }
}

export function perClassMetrics(confusion: number[][], labels?: string[]): ClassMetrics[] {
  return confusion.map((row, c) => {
    const tp = row[c]!;
    const support = row.reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((a, r) => a + r[c]!, 0);
    return { label: labels?.[c] ?? String(c), precision: predicted ? tp / predicted : 0, recall: support ? tp / support : 0, support };
  });
}

/** Rounds to `digits` decimals (report numbers people read). */
export const round = (v: number, digits = 4) => Math.round(v * 10 ** digits) / 10 ** digits;
