// `convserve train mnist --backend tfjs`: the MNIST convnet in TensorFlow.js (loaded only on this path).
import { selectBackend, tf } from './backend.js';
import { buildMnistModel } from './mnist-model.js';
import type { MnistTrainer } from './mnist-trainer.js';
import type { MnistSettings } from './options.js';
import { TfjsTrainable, tfjsExportable } from './tfjs-trainable.js';

export async function mnistTfjsTrainer(s: MnistSettings): Promise<MnistTrainer> {
  const selection = await selectBackend();
  const model = buildMnistModel({ seed: s.seed, dropout: s.dropout });
  const trainable = new TfjsTrainable(model, s.learningRate, 10);
  return {
    trainable,
    info: { ...selection, framework: `tfjs ${tf.version.tfjs}` },
    optimizer: 'adam',
    shape: [28, 28, 1],
    exportable: () => tfjsExportable(model, model.layers),
    release: async () => { model.dispose(); },
  };
}
