// `convserve train mnist` on ONNX Runtime (the default backend): the DLP §5.1 convnet (./mnist-net.ts) trained by
// the ORT trainer with Adam (Keras defaults).
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import type { MnistTrainer } from './mnist-trainer.js';
import { mnistNet } from './mnist-net.js';
import type { MnistSettings } from './options.js';
import { OrtTrainable } from './ort-trainable.js';

export async function mnistOrtTrainer(s: MnistSettings): Promise<MnistTrainer> {
  const threads = availableParallelism();
  const trainable = await OrtTrainable.create({ spec: mnistNet(s.dropout), optimizer: { name: 'adam' }, learningRate: s.learningRate, seed: s.seed, threads });
  return {
    trainable,
    info: { backend: 'onnxruntime', framework: `onnxruntime-node ${ort.env.versions.node ?? ort.env.versions.common}`, details: { intra_op_threads: threads } },
    optimizer: 'adam',
    shape: [1, 28, 28],
    exportable: () => trainable.exportable(),
    release: () => trainable.release(),
  };
}
