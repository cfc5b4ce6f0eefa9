// A fine-tune driven one epoch at a time (the `finetune` job: one job step = one epoch), with a plain-data
// snapshot after every epoch from which a restarted process continues at that epoch. The recipe is
// `convserve finetune`'s stage 1 (./finetune-task.ts): the same decode and class-balanced split, the same cached
// features of the frozen base, the same head on ONNX Runtime, the warm-up + cosine schedule in optimizer steps,
// the same order and dropout seeds, early stopping on the validation loss with the best weights kept, the same
// verdict (./judge.ts) and the same export (./finetune-export.ts). Early stopping leaves the remaining epochs as
// no-ops (a job's step count is fixed when it is accepted).
import { AUGMENT_MARGIN } from './augment.js';
import type { FinetuneBase } from './base.js';
import type { DatasetScan } from './dataset.js';
import { BaseFeatures, type ExtractionStats, POOLED } from './features.js';
import { decodeDataset, labelsOf, splitDataset, type DecodedDataset, type Split } from './finetune-data.js';
import { exportFinetuned } from './finetune-export.js';
import type { StageModel } from './finetune-framework.js';
import { ortFramework } from './finetune-ort.js';
import { finetuneRecords } from './finetune-records.js';
import { gather } from './fit.js';
import type { BaseRunnerFactory, Extracted, Geometry } from './frozen-base.js';
import { validationWarnings } from './judge.js';
import type { Evaluation } from './metrics.js';
import type { FinetuneSettings } from './options.js';
import { OrtTrainable, type TrainerCheckpoint } from './ort-trainable.js';
import type { FinetuneEpoch, FinetuneProgress } from './progress.js';
import { type StepPlan, headPlan } from './schedule.js';
import { problem } from './dataset.js';
import { Prng } from '../util/prng.js';

export interface SessionSetup {
  scan: DatasetScan;
  base: FinetuneBase;
  settings: FinetuneSettings;
  name: string;
  modelsDir: string;
  target: string;
  signal: AbortSignal;
  emit?: (p: FinetuneProgress) => void;
  /** What runs the frozen base (default: an ORT session in this process). */
  runner?: BaseRunnerFactory;
}

/** The best epoch so far: its validation scores and a copy of its weights. */
export interface BestEpoch { epoch: number; step: number; loss: number; accuracy: number; weights: Record<string, Float32Array> }

/** Everything a session needs to continue after `epochs` completed epochs (plain data). */
export interface SessionSnapshot {
  epochs: number;
  globalStep: number;
  /** Early stopping happened: the remaining epochs are no-ops. */
  stopped: boolean;
  /** The feature layer is a map (pooled before the head). */
  fromMap: boolean;
  history: FinetuneEpoch[];
  firstExtraction: ExtractionStats;
  trainer: TrainerCheckpoint;
  best: BestEpoch | null;
  /** Pooled features of the validation images, and of the training images when they are cached (no --augment). */
  features: { val: Extracted; train?: Extracted };
}

export interface SessionResult {
  bestEpoch: number;
  validation: Evaluation;
  warnings: string[];
  onnxMaxAbsDiff: number;
  /** report.json as written into the model folder. */
  report: Record<string, unknown>;
}

const ORDER_STAGE = 100_000;
const DROPOUT_STAGE = 7_919;
const EVAL_BATCH = 64;

function aborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason instanceof Error ? signal.reason : new DOMException('The fine-tune was stopped.', 'AbortError');
}

export class FinetuneSession {
  result: SessionResult | undefined;

  private constructor(
    private readonly setup: SessionSetup,
    private readonly decoded: DecodedDataset,
    private readonly split: Split,
    readonly plan: StepPlan,
    private readonly features: BaseFeatures,
    private readonly head: StageModel,
    private readonly trainer: OrtTrainable,
    private state: SessionSnapshot,
  ) {}

  /** Decodes the images and opens the base; features are computed now, or taken from `resume`. */
  static async open(setup: SessionSetup, resume?: SessionSnapshot): Promise<FinetuneSession> {
    const { scan, base, settings: s, signal } = setup;
    const emit = (p: FinetuneProgress) => { aborted(signal); setup.emit?.(p); };
    const geom: Geometry = { height: base.manifest.input.height, width: base.manifest.input.width, channels: 3 };
    // As the CLI: kept larger with --augment (room for crops).
    const keep: Geometry = s.augment ? { ...geom, height: Math.round(geom.height * AUGMENT_MARGIN), width: Math.round(geom.width * AUGMENT_MARGIN) } : geom;
    const decoded = await decodeDataset(scan, keep, (skip) => { throw problem(422, 'unreadable-image', `image '${skip.file}' cannot be decoded: ${skip.reason}`); });
    aborted(signal);
    const split = splitDataset(scan, decoded, s.valSplit, s.seed);
    const plan = headPlan(split.train.length, s);
    const features = await BaseFeatures.open(base, [], decoded.images, geom, base.manifest.preprocessing, 'NCHW', s.augment, s.seed, emit, setup.runner);
    try {
      let snapshot = resume;
      if (!snapshot) {
        const val = (await features.of('validation', split.val, [POOLED])).values[POOLED]!;
        const train = features.cached ? (await features.of('train', split.train, [POOLED])).values[POOLED]! : undefined;
        snapshot = {
          epochs: 0, globalStep: 0, stopped: false, fromMap: features.featureRank === 4, history: [], firstExtraction: { ...features.stats },
          trainer: { weights: {}, optimizer: { iterations: 0, slots: {} } }, best: null, features: { val, ...(train ? { train } : {}) },
        };
      }
      const head = await ortFramework().head(snapshot.features.val.shape[0]!, scan.classes.length, snapshot.fromMap, s);
      if (!(head.trainable instanceof OrtTrainable)) throw new Error('the ONNX Runtime framework gave a head that is not an OrtTrainable');
      if (resume) head.trainable.resume(resume.trainer);
      else snapshot.trainer = head.trainable.checkpoint();
      return new FinetuneSession(setup, decoded, split, plan, features, head, head.trainable, snapshot);
    } catch (e) {
      await features.release();
      throw e;
    }
  }

  get classes(): string[] {
    return this.setup.scan.classes;
  }

  /** The state after the epochs done so far (shared arrays: serialize it, do not change it). */
  snapshot(): SessionSnapshot {
    return this.state;
  }

  get epochsDone(): number {
    return this.state.epochs;
  }

  get stopped(): boolean {
    return this.state.stopped;
  }

  get lastEpoch(): FinetuneEpoch | undefined {
    return this.state.history.at(-1);
  }

  /** The next epoch (a no-op once early stopping happened or the plan is done); the snapshot moves only when it completes. */
  async epoch(): Promise<void> {
    const st = this.state;
    const e = st.epochs + 1;
    if (st.stopped || e > this.plan.epochs) { this.state = { ...st, epochs: e }; return; }
    const { settings: s, signal } = this.setup;
    const started = performance.now();
    const labels = labelsOf(this.decoded.labels, this.split.train);
    let featureSeconds: number | undefined;
    let x = st.features.train;
    if (!x) {
      const augmented = await this.features.augmented(e, this.split.train, POOLED);
      x = augmented.values[POOLED]!;
      featureSeconds = augmented.seconds;
    }
    const set = gather({ x, y: labels }, new Prng((s.seed * 1000 + ORDER_STAGE + e) >>> 0).permutation(this.split.train.length));
    const n = this.split.train.length;
    const per = x.shape.reduce((p, q) => p * q, 1);
    const lr = this.plan.learningRateAt(st.globalStep);
    let step = st.globalStep;
    let lossSum = 0;
    let accSum = 0;
    for (let b = 0; b * s.batchSize < n; b++) {
      aborted(signal);
      const from = b * s.batchSize;
      const to = Math.min(n, from + s.batchSize);
      this.trainer.setLearningRate(this.plan.learningRateAt(step));
      step++;
      const r = await this.trainer.step({ x: { data: set.x.data.subarray(from * per, to * per), shape: set.x.shape }, y: set.y.subarray(from, to) }, s.seed * 100_003 + DROPOUT_STAGE + e * 1009 + b + 1);
      lossSum += r.loss * (to - from);
      accSum += r.acc * (to - from);
    }
    const v = await this.trainer.evaluate(this.valSet(), EVAL_BATCH);
    const record: FinetuneEpoch = {
      epoch: e, stage: 1, stage_epoch: e, loss: lossSum / n, acc: accSum / n, val_loss: v.loss, val_acc: v.accuracy, lr,
      seconds: (performance.now() - started) / 1000, ...(featureSeconds !== undefined ? { feature_seconds: featureSeconds } : {}),
    };
    const trainer = this.trainer.checkpoint();
    const improved = !st.best || v.loss < st.best.loss;
    const best = improved ? { epoch: e, step, loss: v.loss, accuracy: v.accuracy, weights: trainer.weights } : st.best!;
    const patient = step - best.step >= this.plan.patienceSteps && step >= this.plan.minSteps;
    this.setup.emit?.({ type: 'epoch', stage: 1, epoch: e, epochs: this.plan.epochs, loss: record.loss, acc: record.acc, val_loss: v.loss, val_acc: v.accuracy, lr, seconds: record.seconds, best: improved });
    this.state = { ...st, epochs: e, globalStep: step, stopped: patient && e < this.plan.epochs, history: [...st.history, record], trainer, best };
  }

  /** The best epoch's weights, evaluated, judged and exported into the models directory (atomically). */
  async finish(): Promise<SessionResult> {
    const { scan, base, settings: s } = this.setup;
    const st = this.state;
    if (!st.best) throw problem(500, 'no-epoch', 'no epoch was trained');
    this.trainer.resume({ weights: st.best.weights, optimizer: this.trainer.optimizer.saveState() });
    const validation = await this.trainer.evaluate(this.valSet(), EVAL_BATCH);
    const yVal = labelsOf(this.decoded.labels, this.split.val);
    const warnings = validationWarnings(validation.accuracy, scan.classes.length, scan.classes.map((_, c) => yVal.filter((y) => y === c).length));
    for (const message of warnings) this.setup.emit?.({ type: 'warning', message });
    const framework = ortFramework().info;
    const run = {
      name: this.setup.name, settings: s, base, data: scan, split: this.split, labels: this.decoded.labels, skipped: this.decoded.skipped,
      framework: framework.framework ?? framework.backend, backend: framework.backend, cut: base.featureLayer, history: st.history, bestEpoch: st.best.epoch, validation,
      trainableParameters: this.trainer.parameters, extraction: { images: this.features.stats.images + st.firstExtraction.images, seconds: this.features.stats.seconds + st.firstExtraction.seconds },
      firstExtraction: st.firstExtraction, plan: this.plan, warnings,
    };
    let report: Record<string, unknown> = {};
    const onnxMaxAbsDiff = await exportFinetuned({
      base, cut: base.featureLayer, model: this.head.exportable(), classes: scan.classes, preprocessing: base.manifest.preprocessing,
      checkImages: this.split.val, features: this.features, modelsDir: this.setup.modelsDir, name: this.setup.name, target: this.setup.target,
    }, (diff) => {
      const records = finetuneRecords(run, diff);
      report = records.report;
      return records;
    });
    this.result = { bestEpoch: st.best.epoch, validation, warnings, onnxMaxAbsDiff, report };
    return this.result;
  }

  async release(): Promise<void> {
    await this.head.release();
    await this.features.release();
  }

  private valSet() {
    return { x: this.state.features.val, y: labelsOf(this.decoded.labels, this.split.val) };
  }
}
