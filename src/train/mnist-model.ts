// The classic MNIST convnet of Deep Learning with Python (1st ed., §5.1; keras-facts §9), in TensorFlow.js.
import { tf } from './backend.js';

export interface MnistModelOptions {
  seed: number;
  /** Dropout after Flatten and after Dense 64 (0 disables). */
  dropout?: number;
}

/**
 * The DLP1 §5.1 convnet: conv 32 3×3 relu (valid) → maxpool 2 → conv 64 3×3 relu → maxpool 2 → conv 64 3×3 relu
 * (55,744 conv params) → flatten → dense 64 relu → dense 10 softmax; 93,322 parameters, plus dropout (no params).
 */
export function buildMnistModel(opts: MnistModelOptions): tf.Sequential {
  const rate = opts.dropout ?? 0.25;
  let i = 0;
  const init = () => tf.initializers.glorotUniform({ seed: opts.seed * 97 + ++i });
  const m = tf.sequential({ name: 'mnist_cnn' });
  m.add(tf.layers.conv2d({ name: 'conv1', inputShape: [28, 28, 1], filters: 32, kernelSize: 3, activation: 'relu', padding: 'valid', kernelInitializer: init() }));
  m.add(tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }));
  m.add(tf.layers.conv2d({ name: 'conv2', filters: 64, kernelSize: 3, activation: 'relu', kernelInitializer: init() }));
  m.add(tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }));
  m.add(tf.layers.conv2d({ name: 'conv3', filters: 64, kernelSize: 3, activation: 'relu', kernelInitializer: init() }));
  m.add(tf.layers.flatten({ name: 'flatten' }));
  if (rate > 0) m.add(tf.layers.dropout({ name: 'dropout1', rate, seed: 1 }));
  m.add(tf.layers.dense({ name: 'dense1', units: 64, activation: 'relu', kernelInitializer: init() }));
  if (rate > 0) m.add(tf.layers.dropout({ name: 'dropout2', rate, seed: 2 }));
  m.add(tf.layers.dense({ name: 'dense2', units: 10, activation: 'softmax', kernelInitializer: init() }));
  return m;
}
