// Models convserve can install with no network because their trained weights ship inside an npm dependency.
// content-moderation: the Keras InceptionV3 that the `nsfwjs` package (MIT, © Infinite Red) bundles as tfjs
// layers (uint8-quantized), imported through the general Keras importer. Its classes and preprocessing are the
// package's own (dist/esm/nsfw_classes.js; NSFWJS.infer: RGB / 255 at 299×299).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type KerasModelImportResult, importKerasFile } from './keras/import-model.js';
import { nsfwjsInceptionV3Path } from './keras/nsfwjs.js';

export interface EmbeddedModel {
  name: string;
  description: string;
  install(opts: { modelsDir: string; name?: string; replace?: boolean }): Promise<KerasModelImportResult>;
}

/** nsfwjs' class index order (NSFW_CLASSES). */
export const NSFWJS_CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;

function nsfwjsVersion(bundle: string): string {
  try {
    const pkg = join(bundle, '..', '..', '..', '..', 'package.json'); // …/nsfwjs/dist/models/inception_v3/model.min.js
    return String((JSON.parse(readFileSync(pkg, 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

export const CONTENT_MODERATION: EmbeddedModel = {
  name: 'content-moderation',
  description: "nsfwjs's trained InceptionV3 (299×299 RGB; Drawing, Hentai, Neutral, Porn, Sexy)",
  install({ modelsDir, name = 'content-moderation', replace }) {
    const file = nsfwjsInceptionV3Path();
    return importKerasFile({
      name, file, modelsDir, replace,
      labels: NSFWJS_CLASSES,
      preprocess: 'rescale:1/255',
      provenance: 'imported',
      source: `nsfwjs ${nsfwjsVersion(file)} (MIT, © 2019 Infinite Red, Inc.): its bundled Keras 2.2.4 InceptionV3, trained for content moderation (dist/models/inception_v3)`,
    });
  },
};

export const EMBEDDED_MODELS: readonly EmbeddedModel[] = [CONTENT_MODERATION];

export function getEmbeddedModel(name: string): EmbeddedModel | undefined {
  return EMBEDDED_MODELS.find((m) => m.name === name);
}

/** The embedded models not yet in `modelsDir` (a folder of that name, whatever it holds, counts as present). */
export function missingEmbeddedModels(modelsDir: string): EmbeddedModel[] {
  return EMBEDDED_MODELS.filter((m) => !existsSync(join(modelsDir, m.name)));
}
