// finetune: `convserve finetune` as a job (POST /v1/jobs/finetune, file field `archive`: a .zip/.tar/.tar.gz of
// class folders). Admission reads the whole archive — safe names, no links, bounded entries and unpacked bytes,
// every image's header against the pixel limit, ≥ 2 classes of ≥ 2 images — so a bad archive is a 4xx before a job
// exists. init unpacks it into the job's folder under generated names, decodes the images and computes the base's
// features (cancellable between batches); then one job step = one epoch of the head, checkpointed with the cached
// features so a restarted server resumes at the epoch. The last step exports the model into the models
// directory (atomically, as the CLI does) and the registry rescans it, so POST /v1/classify?model=NAME serves it
// at once. The result is the report (report.json, with the verdict's warnings); report.png is the last preview.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeImage, probeImage } from '../../image/io.js';
import { readManifest } from '../../models/manifest.js';
import { gradServices } from '../../ops/grad-session.js';
import { archiveContentType, sniffArchive } from '../../train/archive-entries.js';
import { resolveBase } from '../../train/base.js';
import { engineBaseRunner } from '../../train/engine-base-runner.js';
import { problem, validateModelName } from '../../train/dataset.js';
import { aboutEntry, classCounts, readDatasetArchive, writeDataset } from '../../train/dataset-archive.js';
import { stratifiedSplit } from '../../train/finetune-data.js';
import { FinetuneSession, type SessionSnapshot } from '../../train/finetune-session.js';
import { badRequest } from '../../util/problem.js';
import { invalidCheckpoint } from '../checkpoint.js';
import { type JobContext, type JobServices, defineJobKind } from '../kind.js';
import { deserializeSession, serializeSession } from './finetune-checkpoint.js';
import { type FinetuneParams, archiveLimits, finetuneParamsSchema, plannedEpochs, settingsOf } from './finetune-params.js';

interface State {
  session: FinetuneSession;
}

const EXTENSIONS = { zip: 'zip', tar: 'tar', 'tar.gz': 'tar.gz' } as const;

/** 409 when NAME is taken by a model this job may not replace (anything not fine-tuned; a fine-tuned one without replace). */
function checkTarget(p: FinetuneParams, modelsDir: string): string {
  const target = validateModelName(p.name, modelsDir);
  if (p.name === p.base) throw problem(400, 'bad-name', `name '${p.name}' is the base model itself: choose a new name for the fine-tuned model`);
  if (!existsSync(target)) return target;
  let provenance: string | undefined;
  try { provenance = readManifest(target).weights.provenance; } catch { provenance = undefined; }
  if (provenance !== 'fine-tuned') throw problem(409, 'name-taken', `a model '${p.name}' exists and is not a fine-tuned model (${provenance ? `provenance ${provenance}` : 'no valid manifest'}): choose another name`);
  if (!p.replace) throw problem(409, 'name-taken', `a fine-tuned model '${p.name}' exists: choose another name, or send replace=true to replace it`);
  return target;
}

function checkBase(p: FinetuneParams, services: JobServices): void {
  resolveBase(services.registry.modelsDir, p.base, false, p.feature_layer);
  checkTarget(p, services.registry.modelsDir);
}

/** Unpacks the archive under the job's folder (generated names) and opens the session. */
async function openSession(p: FinetuneParams, ctx: JobContext, resume?: SessionSnapshot): Promise<FinetuneSession> {
  const { registry, engine } = gradServices(ctx.services);
  const archive = ctx.files?.archive?.[0];
  if (!archive || !ctx.workDir) throw badRequest('missing-file', "A finetune job needs its 'archive' file (it runs only in the job service).");
  const dataset = readDatasetArchive(await readFile(archive), archiveLimits(ctx.config));
  if (p.dataset && JSON.stringify(classCounts(dataset)) !== JSON.stringify(p.dataset.counts)) throw problem(500, 'archive-changed', 'the archive no longer matches what was admitted');
  const dir = join(ctx.workDir, 'data');
  rmSync(dir, { recursive: true, force: true });
  const scan = writeDataset(dataset, dir);
  const modelsDir = registry.modelsDir;
  const base = resolveBase(modelsDir, p.base, false, p.feature_layer);
  const target = resume ? validateModelName(p.name, modelsDir) : checkTarget(p, modelsDir);
  return FinetuneSession.open({ scan, base, settings: settingsOf(p), name: p.name, modelsDir, target, signal: ctx.signal, runner: engineBaseRunner(engine, ctx.signal) }, resume);
}

function expectedSplit(p: FinetuneParams): { val: number; train: number } {
  const counts = p.dataset?.counts ?? [];
  const labels = counts.flatMap((n, c) => Array.from({ length: n }, () => c));
  const split = stratifiedSplit(labels, counts.length, p.val_split, p.seed);
  return { val: split.val.length, train: split.train.length };
}

export default defineJobKind<FinetuneParams, State>({
  name: 'finetune',
  description: 'Fine-tune an installed base (InceptionV3 by default, VGG19, or any model with feature_layer) on an uploaded .zip/.tar/.tar.gz of class folders, as `convserve finetune` does; one step = one epoch of the new head (metrics loss, accuracy, val_loss, val_accuracy). When it succeeds the model NAME is installed and served; the result is its report (JSON), report.png the last preview.',
  inputs: [{
    name: 'archive', required: true, maxCount: 1,
    file: {
      maxBytes: (config) => config.finetuneMaxArchiveBytes,
      sniff: (bytes) => {
        const format = sniffArchive(bytes);
        return { contentType: archiveContentType(format), extension: EXTENSIONS[format] };
      },
    },
  }],
  params: finetuneParamsSchema,
  totalSteps: plannedEpochs,

  check(p, services) {
    if (p.dataset) throw badRequest('invalid-parameter', 'dataset: set by the server from the archive', { errors: [{ parameter: 'dataset', message: 'not a submission parameter' }] });
    if (services) checkBase(p, services);
  },
  async admitFiles(files, p, config) {
    const bytes = files.find((f) => f.field === 'archive')?.bytes;
    if (!bytes) return p;
    const dataset = readDatasetArchive(bytes, archiveLimits(config));
    // Every image's header now, against the service's pixel limit: a bad image is the submission's 4xx.
    for (const im of dataset.images) {
      try {
        await probeImage(im.data, { maxInputPixels: config.maxInputPixels, decodeTimeoutMs: config.decodeTimeoutMs });
      } catch (e) {
        throw aboutEntry(e, im.entry);
      }
    }
    return { ...p, dataset: { format: dataset.format, classes: dataset.classes, counts: classCounts(dataset) } };
  },

  init: (_inputs, p, ctx) => openSession(p, ctx).then((session) => ({ session })),
  async step(state, ctx) {
    const { session } = state;
    if (ctx.step === 0 && session.plan.epochs !== ctx.total) throw problem(500, 'plan-mismatch', `the plan has ${session.plan.epochs} epochs, the job ${ctx.total} steps`);
    await session.epoch();
    if (ctx.step + 1 === ctx.total) {
      await session.finish();
      // The new folder is in place: the registry lists it now, and classify loads it on first use.
      gradServices(ctx.services).registry.rescan();
    }
    return { session };
  },
  metrics(s): Record<string, number> {
    const e = s.session.lastEpoch;
    if (!e) return {};
    return { loss: e.loss, accuracy: e.acc, val_loss: e.val_loss, val_accuracy: e.val_acc, lr: e.lr, epoch: e.epoch };
  },
  message(s, step, total) {
    const r = s.session.result;
    if (r) return `epoch ${step}/${total}; exported the model (best epoch ${r.bestEpoch}, validation accuracy ${(r.validation.accuracy * 100).toFixed(1)} %)`;
    if (s.session.stopped) return `epoch ${step}/${total}: early stopping happened; the remaining epochs are skipped`;
    const e = s.session.lastEpoch;
    return e ? `epoch ${step}/${total}: loss ${e.loss.toFixed(4)}, val_loss ${e.val_loss.toFixed(4)}, val_accuracy ${e.val_acc.toFixed(4)}` : `epoch ${step}/${total}`;
  },
  previewAt: (step, p) => step === plannedEpochs(p),
  async preview(s, ctx) {
    const png = readFileSync(join(gradServices(ctx.services).registry.modelsDir, String(s.session.result?.report.model), 'report.png'));
    return decodeImage(png, { maxInputPixels: ctx.config.maxInputPixels, decodeTimeoutMs: ctx.config.decodeTimeoutMs });
  },
  finish(s) {
    const r = s.session.result;
    if (!r) throw problem(500, 'not-exported', 'the job ended before its model was exported');
    const data = r.report.data as Record<string, unknown>;
    // The job folder is the server's business: the report names the upload instead.
    return { json: { ...r.report, data: { ...data, root: 'uploaded archive' }, warnings: r.warnings } };
  },
  release: (s) => s.session.release(),

  serialize: (s) => serializeSession(s.session.snapshot()),
  async deserialize(data, p, _inputs, ctx) {
    const snapshot = deserializeSession(data, { ...expectedSplit(p), augment: p.augment });
    if (snapshot.epochs > plannedEpochs(p)) throw invalidCheckpoint('finetune', `it is at epoch ${snapshot.epochs} of a ${plannedEpochs(p)}-epoch plan`);
    return { session: await openSession(p, ctx, snapshot) };
  },
});
