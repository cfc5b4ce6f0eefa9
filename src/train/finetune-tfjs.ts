// A fine-tune with TensorFlow.js (`--backend tfjs`): the head of ./head.ts and, for --unfreeze-top, the top block of
// ./top-block.ts rebuilt as tfjs layers, trained with tfjs' Adam on channels-last maps.
import { selectBackend, tf } from './backend.js';
import type { FinetuneFramework, StageModel } from './finetune-framework.js';
import { type Head, buildHead, symbolic } from './head.js';
import { TfjsTrainable, tfjsExportable } from './tfjs-trainable.js';
import { buildTopBlock } from './top-block.js';

export async function tfjsFramework(): Promise<FinetuneFramework> {
  const selection = await selectBackend();
  const heads = new Map<StageModel, Head>();
  return {
    info: { ...selection, framework: `tfjs ${tf.version.tfjs}` },
    layout: 'NHWC',
    async head(channels, classes, _fromMap, s) {
      const head = buildHead({ channels, classes, units: s.units, dropout: s.dropout, seed: s.seed });
      const m: StageModel = {
        trainable: new TfjsTrainable(head.onPooled, s.learningRate, classes),
        exportable: () => tfjsExportable(head.onMap, head.layers),
        release: async () => { head.onPooled.dispose(); },
      };
      heads.set(m, head);
      return m;
    },
    async topAndHead(base, mapShape, classes, s, stage1) {
      const head = heads.get(stage1)!;
      const block = buildTopBlock(base.topBlock!.chain!, base.modelPath);
      const input = tf.input({ shape: mapShape, name: base.topBlock!.input });
      let x = input;
      for (const l of block.layers) x = symbolic(l.apply(x));
      const full = tf.model({ inputs: input, outputs: head.apply(x), name: 'top_block_and_head' });
      block.init();
      return {
        trainable: new TfjsTrainable(full, s.unfreezeLearningRate, classes),
        exportable: () => tfjsExportable(full, [...block.layers, ...head.layers]),
        release: async () => { full.dispose(); },
      };
    },
  };
}
