// Glue between the model catalogue and the classifier: resolves a model name to a loaded engine session
// (404 unknown, 503 not ready with the command that installs it) and labels every answer with the
// provenance of its weights — synthetic weights are always reported as untrained.
import { type DecodeLimits, type RawImage, decodeProbed, probeUpload } from '../image/io.js';
import type { InvertMode } from '../image/preprocess.js';
import type { ResizeMode } from '../image/resize.js';
import type { Provenance } from '../models/manifest.js';
import { type ClassifierModel, type ClassifyResult, type StageSink, Classifier } from './classify.js';

export interface ModelProvider {
  /** A ready classification model, or throws a ProblemError (404 unknown model, 503 not ready). */
  classifier(name: string): Promise<ClassifierModel>;
}

export interface WeightsInfo {
  provenance: Provenance;
  /** True for synthetic (seeded random) weights: predictions are meaningless. */
  untrained: boolean;
  source?: string;
  note?: string;
}

export function weightsInfo(model: ClassifierModel): WeightsInfo {
  const w = model.manifest.weights;
  const untrained = w.provenance === 'synthetic';
  return {
    provenance: w.provenance,
    untrained,
    ...(w.source ? { source: w.source } : {}),
    ...(untrained ? { note: 'UNTRAINED: seeded random weights for tests and benchmarks; these predictions mean nothing. Install real weights with `convserve models fetch`.' } : {}),
  };
}

/**
 * What the answer's probabilities are, when not a plain softmax: `logits` (the model ends linear; convserve applied
 * the softmax) or `sigmoid` (a multi-label model: each class's probability on its own, they need not sum to 1).
 */
export type OutputsNote = { outputs?: 'logits' | 'sigmoid' };

export function outputsNote(model: ClassifierModel): OutputsNote {
  const kind = model.manifest.outputs;
  return kind === 'logits' || kind === 'sigmoid' ? { outputs: kind } : {};
}

export interface ClassifyAnswer extends OutputsNote {
  model: string;
  weights: WeightsInfo;
  results: (ClassifyResult & { timing_ms: ClassifyResult['timing_ms'] & { decode: number } })[];
}

export interface ClassifyRequestOptions {
  top?: number;
  resize: ResizeMode;
  invert?: InvertMode;
  /** Aborted when the client goes away: decoding stops and queued images leave the batch queue. */
  signal?: AbortSignal;
  /**
   * Where stage timings go (Server-Timing): probe, model, decode (all images), then the classification stages
   * of the first image (see StageSink) — disjoint stretches of the request's timeline.
   */
  stages?: StageSink;
}

export class ClassifyService {
  constructor(private readonly models: ModelProvider, private readonly classifier: Classifier, private readonly defaultModel: string) {}

  /**
   * Decodes uploads straight to the model's input size (one sharp pipeline: shrink-on-load, EXIF, alpha) and
   * classifies them — the path of POST /v1/classify and `convserve classify`.
   */
  async classifyUploads(modelName: string | undefined, uploads: Buffer[], opts: ClassifyRequestOptions, limits: DecodeLimits): ReturnType<ClassifyService['classifyImages']> {
    // Bad uploads are reported before model problems: a header check costs microseconds.
    const tProbe = performance.now();
    const probed = await Promise.all(uploads.map((b) => probeUpload(b, limits)));
    const tModel = performance.now();
    const model = await this.models.classifier(modelName ?? this.defaultModel);
    const { width, height } = model.manifest.input;
    const t0 = performance.now();
    opts.signal?.throwIfAborted();
    const images = await Promise.all(uploads.map((b, i) => decodeProbed(b, probed[i]!, limits, { resize: { width, height, mode: opts.resize } })));
    opts.signal?.throwIfAborted();
    const t1 = performance.now();
    opts.stages?.('probe', tModel - tProbe);
    opts.stages?.('model', t0 - tModel);
    opts.stages?.('decode', t1 - t0);
    return this.classifyImages(model.name, images, opts, (t1 - t0) / Math.max(1, uploads.length));
  }

  async classifyImages(modelName: string | undefined, images: RawImage[], opts: ClassifyRequestOptions, decodeMs = 0): Promise<ClassifyAnswer> {
    const t0 = performance.now();
    const model = await this.models.classifier(modelName ?? this.defaultModel);
    opts.stages?.('model', performance.now() - t0);
    const top = opts.top ?? Math.min(5, model.manifest.output.classes);
    const results = await Promise.all(images.map((img, i) => this.classifier.classify(model, img, { top, resize: opts.resize, invert: opts.invert, signal: opts.signal, stages: i === 0 ? opts.stages : undefined })));
    return {
      model: model.name,
      weights: weightsInfo(model),
      ...outputsNote(model),
      results: results.map((r) => ({ ...r, timing_ms: { decode: Math.round(decodeMs * 100) / 100, ...r.timing_ms } })),
    };
  }
}
