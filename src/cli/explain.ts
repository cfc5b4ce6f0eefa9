// `convserve explain <image>`: the same core function as POST /v1/explain; writes the heatmap PNG (or prints the
// JSON answer with --json).
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { decodeImage } from '../image/io.js';
import { EXPLAIN_METHODS, type ExplainMethod, explain, explanationJson } from '../ops/explain.js';
import { renderExplanationPng } from '../ops/explain-render.js';
import { withInferenceCore } from './core.js';

interface ExplainCliOptions { model?: string; method: string; class: string; layer?: string; steps?: string; baseline?: string; samples?: string; output?: string; json?: boolean }

export function registerExplainCommand(program: Command): void {
  program
    .command('explain <image>')
    .description('Where does the model look? Grad-CAM, saliency, integrated gradients or SmoothGrad (same core as POST /v1/explain).')
    .option('-m, --model <name>', 'classification model (default CONVSERVE_DEFAULT_MODEL)')
    .option('--method <method>', EXPLAIN_METHODS.join(' | '), 'gradcam')
    .option('--class <class>', "'top', a class index or a label", 'top')
    .option('--layer <name>', 'Grad-CAM layer (default: the last convolutional feature map)')
    .option('--steps <n>', 'integrated gradients: steps (default 32)')
    .option('--baseline <b>', 'integrated gradients: black | blur (default black)')
    .option('--samples <n>', 'smoothgrad: noisy copies (default 16)')
    .option('-o, --output <file>', 'heatmap PNG to write (default <image>.explain.png)')
    .option('--json', 'print the JSON answer instead of writing a PNG')
    .action(async (file: string, opts: ExplainCliOptions) => {
      if (!(EXPLAIN_METHODS as readonly string[]).includes(opts.method)) throw new Error(`--method must be one of ${EXPLAIN_METHODS.join(', ')}; got '${opts.method}'`);
      if (opts.baseline !== undefined && opts.baseline !== 'black' && opts.baseline !== 'blur') throw new Error(`--baseline must be black or blur; got '${opts.baseline}'`);
      await withInferenceCore(async ({ engine, registry, config }) => {
        const image = await decodeImage(await readFile(file), { maxInputPixels: config.maxInputPixels, decodeTimeoutMs: config.decodeTimeoutMs });
        const e = await explain({ engine, registry, maxPasses: config.explainMaxPasses }, {
          model: opts.model ?? config.defaultModel, image, method: opts.method as ExplainMethod,
          class: /^\d+$/.test(opts.class) ? Number(opts.class) : opts.class, layer: opts.layer,
          steps: opts.steps !== undefined ? Number(opts.steps) : undefined, baseline: opts.baseline as 'black' | 'blur' | undefined,
          samples: opts.samples !== undefined ? Number(opts.samples) : undefined,
        });
        if (opts.json) { console.log(JSON.stringify(explanationJson(e))); return; }
        const out = opts.output ?? `${file.replace(/\.[^./]+$/, '')}.explain.png`;
        await writeFile(out, await renderExplanationPng(image, e));
        console.log(`${out}: ${e.method} of '${e.class.label}' (${(e.class.probability * 100).toFixed(2)}%) at ${e.layer}, ${e.width}×${e.height} map, max ${e.max.toPrecision(4)}`);
      });
    });
}
