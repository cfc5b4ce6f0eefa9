// Explanations: "why this label?" for any installed classifier — the one core function behind the explain
// endpoint and CLI (HTTP-free). Methods:
//
// - gradcam (default): map = ReLU(Σ_k α_k A_k) at the layer's resolution, α_k = spatial mean of d score / d A_k,
//   not normalised. One engine run; the gradient reaches the layer and nothing below it (explain-graphs.ts).
// - saliency: max over channels of |d score / d input| at the model's input resolution. One run.
// - integrated-gradients: attribution = (x − x′) · ∫₀¹ ∇score(x′ + α(x − x′)) dα (midpoint rule, `steps`
//   points), map = Σ over channels; completeness = {Σ attributions, score(x) − score(x′)}. Baseline x′ = a black
//   picture or the image blurred (σ = 10 % of the longer input side).
// - smoothgrad: the mean over `samples` noisy copies (σ = noise · input range) of the saliency map.
//
// score = the class's pre-softmax logit when the model ends in a Softmax, else its output value. Batch rows of
// integrated gradients and SmoothGrad are run a few at a time at interactive priority (like classify), so a
// classification request never waits behind a whole explanation.
import { SETTINGS } from '../config.js';
import type { Engine, RunResult, WireTensor } from '../engine/engine.js';
import type { RawImage } from '../image/io.js';
import { type Labels, type Manifest, readLabels } from '../models/manifest.js';
import type { ModelEntry, ModelRegistry } from '../models/registry.js';
import { badRequest, notFound, unavailable, unprocessable } from '../util/problem.js';
import {
  CAM, CLASS_INDEX, CLASS_INPUT, GRAD_SUM, type GraphKind, SALIENCY_SUM, SCORES, WEIGHT_INPUT,
  type ExplainModelRef, explainSession, installedModelFacts,
} from './explain-graphs.js';
import { NoiseSource, attributionMap, gaussianBlur, integrationAlphas, maxOf, valueRange, writeInterpolated } from './explain-maps.js';
import { modelStamp } from './grad-session.js';
import type { Chw } from '../image/chw.js';
import { type InvertMode, toInputTensor } from '../image/preprocess.js';
import { toRgb } from '../image/raw.js';
import { type ResizeMode, resizeForModel } from '../image/resize.js';

export const EXPLAIN_METHODS = ['gradcam', 'saliency', 'integrated-gradients', 'smoothgrad'] as const;
export type ExplainMethod = (typeof EXPLAIN_METHODS)[number];
export type Baseline = 'black' | 'blur';
/** 'top', a class index, or a label (or WordNet id) from the model's labels.json. */
export type ClassChoice = 'top' | number | string;

export const EXPLAIN_DEFAULTS = { method: 'gradcam', steps: 32, baseline: 'black', samples: 16, noise: 0.15, seed: 0, resize: 'crop' } as const;

/** Grad-CAM's default layer per architecture: the last convolutional feature map. Other models: their last 4-D layer. */
const DEFAULT_LAYERS: Record<string, string> = { vgg19: 'block5_conv4', inception_v3: 'mixed10' };

/**
 * Input pixels per engine run for batched methods: four 224×224 rows (VGG19's forward + backward keeps ~150 MB of
 * activations per row), so large step counts never hold the engine, or memory, for long.
 */
const PIXELS_PER_RUN = 4 * 224 * 224;

export interface ExplainDeps {
  engine: Engine;
  registry: ModelRegistry;
  /** Most gradient passes one call may take (default CONVSERVE_EXPLAIN_MAX_PASSES' default). */
  maxPasses?: number;
}

export interface ExplainInput {
  model: string;
  /** The picture, at any size: it is resized to the model's input like classify does. */
  image: RawImage;
  method?: ExplainMethod;
  class?: ClassChoice;
  /** Grad-CAM layer (a 4-D value of the model graph). */
  layer?: string;
  /** Integrated gradients: integration points. */
  steps?: number;
  baseline?: Baseline;
  /** SmoothGrad: noisy copies, and σ as a fraction of the input's value range. */
  samples?: number;
  noise?: number;
  /** SmoothGrad noise seed (the same seed gives the same map). */
  seed?: number;
  resize?: ResizeMode;
  invert?: InvertMode;
}

export interface Explanation {
  model: string;
  method: ExplainMethod;
  class: { index: number; label: string; probability: number };
  /** Grad-CAM's layer; the model's input for the pixel methods. */
  layer: string;
  width: number;
  height: number;
  /** Row-major, width × height. */
  map: Float32Array;
  max: number;
  completeness?: { sum: number; delta: number };
  /** Where the map lies over the picture (for the PNG renderer; not part of the JSON answer). */
  view: { imageWidth: number; imageHeight: number; inputWidth: number; inputHeight: number; resize: ResizeMode };
}

/** The JSON answer of the explain contract. */
export function explanationJson(e: Explanation): Omit<Explanation, 'map' | 'view'> & { map: number[] } {
  const { view: _view, map, ...rest } = e;
  return { ...rest, map: Array.from(map) };
}

/** Gradient passes (batch rows differentiated) a request asks for: steps × samples of the method. */
export function explainPasses(method: ExplainMethod, steps: number, samples: number): number {
  return (method === 'integrated-gradients' ? steps : 1) * (method === 'smoothgrad' ? samples : 1);
}

interface Settings {
  method: ExplainMethod;
  steps: number;
  samples: number;
  noise: number;
  seed: number;
  baseline: Baseline;
  resize: ResizeMode;
}

function settings(input: ExplainInput, maxPasses: number): Settings {
  const method = input.method ?? EXPLAIN_DEFAULTS.method;
  if (!EXPLAIN_METHODS.includes(method)) throw badRequest('invalid-parameter', `method must be one of ${EXPLAIN_METHODS.join(', ')}; got '${String(method)}'.`);
  const int = (name: string, v: number | undefined, def: number, min: number, max: number): number => {
    const x = v ?? def;
    if (!Number.isInteger(x) || x < min || x > max) throw badRequest('invalid-parameter', `${name} must be an integer from ${min} to ${max}; got ${String(v)}.`);
    return x;
  };
  const steps = int('steps', input.steps, EXPLAIN_DEFAULTS.steps, 1, Number.MAX_SAFE_INTEGER);
  const samples = int('samples', input.samples, EXPLAIN_DEFAULTS.samples, 1, Number.MAX_SAFE_INTEGER);
  const seed = int('seed', input.seed, EXPLAIN_DEFAULTS.seed, 0, 2 ** 31 - 1);
  const noise = input.noise ?? EXPLAIN_DEFAULTS.noise;
  if (!(noise >= 0 && noise <= 1)) throw badRequest('invalid-parameter', `noise must be a number from 0 to 1 (a fraction of the input's value range); got ${String(input.noise)}.`);
  const baseline = input.baseline ?? EXPLAIN_DEFAULTS.baseline;
  if (baseline !== 'black' && baseline !== 'blur') throw badRequest('invalid-parameter', `baseline must be black or blur; got '${String(baseline)}'.`);
  const resize = input.resize ?? EXPLAIN_DEFAULTS.resize;
  if (resize !== 'crop' && resize !== 'squash') throw badRequest('invalid-parameter', `resize must be crop or squash; got '${String(resize)}'.`);
  const passes = explainPasses(method, steps, samples);
  if (passes > maxPasses) {
    throw unprocessable('too-many-passes', `${method} with ${method === 'smoothgrad' ? `samples=${samples}` : `steps=${steps}`} needs ${passes} gradient passes; interactive explanations are limited to ${maxPasses} (CONVSERVE_EXPLAIN_MAX_PASSES). Ask for fewer, or run the explanation as a job.`, { passes, limit: maxPasses });
  }
  return { method, steps, samples, noise, seed, baseline, resize };
}

type ReadyClassifier = ModelEntry & { modelPath: string; manifest: Manifest };

/** A ready classification model, or the ProblemError saying why not (404 unknown, 503 not ready, 422 no classifier). */
function classifierEntry(registry: ModelRegistry, name: string): ReadyClassifier {
  const entry = registry.get(name);
  if (!entry) {
    const known = registry.list().map((m) => m.name);
    throw notFound('unknown-model', `No model named '${name}'. Models: ${known.join(', ') || '(none)'}.`, { models: known });
  }
  if (entry.status === 'missing') throw unavailable('model-not-installed', `Model '${name}' is not installed. Install it with: ${entry.install?.join('  or  ') ?? `convserve models fetch ${name}`}`, { install: entry.install ?? [] });
  if (entry.status === 'downloading') throw unavailable('model-downloading', `Model '${name}' is downloading; try again when GET /v1/models shows it ready.`, {}, 30);
  if (entry.status === 'error' || !entry.modelPath || !entry.manifest) throw unavailable('model-error', `Model '${name}' cannot be used: ${entry.error ?? 'not ready'}`);
  if (entry.manifest.task !== 'classification') throw unprocessable('not-a-classifier', `Model '${name}' is a features-only model (no classifier top): there is no class score to explain.`);
  return entry as ReadyClassifier;
}

/** The class index asked for; −1 = the top class. */
export function resolveClass(choice: ClassChoice | undefined, labels: Labels): number {
  if (choice === undefined || choice === 'top') return -1;
  const n = labels.length;
  const index = typeof choice === 'number' ? choice : /^\d+$/.test(choice.trim()) ? Number(choice.trim()) : undefined;
  if (index !== undefined) {
    if (!Number.isInteger(index) || index < 0 || index >= n) throw unprocessable('unknown-class', `class index must be an integer from 0 to ${n - 1}; got ${choice}.`);
    return index;
  }
  const norm = (s: string) => s.trim().toLowerCase().replace(/[\s_-]+/g, ' ');
  const want = norm(String(choice));
  const found = labels.findIndex((l) => norm(l.label) === want || (l.wnid !== undefined && l.wnid.toLowerCase() === want));
  if (found < 0) {
    const similar = labels.map((l) => l.label).filter((l) => norm(l).includes(want) || want.includes(norm(l))).slice(0, 5);
    throw unprocessable('unknown-class', `No class labelled '${choice}'. class is top, an index from 0 to ${n - 1}, or a label of the model${similar.length ? ` (similar: ${similar.join(', ')})` : ''}.`, { similar });
  }
  return found;
}

function resolveLayer(asked: string | undefined, architecture: string, layers: string[], model: string): string {
  if (layers.length === 0) throw unprocessable('no-feature-map', `Model '${model}' has no 4-D feature map for Grad-CAM; use method=saliency, integrated-gradients or smoothgrad.`);
  // An imported model names a Keras layer's own op `<layer>/<op>` (e.g. `mixed10/concat`) when an Identity carries
  // the layer name: the Keras name then resolves to that value.
  const find = (name: string) => (layers.includes(name) ? name : layers.find((l) => l.startsWith(`${name}/`)));
  const fallback = DEFAULT_LAYERS[architecture];
  const layer = asked !== undefined ? find(asked) ?? asked : (fallback && find(fallback)) || layers[layers.length - 1]!;
  if (!layers.includes(layer)) {
    const shown = layers.length > 24 ? [...layers.slice(0, 8), '…', ...layers.slice(-12)] : layers;
    throw unprocessable('unknown-layer', `Model '${model}' has no feature-map layer '${layer}'. Available: ${shown.join(', ')}.`, { layers });
  }
  return layer;
}

export async function explain(deps: ExplainDeps, input: ExplainInput): Promise<Explanation> {
  const s = settings(input, deps.maxPasses ?? SETTINGS.explainMaxPasses.default);
  const entry = classifierEntry(deps.registry, input.model);
  const manifest = entry.manifest;
  const labels = readLabels(entry.dir, manifest);
  const stamp = modelStamp(entry);
  const ref: ExplainModelRef = {
    modelPath: entry.modelPath, stamp, input: manifest.input.name, output: manifest.output.name,
    facts: installedModelFacts(entry.modelPath, stamp, manifest.output.name),
  };
  const cls = resolveClass(input.class, labels);
  const layer = s.method === 'gradcam' ? resolveLayer(input.layer, manifest.architecture, ref.facts.layers, entry.name) : manifest.input.name;

  const geom = manifest.input;
  const picture = geom.channels === 3 ? toRgb(input.image) : input.image;
  const resized = await resizeForModel(picture, geom, s.resize);
  const x: Chw = { data: new Float32Array(geom.channels * geom.height * geom.width), c: geom.channels, h: geom.height, w: geom.width };
  // The model's channel count, not the preprocessing's: an imported grey model may use rescale:… (no channel count of its own).
  toInputTensor(resized, manifest.preprocessing, x.data, 0, { invert: input.invert, channels: geom.channels === 1 ? 1 : 3 });

  const kind: GraphKind = s.method === 'gradcam' ? { kind: 'gradcam', layer } : { kind: 'input' };
  const key = await explainSession(deps.engine, ref, kind);
  const runner = new RowRunner(deps.engine, key, ref, x);
  const base = { model: entry.name, method: s.method, layer, view: { imageWidth: input.image.width, imageHeight: input.image.height, inputWidth: geom.width, inputHeight: geom.height, resize: s.resize } };
  const classOf = (index: number, probs: Float32Array) => ({ index, label: labels[index]?.label ?? `class_${index}`, probability: probs[index] ?? Number.NaN });

  if (s.method === 'gradcam') {
    const r = await runner.run([x.data], [1], cls, [CAM]);
    const cam = r.outputs[CAM]!;
    const [, h, w] = cam.dims as [number, number, number];
    return { ...base, class: classOf(r.classIndex, r.probs), width: w, height: h, map: cam.data, max: maxOf(cam.data) };
  }
  if (s.method === 'saliency') {
    const r = await runner.run([x.data], [1], cls, [SALIENCY_SUM]);
    const map = r.outputs[SALIENCY_SUM]!.data;
    return { ...base, class: classOf(r.classIndex, r.probs), width: x.w, height: x.h, map, max: maxOf(map) };
  }
  if (s.method === 'smoothgrad') {
    const noise = new NoiseSource(s.seed);
    const sigma = s.noise * valueRange(x.data);
    // Row 0 is the image itself, weight 0: it fixes the top class and the probability reported.
    const r = await runner.sum(1 + s.samples, SALIENCY_SUM, cls, (dst, slot, row) => {
      if (row === 0) dst.set(x.data, slot * x.data.length);
      else noise.writeNoisy(dst, slot, x.data, sigma);
    }, (row) => (row === 0 ? 0 : 1));
    const map = Float32Array.from(r.sum, (v) => v / s.samples);
    return { ...base, class: classOf(r.classIndex, r.probs), width: x.w, height: x.h, map, max: maxOf(map) };
  }
  // Integrated gradients. Rows 0 and 1 (weight 0) are the image and the baseline: their scores give the delta.
  const baseline = s.baseline === 'black' ? blackInput(manifest, geom) : gaussianBlur(x, 0.1 * Math.max(x.h, x.w));
  const alphas = integrationAlphas(s.steps);
  const r = await runner.sum(2 + s.steps, GRAD_SUM, cls, (dst, slot, row) => {
    if (row === 0) dst.set(x.data, slot * x.data.length);
    else if (row === 1) dst.set(baseline, slot * x.data.length);
    else writeInterpolated(dst, slot, x.data, baseline, alphas[row - 2]!);
  }, (row) => (row < 2 ? 0 : 1));
  const { map, sum } = attributionMap(x, baseline, r.sum, s.steps);
  return {
    ...base, class: classOf(r.classIndex, r.probs), width: x.w, height: x.h, map, max: maxOf(map),
    completeness: { sum, delta: r.scores[0]! - r.scores[1]! },
  };
}

/** The model input of an all-black picture (the usual integrated-gradients baseline; 0 ink for MNIST models). */
function blackInput(manifest: Manifest, geom: Manifest['input']): Float32Array {
  const out = new Float32Array(geom.channels * geom.height * geom.width);
  const black: RawImage = { data: Buffer.alloc(geom.width * geom.height * geom.channels), width: geom.width, height: geom.height, channels: geom.channels };
  toInputTensor(black, manifest.preprocessing, out, 0, { invert: 'false', channels: geom.channels === 1 ? 1 : 3 });
  return out;
}

interface RowRun {
  outputs: Record<string, WireTensor>;
  classIndex: number;
  /** The model's output for row 0. */
  probs: Float32Array;
  /** Per-row scores of the explained class. */
  scores: Float32Array;
}

/** Runs batch rows through one explanation session at interactive priority. */
class RowRunner {
  constructor(private readonly engine: Engine, private readonly key: string, private readonly ref: ExplainModelRef, private readonly x: Chw) {}

  async run(rows: Float32Array[], weights: number[], cls: number, fetch: string[]): Promise<RowRun> {
    const n = rows.length;
    const data = new Float32Array(n * this.x.data.length);
    rows.forEach((r, i) => data.set(r, i * this.x.data.length));
    return this.runPacked(data, n, Float32Array.from(weights), cls, fetch);
  }

  /**
   * Runs `total` rows a few per engine run and sums the reduced output `fetch` over the runs (float64). The
   * class of the first run (the top class of row 0 when cls < 0) is used by every later run.
   */
  async sum(total: number, fetch: string, cls: number, write: (dst: Float32Array, slot: number, row: number) => void, weight: (row: number) => number): Promise<{ sum: Float64Array; classIndex: number; probs: Float32Array; scores: Float32Array }> {
    const per = Math.max(1, Math.floor(PIXELS_PER_RUN / (this.x.h * this.x.w)));
    let acc: Float64Array | undefined;
    let first: RowRun | undefined;
    for (let start = 0; start < total; start += per) {
      const n = Math.min(per, total - start);
      const data = new Float32Array(n * this.x.data.length);
      const weights = new Float32Array(n);
      for (let i = 0; i < n; i++) { write(data, i, start + i); weights[i] = weight(start + i); }
      const r = await this.runPacked(data, n, weights, first ? first.classIndex : cls, [fetch]);
      first ??= r;
      const part = r.outputs[fetch]!.data;
      acc ??= new Float64Array(part.length);
      for (let i = 0; i < part.length; i++) acc[i]! += part[i]!;
    }
    return { sum: acc!, classIndex: first!.classIndex, probs: first!.probs, scores: first!.scores };
  }

  private async runPacked(data: Float32Array, n: number, weights: Float32Array, cls: number, fetch: string[]): Promise<RowRun> {
    const { c, h, w } = this.x;
    const output = this.ref.output;
    const r: RunResult = await this.engine.run(this.key, {
      [this.ref.input]: { dims: [n, c, h, w], data },
      [CLASS_INPUT]: { dims: [], data: new Float32Array([cls]) },
      [WEIGHT_INPUT]: { dims: [n], data: weights },
    }, { priority: 'interactive', fetches: [...fetch, SCORES, CLASS_INDEX, output] });
    const probs = r.outputs[output]!;
    const classes = probs.dims[1] ?? probs.data.length;
    return { outputs: r.outputs, classIndex: Math.round(r.outputs[CLASS_INDEX]!.data[0]!), probs: probs.data.subarray(0, classes), scores: r.outputs[SCORES]!.data };
  }
}
