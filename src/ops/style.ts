// Neural style transfer (Gatys et al.) on any model by layer name; VGG19's layers below are the defaults of
// the two recipes on a VGG19 (see defaultStyleSpec for other models). Two recipes:
//
// - keras (default; keras-io example, keras-facts §7): content = block5_conv2, Σ(comb − base)²; style =
//   block1_conv1…block5_conv1, each weighted style_weight/5, Σ(S − C)² / (4·3²·size²) with channels
//   hard-coded 3 (on any model: its input channels) and size = the input image's pixel count; TV Σ((x[i,j]−x[i+1,j])² + (x[i,j]−x[i,j+1])²)^1.25
//   on the preprocessed image; weights content 2.5e-8, style 1e-6, TV 1e-6.
// - gatys: content = relu4_2 (block4_conv2), style relu1_1…relu5_1 (block1_conv1…block5_conv1), each
//   weighted style_weight with the per-layer normalisation 1/(4·N_l²·M_l²) (N_l channels, M_l = h_l·w_l);
//   the same TV; weights as shared/bench/torch_peer.py (content 2.5e-8, style 1e-6, TV 1e-6).
//
// The loss graph: the installed model.onnx + loss nodes (Gram = Gemm(F, F, transB), F = Reshape [C, −1]), differentiated
// with the autodiff. Targets (content activations, one Gram per style layer) and the three weights are graph
// INPUTS, so one session per (model, recipe, layers) serves every image size, target and weighting. Targets
// come from a forward-only session (the same layers, Grams computed in-graph) run once per job.
//
// Several style images: the style loss is the blend Σ_k w_k·Σ(G − A_k)² (w normalised to sum 1). Since
// Σ_k w_k (G − A_k)² = (G − Ā)² + Σ_k w_k A_k² − Ā², Ā = Σ_k w_k A_k, the graph gets the single target Ā and the
// constant (per layer, times its normaliser and weight) is added to the reported loss on the JS side.
import type { Engine } from '../engine/engine.js';
import type { GraphBuilder } from '../onnx/builder.js';
import { unprocessable } from '../util/problem.js';
import { analyseGraph } from './feature-maps.js';
import {
  IMAGE_GRAD, IMAGE_INPUT, ensureSession, scalarTensor, wire,
} from './grad-session.js';
import { type ModelLayers, convActivationLayers, evenlySpaced, requireLayers } from './model-layers.js';
import type { Chw } from '../image/chw.js';
import type { WireTensor } from '../engine/engine.js';

export type StyleRecipe = 'keras' | 'gatys';

export interface RecipeSpec {
  contentLayer: string;
  styleLayers: string[];
  weights: { content: number; style: number; tv: number };
}

export const RECIPES: Record<StyleRecipe, RecipeSpec> = {
  keras: {
    contentLayer: 'block5_conv2',
    styleLayers: ['block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1'],
    weights: { content: 2.5e-8, style: 1e-6, tv: 1e-6 },
  },
  gatys: {
    contentLayer: 'block4_conv2',
    styleLayers: ['block1_conv1', 'block2_conv1', 'block3_conv1', 'block4_conv1', 'block5_conv1'],
    weights: { content: 2.5e-8, style: 1e-6, tv: 1e-6 },
  },
};

/** The layers of one style loss: the recipe (normalisation, default weights) and the model's layers it uses. */
export interface StyleLossSpec {
  recipe: StyleRecipe;
  contentLayer: string;
  styleLayers: string[];
  /** Channel count of layers, when known from the model's manifest (else read from the graph). */
  channels?: Record<string, number>;
}

/** A recipe name stands for its VGG19 layers. */
export function styleSpec(s: StyleRecipe | StyleLossSpec): StyleLossSpec {
  return typeof s === 'string' ? { recipe: s, contentLayer: RECIPES[s].contentLayer, styleLayers: RECIPES[s].styleLayers } : s;
}

/** Style layers of the default on a model without the recipe's VGG19 layers. */
export const GENERIC_STYLE_LAYERS = 5;
/** Depth fraction of the default content layer on such a model (Gatys' relu4_2 sits at ~0.7 of VGG19's convs). */
export const GENERIC_CONTENT_DEPTH = 0.75;

/**
 * The recipe's layers when the model has them (VGG19), else: style = {@link GENERIC_STYLE_LAYERS} conv/activation
 * feature maps evenly spaced from the first to the last, content = the one at {@link GENERIC_CONTENT_DEPTH} of
 * the depth. `content` / `style` replace either part (checked: 422 `unknown-layer`).
 */
export function resolveStyleSpec(ml: ModelLayers, recipe: StyleRecipe, content?: string, style?: string[]): StyleLossSpec {
  const names = new Set(ml.featureMaps.map((l) => l.name));
  const vgg = RECIPES[recipe];
  const hasRecipe = [vgg.contentLayer, ...vgg.styleLayers].every((n) => names.has(n));
  const candidates = convActivationLayers(ml);
  if (!hasRecipe && candidates.length === 0) throw unprocessable('no-feature-layers', `Model '${ml.model}' has no 4-D feature map for a style loss.`);
  const contentLayer = content ?? (hasRecipe ? vgg.contentLayer : evenlySpaced(candidates, 1, GENERIC_CONTENT_DEPTH, GENERIC_CONTENT_DEPTH)[0]!.name);
  const styleLayers = style ?? (hasRecipe ? vgg.styleLayers : evenlySpaced(candidates, GENERIC_STYLE_LAYERS).map((l) => l.name));
  if (content) requireLayers(ml, [content], 'content_layer');
  if (style) requireLayers(ml, style, 'style_layers');
  const channels: Record<string, number> = {};
  for (const l of ml.featureMaps) if (l.channels !== undefined && (l.name === contentLayer || styleLayers.includes(l.name))) channels[l.name] = l.channels;
  return { recipe, contentLayer, styleLayers, channels };
}

/** Channel counts of the spec's layers and of the image input (the manifest's, else propagated over the graph). */
function channelsOf(b: GraphBuilder, spec: StyleLossSpec): (layer: string) => number {
  const facts = analyseGraph({ node: b.nodes, initializer: b.initializers, input: b.inputs });
  return (layer) => {
    const c = spec.channels?.[layer] ?? facts.get(layer)?.channels;
    if (c === undefined) throw new Error(`style: cannot tell the channel count of layer '${layer}'`);
    return c;
  };
}

/**
 * G = F·Fᵀ, F = the layer as [C, h·w]: one Gemm with transB, so neither the forward nor the backward holds a
 * transposed copy of F (the autodiff's Gemm rule turns the two operand gradients into one product, (g + gᵀ)·F).
 */
function gram(b: GraphBuilder, layer: string, c: number, out?: string): string {
  const f = b.node('Reshape', [layer, b.ints([c, -1])]);
  return b.node('Gemm', [f, f], { transB: 1 }, out ? { outputs: [out] } : {});
}

/** Σ over spatial dims of `v`'s shape product (h·w) as a float scalar. */
function spatialSize(b: GraphBuilder, v: string): string {
  const shp = b.node('Shape', [v]);
  return b.node('Cast', [b.node('ReduceProd', [b.node('Slice', [shp, b.ints([2]), b.ints([4])])], { keepdims: 0 })], { to: 1 });
}

/**
 * Adds the style-transfer loss to a forward graph. New inputs: `content_target` [1, C, h, w],
 * `style_target_<i>` [C_i, C_i], `content_weight`, `style_weight` (per layer), `tv_weight` (scalars).
 * Outputs (besides the loss): `content_loss`, `style_loss`, `tv_loss` (weighted).
 */
export function addStyleLoss(b: GraphBuilder, recipeOrSpec: StyleRecipe | StyleLossSpec): { loss: string; extraOutputs: string[] } {
  const spec = styleSpec(recipeOrSpec);
  const channels = channelsOf(b, spec);
  const x = IMAGE_INPUT;
  const wContent = b.input('content_weight', 'float32', []);
  const wStyle = b.input('style_weight', 'float32', []);
  const wTv = b.input('tv_weight', 'float32', []);

  const cc = channels(spec.contentLayer);
  const ct = b.input('content_target', 'float32', [1, cc, 'hc', 'wc']);
  const contentRaw = b.node('ReduceSumSquare', [b.node('Sub', [spec.contentLayer, ct])], { keepdims: 0 });
  const content = b.node('Mul', [contentRaw, wContent], {}, { outputs: ['content_loss'] });

  // keras: 1/(4·C_in²·size²), size = input pixels (keras-io: C_in hard-coded 3); gatys: 1/(4·C²·M²), M = h_l·w_l.
  const inputSize = spatialSize(b, x);
  const cin = channels(x);
  const kerasDenom = b.node('Mul', [b.node('Mul', [inputSize, inputSize]), b.scalar(4 * cin * cin)]);
  const terms = spec.styleLayers.map((l, i) => {
    const c = channels(l);
    const target = b.input(`style_target_${i}`, 'float32', [c, c]);
    const sq = b.node('ReduceSumSquare', [b.node('Sub', [gram(b, l, c), target])], { keepdims: 0 });
    let denom = kerasDenom;
    if (spec.recipe === 'gatys') {
      const m = spatialSize(b, l);
      denom = b.node('Mul', [b.node('Mul', [m, m]), b.scalar(4 * c * c)]);
    }
    return b.node('Div', [sq, denom]);
  });
  const style = b.node('Mul', [terms.length === 1 ? terms[0]! : b.node('Sum', terms), wStyle], {}, { outputs: ['style_loss'] });

  const big = 2 ** 31 - 1;
  const sl = (s: number[], e: number[]): string => b.node('Slice', [x, b.ints(s), b.ints(e), b.ints([2, 3])]);
  const d0 = sl([0, 0], [-1, -1]);
  const da = b.node('Sub', [d0, sl([1, 0], [big, -1])]);
  const db = b.node('Sub', [d0, sl([0, 1], [-1, big])]);
  const tvRaw = b.node('ReduceSum', [b.node('Pow', [b.node('Add', [b.node('Mul', [da, da]), b.node('Mul', [db, db])]), b.scalar(1.25)])], { keepdims: 0 });
  const tv = b.node('Mul', [tvRaw, wTv], {}, { outputs: ['tv_loss'] });

  const loss = b.node('Sum', [content, style, tv], {}, { outputs: ['total_loss'] });
  return { loss, extraOutputs: ['content_loss', 'style_loss', 'tv_loss'] };
}

/**
 * Forward graph for the targets: `gram_<i>` per style layer, the content layer's activations, and `size_<i>`,
 * the spatial size h_l·w_l of style layer i (for the blend constant of the gatys normaliser).
 */
export function addTargetOutputs(b: GraphBuilder, recipeOrSpec: StyleRecipe | StyleLossSpec): string[] {
  const spec = styleSpec(recipeOrSpec);
  const channels = channelsOf(b, spec);
  const grams = spec.styleLayers.map((l, i) => gram(b, l, channels(l), `gram_${i}`));
  const sizes = spec.styleLayers.map((l, i) => b.node('Identity', [spatialSize(b, l)], {}, { outputs: [`size_${i}`] }));
  return [...grams, spec.contentLayer, ...sizes];
}

export interface StyleSessions { grad: string; targets: string }

export async function styleSessions(engine: Engine, modelPath: string, stamp: string, recipeOrSpec: StyleRecipe | StyleLossSpec): Promise<StyleSessions> {
  const spec = styleSpec(recipeOrSpec);
  const base = `style:${stamp}:${spec.recipe}:${spec.contentLayer}:${spec.styleLayers.join(',')}`;
  const [grad, targets] = await Promise.all([
    ensureSession(engine, `grad:${base}`, { modelPath, recipe: { kind: 'style-gradient', style: spec } }),
    // The targets graph runs once per job stage: without an arena its activations (≈ 220 MB at 512 px on
    // VGG19) go back as soon as the run ends instead of staying until the session is released.
    ensureSession(engine, `fwd:${base}`, { modelPath, recipe: { kind: 'style-targets', style: spec } }, { memArena: false }),
  ]);
  return { grad, targets };
}

export interface StyleTargets {
  content: WireTensor;
  /** Blended Gram target per style layer (Ā). */
  grams: WireTensor[];
  /** Per-layer blend constant Σ_k w_k‖A_k‖² − ‖Ā‖² (0 for one style image). */
  blendConst: number[];
}

/**
 * Content activations of `content` and the w-blended Grams of `styles` (forward runs at job priority), with the
 * spatial size of each style layer on the content image (`layerSizes`, for {@link blendLossOffset}).
 */
export async function computeTargets(engine: Engine, key: string, recipeOrSpec: StyleRecipe | StyleLossSpec, content: Chw, styles: Chw[], weights: number[], signal?: AbortSignal): Promise<StyleTargets & { layerSizes: number[] }> {
  const spec = styleSpec(recipeOrSpec);
  const run = (x: Chw, fetches: string[]) => (signal?.throwIfAborted(), engine.run(key, { [IMAGE_INPUT]: wire(x.data, [1, x.c, x.h, x.w]) }, { priority: 'job', fetches }));
  const sizeNames = spec.styleLayers.map((_, i) => `size_${i}`);
  const c = await run(content, [spec.contentLayer, ...sizeNames]);
  const gramNames = spec.styleLayers.map((_, i) => `gram_${i}`);
  const sum = weights.reduce((a, b) => a + b, 0);
  const w = weights.map((v) => v / sum);
  let grams: Float64Array[] | undefined;
  const sqNorm = new Float64Array(gramNames.length);
  let dims: number[][] = [];
  for (let k = 0; k < styles.length; k++) {
    const r = await run(styles[k]!, gramNames);
    const gs = gramNames.map((n) => r.outputs[n]!);
    dims = gs.map((g) => g.dims);
    grams ??= gs.map((g) => new Float64Array(g.data.length));
    gs.forEach((g, l) => {
      const acc = grams![l]!;
      let sq = 0;
      for (let i = 0; i < acc.length; i++) { acc[i]! += w[k]! * g.data[i]!; sq += g.data[i]! * g.data[i]!; }
      sqNorm[l]! += w[k]! * sq;
    });
  }
  const blendConst = grams!.map((g, l) => {
    let sq = 0;
    for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
    return styles.length > 1 ? sqNorm[l]! - sq : 0;
  });
  return {
    content: c.outputs[spec.contentLayer]!,
    grams: grams!.map((g, l) => ({ dims: dims[l]!, data: Float32Array.from(g) })),
    blendConst,
    layerSizes: sizeNames.map((n) => Number(c.outputs[n]!.data[0])),
  };
}

/**
 * The blend constant in loss units: Σ_l const_l · weight_l / denom_l, with the keras denominator 4·C_in²·(h·w)²
 * of the image and the gatys one 4·C_l²·M_l² (M_l = `layerSizes[l]`, the layer's h_l·w_l on the image).
 */
export function blendLossOffset(recipe: StyleRecipe, t: StyleTargets, styleWeight: number, image: { c: number; h: number; w: number }, layerSizes: number[]): number {
  if (t.blendConst.every((c) => c === 0)) return 0;
  let total = 0;
  t.blendConst.forEach((c, l) => {
    const ch = t.grams[l]!.dims[0]!;
    const denom = recipe === 'keras' ? 4 * image.c * image.c * (image.h * image.w) ** 2 : 4 * ch * ch * layerSizes[l]! ** 2;
    total += (c / denom) * styleWeight;
  });
  return total;
}

export interface StyleWeights { content: number; style: number; tv: number }

export interface StyleEval { loss: number; content: number; style: number; tv: number; grad: Float32Array }

/** One loss+gradient evaluation of image `x` (preprocessed CHW, size h×w, channels x.length / (h·w)). */
export async function evaluateStyle(engine: Engine, key: string, x: Float32Array, h: number, w: number, t: StyleTargets, wts: StyleWeights, perLayerStyle: number, signal?: AbortSignal): Promise<StyleEval> {
  const feeds: Record<string, WireTensor> = {
    [IMAGE_INPUT]: wire(x, [1, x.length / (h * w), h, w]),
    content_target: wire(t.content.data, t.content.dims),
    content_weight: scalarTensor(wts.content),
    style_weight: scalarTensor(perLayerStyle),
    tv_weight: scalarTensor(wts.tv),
  };
  t.grams.forEach((g, i) => { feeds[`style_target_${i}`] = wire(g.data, g.dims); });
  signal?.throwIfAborted();
  const r = await engine.run(key, feeds, { priority: 'job', fetches: ['loss', 'content_loss', 'style_loss', 'tv_loss', IMAGE_GRAD], signal });
  const v = (n: string) => Number(r.outputs[n]!.data[0]);
  return { loss: v('loss'), content: v('content_loss'), style: v('style_loss'), tv: v('tv_loss'), grad: r.outputs[IMAGE_GRAD]!.data };
}

/** Per-layer style weight of the recipe (keras: style_weight / number of style layers; gatys: style_weight). */
export function perLayerStyleWeight(recipeOrSpec: StyleRecipe | StyleLossSpec, styleWeight: number): number {
  const spec = styleSpec(recipeOrSpec);
  return spec.recipe === 'keras' ? styleWeight / spec.styleLayers.length : styleWeight;
}
