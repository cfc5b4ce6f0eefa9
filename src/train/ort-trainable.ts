// ONNX Runtime behind the training seam (./trainable.ts). One step = one run of the training graph
// (./ort-net.ts: forward, softmax cross-entropy and every weight gradient in a single session) in the engine's
// worker thread, then the optimizer's update on Float32Arrays here (./ort-optim.ts) and the batch-norm moving
// averages (Keras: moving ← momentum·moving + (1 − momentum)·batch). The weights are graph inputs: each step feeds
// the current values (one packed buffer, moved to the worker, not copied), so nothing is ever reloaded.
// Evaluation runs the inference graph with the weights as inputs too; the export builds the same inference
// chain with the weights as initializers.
import { availableParallelism } from 'node:os';
import { Engine, type WireTensor } from '../engine/engine.js';
import type { VjpOptions } from '../onnx/autodiff.js';
import type { GraphBuilder } from '../onnx/builder.js';
import { encodeModel } from '../onnx/proto.js';
import { logger } from '../util/logger.js';
import { Prng } from '../util/prng.js';
import { type Evaluation, Scorer } from './metrics.js';
import { type LayerSpec, type NetShape, type NetSpec, appendInference, describeNet, inferenceModel, trainingGraph } from './ort-net.js';
import { Optimizer, type OptimizerConfig, type OptimizerState } from './ort-optim.js';
import type { Examples, ExportableModel, LabelledSet, TrainableModel, WeightsSnapshot } from './trainable.js';

export interface OrtTrainerOptions {
  spec: NetSpec;
  optimizer: OptimizerConfig;
  learningRate: number;
  /** Seed of the Glorot-uniform initialisation. */
  seed: number;
  /** Starting values of some parameters (a base's weights, an earlier stage's head); the rest are initialised. */
  initial?: ReadonlyMap<string, Float32Array>;
  /** ORT intra-op threads (default: every core). */
  threads?: number;
  /**
   * The training session's threads spin during each step's run (ORT allow_spinning '1', force_spinning_stop '1':
   * they stop when the run returns). Only for a trainer that has the cores to itself: with any other load on the
   * machine it made steps slower, not faster (docs/training.md "Step speed"). Default false.
   */
  spinning?: boolean;
  /** How the training graph differentiates (default TRAINING_VJP of ./ort-net.ts). */
  vjp?: VjpOptions;
}

/** Weights and optimizer state: everything a run needs to continue exactly where it stopped. */
export interface TrainerCheckpoint {
  weights: Record<string, Float32Array>;
  optimizer: OptimizerState;
}

class OrtSnapshot implements WeightsSnapshot {
  constructor(readonly weights: Map<string, Float32Array>) {}
  release(): void {
    this.weights.clear();
  }
}

const prod = (d: readonly number[]) => d.reduce((a, b) => a * b, 1);

/** Glorot-uniform kernels, zero biases and offsets, unit scales and variances (Keras' defaults). */
export function initialWeights(shape: NetShape, seed: number, initial?: ReadonlyMap<string, Float32Array>): Map<string, Float32Array> {
  const rng = new Prng(seed);
  const weights = new Map<string, Float32Array>();
  for (const p of shape.params) {
    const size = prod(p.dims);
    const given = initial?.get(p.name);
    if (given) {
      if (given.length !== size) throw new Error(`initial value of ${p.name} has ${given.length} values, [${p.dims}] needs ${size}`);
      weights.set(p.name, Float32Array.from(given));
      continue;
    }
    const w = new Float32Array(size);
    if (p.init === 'glorot') {
      const limit = Math.sqrt(6 / (p.fans![0] + p.fans![1]));
      rng.fillUniform(w, -limit, limit);
    } else if (p.init === 'ones') w.fill(1);
    weights.set(p.name, w);
  }
  return weights;
}

/** Feeds packed into one fresh buffer: the engine moves it to the worker in one transfer. */
function packFeeds(entries: [string, number[], ArrayLike<number> | ((out: Float32Array) => void)][]): Record<string, WireTensor> {
  const total = entries.reduce((s, [, dims]) => s + prod(dims), 0);
  const buffer = new Float32Array(total);
  const feeds: Record<string, WireTensor> = {};
  let offset = 0;
  for (const [name, dims, data] of entries) {
    const view = buffer.subarray(offset, offset + prod(dims));
    if (typeof data === 'function') data(view);
    else view.set(data);
    feeds[name] = { dims, data: view };
    offset += view.length;
  }
  return feeds;
}

let sessionCounter = 0;

export class OrtTrainable implements TrainableModel {
  readonly shape: NetShape;
  readonly optimizer: Optimizer;
  private weights: Map<string, Float32Array>;
  private readonly trainKey = `train-${process.pid}-${++sessionCounter}`;
  private readonly evalKey = `eval-${process.pid}-${sessionCounter}`;
  private readonly fetches: string[];
  private readonly graph: ReturnType<typeof trainingGraph>;

  private constructor(readonly spec: NetSpec, private readonly engine: Engine, o: OrtTrainerOptions) {
    this.shape = describeNet(spec);
    this.optimizer = new Optimizer(o.optimizer, o.learningRate);
    this.weights = initialWeights(this.shape, o.seed, o.initial);
    this.graph = trainingGraph(spec, o.vjp);
    this.fetches = [this.graph.loss, this.graph.logits, ...Object.values(this.graph.grads), ...this.graph.stats.flatMap((s) => [s.mean, s.variance])];
  }

  /** A trainer with its training and evaluation sessions loaded in a fresh one-worker engine. */
  static async create(o: OrtTrainerOptions): Promise<OrtTrainable> {
    const engine = new Engine({ workers: 1, threads: o.threads ?? availableParallelism(), taskTimeoutMs: 3_600_000, logger });
    await engine.start();
    const t = new OrtTrainable(o.spec, engine, o);
    try {
      await engine.load(t.trainKey, { bytes: t.graph.bytes }, { spinning: o.spinning ?? false });
      const evalGraph = inferenceModel(o.spec, { kind: 'inputs' }, 'evaluate').toGraph();
      await engine.load(t.evalKey, { bytes: encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'convserve train', graph: evalGraph }) });
    } catch (e) {
      await engine.stop();
      throw e;
    }
    return t;
  }

  get parameters(): number {
    return this.shape.params.filter((p) => p.trainable).reduce((s, p) => s + prod(p.dims), 0);
  }

  setLearningRate(lr: number): void {
    this.optimizer.learningRate = lr;
  }

  /** The current value of every parameter and moving statistic (live arrays: copy before keeping). */
  get values(): ReadonlyMap<string, Float32Array> {
    return this.weights;
  }

  private weightFeeds(trainableOnly: boolean): [string, number[], Float32Array][] {
    return this.shape.params.filter((p) => !trainableOnly || p.trainable).map((p) => [p.name, p.dims, this.weights.get(p.name)!]);
  }

  async step(batch: LabelledSet, dropoutSeed: number): Promise<{ loss: number; acc: number }> {
    const n = batch.y.length;
    const k = this.shape.classes;
    const rng = new Prng(dropoutSeed);
    const masks = this.shape.masks.filter((m) => m.rate > 0).map((m): [string, number[], (out: Float32Array) => void] => [m.name, [n, ...m.shape], (out) => {
      rng.fillUniform(out, 0, 1);
      for (let i = 0; i < out.length; i++) out[i] = out[i]! >= m.rate ? 1 : 0;
    }]);
    const feeds = packFeeds([
      ['x', [n, ...this.spec.input], batch.x.data.subarray(0, n * prod(this.spec.input))],
      ['labels', [n, k], (out) => { for (let i = 0; i < n; i++) out[i * k + batch.y[i]!] = 1; }],
      ...this.weightFeeds(true),
      ...masks,
    ]);
    const { outputs } = await this.engine.run(this.trainKey, feeds, { fetches: this.fetches });
    const grads = new Map(Object.entries(this.graph.grads).map(([p, out]) => [p, outputs[out]!.data]));
    this.optimizer.apply(this.weights, grads);
    for (const s of this.graph.stats) {
      const layer = this.spec.layers.find((l) => l.name === s.layer);
      const momentum = layer?.kind === 'batchNorm' ? layer.momentum : 0.99;
      for (const [stat, out] of [['moving_mean', s.mean], ['moving_variance', s.variance]] as const) {
        const moving = this.weights.get(`${s.layer}/${stat}`)!;
        const batchValue = outputs[out]!.data;
        for (let i = 0; i < moving.length; i++) moving[i] = momentum * moving[i]! + (1 - momentum) * batchValue[i]!;
      }
    }
    const logits = outputs[this.graph.logits]!.data;
    let correct = 0;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 1; c < k; c++) if (logits[i * k + c]! > logits[i * k + best]!) best = c;
      if (best === batch.y[i]) correct++;
    }
    return { loss: outputs[this.graph.loss]!.data[0]!, acc: correct / n };
  }

  /** Probabilities of `count` examples (layout [N, ...spec.input]) with the current weights. */
  async probabilities(x: Examples, count: number): Promise<Float32Array> {
    const feeds = packFeeds([['input', [count, ...this.spec.input], x.data.subarray(0, count * prod(this.spec.input))], ...this.weightFeeds(false)]);
    const { outputs } = await this.engine.run(this.evalKey, feeds, { fetches: ['probabilities'] });
    return outputs.probabilities!.data;
  }

  async evaluate(set: LabelledSet, batchSize: number): Promise<Evaluation> {
    const n = set.y.length;
    const per = prod(set.x.shape);
    const scorer = new Scorer(this.shape.classes, set.y);
    for (let s = 0; s < n; s += batchSize) {
      const e = Math.min(n, s + batchSize);
      scorer.add(await this.probabilities({ data: set.x.data.subarray(s * per, e * per), shape: set.x.shape }, e - s), e - s);
    }
    return scorer.result();
  }

  snapshot(): WeightsSnapshot {
    return new OrtSnapshot(new Map([...this.weights].map(([k, v]) => [k, Float32Array.from(v)])));
  }

  restore(snapshot: WeightsSnapshot): void {
    if (!(snapshot instanceof OrtSnapshot)) throw new Error('OrtTrainable.restore: not a snapshot of an ORT trainer');
    for (const [k, v] of snapshot.weights) this.weights.get(k)!.set(v);
  }

  checkpoint(): TrainerCheckpoint {
    return { weights: Object.fromEntries([...this.weights].map(([k, v]) => [k, Float32Array.from(v)])), optimizer: this.optimizer.saveState() };
  }

  resume(c: TrainerCheckpoint): void {
    for (const p of this.shape.params) {
      const v = c.weights[p.name];
      if (!v || v.length !== prod(p.dims)) throw new Error(`checkpoint: no value of the right size for ${p.name}`);
      this.weights.get(p.name)!.set(v);
    }
    this.optimizer.loadState(c.optimizer);
  }

  /**
   * The trained network (a copy of the current weights) as an ExportableModel. `prefix` layers without parameters
   * (a global average pool) come first: a head trained on pooled vectors is exported on the feature map. predict
   * takes examples shaped as the prefix expects (x.shape) and runs the very graph appendToOnnx appends.
   */
  exportable(prefix: LayerSpec[] = []): ExportableModel {
    if (prefix.some((l) => l.kind === 'conv' || l.kind === 'dense' || l.kind === 'batchNorm')) throw new Error('an export prefix has no parameters');
    // Shapes only matter for parameters, which the prefix does not have: a pooled [C] input comes from any [C, H, W].
    const specFor = (input: number[]): NetSpec => ({ input, layers: [...prefix, ...this.spec.layers] });
    const placeholder = prefix.length ? [this.spec.input[0]!, 1, 1] : this.spec.input;
    const values = new Map([...this.weights].map(([k, v]) => [k, Float32Array.from(v)]));
    const source = { kind: 'initializers', values } as const;
    const engine = this.engine;
    const predictors = new Map<string, Promise<string>>();
    return {
      appendToOnnx: (g: GraphBuilder, x: string) => appendInference(g, specFor(placeholder), x, source),
      async predict(x: Examples, count: number): Promise<Float32Array> {
        const shapeKey = x.shape.join('x');
        let key = predictors.get(shapeKey);
        if (!key) {
          key = (async () => {
            const k = `export-${process.pid}-${++sessionCounter}`;
            const graph = inferenceModel(specFor(x.shape), source, 'export').toGraph();
            await engine.load(k, { bytes: encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'convserve train', graph }) });
            return k;
          })();
          predictors.set(shapeKey, key);
        }
        const data = Float32Array.from(x.data.subarray(0, count * prod(x.shape)));
        const { outputs } = await engine.run(await key, { input: { dims: [count, ...x.shape], data } }, { fetches: ['probabilities'] });
        return outputs.probabilities!.data;
      },
    };
  }

  /** Stops the engine (its worker and sessions). */
  release(): Promise<void> {
    return this.engine.stop();
  }
}
