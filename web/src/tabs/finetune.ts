// Fine-tune: teach a base model new classes from a zip or tar of class folders (POST /v1/jobs/finetune, file field
// `archive`, params base, name, epochs; the rest under Advanced when the server describes them). Progress comes as
// one event per epoch with loss, accuracy, val_loss and val_accuracy, shown as a table and a line; the finished
// model can be tried at once in the Classify tab.
import { api, apiFetch, imageUrl, problemOf } from '../api.js';
import { $, type Json, field, h, showError } from '../dom.js';
import { epochMetrics } from '../epoch-metrics.js';
import { type JobOutcome, JobRunner } from '../job-runner.js';
import { modelPicker, renderModelList } from '../models.js';
import { resultActions } from '../results.js';
import { formParams, paramForm } from '../schema-form.js';
import type { TaskTab } from '../tabs.js';
import { classifyWith } from './classify.js';

/** The model registry's name rule (src/models/model-folder.ts MODEL_NAME_RE): checked here to answer at once. */
const MODEL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ARCHIVE_TYPES = '.zip,.tar,.tgz,.tar.gz,application/zip,application/x-tar,application/gzip';

/** Marks a control valid or not; an invalid one gets the focus, so the message (an alert) is next to it. */
function mark(control: HTMLInputElement, bad: boolean): boolean {
  control.setAttribute('aria-invalid', String(bad));
  if (bad) control.focus();
  return bad;
}

export const finetuneTab: TaskTab = {
  id: 'finetune',
  label: 'Fine-tune',
  async render(panel) {
    // Until the server runs fine-tune jobs, its description has no such operation: the fold is then empty.
    const params = await formParams('/v1/jobs/finetune');
    const form = paramForm('finetune', params, ['base', 'name', 'epochs']);
    const archive = h('input', { type: 'file', id: 'finetune-archive', accept: ARCHIVE_TYPES, 'aria-describedby': 'finetune-archive-hint' });
    const base = await modelPicker('finetune-base', { prefer: ['inception_v3', 'vgg19'], want: (m) => m.task === undefined || m.task === 'classification' || m.task === 'features', label: 'Base model' });
    const name = h('input', { type: 'text', id: 'finetune-name', required: true, pattern: MODEL_NAME.source, maxlength: '64', autocomplete: 'off', spellcheck: 'false', placeholder: 'e.g. my-flowers', 'aria-describedby': 'finetune-name-hint' });
    const epochSchema: Json = params.epochs ?? {};
    const epochs = h('input', {
      type: 'number', id: 'finetune-epochs', class: 'narrow', step: '1', min: String(epochSchema.minimum ?? 1),
      max: epochSchema.maximum !== undefined && epochSchema.maximum < 1e9 ? String(epochSchema.maximum) : undefined,
      value: epochSchema.default !== undefined ? String(epochSchema.default) : undefined,
      placeholder: epochSchema.default === undefined ? 'server default' : undefined,
    });
    const metrics = epochMetrics('finetune-metrics', 'Per-epoch metrics');
    let submitted = '';

    const showResult = async (o: JobOutcome): Promise<Node> => {
      const model = submitted;
      const res = await apiFetch(o.result.url);
      if (!res.ok) throw await problemOf(res);
      const type = res.headers.get('content-type') ?? o.result.content_type ?? '';
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const shown: Node[] = [];
      if (type.startsWith('image/')) shown.push(h('img', { src: url, alt: `Training report of ${model}`, id: 'finetune-report-img' }));
      else if (type.includes('json')) {
        const report: Json = JSON.parse(await blob.text());
        shown.push(...reportSummary(report));
        // The report's picture (curves, confusion matrix) is the job's last preview.
        const { previews } = await api<{ previews: string[] }>(`/v1/jobs/${o.id}`);
        const last = previews.at(-1);
        if (last) shown.push(h('img', { src: await imageUrl(last), id: 'finetune-report-img', alt: `Training report of ${model}: loss and accuracy per epoch and the validation confusion matrix` }));
      }
      const use = h('button', { type: 'button', id: 'finetune-use', class: 'primary', text: `Classify with ${model}` });
      const useError = h('div', { class: 'error', id: 'finetune-use-error', role: 'alert', hidden: true });
      use.addEventListener('click', () => { classifyWith(model).catch((e: unknown) => showError(useError, e)); });
      // The new model is in the registry now: list it in the pickers and the Models fold.
      await base.refresh().then(() => renderModelList($('models-list'))).catch(() => undefined);
      return h('div', { class: 'finetune-done' },
        h('div', { class: 'row' }, h('p', {}, h('strong', { text: model }), ' is trained and served.'), use), useError, ...shown,
        resultActions('finetune', { download: { url, name: `${model}-report.${type.startsWith('image/') ? 'png' : 'json'}` }, curl: o.curl, runAgain: o.runAgain }));
    };

    const runner = new JobRunner({
      kind: 'finetune', form, startLabel: 'Fine-tune', stepName: 'epoch',
      extraImages: () => {
        const f = archive.files?.[0];
        if (mark(archive, !f) || !f) throw new Error('Choose an archive: a .zip or .tar of class folders (one folder of images per class).');
        return [['archive', f]];
      },
      extraFields: () => {
        const n = name.value.trim();
        if (mark(name, n === '')) throw new Error('Name the new model (lowercase letters, digits, ".", "_" or "-").');
        if (mark(name, !MODEL_NAME.test(n))) throw new Error(`"${n}" is not a model name: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, at most 64.`);
        submitted = n;
        const fields: [string, string][] = [['base', base.select.value], ['name', n]];
        if (epochs.value !== '') fields.push(['epochs', epochs.value]);
        return fields;
      },
      liveExtra: metrics.el,
      onStart: () => metrics.clear(),
      onProgress: (p) => metrics.add(p.step, p.metrics),
      showResult,
    });
    panel.append(h('div', { class: 'task-form' },
      h('p', { class: 'muted', text: 'Teach a model your own classes: a new head on a pre-trained base, trained on your images. The new model is served when the job finishes.' }),
      h('div', { class: 'controls' },
        h('div', { class: 'param' }, h('label', { for: 'finetune-archive', text: 'Training images' }), archive,
          h('small', { class: 'muted', id: 'finetune-archive-hint', text: 'A .zip or .tar with one folder per class (at least 2 classes, 2 images each).' })),
        base.el,
        h('div', { class: 'param' }, h('label', { for: 'finetune-name', text: 'New model name' }), name,
          h('small', { class: 'muted', id: 'finetune-name-hint', text: 'lowercase, digits, . _ -' })),
        field('finetune-epochs', 'Epochs', epochs)),
      form.fold, runner.el));
  },
};

/** What the report (report.json) says that matters at a glance: validation accuracy, classes, warnings. */
function reportSummary(r: Json): Node[] {
  const out: Node[] = [];
  const acc = r.validation?.accuracy;
  const classes: string[] = Array.isArray(r.classes) ? r.classes.map(String) : [];
  const facts = [typeof acc === 'number' ? `validation accuracy ${(acc * 100).toFixed(1)} %` : '', classes.length ? `${classes.length} classes: ${classes.join(', ')}` : ''].filter(Boolean);
  if (facts.length) out.push(h('p', { class: 'muted', id: 'finetune-summary', text: facts.join(' · ') }));
  for (const w of Array.isArray(r.warnings) ? r.warnings : []) out.push(h('p', { class: 'notice warn', text: String(w) }));
  return out;
}
