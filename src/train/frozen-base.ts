// The frozen base of a fine-tune: the installed VGG19/InceptionV3 graph cut at its feature layer, weights read
// into the graph, run by ONNX Runtime (in the training child process) to produce the features the head trains on.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { RawImage } from '../image/io.js';
import { pruneUnused } from '../onnx/autodiff.js';
import { GraphBuilder } from '../onnx/builder.js';
import { type GraphProto, decodeModel, encodeModel, makeValueInfo } from '../onnx/proto.js';
import { materializeExternal } from '../ops/grad-session.js';
import { toInputTensor } from '../ops/preprocess.js';
import { problem } from './dataset.js';

export interface Geometry { height: number; width: number; channels: 3 }


/**
 * The base's graph with `outputs` as its only outputs, everything after them pruned, and the external weights the
 * rest needs read into the graph (self-contained: no model.weights.bin lookup relative to the working directory).
 */
export function cutBaseGraph(modelPath: string, outputs: string[]): GraphProto {
  const model = decodeModel(readFileSync(modelPath));
  const graph = model.graph!;
  const produced = new Set((graph.node ?? []).flatMap((n) => n.output ?? []));
  for (const o of outputs) {
    if (!produced.has(o)) throw problem(422, 'base-layer-missing', `base model ${modelPath} has no layer '${o}' to cut at (is it a VGG19/InceptionV3 graph from 'convserve models'?)`);
  }
  const pruned = pruneUnused({ ...graph, output: outputs.map((o) => makeValueInfo(o, 'float32')), valueInfo: [] });
  materializeExternal(pruned.initializer ?? [], dirname(modelPath));
  return pruned;
}

const ORT_THREADS = Math.max(1, Math.min(4, availableParallelism()));
const ortOptions = (threads = ORT_THREADS): ort.InferenceSession.SessionOptions => ({
  logSeverityLevel: 3, intraOpNumThreads: threads, interOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
});

export interface Extracted { data: Float32Array; shape: number[] }

/** ORT session over the cut base: outputs `pooled` ([N, C], GAP of the feature layer) and the requested maps. */
export class FeatureExtractor {
  private constructor(private readonly session: ort.InferenceSession, readonly geom: Geometry, readonly mode: 'caffe' | 'tf') {}

  static async create(graph: GraphProto, featureLayer: string, geom: Geometry, mode: 'caffe' | 'tf'): Promise<FeatureExtractor> {
    const g = GraphBuilder.fromGraph(graph, 'features');
    const gap = g.node('GlobalAveragePool', [featureLayer], {}, { outputs: ['ft_gap'] });
    g.node('Flatten', [gap], { axis: 1 }, { outputs: ['pooled'] });
    g.output('pooled', 'float32');
    const bytes = encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'convserve finetune', graph: g.toGraph() });
    return new FeatureExtractor(await ort.InferenceSession.create(bytes, ortOptions()), geom, mode);
  }

  /**
   * Runs `images` (decoded RGB) through the base in batches; `prepare` turns each into an input-size image
   * (centre crop, or an augmentation). Spatial maps come back NHWC (tfjs layout).
   */
  async run(count: number, image: (i: number) => Promise<RawImage>, fetches: string[], onBatch?: (done: number) => void, batch = 8): Promise<Record<string, Extracted>> {
    const { height, width } = this.geom;
    const per = 3 * height * width;
    const parts: Record<string, Float32Array[]> = Object.fromEntries(fetches.map((f) => [f, []]));
    const shapes: Record<string, number[]> = {};
    for (let s = 0; s < count; s += batch) {
      const n = Math.min(batch, count - s);
      const x = new Float32Array(n * per);
      for (let i = 0; i < n; i++) toInputTensor(await image(s + i), this.mode, x, i * per);
      const out = await this.session.run({ input: new ort.Tensor('float32', x, [n, 3, height, width]) }, fetches);
      for (const f of fetches) {
        const t = out[f]!;
        const dims = t.dims.map(Number);
        const data = t.data as Float32Array;
        if (dims.length === 4) {
          const [, c, h, w] = dims as [number, number, number, number];
          parts[f]!.push(nchwToNhwc(data, n, c, h, w));
          shapes[f] = [h, w, c];
        } else {
          parts[f]!.push(Float32Array.from(data));
          shapes[f] = dims.slice(1);
        }
        t.dispose?.();
      }
      onBatch?.(s + n);
    }
    const result: Record<string, Extracted> = {};
    for (const f of fetches) {
      const per1 = shapes[f]!.reduce((a, b) => a * b, 1);
      const all = new Float32Array(count * per1);
      let off = 0;
      for (const p of parts[f]!) { all.set(p, off); off += p.length; }
      result[f] = { data: all, shape: shapes[f]! };
    }
    return result;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export function nchwToNhwc(data: Float32Array, n: number, c: number, h: number, w: number): Float32Array {
  const out = new Float32Array(n * c * h * w);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((b * h + y) * w + x) * c + ch] = data[((b * c + ch) * h + y) * w + x]!;
  return out;
}
