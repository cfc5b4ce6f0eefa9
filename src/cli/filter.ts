import { readFile, writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { type OutputFormat, chooseOutputFormat, decodeImage, encodeImage } from '../image/io.js';
import { filterImage } from '../ops/filter.js';
import { resolveKernel } from '../ops/kernels.js';

interface FilterCliOptions { kernel: string; output: string; scale?: string; offset?: string; abs?: boolean; grayscale?: boolean; format?: string; json?: boolean }

export function registerFilterCommand(program: Command): void {
  program
    .command('filter <image>')
    .description('Convolve an image with a named kernel (see GET /v1/kernels) or a JSON matrix.')
    .requiredOption('-k, --kernel <name|json>', "kernel name (e.g. edge-3) or matrix, e.g. '[[0,-1,0],[-1,5,-1],[0,-1,0]]'")
    .requiredOption('-o, --output <file>', 'output file (.png, .jpg, .webp)')
    .option('--scale <n>', 'divisor (default: the kernel sum, or 1 for zero-sum kernels)')
    .option('--offset <n>', 'added after scaling (default 0)')
    .option('--abs', 'absolute response (default for zero-sum kernels)')
    .option('--no-abs', 'clip negative responses to 0 instead')
    .option('--grayscale', 'filter luminance only; writes a grey image')
    .option('--format <fmt>', 'png | jpeg | webp (default: from the output extension)')
    .option('--json', 'print what was applied as JSON')
    .action(async (file: string, opts: FilterCliOptions) => {
      const config = loadConfig();
      const kernel = resolveKernel(opts.kernel, config.maxKernelSize);
      const format: OutputFormat = chooseOutputFormat(opts.format ?? extname(opts.output).slice(1), undefined);
      const input = await decodeImage(await readFile(file), config);
      const { image, applied } = await filterImage(input, {
        kernel,
        scale: opts.scale !== undefined ? Number(opts.scale) : undefined,
        offset: opts.offset !== undefined ? Number(opts.offset) : undefined,
        abs: opts.abs,
        grayscale: opts.grayscale,
      });
      await writeFile(opts.output, await encodeImage(image, format));
      if (opts.json) console.log(JSON.stringify({ output: opts.output, format, width: image.width, height: image.height, ...applied }));
      else console.log(`${opts.output}: ${image.width}×${image.height} ${format}, kernel ${applied.kernel}${applied.abs ? ' (abs)' : ''}`);
    });
}
