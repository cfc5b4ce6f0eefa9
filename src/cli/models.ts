// `convserve models …`: fetch the official ImageNet weights, import a Keras .h5, synthesize offline weights,
// list and verify the models directory.
import { SingleBar } from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { ARCHITECTURE_NAMES, getArchitecture } from '../models/architectures/index.js';
import { fetchModel } from '../models/fetch.js';
import { type ImportResult, importKerasModel } from '../models/import.js';
import { Provenance } from '../models/manifest.js';
import { KNOWN_MODELS } from '../models/official.js';
import type { ModelEntry } from '../models/registry.js';
import { DEFAULT_SEED, synthesizeModel } from '../models/synth.js';
import { withCatalogCore } from './core.js';

const MB = 1024 * 1024;

function archArg(value: string): string {
  try {
    return getArchitecture(value).name;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function intArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`'${value}' is not an integer`);
  return n;
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

function describeEntry(e: ModelEntry): string {
  const details = [e.architecture, e.task, e.provenance].filter(Boolean).join(', ');
  switch (e.status) {
    case 'ready': return `${e.name.padEnd(16)} ready        ${details}`;
    case 'downloading': return `${e.name.padEnd(16)} downloading  ${e.percent !== undefined ? `${e.percent.toFixed(0)}%` : ''}`;
    case 'missing': return `${e.name.padEnd(16)} missing      install: ${e.install?.join('  or  ')}${e.error ? `\n${' '.repeat(30)}${e.error}` : ''}`;
    case 'error': return `${e.name.padEnd(16)} error        ${e.error}`;
  }
}

export function registerModelsCommands(program: Command): void {
  const models = program.command('models').description('Install and inspect the models directory (VGG19, InceptionV3, …)');

  models.command('fetch')
    .description(`Download the official Keras ImageNet weights and import them (default: ${KNOWN_MODELS.join(' and ')})`)
    .argument('[arch...]', `architectures: ${ARCHITECTURE_NAMES.join(', ')}`)
    .option('--notop', 'fetch the convolutional base only (a features model named <arch>_notop)')
    .option('--keep-download', 'keep the downloaded .h5 in <models>/.cache')
    .option('--json', 'no progress bar; one JSON line per imported model')
    .action(async (archs: string[], opts: { notop?: boolean; keepDownload?: boolean; json?: boolean }) => {
      const list = archs.length ? archs.map(archArg) : [...KNOWN_MODELS];
      await withCatalogCore(async ({ config: cfg }) => {
        for (const arch of list) {
          const bar = new SingleBar({
            format: `${arch.padEnd(13)} {phase} [{bar}] {percentage}% | {value}/{total} MB | ETA {eta_formatted}`,
            hideCursor: true, etaBuffer: 50, noTTYOutput: !process.stderr.isTTY, stream: process.stderr,
          });
          let started = false;
          try {
            const r = await fetchModel(arch, {
              modelsDir: cfg.modelsDir, baseUrl: cfg.weightsBaseUrl, includeTop: !opts.notop, keepDownload: opts.keepDownload,
              onProgress: (p) => {
                if (opts.json) return;
                if (p.phase === 'download' && p.totalBytes && p.file.endsWith('.h5')) {
                  const total = Math.round(p.totalBytes / MB);
                  if (!started) { bar.start(total, 0, { phase: 'download' }); started = true; }
                  bar.update(Math.round(p.receivedBytes / MB), { phase: 'download' });
                } else if (started && (p.phase === 'verify' || p.phase === 'import')) {
                  bar.update({ phase: p.phase });
                }
              },
            });
            if (started) bar.stop();
            if (opts.json) console.log(JSON.stringify(importSummary(r)));
            else console.log(`${r.name}: ready (${r.dir}; import ${fmtMs(r.timings.totalMs)})`);
          } catch (e) {
            if (started) bar.stop();
            throw e;
          }
        }
      });
    });

  models.command('import')
    .description('Import a Keras .h5 weights file (save_weights / official layout) as models/<name>/')
    .argument('<name>', 'model folder name, e.g. vgg19-mine')
    .addOption(new Option('--arch <arch>', 'architecture').choices(ARCHITECTURE_NAMES).makeOptionMandatory())
    .requiredOption('--weights <file>', 'Keras .h5 weights file (with or without the top)')
    .option('--labels <file>', 'imagenet_class_index.json or a JSON array of labels (default class_0 …)')
    .addOption(new Option('--provenance <kind>', 'where the weights come from').choices(Provenance.options).default('imagenet'))
    .option('--json', 'machine-readable output')
    .action(async (name: string, opts: { arch: string; weights: string; labels?: string; provenance: Provenance; json?: boolean }) => {
      const r = await withCatalogCore(({ config }) => importKerasModel({
        name, arch: opts.arch, weightsFile: opts.weights, labelsFile: opts.labels, modelsDir: config.modelsDir,
        provenance: opts.provenance, source: opts.weights,
      }));
      if (opts.json) { console.log(JSON.stringify(importSummary(r))); return; }
      console.log(`${r.name}: ${r.includeTop ? 'classification' : 'features (no top)'} model written to ${r.dir} `
        + `(layers matched ${r.matched}; ${fmtMs(r.timings.totalMs)})`);
    });

  models.command('synth')
    .description('Create a model with seeded random (untrained) weights, for offline use: written as an official-layout .h5, then imported')
    .argument('<arch>', `architecture: ${ARCHITECTURE_NAMES.join(', ')}`, archArg)
    .option('--name <name>', 'model folder name (default: the architecture name)')
    .option('--seed <n>', 'PRNG seed', intArg, DEFAULT_SEED)
    .option('--notop', 'convolutional base only (a features model)')
    .addOption(new Option('--width <f>', 'filter multiplier for a reduced-width test variant').argParser(parseFloat).hideHelp())
    .option('--json', 'machine-readable output')
    .action(async (arch: string, opts: { name?: string; seed: number; notop?: boolean; width?: number; json?: boolean }) => {
      const t0 = Date.now();
      const r = await withCatalogCore(({ config }) => synthesizeModel(arch, {
        modelsDir: config.modelsDir, name: opts.name, seed: opts.seed, includeTop: !opts.notop, width: opts.width,
        onProgress: (phase, { elapsedMs }) => { if (!opts.json) console.error(`  ${phase === 'write-h5' ? 'wrote .h5' : 'imported'} in ${fmtMs(elapsedMs)}`); },
      }));
      if (opts.json) { console.log(JSON.stringify({ ...importSummary(r), synth: r.synth, untrained: true })); return; }
      console.log(`${r.name}: synthetic ${arch} (seed ${opts.seed}) written to ${r.dir} in ${fmtMs(Date.now() - t0)} `
        + `(.h5 ${(r.synth.h5Bytes / MB).toFixed(0)} MB: write ${fmtMs(r.synth.writeH5Ms)}, import ${fmtMs(r.synth.importMs)}). Its predictions are meaningless.`);
    });

  models.command('list')
    .description('List models and their status (ready, missing, downloading, error)')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) => withCatalogCore(({ registry: reg }) => {
      const entries = reg.list();
      if (opts.json) {
        console.log(JSON.stringify(entries.map(({ manifest, ...rest }) => ({ ...rest, classes: manifest?.output.classes, preprocessing: manifest?.preprocessing })), null, 2));
      } else {
        console.log(`models in ${reg.modelsDir}:`);
        for (const e of entries) console.log(`  ${describeEntry(e)}`);
      }
    }));

  models.command('verify')
    .description('Check the SHA-256 of every file of a model (or all models) against its manifest')
    .argument('[name...]')
    .option('--json', 'machine-readable output')
    .action((names: string[], opts: { json?: boolean }) => withCatalogCore(async ({ registry: reg }) => {
      const list = names.length ? names : reg.list().filter((e) => e.status === 'ready').map((e) => e.name);
      let bad = 0;
      for (const name of list) {
        const e = await reg.verify(name);
        if (e.status !== 'ready') bad++;
        if (opts.json) console.log(JSON.stringify({ name, ok: e.status === 'ready', status: e.status, ...(e.error ? { error: e.error } : {}) }));
        else console.log(e.status === 'ready' ? `${name}: ok` : `${name}: ${e.status}${e.error ? ` — ${e.error}` : ''}`);
      }
      if (bad) process.exitCode = 1;
    }));
}

/** The JSON form of an import (fetch, import, synth --json). */
function importSummary(r: ImportResult) {
  return { name: r.name, dir: r.dir, task: r.manifest.task, architecture: r.manifest.architecture, provenance: r.manifest.weights.provenance, include_top: r.includeTop, matched: r.matched, timings_ms: r.timings };
}
