// The dialect-free description of a Keras model that every reader produces (Keras 2/3 HDF5, Keras 3 .keras zip,
// TensorFlow.js layers) and the ONNX converter consumes. Readers normalise: Sequential → an explicit graph,
// Keras 3 wrapper objects (dtype policies, `__keras_tensor__` inbound nodes) → plain values, weight names →
// their role ('kernel', 'bias', 'gamma', …). The converter never sees a file layout or a config dialect.

/** One tensor produced by a layer call: `layer` is the producing layer's name in the same (sub)model. */
export interface KTensorRef {
  layer: string;
  /** Which call of that layer: 0-based index into its calls (normalizeConfig removes the offset Keras adds for nested models). */
  node: number;
  /** Which of that call's outputs. */
  tensor: number;
}

export interface KLayer {
  /** Keras class name: 'Conv2D', 'Dense', …; 'InputLayer'; 'Functional' | 'Sequential' | 'Model' for a nested model. */
  className: string;
  name: string;
  /**
   * The layer's config with dialect differences removed: `dtype` a plain string, initializers/regularizers/
   * constraints dropped, shapes as arrays (null for unknown dims), `batch_input_shape` → `batch_shape`.
   */
  config: Record<string, unknown>;
  /** One entry per call of the layer, each listing the tensors it consumed, in argument order. */
  inbound: KTensorRef[][];
  /** For a nested model: its own graph (its layers' weights are keyed `<this layer's name>/<inner name>`). */
  model?: KModel;
}

export interface KModel {
  name: string;
  /** Layers in topological order; InputLayer entries are explicit (synthesised for Sequential models). */
  layers: KLayer[];
  inputs: KTensorRef[];
  outputs: KTensorRef[];
}

/** A weight in Keras layout (HWIO kernels, (in, out) dense kernels), row-major float32 (dequantised). */
export interface KWeight {
  /** Role within the layer, without layer prefix or ':0': kernel, bias, gamma, beta, moving_mean, moving_variance,
   * depthwise_kernel, pointwise_kernel, alpha, mean, variance, count, … */
  name: string;
  shape: number[];
  data: Float32Array;
}

export type KerasFileFormat = 'keras2-h5' | 'keras3-legacy-h5' | 'keras-weights-h5' | 'keras3-zip' | 'tfjs-layers';

export interface KerasImport {
  format: KerasFileFormat;
  /** As recorded in the file ('2.3.1', '3.12.1'); null when the file does not say. */
  kerasVersion: string | null;
  model: KModel;
  /** Layer path ('dense_1', or 'vgg19/block1_conv1' inside a nested model 'vgg19') → its weights in Keras variable order. */
  weights: Map<string, KWeight[]>;
}
