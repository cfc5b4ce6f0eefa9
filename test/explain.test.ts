// Explanations (src/ops/explain.ts) on real engine sessions over installed model folders: synthetic VGG19 and
// InceptionV3 at width 1/8 with their classifiers, and the committed trained MNIST convnet. Oracles: tfjs-layers
// Keras models built from the same weights (Grad-CAM, VGG19 saliency), the model.onnx re-executed op by op in
// tfjs (InceptionV3 saliency, MNIST), tf.grad for every gradient; the gradient theorem (integrated gradients'
// completeness); SmoothGrad with zero noise = saliency.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { RawImage } from '../src/image/io.js';
import { decodeModel } from '../src/onnx/proto.js';
import sharp from 'sharp';
import { TURBO } from '../src/ops/colormap-turbo.js';
import { type ExplainInput, explain, explanationJson } from '../src/ops/explain.js';
import { renderExplanationPng } from '../src/ops/explain-render.js';
import { buildGradcamModel, buildInputGradientModel, installedModelFacts } from '../src/ops/explain-graphs.js';
import { isProblem } from '../src/util/problem.js';
import { type ExplainBench, WIDTH, digit, explainBench, greyPicture, modelInput, picture, relErr } from './explain-fixtures.js';
import { OnnxInTf, kerasClassifier, kerasGradcam, nchwToNhwc, tf } from './explain-oracle.js';

const TOL = 1e-4;
let bench: ExplainBench;

const run = (input: Partial<ExplainInput> & { model: string; image: RawImage }) => explain({ engine: bench.engine, registry: bench.registry }, input);
const modelPath = (name: string) => bench.modelPath(name);
/** Parameters as an unvalidated front might pass them on (JSON.parse: no static types). */
const unchecked = (o: Record<string, unknown>): Partial<ExplainInput> => JSON.parse(JSON.stringify(o));

async function rejects(p: Promise<unknown>, status: number, slug: string, detail?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isProblem(e), String(e));
    assert.equal(e.status, status);
    assert.equal(e.slug, slug);
    if (detail) assert.match(e.detail, detail);
    return true;
  });
}

before(async () => { bench = await explainBench('convserve-explain-'); });
after(async () => { await bench?.close(); });

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

  it('an imported model (tfjs-layers convnet through the Keras converter, grey, rescale): the default layer is its last 4-D map, equal to the op-by-op oracle', async () => {
    const img = greyPicture();
    const { x, dims } = modelInput(img, 'mnist'); // rescale:1/255 is the mnist mapping v / 255
    const oracle = new OnnxInTf(modelPath('tiny-grey'));
    const logits = oracle.logits(x, dims);
    const e = await run({ model: 'tiny-grey', image: img });
    assert.equal(e.class.index, logits.indexOf(Math.max(...logits)));
    const ref = oracle.gradcam(x, dims, e.layer, e.class.index);
    assert.equal(e.map.length, ref.length);
    assert.ok(e.width > 1 && e.height > 1, `a spatial map: ${e.width}×${e.height}`);
    assert.ok(Math.max(...ref) > 0, 'the reference map is not all zero');
    const err = relErr(e.map, ref);
    assert.ok(err <= TOL, `imported model Grad-CAM at ${e.layer}: relative error ${err}`);
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

describe('parameters and errors', () => {
  it('the JSON answer: the contract fields, map as a row-major number array of width × height', async () => {
    const e = await run({ model: 'mnist-cnn', image: digit(), class: '3' });
    const json = explanationJson(e);
    assert.deepEqual(Object.keys(json).sort(), ['class', 'height', 'layer', 'map', 'max', 'method', 'model', 'width']);
    assert.ok(Array.isArray(json.map) && json.map.length === json.width * json.height);
    assert.deepEqual(json.class.index, 3);
    assert.equal(json.method, 'gradcam');
    const parsed = JSON.parse(JSON.stringify(json)) as typeof json;
    assert.deepEqual(parsed.map, Array.from(e.map));
  });

  it('a missing layer is a 422 listing the feature maps (Keras layer names, no internals)', async () => {
    await rejects(run({ model: 'vgg19', image: picture(224, 224), layer: 'block9_conv1' }), 422, 'unknown-layer', /block5_conv4/);
    try {
      await run({ model: 'vgg19', image: picture(224, 224), layer: 'fc1' });
      assert.fail('fc1 is not a feature map');
    } catch (e) {
      assert.ok(isProblem(e) && e.status === 422);
      const layers = e.extensions.layers as string[];
      assert.deepEqual(layers.slice(0, 3), ['block1_conv1', 'block1_conv2', 'block1_pool']);
      assert.equal(layers.at(-1), 'block5_pool');
      assert.equal(layers.length, 16 + 5);
      assert.ok(layers.every((l) => !l.includes('/')));
    }
  });

  it('an unknown class is a 422: an index out of range, a label the model does not have', async () => {
    const img = digit();
    await rejects(run({ model: 'mnist-cnn', image: img, class: 10 }), 422, 'unknown-class', /0 to 9/);
    await rejects(run({ model: 'mnist-cnn', image: img, class: -1 }), 422, 'unknown-class');
    await rejects(run({ model: 'vgg19', image: picture(224, 224), class: 'zebra' }), 422, 'unknown-class', /zebra/);
    const byLabel = await run({ model: 'vgg19', image: picture(224, 224), class: 'CLASS_12', method: 'saliency' });
    assert.equal(byLabel.class.index, 12);
  });

  it('steps × samples above the limit is a 422 suggesting a job; other methods do not count them', async () => {
    const deps = { engine: bench.engine, registry: bench.registry, maxPasses: 10 };
    const img = digit();
    await rejects(explain(deps, { model: 'mnist-cnn', image: img, method: 'integrated-gradients', steps: 11 }), 422, 'too-many-passes', /job/);
    await rejects(explain(deps, { model: 'mnist-cnn', image: img, method: 'smoothgrad', samples: 11 }), 422, 'too-many-passes', /CONVSERVE_EXPLAIN_MAX_PASSES/);
    const ok = await explain(deps, { model: 'mnist-cnn', image: img, method: 'integrated-gradients', steps: 10 });
    assert.ok(ok.completeness);
    assert.equal((await explain(deps, { model: 'mnist-cnn', image: img, method: 'saliency', steps: 1000, samples: 1000 })).method, 'saliency');
  });

  it('bad parameters are 400s, an unknown model a 404', async () => {
    const img = digit();
    await rejects(run({ model: 'mnist-cnn', image: img, ...unchecked({ method: 'lime' }) }), 400, 'invalid-parameter', /method/);
    await rejects(run({ model: 'mnist-cnn', image: img, method: 'integrated-gradients', steps: 0 }), 400, 'invalid-parameter', /steps/);
    await rejects(run({ model: 'mnist-cnn', image: img, method: 'smoothgrad', noise: 2 }), 400, 'invalid-parameter', /noise/);
    await rejects(run({ model: 'mnist-cnn', image: img, ...unchecked({ baseline: 'white' }) }), 400, 'invalid-parameter', /baseline/);
    await rejects(run({ model: 'resnet50', image: img }), 404, 'unknown-model', /mnist-cnn/);
  });
});

describe('PNG rendering', () => {
  const map = Float32Array.from([0, 1, 2, 4]);
  const base = { model: 'm', method: 'gradcam' as const, class: { index: 0, label: 'a', probability: 1 }, layer: 'l', width: 2, height: 2, map, max: 4 };
  /** Bilinear sample of the 2×2 map at map coordinates (clamped), written out independently of the renderer. */
  const at = (mx: number, my: number) => {
    const x = Math.min(Math.max(mx, 0), 1), y = Math.min(Math.max(my, 0), 1);
    return (map[0]! * (1 - x) + map[1]! * x) * (1 - y) + (map[2]! * (1 - x) + map[3]! * x) * y;
  };
  const blend = (grey: number, t: number) => [0, 1, 2].map((c) => Math.round(0.5 * grey + 0.5 * TURBO[Math.round(t * 255) * 3 + c]!));

  it('squash: the map stretched over the whole picture, |value| / max through Turbo, blended half and half', async () => {
    const img: RawImage = { data: Buffer.alloc(8 * 6 * 3, 100), width: 8, height: 6, channels: 3 };
    const png = await renderExplanationPng(img, { ...base, view: { imageWidth: 8, imageHeight: 6, inputWidth: 4, inputHeight: 4, resize: 'squash' } });
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [8, 6, 3]);
    for (const [x, y] of [[0, 0], [7, 5], [3, 2], [5, 1]] as const) {
      const t = at(((x + 0.5) / 8) * 2 - 0.5, ((y + 0.5) / 6) * 2 - 0.5) / 4;
      assert.deepEqual(Array.from(data.subarray((y * 8 + x) * 3, (y * 8 + x) * 3 + 3)), blend(100, t), `pixel ${x},${y}`);
    }
  });

  it('crop: the map covers the centred square the model saw; the cut-away sides are darkened; grey pictures work', async () => {
    const img: RawImage = { data: Buffer.alloc(12 * 6, 200), width: 12, height: 6, channels: 1 };
    const png = await renderExplanationPng(img, { ...base, view: { imageWidth: 12, imageHeight: 6, inputWidth: 4, inputHeight: 4, resize: 'crop' } });
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height, info.channels], [12, 6, 3]);
    const px = (x: number, y: number) => Array.from(data.subarray((y * 12 + x) * 3, (y * 12 + x) * 3 + 3));
    for (const x of [0, 2, 9, 11]) assert.deepEqual(px(x, 3), [100, 100, 100], `column ${x} lies outside the crop`);
    // The crop is columns 3…8 (6 px = the 4 px input at scale 2/3).
    for (const [x, y] of [[3, 0], [8, 5], [5, 3]] as const) {
      const t = at(((x + 0.5 - 3) / 6) * 2 - 0.5, ((y + 0.5) / 6) * 2 - 0.5) / 4;
      assert.deepEqual(px(x, y), blend(200, t), `pixel ${x},${y}`);
    }
  });
});
