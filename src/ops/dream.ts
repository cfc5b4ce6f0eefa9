// DeepDream (keras-facts §6, the keras-io recipe) on any model with a graph, by layer name (the keras-io
// layers mixed4…mixed7 by default on an InceptionV3), plus tiled gradients with a random roll (the TF DeepDream
// tutorial) so large images need bounded memory and show no seams.
//
// Loss (keras-io): Σ_l coeff_l · Σ(act_l[:, :, 2:−2, 2:−2]²) / prod(shape(act_l)) — border crop, full-shape
// denominator. One ascent step: g = ∂loss/∂img; g /= max(mean|g|, 1e-6); img += step·g. Octaves: shapes
// int(dim/scale^i), smallest first; after each octave the detail lost to resizing is added back.
//
// The step machine is deterministic in the step index (octave = ⌊step/iterations⌋, roll from (seed, step)),
// so a job can be checkpointed after any step and resumed with identical results.
import type { Engine } from '../engine/engine.js';
import type { GraphBuilder } from '../onnx/builder.js';
import { type Chw, addTile, extractTile, resizeBilinear, roll, tileRanges } from '../image/chw.js';
import { Prng } from '../util/prng.js';
import { unprocessable } from '../util/problem.js';
import { IMAGE_GRAD, IMAGE_INPUT, ensureSession, scalarTensor, wire } from './grad-session.js';
import { type ModelLayers, convActivationLayers, evenlySpaced, requireLayers } from './model-layers.js';

export interface DreamLayer { name: string; coeff: number }

/** keras-io: mixed4 1.0, mixed5 1.5, mixed6 2.0, mixed7 2.5. */
export const KERAS_DREAM_LAYERS: DreamLayer[] = [
  { name: 'mixed4', coeff: 1.0 }, { name: 'mixed5', coeff: 1.5 }, { name: 'mixed6', coeff: 2.0 }, { name: 'mixed7', coeff: 2.5 },
];

/** How many layers the default of a model without keras-io's layers takes. */
export const GENERIC_DREAM_LAYERS = 4;

/**
 * The default dream layers of a model: keras-io's mixed4…mixed7 (1, 1.5, 2, 2.5) when it has them (an
 * InceptionV3), else the {@link GENERIC_DREAM_LAYERS} conv/activation feature maps evenly spaced from the middle
 * of the network to its last one, each with coefficient 1.
 */
export function defaultDreamLayers(ml: ModelLayers): DreamLayer[] {
  const names = new Set(ml.featureMaps.map((l) => l.name));
  if (KERAS_DREAM_LAYERS.every((l) => names.has(l.name))) return KERAS_DREAM_LAYERS;
  const picked = evenlySpaced(convActivationLayers(ml), GENERIC_DREAM_LAYERS, 0.5, 1);
  if (picked.length === 0) throw unprocessable('no-feature-layers', `Model '${ml.model}' has no 4-D feature map to dream on.`);
  return picked.map((l) => ({ name: l.name, coeff: 1 }));
}

/** The requested layers (each must be a feature map of the model: 422 `unknown-layer` otherwise) or the defaults. */
export function resolveDreamLayers(ml: ModelLayers, requested: DreamLayer[] | undefined): DreamLayer[] {
  if (!requested) return defaultDreamLayers(ml);
  requireLayers(ml, requested.map((l) => l.name), 'layers');
  return requested;
}

export interface DreamLossOptions {
  layers: string[];
  /** Border cropped from each activation before the sum (keras-io: 2). 0 = none. */
  crop: number;
}

/** Adds the dream loss to a forward graph (4-D feature maps); coefficient k is the scalar graph input `coeff_k`. */
export function addDreamLoss(b: GraphBuilder, opts: DreamLossOptions): { loss: string } {
  const terms = opts.layers.map((l, k) => {
    if (!b.hasValue(l)) throw new Error(`dream: the model has no layer '${l}'`);
    const act = opts.crop > 0 ? b.node('Slice', [l, b.ints([opts.crop, opts.crop]), b.ints([-opts.crop, -opts.crop]), b.ints([2, 3])]) : l;
    const size = b.node('Cast', [b.node('Size', [l])], { to: 1 });
    const coeff = b.input(`coeff_${k}`, 'float32', []);
    return b.node('Mul', [b.node('Div', [b.node('ReduceSumSquare', [act], { keepdims: 0 }), size]), coeff]);
  });
  const loss = terms.length === 1 ? terms[0]! : b.node('Sum', terms);
  return { loss };
}

/**
 * The layer set a dream session is built for: sorted and de-duplicated, so every request naming the same
 * layers (in any order, repeated or not) shares one session.
 */
export function canonicalDreamLayers(layers: readonly string[]): string[] {
  return [...new Set(layers)].sort();
}

/**
 * The coefficient of each canonical layer (repeated layers add up: the loss is linear in them), in the order of
 * the session's `coeff_k` inputs.
 */
export function canonicalDreamCoefficients(layers: readonly DreamLayer[]): number[] {
  const sum = new Map<string, number>();
  for (const l of layers) sum.set(l.name, (sum.get(l.name) ?? 0) + l.coeff);
  return canonicalDreamLayers(layers.map((l) => l.name)).map((n) => sum.get(n)!);
}

/** Loads (once per engine) the gradient session of the dream loss on `modelPath`; returns its engine key. */
export function dreamSession(engine: Engine, modelPath: string, stamp: string, opts: DreamLossOptions): Promise<string> {
  const layers = canonicalDreamLayers(opts.layers);
  const key = `grad:dream:${stamp}:${layers.join(',')}:crop${opts.crop}`;
  return ensureSession(engine, key, { modelPath, recipe: { kind: 'dream-gradient', layers, crop: opts.crop } });
}

export interface DreamSettings {
  layers: DreamLayer[];
  octaves: number;
  octaveScale: number;
  iterations: number;
  step: number;
  maxLoss: number;
  /** Max random roll in pixels per iteration (0 = none); 'full' = uniform over the whole image. */
  jitter: number | 'full';
  seed: number;
  tileSize: number;
}

/** keras-io: shapes int(dim / scale^i) for i = octaves−1 … 0 (smallest first, original last). */
export function octaveShapes(h: number, w: number, octaves: number, scale: number): [number, number][] {
  const shapes: [number, number][] = [];
  for (let i = octaves - 1; i >= 0; i--) shapes.push([Math.trunc(h / scale ** i), Math.trunc(w / scale ** i)]);
  return shapes;
}

/** keras-io's border crop: 2 px cut from each side of every activation before its loss term. */
export const DREAM_CROP = 2;

/** The shortest image side whose smallest octave (int(side / scale^(octaves−1))) is still at least `minSide`. */
export function minImageSide(minSide: number, octaves: number, scale: number): number {
  let side = Math.max(1, Math.floor(minSide * scale ** (octaves - 1)) - 1);
  while (octaveShapes(side, side, octaves, scale)[0]![0] < minSide) side++;
  return side;
}

/**
 * 422 `image-too-small` unless the smallest octave is at least minSide (what `model`'s dream layers need, the
 * activation crop included) on each side. Without it a too-small image would not fail: its cropped maps are
 * empty, the loss and gradient are 0 and every step silently leaves the image as it was.
 */
export function checkOctaves(h: number, w: number, octaves: number, scale: number, minSide: number, model = 'InceptionV3', layers?: string[]): void {
  const [sh, sw] = octaveShapes(h, w, octaves, scale)[0]!;
  if (Math.min(sh, sw) < minSide) {
    const need = minImageSide(minSide, octaves, scale);
    const which = layers ? `the layers ${layers.join(', ')} of ${model} need` : `${model} needs`;
    throw unprocessable('image-too-small', `The smallest octave would be ${sw}×${sh}; ${which} at least ${minSide}×${minSide} (keras-io crops ${DREAM_CROP} px from each side of every activation). Use a larger image, fewer octaves or a smaller octave_scale: with ${octaves} octave${octaves > 1 ? 's' : ''} at scale ${scale} the image needs a short side of at least ${need} px.`, {
      min_side: minSide, min_image_side: need, octaves, octave_scale: scale, ...(layers ? { layers } : {}),
    });
  }
}

/**
 * 422 `tile-too-small` when tiling would cut an octave into a tile narrower than minSide: that tile's cropped
 * maps would be empty and it would silently take no part in the dream. Tiles are at least about tile_size/2.
 */
export function checkTiles(h: number, w: number, octaves: number, scale: number, tileSize: number, minSide: number, model = 'InceptionV3'): void {
  for (const [oh, ow] of octaveShapes(h, w, octaves, scale)) {
    const smallest = Math.min(...[oh, ow].flatMap((n) => tileRanges(n, tileSize).map(([a, b]) => b - a)));
    if (smallest < minSide) {
      const need = 2 * minSide + 2;
      throw unprocessable('tile-too-small', `tile_size ${tileSize} cuts the ${ow}×${oh} octave into tiles as narrow as ${smallest} px; ${model} needs at least ${minSide}×${minSide}. Use tile_size ≥ ${need}.`, { min_side: minSide, min_tile_size: need });
    }
  }
}

/** The random roll of global step `step` (deterministic in seed and step). */
export function rollFor(seed: number, step: number, h: number, w: number, jitter: number | 'full'): [number, number] {
  if (jitter === 0) return [0, 0];
  const rng = new Prng((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0);
  const pick = (n: number) => {
    const u = rng.uniform();
    if (jitter === 'full') return Math.floor(u * n);
    const j = Math.min(jitter, n - 1);
    return Math.floor(u * (2 * j + 1)) - j;
  };
  const dy = pick(h);
  return [dy, pick(w)];
}

export type TileRunner = (tile: Chw) => Promise<{ loss: number; grad: Float32Array }>;

/**
 * Loss and gradient of the image, tile by tile on a rolled copy (each tile's loss computed independently,
 * gradients written back in place), then un-rolled. One tile (image ≤ tile_size) and no roll = the plain
 * whole-image gradient.
 */
export async function tiledGradient(img: Chw, tileSize: number, shift: [number, number], run: TileRunner): Promise<{ loss: number; grad: Chw; tiles: number }> {
  const rolled = roll(img, shift[0], shift[1]);
  const grad: Chw = { data: new Float32Array(img.data.length), c: img.c, h: img.h, w: img.w };
  let loss = 0;
  let tiles = 0;
  for (const [y0, y1] of tileRanges(img.h, tileSize)) {
    for (const [x0, x1] of tileRanges(img.w, tileSize)) {
      const single = y0 === 0 && x0 === 0 && y1 === img.h && x1 === img.w;
      const tile = single ? rolled : extractTile(rolled, y0, x0, y1 - y0, x1 - x0);
      const r = await run(tile);
      loss += r.loss;
      if (single) grad.data.set(r.grad);
      else addTile(grad, r.grad, y0, x0, y1 - y0, x1 - x0);
      tiles++;
    }
  }
  return { loss, grad: roll(grad, -shift[0], -shift[1]), tiles };
}

/** keras-io gradient_ascent_step update, in place: img += step · g / max(mean|g|, 1e-6). */
export function ascend(img: Float32Array, g: Float32Array, step: number): void {
  let s = 0;
  for (let i = 0; i < g.length; i++) s += Math.abs(g[i]!);
  const scale = step / Math.max(s / g.length, 1e-6);
  for (let i = 0; i < g.length; i++) img[i]! += scale * g[i]!;
}

/** Mutable state of a dream after some steps (everything needed to resume, except the original image). */
export interface DreamState {
  /** Current image (preprocessed, at shapes[octave]). */
  img: Chw;
  /** Octave `img` belongs to (−1 before the first step). */
  octave: number;
  /** max_loss reached in this octave: its remaining iterations are skipped. */
  stopped: boolean;
  loss: number;
  /** Tiles the last gradient was computed in. */
  tiles: number;
}

export function initialDreamState(original: Chw): DreamState {
  return { img: original, octave: -1, stopped: false, loss: Number.NaN, tiles: 0 };
}

/** Detail lost to resizing at octave o (keras-io): resize(original, shape_o) − resize(resize(original, shape_{o−1}), shape_o). */
function addLostDetail(img: Chw, original: Chw, shapes: [number, number][], o: number): Chw {
  const [h, w] = shapes[o]!;
  const [ph, pw] = shapes[Math.max(0, o - 1)]!;
  const same = resizeBilinear(original, h, w);
  const shrunk = resizeBilinear(resizeBilinear(original, ph, pw), h, w);
  const out = img.data.slice();
  for (let i = 0; i < out.length; i++) out[i]! += same.data[i]! - shrunk.data[i]!;
  return { ...img, data: out };
}

/**
 * Global step `step` (0-based): enters the next octave if due (lost-detail re-injection, resize), then one
 * gradient-ascent iteration unless this octave already hit max_loss. Returns a new state (the input is not
 * mutated, so an abandoned step leaves the previous state intact).
 */
export async function dreamStep(state: DreamState, original: Chw, s: DreamSettings, step: number, run: TileRunner): Promise<DreamState> {
  const shapes = octaveShapes(original.h, original.w, s.octaves, s.octaveScale);
  const o = Math.min(Math.floor(step / s.iterations), s.octaves - 1);
  let { img, stopped } = state;
  if (state.octave < o) {
    if (state.octave >= 0) img = addLostDetail(img, original, shapes, state.octave);
    img = resizeBilinear(img, shapes[o]![0], shapes[o]![1]);
    stopped = false;
  } else {
    img = { ...img, data: img.data.slice() };
  }
  if (stopped) return { ...state, img, octave: o, stopped };
  const shift = rollFor(s.seed, step, img.h, img.w, s.jitter);
  const { loss, grad, tiles } = await tiledGradient(img, s.tileSize, shift, run);
  ascend(img.data, grad.data, s.step);
  // keras-io: `if max_loss is not None and loss > max_loss: break` — after the update was applied.
  return { img, octave: o, stopped: loss > s.maxLoss, loss, tiles };
}

/** The image to show after `state` (the octave's lost detail added, as keras-io does after every octave). */
export function dreamImage(state: DreamState, original: Chw, s: DreamSettings): Chw {
  if (state.octave < 0) return original;
  const shapes = octaveShapes(original.h, original.w, s.octaves, s.octaveScale);
  return addLostDetail(state.img, original, shapes, state.octave);
}

/**
 * A tile runner on an engine session built by {@link dreamSession} for these layers (their coefficients are fed
 * in the session's canonical layer order). The job's signal is checked before each tile and handed to
 * engine.run, which drops the run if the job is cancelled while it waits.
 */
export function engineTileRunner(engine: Engine, key: string, layers: readonly DreamLayer[], signal?: AbortSignal): TileRunner {
  const coeffs = canonicalDreamCoefficients(layers);
  return async (tile) => {
    signal?.throwIfAborted();
    const feeds: Record<string, ReturnType<typeof wire>> = { [IMAGE_INPUT]: wire(tile.data, [1, tile.c, tile.h, tile.w]) };
    coeffs.forEach((c, k) => { feeds[`coeff_${k}`] = scalarTensor(c); });
    const r = await engine.run(key, feeds, { priority: 'job', fetches: ['loss', IMAGE_GRAD], signal });
    return { loss: Number(r.outputs.loss!.data[0]), grad: r.outputs[IMAGE_GRAD]!.data };
  };
}
