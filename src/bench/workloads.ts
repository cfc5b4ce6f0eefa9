// The benchmark workloads. Model-forward workloads run through the service's own Engine (an ORT session
// in a worker thread, the production session options), timed around engine.run.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadConfig } from '../config.js';
import { Engine } from '../engine/engine.js';
import { synthesizeModel } from '../models/synth.js';
import { addDreamLoss } from '../ops/dream.js';
import { CAM, CLASS_INPUT, WEIGHT_INPUT, explainSession, installedModelFacts } from '../ops/explain-graphs.js';
import { IMAGE_GRAD, IMAGE_INPUT, buildForwardModel, buildGradientModel, scalarTensor } from '../ops/grad-session.js';
import { RECIPES, addStyleLoss, addTargetOutputs } from '../ops/style.js';
import type { Logger } from '../util/logger.js';
import { KeepAliveClient, multipartBody, startServerProcess } from './server-process.js';
import { styleJob512 } from './style-job.js';
import { mnistNet } from '../train/mnist-net.js';
import { OrtTrainable } from '../train/ort-trainable.js';
import { Prng } from '../util/prng.js';

export interface BenchContext {
  reps: number;
  threads: number;
  benchModelsDir: string;
  logger: Logger;
}

export interface BenchResult {
  shape: number[];
  times: number[];
  extra?: Record<string, unknown>;
}

export interface Workload {
  name: string;
  description: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}

/** The synthetic model folder for `arch` under the bench directory, created on first use. */
export async function benchModel(ctx: BenchContext, arch: 'vgg19' | 'inception_v3'): Promise<string> {
  const dir = join(ctx.benchModelsDir, arch);
  if (!existsSync(join(dir, 'manifest.json'))) {
    process.stderr.write(`bench: creating synthetic ${arch} in ${dir} (once)…\n`);
    await synthesizeModel(arch, { modelsDir: ctx.benchModelsDir, name: arch, seed: 1 });
  }
  return join(dir, 'model.onnx');
}

function randomInput(shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.random();
  return x;
}

/** Warm-up once, then `reps` timed runs of `fn`. */
export async function timeIt(reps: number, fn: () => Promise<unknown>): Promise<number[]> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  return times;
}

/**
 * A one-worker Engine with the bench's thread count for the duration of `fn` (the service's own session path;
 * ORT's arena as CONVSERVE_ENGINE_ARENA says, so its speed cost can be measured).
 */
async function withEngine<T>(ctx: BenchContext, fn: (engine: Engine) => Promise<T>): Promise<T> {
  // The service's arena and pre-packing settings (CONVSERVE_ENGINE_ARENA / _PREPACK), so their cost can be measured.
  const config = loadConfig();
  const engine = new Engine({ workers: 1, threads: ctx.threads, taskTimeoutMs: 600_000, logger: ctx.logger, memArena: config.engineArena, prepack: config.enginePrepack });
  await engine.start();
  try {
    return await fn(engine);
  } finally {
    await engine.stop();
  }
}

function forwardWorkload(name: string, arch: 'vgg19' | 'inception_v3', shape: number[], description: string): Workload {
  return {
    name,
    description,
    async run(ctx) {
      const modelPath = await benchModel(ctx, arch);
      return withEngine(ctx, async (engine) => {
        await engine.load(name, { path: modelPath });
        const times = await timeIt(ctx.reps, () => engine.run(name, { input: { dims: shape, data: randomInput(shape) } }, { fetches: ['probabilities'] }));
        return { shape, times };
      });
    },
  };
}

/**
 * End to end: a 1-megapixel JPEG through POST /v1/classify on a real server process. The client is lean (node:http,
 * one kept-alive connection, the multipart body encoded into one buffer per request, as curl sends it), so
 * `http_overhead_ms` is the server's overhead plus the least a client adds; Node's fetch with a FormData body is
 * timed on alternate requests and reported apart (`fetch_formdata_overhead_ms`).
 */
const httpClassify: Workload = {
  name: 'http_classify_vgg19',
  description: 'POST /v1/classify?model=vgg19 with a 1-megapixel JPEG to a real server process (decode, resize, preprocess, infer, JSON)',
  async run(ctx) {
    await benchModel(ctx, 'vgg19');
    const server = await startServerProcess({ CONVSERVE_MODELS_DIR: ctx.benchModelsDir, CONVSERVE_ENGINE_THREADS: String(ctx.threads) });
    const client = new KeepAliveClient(server.url);
    const path = '/v1/classify?model=vgg19';
    try {
      const jpeg = await onemegapixelJpeg();
      type Answer = { status: number; text: string; serverTiming: string };
      const lean = async (): Promise<Answer> => {
        const { body, contentType } = multipartBody('image', 'photo.jpg', 'image/jpeg', jpeg);
        const r = await client.post(path, body, contentType);
        return { status: r.status, text: r.text, serverTiming: String(r.headers['server-timing'] ?? '') };
      };
      const viaFetch = async (): Promise<Answer> => {
        const form = new FormData();
        form.append('image', new Blob([jpeg], { type: 'image/jpeg' }), 'photo.jpg');
        const r = await fetch(`${server.url}${path}`, { method: 'POST', body: form });
        return { status: r.status, text: await r.text(), serverTiming: r.headers.get('server-timing') ?? '' };
      };
      // Per request: the overhead = end to end − time inside ORT's run(), taken request by request (a difference
      // of medians would carry the inference's run-to-run noise); the server's Server-Timing stages; `client` =
      // end to end − the server's total (sending the request, reading the answer).
      const series: Record<string, number[]> = {};
      const push = (k: string, v: number) => (series[k] ??= []).push(v);
      const timed = async (send: () => Promise<Answer>, prefix: string) => {
        const t0 = performance.now();
        const r = await send();
        const total = performance.now() - t0;
        if (r.status !== 200) throw new Error(`classify answered ${r.status}: ${r.text}`);
        const body = JSON.parse(r.text) as { timing_ms: { decode: number; preprocess: number; queue: number; infer: number } };
        const stages = parseServerTiming(r.serverTiming);
        push(`${prefix}overhead`, total - body.timing_ms.infer);
        push(`${prefix}client`, total - (stages.total ?? NaN));
        if (prefix) return total;
        for (const k of ['decode', 'preprocess', 'queue', 'infer'] as const) push(k, body.timing_ms[k]);
        for (const [name, ms] of Object.entries(stages)) push(`server.${name}`, ms);
        push('server_overhead', (stages.total ?? NaN) - body.timing_ms.infer);
        // The server's time in no named stage (between stages: parameter parsing, promise hops, returning).
        push('server_unattributed', Object.entries(stages).reduce((left, [name, ms]) => (name === 'total' ? left : left - ms), stages.total ?? NaN));
        return total;
      };
      await timed(lean, '');
      await timed(viaFetch, 'fetch.');
      const times: number[] = [];
      for (let i = 0; i < ctx.reps; i++) {
        times.push(await timed(lean, ''));
        await timed(viaFetch, 'fetch.');
      }
      const med = (k: string) => { const s = (series[k] ?? []).slice(1).sort((a, b) => a - b); return Math.round((s[s.length >> 1] ?? NaN) * 100) / 100; };
      const serverStages = Object.keys(series).filter((k) => k.startsWith('server.')).map((k) => [k.slice('server.'.length), med(k)]);
      return {
        shape: [1, 3, 224, 224], times,
        extra: {
          jpeg_bytes: jpeg.length, input: '1155x866 JPEG', median_infer_ms: med('infer'), http_overhead_ms: med('overhead'), median_decode_ms: med('decode'), median_preprocess_ms: med('preprocess'), median_queue_ms: med('queue'),
          // The server's own share (its Server-Timing total − infer), each stage's median (they need not add up to
          // the median total), what the lean client adds, and the same request sent by fetch + FormData.
          server_overhead_ms: med('server_overhead'), server_timing_ms: Object.fromEntries(serverStages), server_unattributed_ms: med('server_unattributed'), client_ms: med('client'),
          fetch_formdata_overhead_ms: med('fetch.overhead'), fetch_formdata_client_ms: med('fetch.client'),
        },
      };
    } finally {
      client.close();
      await server.stop();
    }
  },
};

/** `a;dur=1.5, b;desc="x";dur=2` → { a: 1.5, b: 2 } (metrics without a duration are left out). */
export function parseServerTiming(header: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const metric of header.split(',')) {
    const [name, ...params] = metric.trim().split(';');
    const dur = params.map((p) => p.trim()).find((p) => p.startsWith('dur='));
    if (name && dur) out[name.trim()] = Number(dur.slice(4));
  }
  return out;
}

/** The 1155×866 JPEG (≈1 megapixel) the HTTP workloads send. */
export async function onemegapixelJpeg(): Promise<Buffer> {
  const sample = fileURLToPath(new URL('../../samples/coffee.jpg', import.meta.url));
  const base = existsSync(sample) ? sharp(readFileSync(sample)) : sharp({ create: { width: 64, height: 48, channels: 3, background: '#886644' } }).png();
  return base.resize(1155, 866, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
}

/**
 * style_step_512, as torch_peer.py: VGG19 → relu5_1 on 1×3×512×512, Gram style loss on relu1_1…relu5_1
 * (block1_conv1…block5_conv1) 1e-6·Σ(G−A)²/(4c²n²), content 2.5e-8·Σ(relu4_2 − target)², TV
 * 1e-6·Σ(dx²+dy²)^1.25, backward to the image = the `gatys` recipe of src/ops/style.ts. Targets from a
 * random image (forward session, untimed); each timed run = forward + loss + input gradient, fetching only
 * `loss` and `input_grad`.
 */
const styleStep: Workload = {
  name: 'style_step_512',
  description: 'VGG19 to relu5_1, 1x3x512x512: Gatys Gram style loss (relu1_1..relu5_1) + content (relu4_2) + TV, forward + backward to the image',
  async run(ctx) {
    const modelPath = await benchModel(ctx, 'vgg19');
    const shape = [1, 3, 512, 512];
    return withEngine(ctx, async (engine) => {
      const t0 = performance.now();
      const gradBytes = buildGradientModel(modelPath, (b) => addStyleLoss(b, 'gatys'));
      const buildMs = performance.now() - t0;
      const info = await engine.load('style_step', { bytes: gradBytes });
      await engine.load('style_targets', { bytes: buildForwardModel(modelPath, (b) => addTargetOutputs(b, 'gatys')) });
      const spec = RECIPES.gatys;
      const names = [...spec.styleLayers.map((_, i) => `gram_${i}`), spec.contentLayer];
      const t = await engine.run('style_targets', { [IMAGE_INPUT]: { dims: shape, data: randomInput(shape) } }, { fetches: names });
      await engine.unload('style_targets');
      const x = randomInput(shape);
      const feeds = () => {
        const f: Record<string, { dims: number[]; data: Float32Array }> = {
          [IMAGE_INPUT]: { dims: shape, data: x.slice() },
          content_target: { dims: t.outputs[spec.contentLayer]!.dims, data: t.outputs[spec.contentLayer]!.data.slice() },
          content_weight: scalarTensor(spec.weights.content), style_weight: scalarTensor(spec.weights.style), tv_weight: scalarTensor(spec.weights.tv),
        };
        spec.styleLayers.forEach((_, i) => { f[`style_target_${i}`] = { dims: t.outputs[`gram_${i}`]!.dims, data: t.outputs[`gram_${i}`]!.data.slice() }; });
        return f;
      };
      const times = await timeIt(ctx.reps, () => engine.run('style_step', feeds(), { priority: 'job', fetches: ['loss', IMAGE_GRAD] }));
      return { shape, times, extra: { graph_build_ms: Math.round(buildMs), session_load_ms: Math.round(info.loadMs) } };
    });
  },
};

/** style_job_512: time to result of schedule=progressive against a fixed-resolution run (src/bench/style-job.ts). */
const styleJob: Workload = {
  name: 'style_job_512',
  description: 'a default style job (keras recipe, L-BFGS, 40 evaluations) at 512x512 on synthetic VGG19: fixed-resolution time and loss, progressive time to reach that loss (median_ms), ratio',
  run: (ctx) => styleJob512(ctx, () => benchModel(ctx, 'vgg19')),
};

/**
 * dream_step_512, as torch_peer.py: InceptionV3 → mixed7 on 1×3×512×512, loss Σ coeff·mean(act²) over
 * mixed4…mixed7 (1, 1.5, 2, 2.5; no border crop), backward to the image.
 */
const dreamStep: Workload = {
  name: 'dream_step_512',
  description: 'InceptionV3 to mixed7, 1x3x512x512: sum of coeff*mean(act^2) over mixed4..mixed7, forward + backward to the image',
  async run(ctx) {
    const modelPath = await benchModel(ctx, 'inception_v3');
    const shape = [1, 3, 512, 512];
    const layers = ['mixed4', 'mixed5', 'mixed6', 'mixed7'];
    const coeffs = [1, 1.5, 2, 2.5];
    return withEngine(ctx, async (engine) => {
      const t0 = performance.now();
      const bytes = buildGradientModel(modelPath, (b) => addDreamLoss(b, { layers, crop: 0 }));
      const buildMs = performance.now() - t0;
      const info = await engine.load('dream_step', { bytes });
      const x = randomInput(shape);
      const feeds = () => {
        const f: Record<string, { dims: number[]; data: Float32Array }> = { [IMAGE_INPUT]: { dims: shape, data: x.slice() } };
        coeffs.forEach((c, k) => { f[`coeff_${k}`] = scalarTensor(c); });
        return f;
      };
      const times = await timeIt(ctx.reps, () => engine.run('dream_step', feeds(), { priority: 'job', fetches: ['loss', IMAGE_GRAD] }));
      return { shape, times, extra: { graph_build_ms: Math.round(buildMs), session_load_ms: Math.round(info.loadMs) } };
    });
  },
};

/**
 * gradcam_vgg19, as torch_peer.py: VGG19 with its classifier on 1×3×224×224, forward, backward of the top class's
 * pre-softmax logit to block5_conv4's output (after its ReLU) only, channel weights = spatial mean of that
 * gradient, map = ReLU(Σ weighted channels) (14×14) — the explain graph of src/ops/explain-graphs.ts, loaded
 * the way the service loads it, fetching only the map.
 */
const gradcam: Workload = {
  name: 'gradcam_vgg19',
  description: 'Grad-CAM on VGG19 at 1x3x224x224: forward with its classifier, backward of the top class logit to block5_conv4 only, channel weights, map (14x14)',
  async run(ctx) {
    const modelPath = await benchModel(ctx, 'vgg19');
    const shape = [1, 3, 224, 224];
    return withEngine(ctx, async (engine) => {
      const t0 = performance.now();
      const facts = installedModelFacts(modelPath, 'bench', 'probabilities');
      // The service's path: the graph written next to model.onnx, loaded by path (weights read by ORT).
      const key = await explainSession(engine, { modelPath, stamp: 'bench', input: 'input', output: 'probabilities', facts }, { kind: 'gradcam', layer: 'block5_conv4' });
      const loadMs = performance.now() - t0;
      const x = randomInput(shape);
      const feeds = () => ({
        input: { dims: shape, data: x.slice() },
        [CLASS_INPUT]: scalarTensor(-1),
        [WEIGHT_INPUT]: { dims: [1], data: new Float32Array([1]) },
      });
      const times = await timeIt(ctx.reps, () => engine.run(key, feeds(), { priority: 'interactive', fetches: [CAM] }));
      return { shape, times, extra: { build_and_load_ms: Math.round(loadMs) } };
    });
  },
};

/**
 * mnist_epoch, as torch_peer.py: one training epoch of the DLP §5.1 convnet (93,322 parameters, no dropout) on
 * 8,000 random 1×28×28 images with random labels, batch 64 (125 steps), RMSprop lr 1e-3 (ρ 0.9, ε 1e-7), softmax
 * cross-entropy — the ONNX Runtime trainer of `convserve train`, each step one gradient run in the engine's worker.
 */
const mnistEpoch: Workload = {
  name: 'mnist_epoch',
  description: 'one training epoch of the 93,322-parameter MNIST convnet: 8000 random 1x28x28 images, batch 64, RMSprop lr 1e-3 (ORT trainer)',
  async run(ctx) {
    const n = 8000;
    const batch = 64;
    const rng = new Prng(0);
    const x = rng.fillUniform(new Float32Array(n * 784), 0, 1);
    const y = Uint8Array.from({ length: n }, () => rng.int(10));
    const trainer = await OrtTrainable.create({ spec: mnistNet(0), optimizer: { name: 'rmsprop' }, learningRate: 1e-3, seed: 0, threads: ctx.threads });
    try {
      const epoch = async () => {
        for (let i = 0; i < n; i += batch) {
          await trainer.step({ x: { data: x.subarray(i * 784, (i + batch) * 784), shape: [1, 28, 28] }, y: y.subarray(i, i + batch) }, i);
        }
      };
      const times = await timeIt(ctx.reps, epoch);
      return { shape: [n, 1, 28, 28], times, extra: { parameters: trainer.parameters, steps: Math.ceil(n / batch), optimizer: 'rmsprop' } };
    } finally {
      await trainer.release();
    }
  },
};

export const WORKLOADS: Workload[] = [
  forwardWorkload('classify_vgg19', 'vgg19', [1, 3, 224, 224], 'VGG19 with its classifier, 1x3x224x224, forward only'),
  forwardWorkload('classify_vgg19_b8', 'vgg19', [8, 3, 224, 224], 'the same at batch 8 (time per batch)'),
  forwardWorkload('classify_inception_v3', 'inception_v3', [1, 3, 299, 299], 'InceptionV3 with its classifier, 1x3x299x299, forward only'),
  httpClassify,
  styleStep,
  styleJob,
  dreamStep,
  gradcam,
  mnistEpoch,
];
