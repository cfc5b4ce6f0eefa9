#!/usr/bin/env node
// Where the time of a gradient step goes: builds the style_step_512 / dream_step_512 gradient graphs exactly
// as the bench does, runs them in an ORT session with the engine's options plus enableProfiling, and sums
// ORT's per-node profile events by op type (and the top single nodes). mnist_step is one training step of
// mnist_epoch (the ORT trainer's graph of the digit net at batch 64), as the trainer runs it and with spinning threads.
//
//   node dist/bench/profile.js [--only style_step_512|dream_step_512|mnist_step] [--runs 3] [--threads 2]
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { loadConfig } from '../config.js';
import { addDreamLoss } from '../ops/dream.js';
import { IMAGE_GRAD, IMAGE_INPUT, buildForwardModel, buildGradientModel } from '../ops/grad-session.js';
import { RECIPES, addStyleLoss, addTargetOutputs } from '../ops/style.js';
import { logger } from '../util/logger.js';
import { mnistNet } from '../train/mnist-net.js';
import { describeNet, trainingGraph } from '../train/ort-net.js';
import { initialWeights } from '../train/ort-trainable.js';
import { type BenchContext, benchModel } from './workloads.js';

const { values } = parseArgs({ options: { only: { type: 'string', default: '' }, runs: { type: 'string', default: '3' }, threads: { type: 'string', default: String(availableParallelism()) } } });
const ctx: BenchContext = { reps: 1, threads: Number(values.threads), benchModelsDir: resolve(join(loadConfig().modelsDir, '.bench')), logger };
const runs = Number(values.runs);

function options(profile: boolean, spinning = false): ort.InferenceSession.SessionOptions {
  const spin = spinning ? { intra_op: { allow_spinning: '1' }, force_spinning_stop: '1' } : { intra_op: { allow_spinning: '0' } };
  return {
    executionProviders: ['cpu'], intraOpNumThreads: ctx.threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
    enableCpuMemArena: true, enableMemPattern: process.env.MEMPAT !== '0', logSeverityLevel: 3, extra: { session: spin },
    ...(profile ? { enableProfiling: true, profileFilePrefix: join(tmpdir(), `convserve-profile-${process.pid}`) } : {}),
  };
}

const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random());

async function profile(name: string, bytes: Uint8Array, feeds: Record<string, ort.Tensor>, fetches = ['loss', IMAGE_GRAD], spinning = false): Promise<void> {
  const s = await ort.InferenceSession.create(bytes, options(true, spinning));
  await s.run(feeds, fetches); // warm-up (arena growth, prepacking)
  const wall: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await s.run(feeds, fetches);
    wall.push(performance.now() - t);
  }
  s.endProfiling(); // node binding: returns nothing; the file is <prefix>_<timestamp>.json
  await s.release();
  const prefix = `convserve-profile-${process.pid}`;
  const file = readdirSync(tmpdir()).filter((f) => f.startsWith(prefix) && f.endsWith('.json')).map((f) => join(tmpdir(), f)).sort().at(-1);
  if (!file) throw new Error(`no ORT profile file ${prefix}_*.json in ${tmpdir()}`);
  const events = JSON.parse(readFileSync(file, 'utf8')) as { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } }[];
  rmSync(file, { force: true });
  // The warm-up run grows the arena and touches fresh pages: leave its nodes out, count the timed runs only.
  const runStarts = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').map((e) => e.ts).sort((a, b) => a - b);
  const timedFrom = runStarts[1] ?? 0;
  const nodeEvents = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && e.ts >= timedFrom);
  const byOp = new Map<string, number>();
  const byNode = new Map<string, number>();
  for (const e of nodeEvents) {
    byOp.set(e.args?.op_name ?? '?', (byOp.get(e.args?.op_name ?? '?') ?? 0) + e.dur);
    byNode.set(`${e.name.replace(/_kernel_time$/, '')} (${e.args?.op_name})`, (byNode.get(`${e.name.replace(/_kernel_time$/, '')} (${e.args?.op_name})`) ?? 0) + e.dur);
  }
  const perRun = (us: number) => us / 1000 / (runStarts.length > 1 ? runs : runs + 1);
  const total = [...byOp.values()].reduce((a, b) => a + b, 0);
  const sortedWall = [...wall].sort((a, b) => a - b);
  console.log(`\n## ${name}: median wall ${sortedWall[runs >> 1]!.toFixed(0)} ms/run (${runs} runs); kernel time ${perRun(total).toFixed(0)} ms/run`);
  console.log('| op type | ms/run | share |\n|---|---|---|');
  for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`| ${op} | ${perRun(us).toFixed(1)} | ${((100 * us) / total).toFixed(1)} % |`);
  // Backward nodes are the autodiff's (named n_grad/… or grad/…, incl. their NCHWc-rewritten copies).
  const isGrad = (n: string) => n.includes('grad/');
  const split = new Map<string, [number, number]>();
  for (const [n, us] of byNode) {
    const op = /\(([^)]*)\)$/.exec(n)?.[1] ?? '?';
    const cur = split.get(op) ?? [0, 0];
    cur[isGrad(n) ? 1 : 0] += us;
    split.set(op, cur);
  }
  const fwdTotal = [...split.values()].reduce((a, v) => a + v[0], 0);
  console.log(`\nforward nodes ${perRun(fwdTotal).toFixed(0)} ms/run, backward nodes ${perRun(total - fwdTotal).toFixed(0)} ms/run; by op (forward / backward ms):`);
  for (const [op, [f, b]] of [...split].sort((a, b) => b[1][0] + b[1][1] - a[1][0] - a[1][1]).slice(0, 20)) console.log(`  ${op}: ${perRun(f).toFixed(1)} / ${perRun(b).toFixed(1)}`);
  console.log('\ntop nodes:');
  for (const [n, us] of [...byNode].sort((a, b) => b[1] - a[1]).slice(0, 8)) console.log(`  ${perRun(us).toFixed(1)} ms  ${n}`);
}

if (!values.only || values.only === 'style_step_512') {
  const modelPath = await benchModel(ctx, 'vgg19');
  const shape = [1, 3, 512, 512];
  const spec = RECIPES.gatys;
  const fwd = await ort.InferenceSession.create(buildForwardModel(modelPath, (b) => addTargetOutputs(b, 'gatys')), options(false));
  const t = await fwd.run({ [IMAGE_INPUT]: new ort.Tensor('float32', rand(512 * 512 * 3), shape) });
  await fwd.release();
  const feeds: Record<string, ort.Tensor> = {
    [IMAGE_INPUT]: new ort.Tensor('float32', rand(512 * 512 * 3), shape),
    content_target: t[spec.contentLayer]!,
    content_weight: new ort.Tensor('float32', new Float32Array([spec.weights.content]), []),
    style_weight: new ort.Tensor('float32', new Float32Array([spec.weights.style]), []),
    tv_weight: new ort.Tensor('float32', new Float32Array([spec.weights.tv]), []),
  };
  spec.styleLayers.forEach((_, i) => { feeds[`style_target_${i}`] = t[`gram_${i}`]!; });
  await profile('style_step_512 (VGG19 → relu5_1, Gatys loss, input gradient)', buildGradientModel(modelPath, (b) => addStyleLoss(b, 'gatys')), feeds);
}
if (!values.only || values.only === 'dream_step_512') {
  const modelPath = await benchModel(ctx, 'inception_v3');
  const feeds: Record<string, ort.Tensor> = { [IMAGE_INPUT]: new ort.Tensor('float32', rand(512 * 512 * 3), [1, 3, 512, 512]) };
  [1, 1.5, 2, 2.5].forEach((c, k) => { feeds[`coeff_${k}`] = new ort.Tensor('float32', new Float32Array([c]), []); });
  await profile('dream_step_512 (InceptionV3 → mixed7, Σ coeff·mean(act²), input gradient)', buildGradientModel(modelPath, (b) => addDreamLoss(b, { layers: ['mixed4', 'mixed5', 'mixed6', 'mixed7'], crop: 0 })), feeds);
}
if (values.only === 'mnist_step') {
  // Not in the default set (a training step, not a gradient-to-image step): only on request.
  const spec = mnistNet(0);
  const graph = trainingGraph(spec);
  const batch = 64;
  const feeds: Record<string, ort.Tensor> = { x: new ort.Tensor('float32', rand(batch * 784), [batch, 1, 28, 28]) };
  const labels = new Float32Array(batch * 10);
  for (let i = 0; i < batch; i++) labels[i * 10 + (i % 10)] = 1;
  feeds.labels = new ort.Tensor('float32', labels, [batch, 10]);
  for (const [name, w] of initialWeights(describeNet(spec), 0)) feeds[name] = new ort.Tensor('float32', w, describeNet(spec).params.find((p) => p.name === name)!.dims);
  const fetches = [graph.loss, graph.logits, ...Object.values(graph.grads)];
  // The trainer's session does not spin (the engine's default); OrtTrainerOptions.spinning would: both, to see
  // what spinning buys on this machine as it is now.
  await profile('mnist_step (digit net, batch 64: forward, cross-entropy, every weight gradient; as the trainer runs it)', graph.bytes, feeds, fetches, false);
  await profile('mnist_step with spinning during the run (OrtTrainerOptions.spinning)', graph.bytes, feeds, fetches, true);
}
