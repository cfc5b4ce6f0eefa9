import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { ResizeMode } from '../image/resize.js';
import { withInferenceCore } from './core.js';

interface ClassifyCliOptions { model?: string; top?: string; resize: ResizeMode; invert: 'auto' | 'true' | 'false'; json?: boolean }

export function registerClassifyCommand(program: Command): void {
  program
    .command('classify <images...>')
    .description('Classify images with an installed model (same core as POST /v1/classify).')
    .option('-m, --model <name>', 'model name (default CONVSERVE_DEFAULT_MODEL, vgg19)')
    .option('-t, --top <k>', 'number of predictions (default 5)')
    .option('--resize <mode>', 'crop (short side + centre crop) | squash (Keras load_img)', 'crop')
    .option('--invert <mode>', 'mnist models: auto | true | false (dark-on-light digits)', 'auto')
    .option('--json', 'machine-readable output')
    .action(async (files: string[], opts: ClassifyCliOptions) => {
      await withInferenceCore(async ({ classify, config }) => {
        const uploads = await Promise.all(files.map((f) => readFile(f)));
        const out = await classify.classifyUploads(opts.model, uploads, { top: opts.top !== undefined ? Number(opts.top) : undefined, resize: opts.resize, invert: opts.invert }, config);
        if (opts.json) {
          console.log(JSON.stringify({ model: out.model, weights: out.weights, results: out.results.map((r, i) => ({ file: files[i], ...r })) }, null, 2));
          return;
        }
        if (out.weights.untrained) console.log(`!! ${out.model} has UNTRAINED synthetic weights: these predictions mean nothing.`);
        out.results.forEach((r, i) => {
          console.log(`${files[i]}  (${out.model}, ${r.timing_ms.infer} ms)`);
          for (const p of r.predictions) console.log(`  ${(p.probability * 100).toFixed(2).padStart(6)}%  ${p.label}${p.wnid ? ` (${p.wnid})` : ''}`);
        });
      });
    });
}
