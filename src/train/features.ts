// The frozen base's features of the fine-tune's images, computed by ONNX Runtime: the validation images' once,
// the training images' once too (cached for every epoch) — or, with --augment, again every epoch from newly
// augmented images. Each extraction reports its progress and adds to the extraction statistics.
import type { RawImage } from '../image/io.js';
import { resizeForModel } from '../image/resize.js';
import { Prng } from '../util/prng.js';
import { augmentImage } from './augment.js';
import type { FinetuneBase } from './base.js';
import { type BaseRunnerFactory, type Extracted, FeatureExtractor, type Geometry, type MapLayout, POOLED, cutBaseGraph } from './frozen-base.js';
import type { PreprocessingSpec } from '../image/preprocess.js';
import type { FinetuneProgress } from './progress.js';

export { POOLED };

export interface ExtractionStats { images: number; seconds: number }

export class BaseFeatures {
  /** Every extraction so far. */
  readonly stats: ExtractionStats = { images: 0, seconds: 0 };
  private readonly augmentRand: () => number;

  private constructor(
    private readonly extractor: FeatureExtractor,
    private readonly images: RawImage[],
    private readonly geom: Geometry,
    /** --augment: images are kept larger than the input (room for crops) and recomputed every epoch. */
    readonly augment: boolean,
    seed: number,
    private readonly emit: (p: FinetuneProgress) => void,
  ) {
    this.augmentRand = new Prng((seed ^ 0x2545f491) >>> 0).asFunction();
  }

  /** ORT session over `base` cut at its feature layer (and at `maps`, spatial values a later stage trains on). */
  static async open(base: FinetuneBase, maps: string[], images: RawImage[], geom: Geometry, mode: PreprocessingSpec, layout: MapLayout, augment: boolean, seed: number,
    emit: (p: FinetuneProgress) => void, runner?: BaseRunnerFactory): Promise<BaseFeatures> {
    const graph = cutBaseGraph(base.modelPath, [...new Set([base.featureLayer, ...maps])]);
    const extractor = await FeatureExtractor.create(graph, base.featureLayer, geom, mode, base.manifest.input.name, layout, runner);
    return new BaseFeatures(extractor, images, geom, augment, seed, emit);
  }

  /** Rank of the feature layer (4: a map the head pools; 2: a vector), known after the first extraction. */
  get featureRank(): number | undefined {
    return this.extractor.featureRank;
  }

  get cached(): boolean {
    return !this.augment;
  }

  /** Image `i` of `set` at the input size: centre crop (as POST /v1/classify). */
  centre(set: number[]): (i: number) => Promise<RawImage> {
    return async (i) => (this.augment ? resizeForModel(this.images[set[i]!]!, this.geom, 'crop') : this.images[set[i]!]!);
  }

  /** `fetches` (POOLED and/or maps, NHWC) of the centre-cropped images of `set`. */
  of(what: string, set: number[], fetches: string[]): Promise<{ values: Record<string, Extracted>; seconds: number }> {
    return this.timed(what, set, this.centre(set), fetches);
  }

  /** `fetch` of newly augmented training images (one epoch's worth). */
  augmented(epoch: number, set: number[], fetch: string): Promise<{ values: Record<string, Extracted>; seconds: number }> {
    return this.timed(`train (augmented, epoch ${epoch})`, set, (i) => augmentImage(this.images[set[i]!]!, this.geom, this.augmentRand), [fetch]);
  }

  /** Values of `fetches` for the first `count` images of `set`, untimed (export checks). */
  async sample(set: number[], count: number, fetches: string[]): Promise<Record<string, Extracted>> {
    return this.extractor.run(count, this.centre(set), fetches);
  }

  release(): Promise<void> {
    return this.extractor.release();
  }

  private async timed(what: string, set: number[], image: (i: number) => Promise<RawImage>, fetches: string[]) {
    const started = performance.now();
    const values = await this.extractor.run(set.length, image, fetches, (done) => {
      const sec = (performance.now() - started) / 1000;
      this.emit({ type: 'features', what, done, total: set.length, seconds: sec, imagesPerSecond: done / Math.max(sec, 1e-9), cached: this.cached });
    });
    const seconds = (performance.now() - started) / 1000;
    this.stats.images += set.length;
    this.stats.seconds += seconds;
    return { values, seconds };
  }
}
