// The new head of a fine-tune, in TensorFlow.js: GlobalAveragePooling2D → Dense(units, relu) → Dropout →
// Dense(classes, softmax), Keras' transfer-learning head. One set of layers, two models: trained on the cached
// pooled vectors (the pooling already done by the base's session), exported on the feature map.
import { tf } from './backend.js';

export interface HeadOptions {
  /** Channels of the feature layer. */
  channels: number;
  classes: number;
  units: number;
  dropout: number;
  seed: number;
}

export interface Head {
  /** Pooled vectors [N, C] → probabilities: what stage 1 trains. */
  onPooled: tf.LayersModel;
  /** Feature maps [N, H, W, C] → probabilities: the same weights, what is exported after the base. */
  onMap: tf.LayersModel;
  /** The layers of `onMap`, in order. */
  layers: tf.layers.Layer[];
  /** The head after another symbolic map (a top block's output). */
  apply(map: tf.SymbolicTensor): tf.SymbolicTensor;
  /** A one-line description for progress and logs. */
  describe(featureLayer: string): string;
}

/** A layer's output when applied to a symbolic tensor (tfjs types it as either). */
export const symbolic = (x: ReturnType<tf.layers.Layer['apply']>): tf.SymbolicTensor => {
  if (!(x instanceof tf.SymbolicTensor)) throw new Error('a layer applied to a symbolic tensor returned a concrete value');
  return x;
};

export function buildHead(o: HeadOptions): Head {
  let seedK = 0;
  const init = () => tf.initializers.glorotUniform({ seed: o.seed * 97 + ++seedK });
  const gap = tf.layers.globalAveragePooling2d({ name: 'head_gap' });
  const dense = tf.layers.dense({ name: 'head_dense', units: o.units, activation: 'relu', kernelInitializer: init() });
  const drop = tf.layers.dropout({ name: 'head_dropout', rate: o.dropout, seed: 1 });
  const predictions = tf.layers.dense({ name: 'head_predictions', units: o.classes, activation: 'softmax', kernelInitializer: init() });
  const onVector = (v: tf.SymbolicTensor) => symbolic(predictions.apply(symbolic(drop.apply(symbolic(dense.apply(v))))));
  const apply = (map: tf.SymbolicTensor) => onVector(symbolic(gap.apply(map)));
  const vin = tf.input({ shape: [o.channels], name: 'pooled' });
  const onPooled = tf.model({ inputs: vin, outputs: onVector(vin), name: 'head' });
  const sin = tf.input({ shape: [null, null, o.channels], name: 'features' });
  const onMap = tf.model({ inputs: sin, outputs: apply(sin), name: 'head_on_map' });
  return {
    onPooled, onMap, layers: [gap, dense, drop, predictions], apply,
    describe: (featureLayer) => `${featureLayer} → global average pooling → dense ${o.units} → dropout ${o.dropout} → ${o.classes}-way softmax`,
  };
}
