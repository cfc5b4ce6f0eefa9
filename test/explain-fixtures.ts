// Inputs shared by the explanation tests: deterministic pictures at the models' input sizes, the model input
// computed here from the Keras preprocessing definitions, and the max-norm relative error.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../src/engine/engine.js';
import type { RawImage } from '../src/image/io.js';
import { ModelRegistry } from '../src/models/registry.js';
import { kerasToOnnx } from '../src/models/keras/to-onnx.js';
import { synthesizeModel } from '../src/models/synth.js';
import { logger } from '../src/util/logger.js';
import { tfReady } from './explain-oracle.js';
import { tinyConvNet, writeConvertedModel } from './helpers/model-folder.js';
import { randomizeWeights, tf, toKerasImport } from './helpers/tfjs-keras.js';

export const WIDTH = 1 / 8;

export interface ExplainBench {
  dir: string;
  engine: Engine;
  registry: ModelRegistry;
  modelPath(name: string): string;
  close(): Promise<void>;
}

/**
 * A temp models folder with synthetic VGG19 and InceptionV3 (width 1/8, with their classifiers, seed 42 — the
 * weights synthesizeKerasWeights gives the oracles), a copy of the committed MNIST convnet and an imported
 * model ('tiny-grey': a seeded tfjs-layers convnet with a tanh layer and a softmax top, 24×24 grey, converted
 * by the Keras → ONNX converter), a one-worker engine, and the tfjs CPU backend.
 */
export async function explainBench(prefix: string): Promise<ExplainBench> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  await synthesizeModel('vgg19', { modelsDir: dir, name: 'vgg19', width: WIDTH, includeTop: true });
  await synthesizeModel('inception_v3', { modelsDir: dir, name: 'inception_v3', width: WIDTH, includeTop: true });
  cpSync(fileURLToPath(new URL('../models/mnist-cnn', import.meta.url)), join(dir, 'mnist-cnn'), { recursive: true });
  await tfReady();
  const grey = tinyConvNet(tf, 1);
  randomizeWeights(grey, 12);
  writeConvertedModel(dir, kerasToOnnx(toKerasImport(grey)), { name: 'tiny-grey', preprocessing: 'rescale:1/255' });
  const registry = new ModelRegistry({ modelsDir: dir });
  const engine = new Engine({ workers: 1, threads: 2, taskTimeoutMs: 300_000, logger });
  await engine.start();
  return {
    dir, engine, registry,
    modelPath: (name) => join(dir, name, 'model.onnx'),
    close: async () => { await engine.stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}

/** max |a − b| / max |b|. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return den === 0 ? num : num / den;
}

/** A deterministic colour picture (smooth waves, a ramp, a checker), already at the model's input size. */
export function picture(w: number, h: number): RawImage {
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      data[i] = Math.round(127 + 120 * Math.sin(x / 9) * Math.cos(y / 13));
      data[i + 1] = (x * 2 + y) & 255;
      data[i + 2] = ((x >> 3) + (y >> 3)) % 2 ? 200 : 40;
    }
  }
  return { data, width: w, height: h, channels: 3 };
}

/** A grey 28×28 "digit": a bright ring on black (MNIST polarity, so no inversion). */
export function digit(): RawImage {
  const data = Buffer.alloc(28 * 28);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
    const r = Math.hypot(x - 13.5, y - 13.5);
    data[y * 28 + x] = Math.max(0, Math.round(255 * (1 - Math.abs(r - 8) / 3)));
  }
  return { data, width: 28, height: 28, channels: 1 };
}

/** A grey picture at the imported model's 24×24 input: a soft blob and a bar on a dim ramp. */
export function greyPicture(side = 24): RawImage {
  const data = Buffer.alloc(side * side);
  for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) {
    const blob = 200 * Math.exp(-((x - 8) ** 2 + (y - 9) ** 2) / 18);
    data[y * side + x] = Math.min(255, Math.round(3 * x + blob + (x >= 15 && x <= 17 && y > 4 ? 150 : 0)));
  }
  return { data, width: side, height: side, channels: 1 };
}

/** The model input, computed here from the Keras preprocessing definitions (caffe: BGR − means; tf: v/127.5 − 1; mnist: v/255). */
export function modelInput(img: RawImage, mode: 'caffe' | 'tf' | 'mnist'): { x: Float32Array; dims: number[] } {
  const { width: w, height: h } = img;
  const plane = w * h;
  if (mode === 'mnist') return { x: Float32Array.from(img.data, (v) => v / 255), dims: [1, 1, h, w] };
  const x = new Float32Array(3 * plane);
  const means = [103.939, 116.779, 123.68];
  for (let c = 0; c < 3; c++) for (let i = 0; i < plane; i++) {
    x[c * plane + i] = mode === 'caffe' ? img.data[i * 3 + (2 - c)]! - means[c]! : img.data[i * 3 + c]! / 127.5 - 1;
  }
  return { x, dims: [1, 3, h, w] };
}
