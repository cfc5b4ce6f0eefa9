// The benchmark workloads. Model-forward workloads run through the service's own Engine (an ORT session
// in a worker thread, the production session options), timed around engine.run.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { Engine } from '../engine/engine.js';
import { synthesizeModel } from '../models/synth.js';
import type { Logger } from '../util/logger.js';

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

function forwardWorkload(name: string, arch: 'vgg19' | 'inception_v3', shape: number[], description: string): Workload {
  return {
    name,
    description,
    async run(ctx) {
      const modelPath = await benchModel(ctx, arch);
      const engine = new Engine({ workers: 1, threads: ctx.threads, taskTimeoutMs: 600_000, logger: ctx.logger });
      await engine.start();
      try {
        await engine.load(name, { path: modelPath });
        const times = await timeIt(ctx.reps, () => engine.run(name, { input: { dims: shape, data: randomInput(shape) } }, { fetches: ['probabilities'] }));
        return { shape, times };
      } finally {
        await engine.stop();
      }
    },
  };
}

/** End to end: a 1-megapixel JPEG through POST /v1/classify on a real server process. */
const httpClassify: Workload = {
  name: 'http_classify_vgg19',
  description: 'POST /v1/classify?model=vgg19 with a 1-megapixel JPEG to a real server process (decode, resize, preprocess, infer, JSON)',
  async run(ctx) {
    await benchModel(ctx, 'vgg19');
    const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));
    const child = spawn(process.execPath, [cli, 'serve'], {
      env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', CONVSERVE_MODELS_DIR: ctx.benchModelsDir, CONVSERVE_AUTO_FETCH: 'false', CONVSERVE_ENGINE_THREADS: String(ctx.threads) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const port = await new Promise<number>((resolvePort, reject) => {
        let buf = '';
        child.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          const m = /"port":(\d+)/.exec(buf);
          if (m) resolvePort(Number(m[1]));
        });
        child.once('exit', (c) => reject(new Error(`server exited with ${c}`)));
      });
      const url = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 600; i++) {
        const r = await fetch(`${url}/readyz`).catch(() => undefined);
        if (r?.ok) break;
        await new Promise((res) => setTimeout(res, 200));
      }
      const jpeg = await onemegapixelJpeg();
      const form = () => { const f = new FormData(); f.append('image', new Blob([jpeg], { type: 'image/jpeg' }), 'photo.jpg'); return f; };
      let inferMs: number[] = [];
      const times = await timeIt(ctx.reps, async () => {
        const res = await fetch(`${url}/v1/classify?model=vgg19`, { method: 'POST', body: form() });
        if (!res.ok) throw new Error(`classify answered ${res.status}: ${await res.text()}`);
        const body = (await res.json()) as { timing_ms: { infer: number } };
        inferMs.push(body.timing_ms.infer);
      });
      inferMs = inferMs.slice(1);
      const medianInfer = [...inferMs].sort((a, b) => a - b)[inferMs.length >> 1] ?? 0;
      const sortedTimes = [...times].sort((a, b) => a - b);
      return { shape: [1, 3, 224, 224], times, extra: { jpeg_bytes: jpeg.length, input: '1155x866 JPEG', median_infer_ms: medianInfer, http_overhead_ms: Math.round((sortedTimes[times.length >> 1]! - medianInfer) * 10) / 10 } };
    } finally {
      child.kill('SIGTERM');
    }
  },
};

async function onemegapixelJpeg(): Promise<Buffer> {
  const sample = fileURLToPath(new URL('../../samples/coffee.jpg', import.meta.url));
  const base = existsSync(sample) ? sharp(readFileSync(sample)) : sharp({ create: { width: 64, height: 48, channels: 3, background: '#886644' } }).png();
  return base.resize(1155, 866, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
}

export const WORKLOADS: Workload[] = [
  forwardWorkload('classify_vgg19', 'vgg19', [1, 3, 224, 224], 'VGG19 with its classifier, 1x3x224x224, forward only'),
  forwardWorkload('classify_vgg19_b8', 'vgg19', [8, 3, 224, 224], 'the same at batch 8 (time per batch)'),
  forwardWorkload('classify_inception_v3', 'inception_v3', [1, 3, 299, 299], 'InceptionV3 with its classifier, 1x3x299x299, forward only'),
  httpClassify,
];
