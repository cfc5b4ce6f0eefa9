// Explanations (src/ops/explain.ts) on real engine sessions over installed model folders: synthetic VGG19 and
// InceptionV3 at width 1/8 with their classifiers, and the committed trained MNIST convnet. Oracles: tfjs-layers
// Keras models built from the same weights (Grad-CAM, VGG19 saliency), the model.onnx re-executed op by op in
// tfjs (InceptionV3 saliency, MNIST), tf.grad for every gradient; the gradient theorem (integrated gradients'
// completeness); SmoothGrad with zero noise = saliency.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../src/engine/engine.js';
import type { RawImage } from '../src/image/io.js';
import { ModelRegistry } from '../src/models/registry.js';
import { synthesizeModel } from '../src/models/synth.js';
import { decodeModel } from '../src/onnx/proto.js';
import { type ExplainInput, explain } from '../src/ops/explain.js';
import { buildGradcamModel, buildInputGradientModel, installedModelFacts } from '../src/ops/explain-graphs.js';
import { isProblem } from '../src/util/problem.js';
import { logger } from '../src/util/logger.js';
import { OnnxInTf, kerasClassifier, kerasGradcam, nchwToNhwc, tf, tfReady } from './explain-oracle.js';

const WIDTH = 1 / 8;
const TOL = 1e-4;
let dir: string;
let engine: Engine;
let registry: ModelRegistry;

/** max |a − b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return den === 0 ? num : num / den;
}

/** A deterministic colour picture (smooth waves, a ramp, a checker), already at the model's input size. */
function picture(w: number, h: number): RawImage {
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
function digit(): RawImage {
  const data = Buffer.alloc(28 * 28);
  for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) {
    const r = Math.hypot(x - 13.5, y - 13.5);
    data[y * 28 + x] = Math.max(0, Math.round(255 * (1 - Math.abs(r - 8) / 3)));
  }
  return { data, width: 28, height: 28, channels: 1 };
}

/** The model input, computed here from the Keras preprocessing definitions (caffe: BGR − means; tf: v/127.5 − 1; mnist: v/255). */
function modelInput(img: RawImage, mode: 'caffe' | 'tf' | 'mnist'): { x: Float32Array; dims: number[] } {
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

const run = (input: Partial<ExplainInput> & { model: string; image: RawImage }) => explain({ engine, registry }, input);
const modelPath = (name: string) => join(dir, name, 'model.onnx');

async function rejects(p: Promise<unknown>, status: number, slug: string, detail?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isProblem(e), String(e));
    assert.equal(e.status, status);
    assert.equal(e.slug, slug);
    if (detail) assert.match(e.detail, detail);
    return true;
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'convserve-explain-'));
  await synthesizeModel('vgg19', { modelsDir: dir, name: 'vgg19', width: WIDTH, includeTop: true });
  await synthesizeModel('inception_v3', { modelsDir: dir, name: 'inception_v3', width: WIDTH, includeTop: true });
  cpSync(fileURLToPath(new URL('../models/mnist-cnn', import.meta.url)), join(dir, 'mnist-cnn'), { recursive: true });
  registry = new ModelRegistry({ modelsDir: dir });
  engine = new Engine({ workers: 1, threads: 2, taskTimeoutMs: 300_000, logger });
  await engine.start();
  await tfReady();
});

after(async () => {
  await engine?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('Grad-CAM', () => {
  it('VGG19: block5_conv4 (default) for the top class and block4_conv2 for class 7 equal tfjs-layers Grad-CAM', async () => {
    const img = picture(224, 224);
    const { x } = modelInput(img, 'caffe');
    const keras = await kerasClassifier('vgg19', WIDTH);
    const xt = tf.tensor(nchwToNhwc(x, 3, 224, 224), [1, 224, 224, 3]);
    for (const [layer, cls] of [[undefined, -1], ['block4_conv2', 7]] as const) {
      const e = await run({ model: 'vgg19', image: img, ...(layer ? { layer } : {}), ...(cls >= 0 ? { class: cls } : {}) });
      const ref = kerasGradcam(keras, layer ?? 'block5_conv4', xt, cls);
      assert.equal(e.layer, layer ?? 'block5_conv4');
      assert.equal(e.class.index, cls >= 0 ? cls : ref.top);
      assert.deepEqual([e.width, e.height], [ref.w, ref.h]);
      assert.ok(Math.max(...ref.cam) > 0, 'the reference map is not all zero');
      const err = relErr(e.map, ref.cam);
      assert.ok(err <= TOL, `VGG19 Grad-CAM at ${e.layer}: relative error ${err}`);
      assert.equal(e.max, Math.max(...e.map));
    }
    const probs = tf.tidy(() => tf.softmax(keras.logitsFrom('input_1', xt)).dataSync());
    const top = await run({ model: 'vgg19', image: img });
    assert.ok(Math.abs(top.class.probability - probs[top.class.index]!) <= TOL * probs[top.class.index]!);
    xt.dispose();
  });

  it('InceptionV3: mixed10 (default, top class) equals tfjs-layers Grad-CAM; mixed7 for the class labelled class_7 equals the op-by-op oracle', async () => {
    const img = picture(299, 299);
    const { x, dims } = modelInput(img, 'tf');
    const keras = await kerasClassifier('inception_v3', WIDTH);
    const xt = tf.tensor(nchwToNhwc(x, 3, 299, 299), [1, 299, 299, 3]);
    const top = await run({ model: 'inception_v3', image: img, class: 'top' });
    const ref = kerasGradcam(keras, 'mixed10', xt, -1);
    xt.dispose();
    assert.equal(top.layer, 'mixed10');
    assert.equal(top.class.index, ref.top);
    assert.deepEqual([top.width, top.height], [ref.w, ref.h]);
    let err = relErr(top.map, ref.cam);
    assert.ok(err <= TOL, `InceptionV3 Grad-CAM at mixed10: relative error ${err}`);
    // After mixed7 the network branches: tfjs-layers cannot run it from there, the op-by-op oracle can.
    const e = await run({ model: 'inception_v3', image: img, class: 'class_7', layer: 'mixed7' });
    assert.deepEqual([e.class.index, e.class.label, e.width, e.height], [7, 'class_7', 17, 17]);
    err = relErr(e.map, new OnnxInTf(modelPath('inception_v3')).gradcam(x, dims, 'mixed7', 7));
    assert.ok(err <= TOL, `InceptionV3 Grad-CAM at mixed7: relative error ${err}`);
  });

  it('MNIST convnet: the default layer is the last feature map (relu_5, 3×3), equal to the op-by-op tfjs oracle', async () => {
    const img = digit();
    const { x, dims } = modelInput(img, 'mnist');
    const oracle = new OnnxInTf(modelPath('mnist-cnn'));
    const logits = oracle.logits(x, dims);
    const top = logits.indexOf(Math.max(...logits));
    const e = await run({ model: 'mnist-cnn', image: img });
    assert.equal(e.layer, 'relu_5');
    assert.equal(e.class.index, top);
    assert.deepEqual([e.width, e.height], [3, 3]);
    const err = relErr(e.map, oracle.gradcam(x, dims, 'relu_5', top));
    assert.ok(err <= TOL, `MNIST Grad-CAM: relative error ${err}`);
  });

  it('differentiates the head only: no backward convolution below the layer', () => {
    for (const [name, layer] of [['vgg19', 'block5_conv4'], ['inception_v3', 'mixed10']] as const) {
      const forward = decodeModel(readFileSync(modelPath(name))).graph!.node!;
      const facts = installedModelFacts(modelPath(name), `test-${name}`, 'probabilities');
      const count = (nodes: { opType?: string | null }[], op: string) => nodes.filter((n) => n.opType === op).length;
      const cam = decodeModel(buildGradcamModel(modelPath(name), 'probabilities', facts, layer)).graph!.node!;
      assert.equal(count(cam, 'Conv'), count(forward, 'Conv'), `${name}: the Grad-CAM graph runs the forward convolutions only`);
      assert.equal(count(cam, 'ConvTranspose'), 0);
      // The same count on the input-gradient graph shows the check can fail: there, every conv has a backward.
      const full = decodeModel(buildInputGradientModel(modelPath(name), 'input', 'probabilities', facts)).graph!.node!;
      assert.ok(count(full, 'Conv') + count(full, 'ConvTranspose') > count(forward, 'Conv'));
    }
  });
});
