// Scratch micro-benchmark (not a test; run by hand): VGG19 conv1_1…relu5_1 with random He weights + 5 Gram
// style losses at 512×512 (or SIZE env), forward-only vs forward+loss+input-gradient, and the backward
// variants side by side in ROUNDS alternating rounds (A/B/A/B: fair on a busy machine; compare the CPU
// column): flipped-weight Conv vs ConvTranspose, block-mask vs ScatterElements max-pool backward.
// Optionally InceptionV3 dream loss (mixed4..7) if BENCH_INCEPTION=1.
//   SIZE=256 RUNS=3 ROUNDS=2 node --import tsx scripts/autodiff-bench.ts
import * as ort from 'onnxruntime-node';
import { gradientGraph } from '../src/onnx/autodiff.js';
import { GraphBuilder } from '../src/onnx/builder.js';
import { randn } from '../test/autodiff-util.js';

const SIZE = Number(process.env.SIZE ?? 512);
const RUNS = Number(process.env.RUNS ?? 3);
const ROUNDS = Number(process.env.ROUNDS ?? 1);
const OPTS: ort.InferenceSession.SessionOptions = { logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } } };

function vgg(): { b: GraphBuilder; grams: { name: string; c: number }[] } {
  const b = new GraphBuilder('vgg19-style');
  let x = b.input('x', 'float32', [1, 3, 'H', 'W']);
  const blocks: [number, number][] = [[2, 64], [2, 128], [4, 256], [4, 512], [1, 512]];
  let cin = 3;
  const grams: { name: string; c: number }[] = [];
  blocks.forEach(([n, c], bi) => {
    for (let i = 0; i < n; i++) {
      const w = b.weight(`w${bi}_${i}`, [c, cin, 3, 3], randn(c * cin * 9, bi * 10 + i, Math.sqrt(2 / (cin * 9))));
      const bias = b.weight(`b${bi}_${i}`, [c], new Float32Array(c));
      x = b.node('Relu', [b.node('Conv', [x, w, bias], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })], {}, { outputs: [`block${bi + 1}_conv${i + 1}`] });
      if (i === 0) grams.push({ name: x, c });
      cin = c;
    }
    if (bi < 4) x = b.node('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] });
  });
  const losses = grams.map(({ name, c }, i) => {
    const f = b.node('Reshape', [name, b.ints([c, -1])]);
    const g = b.node('MatMul', [f, b.node('Transpose', [f], { perm: [1, 0] })]);
    const a = b.input(`A${i}`, 'float32', [c, c]);
    return b.node('ReduceSumSquare', [b.node('Sub', [g, a])], { keepdims: 0 });
  });
  b.node('Sum', losses, {}, { outputs: ['style'] });
  b.output('style');
  return { b, grams };
}

/** Wall-clock ms per run (sorted); the process CPU ms per run is logged too (robust on a busy machine). */
async function time(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>, fetch: string[]): Promise<number[]> {
  await s.run(feeds, fetch);
  const ts: number[] = [];
  const c0 = process.cpuUsage();
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await s.run(feeds, fetch);
    ts.push(performance.now() - t0);
  }
  const c = process.cpuUsage(c0);
  console.log(`    (CPU ${((c.user + c.system) / 1000 / RUNS).toFixed(0)} ms per run, wall ${ts.map((v) => v.toFixed(0)).join('/')})`);
  return ts.sort((a, b) => a - b);
}

const { b, grams } = vgg();
const fwd = b.serialize().model;
const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', randn(3 * SIZE * SIZE, 1), [1, 3, SIZE, SIZE]) };
grams.forEach(({ c }, i) => { feeds[`A${i}`] = new ort.Tensor('float32', new Float32Array(c * c), [c, c]); });
const med = (a: number[]): string => a[Math.floor(a.length / 2)]!.toFixed(0);

let s = await ort.InferenceSession.create(fwd, OPTS);
console.log(`VGG19→relu5_1 + 5 Gram losses at ${SIZE}×${SIZE}, ${RUNS} runs, median ms`);
console.log('forward + loss:', med(await time(s, feeds, ['style'])));
await s.release();
const VARIANTS = [
  { name: 'flipped Conv, block-mask max-pool (default)', options: {} },
  { name: 'flipped Conv, ScatterElements max-pool', options: { maxPoolBackward: 'scatter' } },
  { name: 'ConvTranspose, ScatterElements max-pool', options: { convBackward: 'transpose', maxPoolBackward: 'scatter' } },
] as const;
for (let round = 0; round < ROUNDS; round++) {
  for (const v of VARIANTS) {
    const t0 = performance.now();
    const g = gradientGraph(fwd, { loss: 'style', wrt: ['x'], ...v.options });
    const build = performance.now() - t0;
    const t1 = performance.now();
    s = await ort.InferenceSession.create(g, OPTS);
    const create = performance.now() - t1;
    const ts = await time(s, feeds, ['loss', 'x_grad']);
    console.log(`fwd + loss + x_grad (${v.name}): ${med(ts)} ms [${ts.map((t) => t.toFixed(0)).join(', ')}]; gradientGraph ${build.toFixed(0)} ms, session create ${create.toFixed(0)} ms`);
    await s.release();
  }
}

if (process.env.BENCH_INCEPTION === '1') {
  const { getArchitecture } = await import('../src/models/architectures/index.js');
  const { synthesizeKerasWeights } = await import('../src/models/synth.js');
  const arch = getArchitecture('inception_v3');
  const layers = ['mixed4', 'mixed5', 'mixed6', 'mixed7'];
  const coeff = [1.0, 1.5, 2.0, 2.5];
  const ib = arch.build(arch.toOnnxWeights(synthesizeKerasWeights(arch)), { includeTop: false, outputs: layers });
  ib.outputs.length = 0;
  const terms = layers.map((l, i) => {
    const crop = ib.node('Slice', [l, ib.ints([2, 2]), ib.ints([-2, -2]), ib.ints([2, 3])]);
    const ss = ib.node('ReduceSumSquare', [crop], { keepdims: 0 });
    const size = ib.node('Cast', [ib.node('Size', [l])], { to: 1 });
    return ib.node('Mul', [ib.node('Div', [ss, size]), ib.scalar(coeff[i]!)]);
  });
  ib.node('Sum', terms, {}, { outputs: ['dream'] });
  ib.output('dream');
  const inName = ib.inputs[0]!.name!;
  const ifwd = ib.serialize().model;
  const ifeeds = { [inName]: new ort.Tensor('float32', randn(3 * SIZE * SIZE, 2, 0.5), [1, 3, SIZE, SIZE]) };
  s = await ort.InferenceSession.create(ifwd, OPTS);
  console.log(`InceptionV3 → mixed7 dream loss at ${SIZE}: forward + loss ${med(await time(s, ifeeds, ['dream']))} ms`);
  await s.release();
  const g = gradientGraph(ifwd, { loss: 'dream', wrt: [inName] });
  s = await ort.InferenceSession.create(g, OPTS);
  console.log(`InceptionV3 dream fwd + loss + grad: ${med(await time(s, ifeeds, ['loss', `${inName}_grad`]))} ms`);
  await s.release();
}
