// The model's own input space, where DeepDream and style transfer optimise the image: the manifest's
// preprocessing on the way in and its exact inverse on the way out (image/preprocess.ts), with the model's
// input channels. A grey (1-channel) model sees the BT.601 luma of the image and gives back a grey image.
import type { Chw } from '../image/chw.js';
import { type PreprocessingSpec, deprocess, parsePreprocessing, preprocess } from '../image/preprocess.js';
import type { RawImage } from '../image/raw.js';
import type { ModelEntry } from '../models/registry.js';

export interface ModelSpace {
  spec: PreprocessingSpec;
  channels: 1 | 3;
  /**
   * The whole pixel range 0…255 measured in input units (mean over channels): 255 for caffe and raw, 2 for tf,
   * 1 for rescale:1/255. Step sizes given in pixel terms are multiplied by it, so they move pixels alike on
   * every model.
   */
  span: number;
  /** Pixels → the model's input tensor (mnist polarity is never flipped, so fromModel is its exact inverse). */
  toModel(img: RawImage): Chw;
  /** The inverse: clip to 0…255 and truncate (a 1-channel tensor gives a grey image). */
  fromModel(x: Chw): RawImage;
}

function spanOf(spec: PreprocessingSpec, channels: 1 | 3): number {
  const black = { data: Buffer.alloc(channels), width: 1, height: 1, channels };
  const white = { data: Buffer.alloc(channels, 255), width: 1, height: 1, channels };
  const lo = preprocess(black, spec, { channels, invert: 'false' }).data;
  const hi = preprocess(white, spec, { channels, invert: 'false' }).data;
  let s = 0;
  for (let c = 0; c < channels; c++) s += Math.abs(hi[c]! - lo[c]!);
  // The map runs in float32: caffe's 255 − 103.939 and 0 − 103.939 differ by 255.0000076. Six significant
  // digits give the exact span of every named mode (255, 2, 1) and lose nothing that matters for a step size.
  return Number((s / channels).toPrecision(6));
}

/** The input space of a model from its manifest (default: tf on RGB, the InceptionV3 convention). */
export function modelSpace(entry: Pick<ModelEntry, 'manifest'>): ModelSpace {
  const spec: PreprocessingSpec = entry.manifest?.preprocessing ?? 'tf';
  const channels = entry.manifest?.input.channels ?? parsePreprocessing(spec).channels ?? 3;
  return {
    spec,
    channels,
    span: spanOf(spec, channels),
    toModel: (img) => preprocess(img, spec, { channels, invert: 'false' }),
    fromModel: (x) => deprocess(x, spec),
  };
}
