// Keras class name → the emitter that writes that layer into the ONNX graph. InputLayer and nested models
// (Functional, Model, Sequential) are handled by the converter itself.
import {
  emitActivation, emitELU, emitLeakyReLU, emitPReLU, emitReLU, emitSoftmax, emitThresholdedReLU,
} from './activations.js';
import type { EmitContext, KTensor } from './context.js';
import { emitConv2D, emitConv2DTranspose, emitDepthwiseConv2D, emitSeparableConv2D } from './conv.js';
import { emitDense, emitFlatten, emitIdentity, emitPermute, emitReshape } from './core.js';
import { emitAdd, emitAverage, emitConcatenate, emitMaximum, emitMinimum, emitMultiply, emitSubtract } from './merge.js';
import { emitBatchNormalization, emitLayerNormalization, emitNormalization, emitRescaling } from './normalization.js';
import { emitAveragePooling2D, emitGlobalAveragePooling2D, emitGlobalMaxPooling2D, emitMaxPooling2D } from './pooling.js';
import { emitCenterCrop, emitCropping2D, emitResizing, emitUpSampling2D, emitZeroPadding2D } from './spatial.js';

/** Emits one call of a layer; returns its output (any value name: the converter gives it the Keras name). */
export type Emitter = (ctx: EmitContext, inputs: KTensor[]) => KTensor;

/** Layers that pass their input through at inference. */
export const IDENTITY_LAYERS = new Set([
  'Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'SpatialDropout3D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout',
  'ActivityRegularization',
]);

/** Layers that can be folded into the convolution before them. */
export const FOLDABLE_INTO = new Set(['Conv2D', 'DepthwiseConv2D']);

export const EMITTERS: Record<string, Emitter> = {
  Conv2D: emitConv2D,
  Convolution2D: emitConv2D,
  DepthwiseConv2D: emitDepthwiseConv2D,
  SeparableConv2D: emitSeparableConv2D,
  SeparableConvolution2D: emitSeparableConv2D,
  Conv2DTranspose: emitConv2DTranspose,
  Deconvolution2D: emitConv2DTranspose,
  Dense: emitDense,
  BatchNormalization: emitBatchNormalization,
  LayerNormalization: emitLayerNormalization,
  Activation: emitActivation,
  ReLU: emitReLU,
  LeakyReLU: emitLeakyReLU,
  PReLU: emitPReLU,
  ELU: emitELU,
  ThresholdedReLU: emitThresholdedReLU,
  Softmax: emitSoftmax,
  MaxPooling2D: emitMaxPooling2D,
  MaxPool2D: emitMaxPooling2D,
  AveragePooling2D: emitAveragePooling2D,
  AvgPool2D: emitAveragePooling2D,
  GlobalAveragePooling2D: emitGlobalAveragePooling2D,
  GlobalAvgPool2D: emitGlobalAveragePooling2D,
  GlobalMaxPooling2D: emitGlobalMaxPooling2D,
  GlobalMaxPool2D: emitGlobalMaxPooling2D,
  Flatten: emitFlatten,
  Reshape: emitReshape,
  Permute: emitPermute,
  ZeroPadding2D: emitZeroPadding2D,
  Cropping2D: emitCropping2D,
  UpSampling2D: emitUpSampling2D,
  Concatenate: emitConcatenate,
  Add: emitAdd,
  Subtract: emitSubtract,
  Multiply: emitMultiply,
  Average: emitAverage,
  Maximum: emitMaximum,
  Minimum: emitMinimum,
  Rescaling: emitRescaling,
  Normalization: emitNormalization,
  Resizing: emitResizing,
  CenterCrop: emitCenterCrop,
  ...Object.fromEntries([...IDENTITY_LAYERS].map((c) => [c, emitIdentity])),
};
