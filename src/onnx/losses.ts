// Loss heads as graph builders: each appends the nodes computing a scalar loss (mean over the batch, Keras
// semantics) to a GraphBuilder and returns its name, ready for gradientGraph / appendGradients. Every op they
// use has a VJP; the labels/targets are ordinary graph values (inputs, usually) and get no gradient unless
// asked for.
import type { GraphBuilder } from './builder.js';

export interface LossOptions {
  /** Name of the loss value (default: a fresh name). */
  name?: string;
}

export interface CrossEntropyOptions extends LossOptions {
  /**
   * 'index': labels are int64 class indices [N] (Keras sparse_categorical_crossentropy); 'one-hot': float
   * [N, C] distributions (categorical_crossentropy).
   */
  labels: 'index' | 'one-hot';
}

/** Keras' fuzz factor (backend.epsilon()): probabilities are clipped to [ε, 1 − ε] before the log. */
export const KERAS_EPSILON = 1e-7;

function finish(b: GraphBuilder, perExample: string, opts: LossOptions): string {
  return b.node('ReduceMean', [perExample], { keepdims: 0 }, opts.name ? { outputs: [opts.name] } : { prefix: 'loss' });
}

/**
 * Softmax cross-entropy of `logits` [N, C] (pre-softmax scores) against integer or one-hot labels:
 * mean over n of −Σ_c label[n, c] · log_softmax(logits)[n, c]. LogSoftmax keeps it stable for large logits.
 */
export function softmaxCrossEntropy(b: GraphBuilder, logits: string, labels: string, opts: CrossEntropyOptions): string {
  let target = labels;
  if (opts.labels === 'index') {
    // OneHot(labels, depth = C) as float: the labels never lie on a gradient path.
    const depth = b.node('Gather', [b.node('Shape', [logits]), b.ints([1])]);
    const offOn = b.node('Concat', [b.scalar(0, [1]), b.scalar(1, [1])], { axis: 0 });
    target = b.node('OneHot', [labels, depth, offOn], { axis: -1 });
  }
  const logp = b.node('LogSoftmax', [logits], { axis: 1 });
  const perExample = b.node('Neg', [b.node('ReduceSum', [b.node('Mul', [target, logp]), b.ints([1])], { keepdims: 0 })]);
  return finish(b, perExample, opts);
}

export interface BinaryCrossEntropyOptions extends LossOptions {
  /** true: `predictions` are logits (stable sigmoid form); false (default): probabilities in [0, 1]. */
  fromLogits?: boolean;
  /** Clip for probabilities (default {@link KERAS_EPSILON}). */
  epsilon?: number;
}

/**
 * Binary cross-entropy, mean over every element (Keras binary_crossentropy with equal-sized rows):
 * probabilities p: −(t·log p + (1 − t)·log(1 − p)) with p clipped to [ε, 1 − ε] (the clip passes no gradient
 * outside); logits z: max(z, 0) − z·t + log(1 + e^(−|z|)), stable for any z.
 */
export function binaryCrossEntropy(b: GraphBuilder, predictions: string, targets: string, opts: BinaryCrossEntropyOptions = {}): string {
  const one = b.scalar(1);
  let elementwise: string;
  if (opts.fromLogits) {
    const z = predictions;
    const softplusNegAbs = b.node('Log', [b.node('Add', [one, b.node('Exp', [b.node('Neg', [b.node('Abs', [z])])])])]);
    elementwise = b.node('Add', [b.node('Sub', [b.node('Relu', [z]), b.node('Mul', [z, targets])]), softplusNegAbs]);
  } else {
    const eps = opts.epsilon ?? KERAS_EPSILON;
    const p = b.node('Clip', [predictions, b.scalar(eps), b.scalar(1 - eps)]);
    const pos = b.node('Mul', [targets, b.node('Log', [p])]);
    const neg = b.node('Mul', [b.node('Sub', [one, targets]), b.node('Log', [b.node('Sub', [one, p])])]);
    elementwise = b.node('Neg', [b.node('Add', [pos, neg])]);
  }
  return finish(b, elementwise, opts);
}

/** Mean squared error over every element: mean((p − t)²). */
export function meanSquaredError(b: GraphBuilder, predictions: string, targets: string, opts: LossOptions = {}): string {
  const d = b.node('Sub', [predictions, targets]);
  return finish(b, b.node('Mul', [d, d]), opts);
}

