// Classification: the one core function behind POST /v1/classify and `convserve classify`.
// Concurrent requests for one model are merged into batches by a per-model queue (max size and max wait
// configurable); the batch is formed when the engine is ready to run it, so requests that arrive while
// it is busy ride together.
import type { Engine } from '../engine/engine.js';
import { type InvertMode, toInputTensor } from '../image/preprocess.js';
import type { RawImage } from '../image/raw.js';
import { type ResizeMode, resizeForModel } from '../image/resize.js';
import type { Labels, Manifest } from '../models/manifest.js';
import { badRequest } from '../util/problem.js';

/** A loaded classification model, as the engine knows it. */
export interface ClassifierModel {
  name: string;
  /** Engine session key. */
  sessionKey: string;
  manifest: Manifest;
  labels: Labels;
}

export interface Prediction {
  index: number;
  wnid?: string;
  label: string;
  probability: number;
}

export interface ClassifyOptions {
  top: number;
  resize: ResizeMode;
  invert?: InvertMode;
  /** The caller went away: an image still waiting for its batch leaves the queue (the batch it joined runs on). */
  signal?: AbortSignal;
}

export interface ClassifyResult {
  predictions: Prediction[];
  timing_ms: { preprocess: number; queue: number; infer: number };
  batch_size: number;
}

interface Item {
  input: Float32Array;
  resolve: (r: { probs: Float32Array; queueMs: number; inferMs: number; batch: number }) => void;
  reject: (e: unknown) => void;
}

export interface BatchingOptions {
  maxBatch: number;
  batchWaitMs: number;
}

/** Per-model request-batching queue in front of the engine. */
class Batcher {
  private pending: Item[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Batch sizes run so far (for metrics). */
  readonly batchSizes: number[] = [];

  constructor(private readonly engine: Engine, private readonly model: ClassifierModel, private readonly opts: BatchingOptions, private readonly maxInFlight: number) {}

  submit(input: Float32Array, signal?: AbortSignal): Promise<{ probs: Float32Array; queueMs: number; inferMs: number; batch: number }> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) { reject(signal.reason); return; }
      const item: Item = { input, resolve, reject };
      this.pending.push(item);
      if (signal) {
        const drop = () => {
          const i = this.pending.indexOf(item);
          if (i >= 0) { this.pending.splice(i, 1); reject(signal.reason); }
        };
        signal.addEventListener('abort', drop, { once: true });
        const settle = <T>(fn: (v: T) => void) => (v: T) => { signal.removeEventListener('abort', drop); fn(v); };
        item.resolve = settle(resolve);
        item.reject = settle(reject);
      }
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer || this.pending.length === 0 || this.inFlight >= this.maxInFlight) return;
    const fire = () => { this.timer = undefined; this.launch(); };
    if (this.opts.batchWaitMs > 0 && this.pending.length < this.opts.maxBatch) this.timer = setTimeout(fire, this.opts.batchWaitMs);
    else { this.timer = setImmediate(fire) as unknown as NodeJS.Timeout; }
  }

  private launch(): void {
    if (this.pending.length === 0) return;
    this.inFlight++;
    const { height, width, channels } = this.model.manifest.input;
    const per = channels * height * width;
    let batch: Item[] = [];
    // The batch is cut when the engine is ready to run it: everything that arrived meanwhile joins.
    const feeds = () => {
      batch = this.pending.splice(0, this.opts.maxBatch);
      const data = new Float32Array(batch.length * per);
      batch.forEach((it, i) => data.set(it.input, i * per));
      return { [this.model.manifest.input.name]: { dims: [batch.length, channels, height, width], data } };
    };
    this.engine.run(this.model.sessionKey, feeds, { priority: 'interactive', fetches: [this.model.manifest.output.name] }).then((r) => {
      const out = r.outputs[this.model.manifest.output.name]!;
      const classes = out.dims[1]!;
      this.batchSizes.push(batch.length);
      batch.forEach((it, i) => it.resolve({ probs: out.data.slice(i * classes, (i + 1) * classes), queueMs: r.queueMs, inferMs: r.computeMs, batch: batch.length }));
    }, (e: unknown) => {
      // The engine failed before cutting the batch: fail what is pending now.
      if (batch.length === 0) batch = this.pending.splice(0, this.opts.maxBatch);
      for (const it of batch) it.reject(e);
    }).finally(() => {
      this.inFlight--;
      this.schedule();
    });
  }
}

export class Classifier {
  private readonly batchers = new Map<string, Batcher>();

  constructor(private readonly engine: Engine, private readonly opts: BatchingOptions, private readonly maxInFlight = 1) {}

  private batcher(model: ClassifierModel): Batcher {
    const key = `${model.name}\u0000${model.sessionKey}`;
    let b = this.batchers.get(key);
    if (!b) {
      b = new Batcher(this.engine, model, this.opts, this.maxInFlight);
      this.batchers.set(key, b);
    }
    return b;
  }

  /** Batch sizes run so far, across models (metrics). */
  batchSizes(): number[] {
    return [...this.batchers.values()].flatMap((b) => b.batchSizes);
  }

  async classify(model: ClassifierModel, image: RawImage, opts: ClassifyOptions): Promise<ClassifyResult> {
    const classes = model.manifest.output.classes;
    if (!Number.isInteger(opts.top) || opts.top < 1 || opts.top > classes) {
      throw badRequest('invalid-parameter', `top must be an integer from 1 to ${classes} (the number of classes of '${model.name}'); got ${opts.top}.`);
    }
    const t0 = performance.now();
    const geom = model.manifest.input;
    const resized = await resizeForModel(image, geom, opts.resize);
    const input = new Float32Array(geom.channels * geom.height * geom.width);
    toInputTensor(resized, model.manifest.preprocessing, input, 0, { channels: geom.channels, invert: opts.invert });
    const preprocessMs = performance.now() - t0;
    const r = await this.batcher(model).submit(input, opts.signal);
    return {
      predictions: topK(r.probs, opts.top, model.labels),
      timing_ms: { preprocess: round(preprocessMs), queue: round(r.queueMs), infer: round(r.inferMs) },
      batch_size: r.batch,
    };
  }
}

/** Indices of the k largest probabilities, descending (ties: lower index first), with their labels. */
export function topK(probs: Float32Array, k: number, labels: Labels): Prediction[] {
  const idx = Array.from(probs.keys()).sort((a, b) => probs[b]! - probs[a]! || a - b).slice(0, k);
  return idx.map((i) => ({ index: i, ...(labels[i]?.wnid ? { wnid: labels[i]!.wnid } : {}), label: labels[i]?.label ?? `class_${i}`, probability: probs[i]! }));
}

const round = (ms: number) => Math.round(ms * 100) / 100;
