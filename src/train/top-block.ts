// --unfreeze-top: the base's top block rebuilt as TensorFlow.js layers from its architecture's chain description,
// initialised with the base's own weights (OIHW → HWIO), to be trained together with the head.
import type { ChainLayer } from '../models/architectures/index.js';
import { tf } from './backend.js';
import { readBaseTensors } from './base-weights.js';
import { problem } from './dataset.js';

export interface TopBlockLayers {
  layers: tf.layers.Layer[];
  /** Call once the layers are built (applied to a symbolic input): copies the base's weights in. */
  init(): void;
}

/** The chain as tfjs layers, shaped and initialised by the base's weights of `modelPath`. */
export function buildTopBlock(chain: readonly ChainLayer[], modelPath: string): TopBlockLayers {
  const convs = chain.filter((l) => l.kind === 'conv');
  const tensors = readBaseTensors(modelPath, new Set(convs.flatMap((c) => [`${c.name}/kernel`, `${c.name}/bias`])));
  const missing = convs.filter((c) => !tensors.has(`${c.name}/kernel`) || !tensors.has(`${c.name}/bias`)).map((c) => c.name);
  if (missing.length) throw problem(422, 'base-layer-missing', `the base has no weights for ${missing.join(', ')} to unfreeze`);
  const inits: (() => void)[] = [];
  const layers = chain.map((l) => {
    if (l.kind === 'maxPool') return tf.layers.maxPooling2d({ name: l.name, poolSize: l.size, strides: l.stride, padding: 'valid' });
    const kernel = tensors.get(`${l.name}/kernel`)!;
    const bias = tensors.get(`${l.name}/bias`)!;
    const [co, ci, kh, kw] = kernel.dims as [number, number, number, number];
    const layer = tf.layers.conv2d({ name: l.name, filters: co, kernelSize: [kh, kw], padding: l.padding, activation: l.activation });
    inits.push(() => {
      const hwio = tf.tidy(() => tf.transpose(tf.tensor4d(kernel.data, [co, ci, kh, kw]), [2, 3, 1, 0]));
      const b = tf.tensor1d(bias.data);
      layer.setWeights([hwio, b]);
      hwio.dispose();
      b.dispose();
    });
    return layer;
  });
  return { layers, init: () => inits.forEach((f) => f()) };
}
