// A fine-tune on ONNX Runtime (the default): the head — Dense(units, relu) → Dropout → Dense(classes, softmax), on
// the pooled features — and, for --unfreeze-top, the base's top block (its convs and pools, starting from the
// base's own OIHW weights) under that head, trained by the ORT trainer with Adam (./ort-trainable.ts).
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import type { FinetuneBase } from './base.js';
import { readBaseTensors } from './base-weights.js';
import { problem } from './dataset.js';
import type { FinetuneFramework, StageModel } from './finetune-framework.js';
import type { LayerSpec } from './ort-net.js';
import { OrtTrainable } from './ort-trainable.js';

const headLayers = (units: number, dropout: number, classes: number): LayerSpec[] => [
  { kind: 'dense', name: 'head_dense', units, activation: 'relu' },
  { kind: 'dropout', name: 'head_dropout', rate: dropout },
  { kind: 'dense', name: 'head_predictions', units: classes, activation: 'softmax' },
];

const GAP: LayerSpec[] = [{ kind: 'globalAvgPool', name: 'head_gap' }];

function stage(trainable: OrtTrainable, prefix: LayerSpec[]): StageModel {
  return { trainable, exportable: () => trainable.exportable(prefix), release: () => trainable.release() };
}

export function ortFramework(): FinetuneFramework {
  const threads = availableParallelism();
  const trainers = new Map<StageModel, OrtTrainable>();
  return {
    info: { backend: 'onnxruntime', framework: `onnxruntime-node ${ort.env.versions.node ?? ort.env.versions.common}`, details: { intra_op_threads: threads } },
    layout: 'NCHW',
    async head(channels, classes, fromMap, s) {
      const trainable = await OrtTrainable.create({
        spec: { input: [channels], layers: headLayers(s.units, s.dropout, classes) }, optimizer: { name: 'adam' }, learningRate: s.learningRate, seed: s.seed, threads,
      });
      const m = stage(trainable, fromMap ? GAP : []);
      trainers.set(m, trainable);
      return m;
    },
    async topAndHead(base: FinetuneBase, mapShape, classes, s, head) {
      const chain = base.topBlock?.chain;
      if (!chain) throw problem(400, 'unfreeze-unsupported', `--unfreeze-top: the top block of '${base.name}' cannot be rebuilt for training`);
      const convs = chain.filter((l) => l.kind === 'conv');
      const tensors = readBaseTensors(base.modelPath, new Set(convs.flatMap((c) => [`${c.name}/kernel`, `${c.name}/bias`])));
      const missing = convs.filter((c) => !tensors.has(`${c.name}/kernel`) || !tensors.has(`${c.name}/bias`)).map((c) => c.name);
      if (missing.length) throw problem(422, 'base-layer-missing', `the base has no weights for ${missing.join(', ')} to unfreeze`);
      const block: LayerSpec[] = chain.map((l): LayerSpec => {
        if (l.kind === 'maxPool') return { kind: 'maxPool', name: l.name, size: l.size, stride: l.stride };
        const [filters, , kernel] = tensors.get(`${l.name}/kernel`)!.dims as [number, number, number, number];
        return { kind: 'conv', name: l.name, filters, kernel, padding: l.padding, activation: l.activation };
      });
      const initial = new Map<string, Float32Array>([...tensors].map(([k, t]) => [k, t.data]));
      for (const [k, v] of trainers.get(head)?.values ?? []) initial.set(k, v);
      const trainable = await OrtTrainable.create({
        spec: { input: mapShape, layers: [...block, ...GAP, ...headLayers(s.units, s.dropout, classes)] }, optimizer: { name: 'adam' },
        learningRate: s.unfreezeLearningRate, seed: s.seed, initial, threads,
      });
      return stage(trainable, []);
    },
  };
}
