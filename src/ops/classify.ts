// Classification: the one core function behind POST /v1/classify and `convserve classify`.
// Concurrent requests for one model are merged into batches by a per-model queue (max size and max wait
// configurable); the batch is formed when the engine is ready to run it, so requests that arrive while
// it is busy ride together. The queue is bounded, and honours each request's abort signal and deadline.
import type { Engine } from '../engine/engine.js';
import { type InvertMode, toInputTensor } from '../image/preprocess.js';
import type { RawImage } from '../image/raw.js';
import { type ResizeMode, resizeForModel } from '../image/resize.js';
import type { Labels, Manifest } from '../models/manifest.js';
import { badRequest, tooManyRequests, unavailable } from '../util/problem.js';
import { Settlement } from '../util/settlement.js';

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

/**
 * Receives the duration (ms) of one stage of a classification: preprocess, batch (waiting for the batch to be
 * cut), queue (waiting for an engine worker), ipc (the worker round trip: both messages and the engine's
 * bookkeeping), infer (ORT's run()), post (probabilities, top-k). The stages follow each other.
 */
export type StageSink = (stage: string, ms: number) => void;

export interface ClassifyOptions {
  top: number;
  resize: ResizeMode;
  invert?: InvertMode;
  /** The client went away: the image is dropped if its batch has not started. */
  signal?: AbortSignal;
  /** Epoch ms by which the result is needed (queue + compute); past it: 503 `deadline-exceeded`. */
  deadline?: number;
  /** Where this image's stage timings go (Server-Timing); nothing is measured for it otherwise. */
  stages?: StageSink;
}

export interface ClassifyResult {
  predictions: Prediction[];
  timing_ms: { preprocess: number; queue: number; infer: number };
  batch_size: number;
}

interface Outcome {
  probs: Float32Array;
  queueMs: number;
  inferMs: number;
  batch: number;
  /** From submit until the batch was handed to the engine (0 for an image that joined it later, before its cut). */
  batchWaitMs: number;
  /** The part of the engine's queue wait after this image joined (the engine's queueMs counts from the launch). */
  ownQueueMs: number;
  /** engine.run() from call to answer (queue + worker round trip + infer). */
  engineMs: number;
  /** performance.now() when the engine's answer arrived. */
  answeredAt: number;
}

/** One image waiting for (or riding in) a batch; settles once: result, failure, abort or deadline. */
class Item extends Settlement<Outcome> {
  readonly submittedAt = performance.now();

  constructor(readonly input: Float32Array, resolve: (o: Outcome) => void, reject: (e: unknown) => void) {
    super(resolve, reject);
  }
}

/** Spare input buffers kept per model (VGG19: 588 KiB each). */
const MAX_SPARE_INPUTS = 4;

export interface BatchingOptions {
  maxBatch: number;
  batchWaitMs: number;
}

/**
 * Per-model request-batching queue in front of the engine. Its waiting line shares the engine's interactive
 * bound (CONVSERVE_ENGINE_QUEUE): one image more is refused with 429. Images whose client went away or whose
 * deadline passed leave the line before their batch is cut; a batch of one is handed to the engine as is
 * (its buffer moves to the worker, no copy).
 */
class Batcher {
  private pending: Item[] = [];
  /**
   * Input buffers back from the worker, for the next images: a fresh 588 KiB tensor cost ≈ 2.5 ms of page faults
   * on its first write here (a VM, where each fault is expensive) against ≈ 0.3 ms to refill a touched one.
   */
  private readonly spare: Float32Array[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Batch sizes run so far (for metrics). */
  readonly batchSizes: number[] = [];

  constructor(private readonly engine: Engine, private readonly model: ClassifierModel, private readonly opts: BatchingOptions, private readonly maxInFlight: number) {}

  /** A buffer for one image's input tensor: a spare one if there is one (every element is overwritten by the caller). */
  inputBuffer(length: number): Float32Array {
    const i = this.spare.findIndex((b) => b.length === length);
    return i >= 0 ? this.spare.splice(i, 1)[0]! : new Float32Array(length);
  }

  private keepSpare(buffer: Float32Array | undefined, length: number): void {
    if (buffer && buffer.length === length && this.spare.length < MAX_SPARE_INPUTS) this.spare.push(buffer);
  }

  submit(input: Float32Array, signal?: AbortSignal, deadline?: number): Promise<Outcome> {
    if (signal?.aborted) return Promise.reject(signal.reason ?? new DOMException('The operation was aborted.', 'AbortError'));
    const limit = this.engine.limits.interactiveQueue;
    if (this.pending.length >= limit) {
      const s = this.engine.retryAfterSeconds();
      return Promise.reject(tooManyRequests('engine-busy', `Too many images are waiting for '${this.model.name}' (${limit}; CONVSERVE_ENGINE_QUEUE). Retry in about ${s} s.`, s));
    }
    return new Promise((resolve, reject) => {
      const item = new Item(input, resolve, reject);
      const leave = () => { const i = this.pending.indexOf(item); if (i >= 0) this.pending.splice(i, 1); return i >= 0; };
      if (signal) {
        const onAbort = () => { if (leave()) item.reject(signal.reason ?? new DOMException('The operation was aborted.', 'AbortError')); };
        signal.addEventListener('abort', onAbort, { once: true });
        item.onSettle(() => signal.removeEventListener('abort', onAbort));
      }
      if (deadline !== undefined) {
        const t0 = performance.now();
        const timer = setTimeout(() => {
          const waiting = leave();
          item.reject(unavailable('deadline-exceeded', `The classification did not finish within the request's deadline (${Math.round(performance.now() - t0)} ms, ${waiting ? 'still waiting for a batch' : 'while computing'}); the service is busy: retry later.`, {}, this.engine.retryAfterSeconds()));
        }, Math.max(0, deadline - Date.now()));
        item.onSettle(() => clearTimeout(timer));
      }
      this.pending.push(item);
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
    let cut = false;
    // The batch is cut when the engine is ready to run it: everything that arrived meanwhile joins.
    const feeds = () => {
      cut = true;
      batch = this.pending.splice(0, this.opts.maxBatch);
      if (batch.length === 0) return null;
      const data = batch.length === 1 ? batch[0]!.input : new Float32Array(batch.length * per);
      // Several images are copied into one batch tensor: their own buffers are free again at once.
      if (batch.length > 1) batch.forEach((it, i) => { data.set(it.input, i * per); this.keepSpare(it.input, per); });
      return { [this.model.manifest.input.name]: { dims: [batch.length, channels, height, width], data } };
    };
    const launchedAt = performance.now();
    this.engine.run(this.model.sessionKey, feeds, { priority: 'interactive', fetches: [this.model.manifest.output.name] }).then((r) => {
      const answeredAt = performance.now();
      const engineMs = answeredAt - launchedAt;
      if (batch.length === 1) this.keepSpare(r.inputs?.[this.model.manifest.input.name]?.data, per);
      const out = r.outputs[this.model.manifest.output.name]!;
      const classes = out.dims[1]!;
      this.batchSizes.push(batch.length);
      batch.forEach((it, i) => {
        const joinedAt = Math.max(launchedAt, it.submittedAt);
        it.resolve({
          probs: out.data.subarray(i * classes, (i + 1) * classes), queueMs: r.queueMs, inferMs: r.computeMs, batch: batch.length,
          batchWaitMs: joinedAt - it.submittedAt, ownQueueMs: Math.max(0, r.queueMs - (joinedAt - launchedAt)), engineMs, answeredAt,
        });
      });
    }, (e: unknown) => {
      // The engine failed before cutting the batch: fail what is pending now.
      if (!cut) batch = this.pending.splice(0, this.opts.maxBatch);
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
    const batcher = this.batcher(model);
    const input = batcher.inputBuffer(geom.channels * geom.height * geom.width);
    toInputTensor(resized, model.manifest.preprocessing, input, 0, { channels: geom.channels, invert: opts.invert });
    const preprocessMs = performance.now() - t0;
    const r = await batcher.submit(input, opts.signal, opts.deadline);
    const predictions = topK(probabilitiesOf(r.probs, model.manifest.outputs), opts.top, model.labels);
    if (opts.stages) {
      const sink = opts.stages;
      sink('preprocess', preprocessMs);
      sink('batch', r.batchWaitMs);
      sink('queue', r.ownQueueMs);
      sink('ipc', Math.max(0, r.engineMs - r.queueMs - r.inferMs));
      sink('infer', r.inferMs);
      // From the engine's answer to here: settling the promises, then probabilities and top-k.
      sink('post', performance.now() - r.answeredAt);
    }
    return {
      predictions,
      timing_ms: { preprocess: round(preprocessMs), queue: round(r.queueMs), infer: round(r.inferMs) },
      batch_size: r.batch,
    };
  }
}

/**
 * The model's output as class probabilities: `logits` (a linear last layer) get a softmax; `probabilities`
 * (softmax) and `sigmoid` (independent per-class probabilities of a multi-label model) are already probabilities.
 */
export function probabilitiesOf(scores: Float32Array, outputs: Manifest['outputs']): Float32Array {
  if (outputs !== 'logits') return scores;
  let max = -Infinity;
  for (const v of scores) max = Math.max(max, v);
  const exp = new Float64Array(scores.length);
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += exp[i] = Math.exp(scores[i]! - max);
  return Float32Array.from(exp, (e) => e / sum);
}

/** Indices of the k largest probabilities, descending (ties: lower index first), with their labels. */
export function topK(probs: Float32Array, k: number, labels: Labels): Prediction[] {
  // One pass keeping the k best in order (k is small; sorting all 1000 classes per image cost more).
  const idx: number[] = [];
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (idx.length === k && !(p > probs[idx[k - 1]!]!)) continue;
    let at = idx.length === k ? k - 1 : idx.length;
    while (at > 0 && p > probs[idx[at - 1]!]!) at--;
    if (idx.length === k) idx.pop();
    idx.splice(at, 0, i);
  }
  return idx.map((i) => ({ index: i, ...(labels[i]?.wnid ? { wnid: labels[i]!.wnid } : {}), label: labels[i]?.label ?? `class_${i}`, probability: probs[i]! }));
}

const round = (ms: number) => Math.round(ms * 100) / 100;
