// Independent oracles for the explanation tests (tfjs, CPU backend; tf.grad for every gradient):
//
// - kerasHeads: VGG19 / InceptionV3 as tfjs-layers models (test/models-reference.ts, written from the Keras
//   source, independently of src/models/architectures) loaded with the same synthetic Keras weights. Grad-CAM
//   and saliency are computed on them with the pre-softmax logits of the `predictions` Dense layer.
// - OnnxInTf: a model.onnx re-executed op by op with tfjs ops (its own kernels and its own autodiff), for the
//   graphs tfjs-layers cannot reproduce exactly: InceptionV3's 'same' average pools (tfjs's avgPool gradient
//   counts the padding; the sums/counts are built from depthwise convolutions here instead) and the committed
//   MNIST convnet.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { synthesizeKerasWeights } from '../src/models/synth.js';
import { type NodeProto, type TensorProto, attributeValue, decodeModel, tensorToFloat32 } from '../src/onnx/proto.js';
import { materializeExternal } from '../src/ops/grad-session.js';
import { tfCpu } from './autodiff-util.js';
import { kerasInceptionV3, kerasVGG19, loadWeights, tf } from './models-reference.js';

export { tf };

/** The pure-JS CPU backend: tfjs-wasm's max-pool gradient loses the gradient of tied windows (e.g. all-zero ones). */
export const tfReady = tfCpu;

/** NCHW → NHWC copy of one image. */
export function nchwToNhwc(x: Float32Array, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let k = 0; k < c; k++) for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) out[(i * w + j) * c + k] = x[(k * h + i) * w + j]!;
  return out;
}

export interface KerasClassifier {
  model: tf.LayersModel;
  /** Pre-softmax logits [1, classes] from the output of `from` (a layer of the sequential head after it). */
  logitsFrom(from: string, act: tf.Tensor): tf.Tensor;
}

export async function kerasClassifier(arch: 'vgg19' | 'inception_v3', width: number): Promise<KerasClassifier> {
  await tfReady();
  const model = arch === 'vgg19' ? kerasVGG19({ includeTop: true, width }) : kerasInceptionV3({ includeTop: true, width });
  loadWeights(model, synthesizeKerasWeights(arch, { width, includeTop: true }));
  const logitsFrom = (from: string, act: tf.Tensor): tf.Tensor => {
    const start = model.layers.findIndex((l) => l.name === from);
    let h = act;
    for (const layer of model.layers.slice(start + 1)) {
      if (layer.name === 'predictions') {
        const [kernel, bias] = layer.getWeights();
        return tf.add(tf.matMul(h as tf.Tensor2D, kernel as tf.Tensor2D), bias!);
      }
      h = layer.apply(h) as tf.Tensor;
    }
    throw new Error('no predictions layer');
  };
  return { model, logitsFrom };
}

/** Grad-CAM on a tfjs-layers model: ReLU(Σ_k mean_hw(dS/dA_k)·A_k) for class `cls` (−1: top). NHWC input. */
export function kerasGradcam(k: KerasClassifier, layer: string, xNhwc: tf.Tensor, cls: number): { cam: Float32Array; h: number; w: number; top: number } {
  return tf.tidy(() => {
    const sub = tf.model({ inputs: k.model.inputs, outputs: k.model.getLayer(layer).output as tf.SymbolicTensor });
    const act = sub.predict(xNhwc) as tf.Tensor4D;
    const top = tf.argMax(k.logitsFrom(layer, act), 1).dataSync()[0]!;
    const c = cls < 0 ? top : cls;
    const score = (a: tf.Tensor): tf.Scalar => tf.sum(tf.slice(k.logitsFrom(layer, a), [0, c], [1, 1]));
    const g = tf.grad(score)(act);
    const alpha = tf.mean(g, [1, 2], true);
    const cam = tf.relu(tf.sum(tf.mul(act, alpha), 3));
    return { cam: Float32Array.from(cam.dataSync()), h: act.shape[1], w: act.shape[2], top };
  });
}

type Value = tf.Tensor;

/** A classifier model.onnx executed op by op in tfjs (4-D values kept in ONNX's NCHW layout). */
export class OnnxInTf {
  private readonly nodes: NodeProto[];
  private readonly weights = new Map<string, tf.Tensor>();
  readonly input: string;

  constructor(modelPath: string) {
    const model = decodeModel(readFileSync(modelPath));
    const graph = model.graph!;
    materializeExternal(graph.initializer as TensorProto[], dirname(modelPath));
    for (const t of graph.initializer ?? []) this.weights.set(t.name!, tf.tensor(tensorToFloat32(t), (t.dims ?? []).map(Number)));
    this.nodes = graph.node ?? [];
    this.input = graph.input![0]!.name!;
  }

  /** Every value of the forward pass on `x` (NCHW), with `replace`d values taken as given; call inside tf.tidy. */
  forward(x: tf.Tensor, replace: Map<string, Value> = new Map()): Map<string, Value> {
    const vals = new Map<string, Value>([[this.input, x]]);
    const get = (n: string): Value => vals.get(n) ?? this.weights.get(n)!;
    const nhwc = (t: Value) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;
    const nchw = (t: Value) => tf.transpose(t, [0, 3, 1, 2]);
    for (const n of this.nodes) {
      const given = replace.get(n.output![0]!);
      if (given) { vals.set(n.output![0]!, given); continue; }
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      const a = Object.fromEntries((n.attribute ?? []).map((at) => [at.name!, attributeValue(at)])) as Record<string, any>;
      const ins = (n.input ?? []).map(get);
      const pads = (p: number[] | undefined): [[number, number], [number, number], [number, number], [number, number]] =>
        [[0, 0], [p?.[0] ?? 0, p?.[2] ?? 0], [p?.[1] ?? 0, p?.[3] ?? 0], [0, 0]];
      let y: Value;
      switch (n.opType) {
        case 'Conv': {
          if ((a.group ?? 1) !== 1) throw new Error('oracle: grouped Conv');
          const k = tf.transpose(ins[1]!, [2, 3, 1, 0]) as tf.Tensor4D;
          y = tf.conv2d(nhwc(ins[0]!), k, (a.strides as [number, number]) ?? 1, pads(a.pads));
          if (ins[2]) y = tf.add(y, ins[2]);
          y = nchw(y);
          break;
        }
        case 'Relu': y = tf.relu(ins[0]!); break;
        case 'Tanh': y = tf.tanh(ins[0]!); break;
        case 'Identity': y = ins[0]!; break;
        case 'MaxPool': {
          if ((a.pads ?? [0]).some((p: number) => p !== 0)) throw new Error('oracle: padded MaxPool');
          y = nchw(tf.maxPool(nhwc(ins[0]!), a.kernel_shape as [number, number], a.strides as [number, number], 'valid'));
          break;
        }
        case 'AveragePool': {
          if ((a.count_include_pad ?? 0) !== 0) throw new Error('oracle: count_include_pad AveragePool');
          const [kh, kw] = a.kernel_shape as [number, number];
          const xin = nhwc(ins[0]!);
          const c = xin.shape[3];
          const sum = tf.depthwiseConv2d(xin, tf.ones([kh, kw, c, 1]) as tf.Tensor4D, a.strides as [number, number], pads(a.pads));
          const cnt = tf.conv2d(tf.ones([1, xin.shape[1], xin.shape[2], 1]) as tf.Tensor4D, tf.ones([kh, kw, 1, 1]) as tf.Tensor4D, a.strides as [number, number], pads(a.pads));
          y = nchw(tf.div(sum, cnt));
          break;
        }
        case 'Concat': y = tf.concat(ins, a.axis as number); break;
        case 'GlobalAveragePool': y = tf.mean(ins[0]!, [2, 3], true); break;
        case 'Flatten': y = tf.reshape(ins[0]!, [ins[0]!.shape[0]!, -1]); break;
        case 'Transpose': y = tf.transpose(ins[0]!, a.perm as number[]); break;
        case 'Gemm': {
          const A = a.transA ? tf.transpose(ins[0]!) : ins[0]!;
          const B = a.transB ? tf.transpose(ins[1]!) : ins[1]!;
          y = tf.mul(tf.matMul(A as tf.Tensor2D, B as tf.Tensor2D), a.alpha ?? 1);
          if (ins[2]) y = tf.add(y, tf.mul(ins[2], a.beta ?? 1));
          break;
        }
        case 'Softmax': y = tf.softmax(ins[0]!, a.axis ?? -1); break;
        default: throw new Error(`oracle: op ${n.opType} not implemented`);
      }
      vals.set(n.output![0]!, y);
    }
    return vals;
  }

  /** The value feeding the final Softmax (the pre-softmax logits). */
  logitsName(): string {
    const sm = this.nodes.find((n) => n.opType === 'Softmax');
    if (!sm) throw new Error('oracle: no Softmax');
    return sm.input![0]!;
  }

  /** Pre-softmax logits of an NCHW batch. */
  logits(x: Float32Array, dims: number[]): Float32Array {
    return tf.tidy(() => Float32Array.from(this.forward(tf.tensor(x, dims)).get(this.logitsName())!.dataSync()));
  }

  /** d logit_c / d x for one NCHW image. */
  inputGradient(x: Float32Array, dims: number[], cls: number): Float32Array {
    return tf.tidy(() => {
      const f = (xx: tf.Tensor): tf.Scalar => tf.sum(tf.slice(this.forward(xx).get(this.logitsName())!, [0, cls], [1, 1]));
      return Float32Array.from(tf.grad(f)(tf.tensor(x, dims)).dataSync());
    });
  }

  /** Grad-CAM at `layer` (the rest of the network re-run from the layer's value). */
  gradcam(x: Float32Array, dims: number[], layer: string, cls: number): Float32Array {
    return tf.tidy(() => {
      const act = this.forward(tf.tensor(x, dims)).get(layer)!;
      const score = (a: tf.Tensor): tf.Scalar =>
        tf.sum(tf.slice(this.forward(tf.tensor(x, dims), new Map([[layer, a]])).get(this.logitsName())!, [0, cls], [1, 1]));
      const g = tf.grad(score)(act);
      return Float32Array.from(tf.relu(tf.sum(tf.mul(act, tf.mean(g, [2, 3], true)), 1)).dataSync());
    });
  }
}
