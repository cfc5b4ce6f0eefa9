// Export of a fine-tune: the cut base and the trained layers composed into ONE ONNX graph (images in,
// probabilities out), written to a temp folder with labels.json, report.json/.png and the manifest, checked
// against "ORT base features → the trained model's own predictions" (≤ EXPORT_TOLERANCE) and only then renamed
// into place. Framework-free: the trained layers come as an ExportableModel (./trainable.ts).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { swapIntoPlace, tempDirFor } from '../models/import.js';
import { type Manifest, writeManifest, writeModelFiles } from '../models/manifest.js';
import { pruneUnused } from '../onnx/autodiff.js';
import { GraphBuilder } from '../onnx/builder.js';
import { type PreprocessingSpec, toInputTensor } from '../image/preprocess.js';
import { problem } from './dataset.js';
import { ORT_SESSION_OPTIONS } from './export-session.js';
import type { BaseFeatures } from './features.js';
import { cutBaseGraph } from './frozen-base.js';
import { EXPORT_TOLERANCE } from './metrics.js';
import { renderReportPng } from './report.js';
import type { FinetuneBase } from './base.js';
import type { FinetuneRecords } from './finetune-records.js';
import type { ExportableModel } from './trainable.js';

export interface FinetuneExport {
  base: FinetuneBase;
  /** Where the trained layers start: the base's value they read. */
  cut: string;
  /** The trained layers, on a feature map of `cut`. */
  model: ExportableModel;
  classes: string[];
  preprocessing: PreprocessingSpec;
  /** Validation images (indices) to check the export on, and the features session that computes their maps. */
  checkImages: number[];
  features: BaseFeatures;
  modelsDir: string;
  name: string;
  target: string;
}

/** The cut base with the trained layers appended: serialized model.onnx (+ model.weights.bin). */
function compose(e: FinetuneExport): { model: Uint8Array; externalData?: Uint8Array } {
  const arch = e.base.architecture;
  const g = GraphBuilder.fromGraph(cutBaseGraph(e.base.modelPath, [e.cut]), `${arch}_finetuned`);
  g.outputs.length = 0;
  const output = e.model.appendToOnnx(g, e.cut);
  g.node('Identity', [output], {}, { outputs: ['probabilities'] });
  g.output('probabilities', 'float32', ['N', e.classes.length]);
  const composed = GraphBuilder.fromGraph(pruneUnused(g.toGraph()), g.name);
  const metadata = { architecture: arch, base: e.base.name, provenance: 'fine-tuned', preprocessing: e.preprocessing, classes: String(e.classes.length) };
  return composed.serialize({ externalDataFile: 'model.weights.bin', externalThreshold: 1024, producer: 'convserve finetune', metadata });
}

/** The written model (images in) vs the ORT base features → the trained model, on up to 16 validation images. */
async function parity(e: FinetuneExport, modelFile: string): Promise<number> {
  const k = Math.min(16, e.checkImages.length);
  const { height, width } = e.base.manifest.input;
  const per = 3 * height * width;
  const images = new Float32Array(k * per);
  const centre = e.features.centre(e.checkImages);
  for (let i = 0; i < k; i++) toInputTensor(await centre(i), e.preprocessing, images, i * per);
  const maps = (await e.features.sample(e.checkImages, k, [e.cut]))[e.cut]!;
  const want = await e.model.predict(maps, k);
  const session = await ort.InferenceSession.create(modelFile, ORT_SESSION_OPTIONS);
  let got: Float32Array;
  try {
    const out = await session.run({ [e.base.manifest.input.name]: new ort.Tensor('float32', images, [k, 3, height, width]) });
    got = out.probabilities!.data as Float32Array;
  } finally {
    await session.release();
  }
  if (got.length !== want.length) throw new Error(`finetune export: the ONNX model gives ${got.length} probabilities, the trained model ${want.length}`);
  let maxAbsDiff = 0;
  for (let i = 0; i < got.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i]! - want[i]!));
  if (!(maxAbsDiff <= EXPORT_TOLERANCE)) {
    throw problem(500, 'export-mismatch', `the exported ONNX model differs from the trained model by ${maxAbsDiff} (> ${EXPORT_TOLERANCE}) on ${k} validation images; nothing was written`);
  }
  return maxAbsDiff;
}

/**
 * Writes models/NAME: model files, then (once parity holds) report.json, report.png and the manifest that
 * `records(maxAbsDiff)` describes; atomically swapped into place. Nothing is left behind on failure.
 */
export async function exportFinetuned(e: FinetuneExport, records: (maxAbsDiff: number) => FinetuneRecords): Promise<number> {
  const serialized = compose(e);
  const labelsJson = JSON.stringify(e.classes.map((c) => ({ label: c })), null, 1) + '\n';
  const tmp = tempDirFor(e.modelsDir, e.name);
  try {
    mkdirSync(tmp, { recursive: true });
    const files: Record<string, Uint8Array | string> = { 'model.onnx': serialized.model, 'labels.json': labelsJson };
    if (serialized.externalData) files['model.weights.bin'] = serialized.externalData;
    const { sha256, sizes } = writeModelFiles(tmp, files);
    const maxAbsDiff = await parity(e, join(tmp, 'model.onnx'));
    const r = records(maxAbsDiff);
    const png = await renderReportPng(r.history, r.confusion, r.bestEpoch, r.accuracy, { title: r.title, labels: e.classes, evalSet: 'validation', warnings: r.warnings });
    writeFileSync(join(tmp, 'report.json'), JSON.stringify(r.report, null, 2) + '\n');
    writeFileSync(join(tmp, 'report.png'), png);
    const manifest: Manifest = {
      ...r.manifest,
      files: { model: 'model.onnx', ...(serialized.externalData ? { weights: 'model.weights.bin' } : {}), labels: 'labels.json', sha256, sizes },
    };
    writeManifest(tmp, manifest);
    swapIntoPlace(tmp, e.target);
    return maxAbsDiff;
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}
