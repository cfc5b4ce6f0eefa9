// Pixel attributions of src/ops/explain.ts (saliency, integrated gradients, SmoothGrad) on real engine sessions
// over installed model folders: synthetic VGG19 and InceptionV3 at width 1/8 with their classifiers, the
// committed trained MNIST convnet and an imported tfjs-layers model. Oracles: tf.grad on a tfjs-layers VGG19 and
// on the model.onnx re-executed op by op in tfjs (test/explain-oracle.ts); the gradient theorem (completeness of
// integrated gradients); integrated gradients and SmoothGrad recomputed in tfjs from the same rows on MNIST.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RawImage } from '../src/image/io.js';
import { type ExplainInput, explain } from '../src/ops/explain.js';
import { NoiseSource, gaussianBlur, valueRange } from '../src/ops/explain-maps.js';
import { OnnxInTf, kerasClassifier, nchwToNhwc, tf } from './explain-oracle.js';
import { type ExplainBench, WIDTH, digit, explainBench, greyPicture, modelInput, picture, relErr } from './explain-fixtures.js';

const TOL = 1e-4;
let bench: ExplainBench;

const run = (input: Partial<ExplainInput> & { model: string; image: RawImage }) => explain({ engine: bench.engine, registry: bench.registry }, input);
const modelPath = (name: string) => bench.modelPath(name);

/** max over channels of |g| for one CHW gradient. */
function saliency(g: Float32Array, c: number, plane: number): Float32Array {
  const out = new Float32Array(plane);
  for (let k = 0; k < c; k++) for (let i = 0; i < plane; i++) out[i] = Math.max(out[i]!, Math.abs(g[k * plane + i]!));
  return out;
}

const MODELS = [
  { name: 'vgg19', img: () => picture(224, 224), mode: 'caffe' as const },
  { name: 'inception_v3', img: () => picture(299, 299), mode: 'tf' as const },
  { name: 'mnist-cnn', img: digit, mode: 'mnist' as const },
  { name: 'tiny-grey', img: () => greyPicture(24), mode: 'mnist' as const },
];

before(async () => { bench = await explainBench('convserve-explain-px-'); });
after(async () => { await bench?.close(); });

describe('saliency', () => {
  it('VGG19: max over channels of |d logit / d input| equals tf.grad on the tfjs-layers model', async () => {
    const img = picture(224, 224);
    const { x } = modelInput(img, 'caffe');
    const keras = await kerasClassifier('vgg19', WIDTH);
    const e = await run({ model: 'vgg19', image: img, method: 'saliency', class: 3 });
    const g = tf.tidy(() => {
      const score = (xx: tf.Tensor): tf.Scalar => tf.sum(tf.slice(keras.logitsFrom('input_1', xx), [0, 3], [1, 1]));
      return Float32Array.from(tf.transpose(tf.grad(score)(tf.tensor(nchwToNhwc(x, 3, 224, 224), [1, 224, 224, 3])), [0, 3, 1, 2]).dataSync());
    });
    assert.deepEqual([e.method, e.layer, e.width, e.height, e.class.index], ['saliency', 'input', 224, 224, 3]);
    const err = relErr(e.map, saliency(g, 3, 224 * 224));
    assert.ok(err <= TOL, `VGG19 saliency: relative error ${err}`);
  });

  for (const m of MODELS.slice(1)) {
    it(`${m.name}: equals tf.grad on the op-by-op tfjs oracle (top class)`, async () => {
      const img = m.img();
      const { x, dims } = modelInput(img, m.mode);
      const oracle = new OnnxInTf(modelPath(m.name));
      const logits = oracle.logits(x, dims);
      const top = logits.indexOf(Math.max(...logits));
      const e = await run({ model: m.name, image: img, method: 'saliency' });
      assert.equal(e.class.index, top);
      const err = relErr(e.map, saliency(oracle.inputGradient(x, dims, top), dims[1]!, dims[2]! * dims[3]!));
      assert.ok(err <= TOL, `${m.name} saliency: relative error ${err}`);
    });
  }
});

describe('integrated gradients', () => {
  for (const m of MODELS) {
    it(`${m.name}: completeness at 64 steps, black and blur baselines (within 1 %; 5 % for random VGG19 from black)`, async (t) => {
      const img = m.img();
      const { x, dims } = modelInput(img, m.mode);
      const oracle = new OnnxInTf(modelPath(m.name));
      for (const baseline of ['black', 'blur'] as const) {
        const black = modelInput({ ...img, data: Buffer.alloc(img.data.length) }, m.mode).x;
        const base = baseline === 'black' ? black : gaussianBlur({ data: x, c: dims[1]!, h: dims[2]!, w: dims[3]! }, 0.1 * Math.max(dims[2]!, dims[3]!));
        // The class whose logit moves most between baseline and image: completeness is a relative statement
        // about Δ = score(x) − score(x′), checked where Δ is well conditioned.
        const lx = oracle.logits(x, dims);
        const lb = oracle.logits(base, dims);
        const diffs = Array.from(lx, (v, i) => Math.abs(v - lb[i]!));
        const cls = diffs.indexOf(Math.max(...diffs));
        const e = await run({ model: m.name, image: img, method: 'integrated-gradients', steps: 64, baseline, class: cls });
        const { sum, delta } = e.completeness!;
        assert.ok(Math.abs(delta - (lx[cls]! - lb[cls]!)) <= TOL * Math.abs(delta), `delta ${delta} vs oracle ${lx[cls]! - lb[cls]!}`);
        const rel = Math.abs(sum - delta) / Math.abs(delta);
        t.diagnostic(`${m.name} ${baseline} class ${cls}: sum ${sum} delta ${delta} (${(100 * rel).toFixed(3)} %)`);
        // Random-weight VGG19 from a black picture is the one rough case: along that path the integrand
        // ∇score · (x − x′) jumps so often that it behaves like a random walk (its change over a step h grows as
        // √h), and every quadrature rule then errs like σ/(n√12) — midpoint 3.1 % at 64 steps (0.8 % at 128,
        // 1.0 % at 256), right Riemann 0.05 %, trapezoid over 65 points 1.7 % — by luck, not by rule. There the
        // check is the 5 % of Sundararajan et al.'s own recommendation (README, Explanations).
        const bound = m.name === 'vgg19' && baseline === 'black' ? 0.05 : 0.01;
        assert.ok(rel <= bound, `${m.name} ${baseline}: Σ attributions ${sum} vs Δ ${delta} (${(100 * rel).toFixed(2)} %)`);
        let total = 0;
        for (const v of e.map) total += v;
        assert.ok(Math.abs(total - sum) <= 1e-3 * Math.abs(sum), 'the map holds the attributions summed over channels');
      }
    });
  }

  it('MNIST: the map equals integrated gradients computed in tfjs from the same 16 midpoints', async () => {
    const img = digit();
    const { x, dims } = modelInput(img, 'mnist');
    const oracle = new OnnxInTf(modelPath('mnist-cnn'));
    const e = await run({ model: 'mnist-cnn', image: img, method: 'integrated-gradients', steps: 16, class: 4 });
    const ref = new Float32Array(x.length);
    for (let k = 0; k < 16; k++) {
      const a = (k + 0.5) / 16;
      const g = oracle.inputGradient(Float32Array.from(x, (v) => a * v), dims, 4);
      for (let i = 0; i < x.length; i++) ref[i]! += (x[i]! * g[i]!) / 16;
    }
    const err = relErr(e.map, ref);
    assert.ok(err <= TOL, `MNIST integrated gradients: relative error ${err}`);
  });
});

describe('SmoothGrad', () => {
  it('MNIST: the mean of the noisy rows\' saliency maps, recomputed in tfjs from the same seeded noise', async () => {
    const img = digit();
    const { x, dims } = modelInput(img, 'mnist');
    const oracle = new OnnxInTf(modelPath('mnist-cnn'));
    const e = await run({ model: 'mnist-cnn', image: img, method: 'smoothgrad', samples: 8, noise: 0.2, seed: 11, class: 2 });
    const noise = new NoiseSource(11);
    const sigma = 0.2 * valueRange(x);
    const ref = new Float32Array(x.length);
    const row = new Float32Array(x.length);
    for (let s = 0; s < 8; s++) {
      noise.writeNoisy(row, 0, x, sigma);
      const sal = saliency(oracle.inputGradient(row, dims, 2), 1, x.length);
      for (let i = 0; i < x.length; i++) ref[i]! += sal[i]! / 8;
    }
    const err = relErr(e.map, ref);
    assert.ok(err <= TOL, `MNIST SmoothGrad: relative error ${err}`);
  });

  for (const m of MODELS) {
    it(`${m.name}: zero noise gives the saliency map; the seed decides the noise`, async () => {
      const img = m.img();
      const sal = await run({ model: m.name, image: img, method: 'saliency' });
      const flat = await run({ model: m.name, image: img, method: 'smoothgrad', samples: 3, noise: 0 });
      assert.ok(relErr(flat.map, sal.map) <= 1e-6, 'noise 0');
      const a = await run({ model: m.name, image: img, method: 'smoothgrad', samples: 3, seed: 5 });
      const b = await run({ model: m.name, image: img, method: 'smoothgrad', samples: 3, seed: 5 });
      const c = await run({ model: m.name, image: img, method: 'smoothgrad', samples: 3, seed: 6 });
      assert.deepEqual(a.map, b.map);
      assert.ok(relErr(c.map, a.map) > 1e-3, 'another seed, other noise');
      assert.deepEqual([a.width, a.height, a.class.index], [sal.width, sal.height, sal.class.index]);
      assert.ok(a.map.every((v) => v >= 0 && Number.isFinite(v)));
    });
  }
});
