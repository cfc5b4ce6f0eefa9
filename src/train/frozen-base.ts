// The frozen base of a fine-tune: the installed VGG19/InceptionV3 graph cut at its feature layer, weights read
// into the graph, run by ONNX Runtime (in the training child process) to produce the features the head trains on.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { RawImage } from '../image/io.js';
import { pruneUnused } from '../onnx/autodiff.js';
import { type GraphProto, decodeModel, encodeModel, makeValueInfo } from '../onnx/proto.js';
import { materializeExternal } from '../ops/grad-session.js';
import { type PreprocessingSpec, toInputTensor } from '../image/preprocess.js';
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
    if (!produced.has(o)) throw problem(422, 'base-layer-missing', `base model ${modelPath} has no layer '${o}' to cut at (--feature-layer names an output of one of its graph's nodes)`);
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

/**
 * What runs the cut base: an in-process ORT session (the CLI's training child), or — for a job in the service —
 * the inference engine's worker threads (./engine-base-runner.ts), so HTTP never waits on it.
 */
export interface BaseRunner {
  run(input: string, x: Float32Array, dims: number[], fetches: string[]): Promise<Record<string, { dims: readonly number[]; data: Float32Array }>>;
  release(): Promise<void>;
}

export type BaseRunnerFactory = (model: Uint8Array) => Promise<BaseRunner>;

/** The default runner: an ORT session in this process. */
export const ortBaseRunner: BaseRunnerFactory = async (model) => {
  const session = await ort.InferenceSession.create(model, ortOptions());
  return {
    async run(input, x, dims, fetches) {
      const out = await session.run({ [input]: new ort.Tensor('float32', x, dims) }, fetches);
      return Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { dims: t.dims.map(Number), data: t.data as Float32Array }]));
    },
    release: () => session.release(),
  };
};

/** Name of the global-average-pooled feature vector ([N, C]) the extractor outputs. */
export const POOLED = 'pooled';

/** Layout of the spatial maps handed to a trainer: tfjs trains channels-last, the ORT trainer NCHW. */
export type MapLayout = 'NHWC' | 'NCHW';

/** Mean over H and W of NCHW maps: [N, C]. */
function globalAveragePool(data: Float32Array, n: number, c: number, hw: number): Float32Array {
  const out = new Float32Array(n * c);
  for (let i = 0; i < n * c; i++) {
    let s = 0;
    for (let j = 0; j < hw; j++) s += data[i * hw + j]!;
    out[i] = s / hw;
  }
  return out;
}

/**
 * ORT session over the cut base. Fetches `pooled` ([N, C]: the feature layer global-average-pooled — or as it is
 * when it is already a vector) and spatial maps by name.
 */
export class FeatureExtractor {
  /** Rank of the feature layer (4: a map the head pools; 2: a vector), known after the first run. */
  featureRank: number | undefined;

  private constructor(private readonly runner: BaseRunner, readonly geom: Geometry, readonly mode: PreprocessingSpec,
    private readonly featureLayer: string, private readonly inputName: string, readonly layout: MapLayout) {}

  static async create(graph: GraphProto, featureLayer: string, geom: Geometry, mode: PreprocessingSpec, inputName: string, layout: MapLayout, runner: BaseRunnerFactory = ortBaseRunner): Promise<FeatureExtractor> {
    const bytes = encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'convserve finetune', graph });
    return new FeatureExtractor(await runner(bytes), geom, mode, featureLayer, inputName, layout);
  }

  /**
   * Runs `images` (decoded RGB) through the base in batches; `prepare` turns each into an input-size image
   * (centre crop, or an augmentation). Spatial maps come back in the extractor's layout.
   */
  async run(count: number, image: (i: number) => Promise<RawImage>, fetches: string[], onBatch?: (done: number) => void, batch = 8): Promise<Record<string, Extracted>> {
    const { height, width } = this.geom;
    const per = 3 * height * width;
    const parts: Record<string, Float32Array[]> = Object.fromEntries(fetches.map((f) => [f, []]));
    const shapes: Record<string, number[]> = {};
    const names = [...new Set(fetches.map((f) => (f === POOLED ? this.featureLayer : f)))];
    for (let s = 0; s < count; s += batch) {
      const n = Math.min(batch, count - s);
      const x = new Float32Array(n * per);
      for (let i = 0; i < n; i++) toInputTensor(await image(s + i), this.mode, x, i * per);
      const out = await this.runner.run(this.inputName, x, [n, 3, height, width], names);
      for (const f of fetches) {
        const t = out[f === POOLED ? this.featureLayer : f]!;
        const dims = t.dims.map(Number);
        const data = t.data as Float32Array;
        if (f === POOLED) {
          this.featureRank = dims.length;
          const c = dims[1]!;
          parts[f]!.push(dims.length === 4 ? globalAveragePool(data, n, c, dims[2]! * dims[3]!) : Float32Array.from(data));
          shapes[f] = [dims.length === 4 ? c : dims.slice(1).reduce((a, b) => a * b, 1)];
        } else if (dims.length === 4) {
          const [, c, h, w] = dims as [number, number, number, number];
          parts[f]!.push(this.layout === 'NHWC' ? nchwToNhwc(data, n, c, h, w) : Float32Array.from(data));
          shapes[f] = this.layout === 'NHWC' ? [h, w, c] : [c, h, w];
        } else {
          parts[f]!.push(Float32Array.from(data));
          shapes[f] = dims.slice(1);
        }
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
    return this.runner.release();
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
