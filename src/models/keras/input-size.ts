// The spatial size of an imported model's input: declared by the model, given by the user (--input-size) when
// the model leaves it open, or the known architecture's default — and whether the converted graph may take
// other sizes than the one it was converted at (DeepDream's octaves and style transfer run at any size).
import type { GraphBuilder } from '../../onnx/builder.js';
import { makeValueInfo } from '../../onnx/proto.js';
import { KerasImportError } from './errors.js';
import type { KModel } from './ir.js';

export interface InputSize { height: number; width: number }

/** Parses `HxW` (e.g. `224x224`, `28X28`); throws a 422 `keras-import-input-size` otherwise. */
export function parseInputSize(text: string): InputSize {
  const m = /^\s*(\d+)\s*[xX×]\s*(\d+)\s*$/.exec(text);
  const height = m ? Number(m[1]) : NaN;
  const width = m ? Number(m[2]) : NaN;
  if (!m || height < 1 || width < 1 || height > 16384 || width > 16384) {
    throw new KerasImportError('input-size', `input size '${text}' is not HxW with sides from 1 to 16384 (e.g. 224x224)`);
  }
  return { height, width };
}

/** The (height, width) the model's input layer declares; null for an open (None) dimension. */
export function declaredInputSize(model: KModel): { height: number | null; width: number | null } {
  const input = model.layers.find((l) => l.name === model.inputs[0]?.layer);
  const shape = input?.config.batch_shape;
  if (!Array.isArray(shape) || shape.length < 3) return { height: null, width: null };
  const dim = (d: unknown) => (typeof d === 'number' ? d : null);
  return { height: dim(shape[1]), width: dim(shape[2]) };
}

const SAME_PADDED_WINDOWS = new Set([
  'Conv2D', 'Convolution2D', 'DepthwiseConv2D', 'SeparableConv2D', 'SeparableConvolution2D',
  'MaxPooling2D', 'MaxPool2D', 'AveragePooling2D', 'AvgPool2D',
]);

const ints = (v: unknown): number[] => (typeof v === 'number' ? [v] : Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : []);

/**
 * True when converting the model at one size gives a graph that is exact at every size: no layer's ONNX
 * attributes depend on the input size. Only TF 'same' padding with a stride > 1 (its split depends on the size)
 * and CenterCrop (its offsets do) are size-dependent; every other emitter writes size-free attributes.
 */
export function convertsSizeFree(model: KModel): boolean {
  for (const layer of model.layers) {
    if (layer.model) {
      if (!convertsSizeFree(layer.model)) return false;
      continue;
    }
    if (layer.className === 'CenterCrop') return false;
    if (!SAME_PADDED_WINDOWS.has(layer.className)) continue;
    if (String(layer.config.padding ?? 'valid').toLowerCase() !== 'same') continue;
    const strides = layer.config.strides ?? layer.config.pool_size ?? 1;
    if (ints(strides).some((s) => s > 1)) return false;
  }
  return true;
}

/** Makes the graph input's height and width symbolic (`H`, `W`), keeping batch and channels. */
export function relaxInputSize(graph: GraphBuilder, channels: number): void {
  const i = graph.inputs.findIndex((v) => v.name === 'input');
  if (i < 0) throw new Error('the converted graph has no input named input');
  graph.inputs[i] = makeValueInfo('input', 'float32', ['N', channels, 'H', 'W']);
}
