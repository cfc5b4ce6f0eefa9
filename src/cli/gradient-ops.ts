// `convserve dream <image> -o out.png` and `convserve style <content> <style…> -o out.png`: the dream and
// style job kinds run in-process (the same step loop as POST /v1/dream and /v1/style) on a core with the
// inference engine, as `convserve classify` uses, with a progress bar (step, loss, ETA).
import { mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { type OutputFormat, type RawImage, chooseOutputFormat, decodeImage, encodeImage } from '../image/io.js';
import { runLocalJob } from '../app/local-jobs.js';
import type { JobInputs } from '../jobs/kind.js';
import { withInferenceCore } from './core.js';

const fmtEta = (s: number | undefined) => (s === undefined ? '?' : s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60)}s` : `${Math.round(s)}s`);
const fmtNum = (v: number | undefined) => (v === undefined ? '?' : Number(v.toPrecision(4)).toString());

interface CommonOpts { output: string; previews?: string; json?: boolean; param?: string[] }

/** `--param k=v` (repeatable) for any parameter without a dedicated flag. */
function extraParams(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--param expects key=value, got '${kv}'`);
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

async function runKind(kind: 'dream' | 'style', inputs: JobInputs, params: Record<string, unknown>, opts: CommonOpts): Promise<void> {
  const format: OutputFormat = chooseOutputFormat(extname(opts.output).slice(1) || undefined, undefined);
  await withInferenceCore(async (core) => {
    const ac = new AbortController();
    const onSig = () => ac.abort('interrupted');
    process.once('SIGINT', onSig);
    if (opts.previews) mkdirSync(opts.previews, { recursive: true });
    const bar = !opts.json && process.stderr.isTTY
      ? new cliProgress.SingleBar({ format: '{bar} {percentage}% | step {value}/{total} | loss {loss} | {step_ms} ms/step | ETA {eta_s}', hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic)
      : undefined;
    let started = false;
    try {
      const out = await runLocalJob(core, kind, inputs, params, {
        signal: ac.signal,
        onProgress: (p) => {
          if (bar) {
            if (!started) { bar.start(p.total, 0, { loss: '?', step_ms: '?', eta_s: '?' }); started = true; }
            bar.update(p.step, { loss: fmtNum(p.metrics.loss), step_ms: p.step_ms !== undefined ? Math.round(p.step_ms) : '?', eta_s: fmtEta(p.eta_s) });
          } else if (!opts.json && (p.step === p.total || p.step % Math.max(1, Math.round(p.total / 20)) === 0)) {
            console.error(`step ${p.step}/${p.total} loss ${fmtNum(p.metrics.loss)} ETA ${fmtEta(p.eta_s)}`);
          }
        },
        onPreview: opts.previews ? async (img: RawImage, step: number) => { await writeFile(join(opts.previews!, `preview-${step}.png`), await encodeImage(img, 'png')); } : undefined,
      });
      bar?.stop();
      await writeFile(opts.output, await encodeImage(out.result, format));
      if (opts.json) console.log(JSON.stringify({ output: opts.output, format, width: out.result.width, height: out.result.height, steps: out.steps, run_ms: Math.round(out.runMs), params: out.params }));
      else console.log(`${opts.output}: ${out.result.width}×${out.result.height} ${format}, ${out.steps} steps in ${(out.runMs / 1000).toFixed(1)} s`);
    } finally {
      bar?.stop();
      process.off('SIGINT', onSig);
    }
  });
}

async function load(file: string): Promise<RawImage> {
  const config = loadConfig();
  return decodeImage(await readFile(file), config);
}

/** Copies the options that were given into job parameters (commander camelCase → API snake_case). */
function pick(opts: Record<string, unknown>, map: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [flag, param] of Object.entries(map)) if (opts[flag] !== undefined) out[param] = opts[flag];
  return out;
}

export function registerGradientOpCommands(program: Command): void {
  program.command('dream <image>')
    .description('DeepDream in-process (same core as POST /v1/dream; keras-io recipe by default) on an InceptionV3 model.')
    .requiredOption('-o, --output <file>', 'output file (.png, .jpg, .webp)')
    .option('-m, --model <name>', 'InceptionV3-architecture model (default inception_v3)')
    .option('--layers <list>', 'layer:coefficient list (default mixed4:1,mixed5:1.5,mixed6:2,mixed7:2.5)')
    .option('--octaves <n>', 'number of octaves (default 3)')
    .option('--octave-scale <s>', 'scale between octaves (default 1.4)')
    .option('--iterations <n>', 'gradient-ascent iterations per octave (default 20)')
    .option('--step <s>', 'ascent step size (default 0.01)')
    .option('--max-loss <x>', 'stop an octave once the loss exceeds this (default 15)')
    .option('--jitter <px|full>', 'random roll per iteration (default: none for one tile, full otherwise)')
    .option('--seed <n>', 'seed of the random roll (default 0)')
    .option('--max-size <px>', 'longest output side (default: the input size, capped by CONVSERVE_MAX_JOB_PIXELS)')
    .option('--tile-size <px>', 'gradient tile size (default 512)')
    .option('--param <k=v...>', 'any other job parameter')
    .option('--previews <dir>', 'write a preview after each octave into this folder')
    .option('--json', 'print a JSON summary instead of a progress bar')
    .action(async (file: string, opts: Record<string, unknown> & CommonOpts) => {
      const params = {
        ...pick(opts, { model: 'model', layers: 'layers', octaves: 'octaves', octaveScale: 'octave_scale', iterations: 'iterations', step: 'step', maxLoss: 'max_loss', jitter: 'jitter', seed: 'seed', maxSize: 'max_size', tileSize: 'tile_size' }),
        ...extraParams(opts.param),
      };
      await runKind('dream', { image: [await load(file)] }, params, opts);
    });

  program.command('style <content> <style...>')
    .description('Neural style transfer in-process (same core as POST /v1/style; keras-io recipe, L-BFGS by default) on a VGG19 model.')
    .requiredOption('-o, --output <file>', 'output file (.png, .jpg, .webp)')
    .option('-m, --model <name>', 'VGG19-architecture model (default vgg19)')
    .option('--recipe <r>', 'keras (default) | gatys')
    .option('--optimizer <o>', 'lbfgs (default) | adam | sgd')
    .option('--iterations <n>', 'loss+gradient evaluations (default 40)')
    .option('--size <rows>', 'working image rows (default 400; columns keep the aspect)')
    .option('--schedule <s>', 'progressive (¼ → ½ → full size; the default from 512 rows) | fixed')
    .option('--content-weight <w>', 'content weight (default 2.5e-8)')
    .option('--style-weight <w>', 'style weight (default 1e-6)')
    .option('--tv-weight <w>', 'total-variation weight (default 1e-6)')
    .option('--style-weights <list>', 'blend weights of the style images, e.g. 0.7,0.3')
    .option('--style-scale <s>', 'style image size relative to the working size (default 1)')
    .option('--init <i>', 'content (default) | noise')
    .option('--seed <n>', 'seed for init=noise')
    .option('--lr <x>', 'learning rate (adam default 5, sgd default 100)')
    .option('--preserve-color', 'keep the content image\'s colours (luminance-only transfer)')
    .option('--preview-every <k>', 'a preview every k steps (with --previews; default 10)')
    .option('--param <k=v...>', 'any other job parameter')
    .option('--previews <dir>', 'folder for preview images')
    .option('--json', 'print a JSON summary instead of a progress bar')
    .action(async (content: string, styles: string[], opts: Record<string, unknown> & CommonOpts) => {
      const params = {
        ...pick(opts, {
          model: 'model', recipe: 'recipe', optimizer: 'optimizer', iterations: 'iterations', size: 'size', schedule: 'schedule', contentWeight: 'content_weight', styleWeight: 'style_weight',
          tvWeight: 'tv_weight', styleWeights: 'style_weights', styleScale: 'style_scale', init: 'init', seed: 'seed', lr: 'lr', preserveColor: 'preserve_color', previewEvery: 'preview_every',
        }),
        ...extraParams(opts.param),
      };
      await runKind('style', { content: [await load(content)], style: await Promise.all(styles.map(load)) }, params, opts);
    });
}
