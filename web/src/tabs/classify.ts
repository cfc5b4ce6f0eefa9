// Classify: a model, how many labels, and the top predictions as a bar chart; each label explains itself as a
// heatmap when pressed (explain-view.ts).
import { api } from '../api.js';
import { busy, clearError, errorBox, field, h, showError } from '../dom.js';
import { explainView } from '../explain-view.js';
import { needImage } from '../image-well.js';
import { type ModelPicker, modelPicker, provenanceBadge } from '../models.js';
import { curlCommand, resultActions } from '../results.js';
import { formParams, paramForm } from '../schema-form.js';
import { type TaskTab, selectTab } from '../tabs.js';

interface Classified { model: string; weights: { untrained: boolean }; predictions: { index?: number; label: string; probability: number; wnid?: string }[]; timing_ms: Record<string, number> }

let picker: ModelPicker | undefined;

/** Switches to this tab with `model` chosen (listed again first: a fine-tune job may have just installed it). */
export async function classifyWith(model: string): Promise<void> {
  if (!picker) throw new Error('The Classify tab is not ready.');
  await picker.refresh();
  if (picker.chosen()?.name !== model) {
    const listed = [...picker.select.options].find((o) => o.value === model);
    if (!listed) throw new Error(`The model ${model} is not listed by the server (yet): try again in a moment.`);
    if (listed.disabled) throw new Error(`The model ${model} is not ready yet: try again in a moment.`);
    picker.select.value = model;
    picker.select.dispatchEvent(new Event('change'));
  }
  selectTab('classify');
}

export const classifyTab: TaskTab = {
  id: 'classify',
  label: 'Classify',
  async render(panel) {
    const models = picker = await modelPicker('model', { prefer: ['vgg19', 'inception_v3'], want: (m) => m.task !== 'features' });
    const form = paramForm('classify', await formParams('/v1/classify'), ['model', 'top']);
    const top = h('input', { id: 'top', type: 'number', min: '1', max: '1000', value: '5', class: 'narrow' });
    const button = h('button', { type: 'submit', id: 'classify-btn', class: 'primary', text: 'Classify' });
    const error = errorBox('classify-error');
    const out = h('div', { id: 'classify-result', 'aria-live': 'polite' });
    const el = h('form', { class: 'task-form' },
      h('p', { class: 'muted', text: 'What is in the picture? The model\'s most likely ImageNet labels.' }),
      h('div', { class: 'controls' }, models.el, field('top', 'Labels to show', top)), form.fold, h('div', { class: 'row' }, button), error, out);
    // A model with fewer classes than labels asked (a fine-tuned one) shows all of its classes instead of a 422.
    models.select.addEventListener('change', () => {
      const m = models.chosen();
      if (!m?.classes) return;
      top.max = String(m.classes);
      if (Number(top.value) > m.classes) top.value = String(m.classes);
    });

    const run = async () => {
      clearError(error);
      try {
        const img = needImage();
        busy(button, true, 'Classifying…');
        form.set('model', models.select.value);
        form.set('top', top.value);
        const values = form.values();
        const body = new FormData();
        body.set('image', img.blob, img.name);
        for (const [n, v] of values) body.append(n, v);
        const r = await api<Classified>('/v1/classify', { method: 'POST', body });
        const max = Math.max(...r.predictions.map((p) => p.probability), 1e-9);
        const chart = h('ol', { class: 'bars', 'aria-label': `Top ${r.predictions.length} predictions of ${r.model}` });
        const explain = explainView({ model: r.model, image: img, resize: values.find(([n]) => n === 'resize')?.[1] });
        for (const p of r.predictions) {
          const bar = h('span', { class: 'bar' });
          bar.style.width = `${Math.max(0.5, (p.probability / max) * 100)}%`;
          chart.append(h('li', {}, explain.labelButton(p), h('span', { class: 'bar-track' }, bar), h('span', { class: 'bar-value', text: `${(p.probability * 100).toFixed(p.probability >= 0.1 ? 1 : 2)} %` })));
        }
        const model = models.chosen();
        out.replaceChildren(h('p', { class: 'muted' }, `${r.model} · ${r.timing_ms.infer} ms inference `, r.weights.untrained && model ? provenanceBadge(model) : null), h('div', { class: 'classified' }, chart, explain.el),
          resultActions('classify', {
            download: { url: URL.createObjectURL(new Blob([JSON.stringify(r, null, 2)], { type: 'application/json' })), name: 'predictions.json' },
            curl: curlCommand('/v1/classify', [['image', { file: img.name }], ...values]),
            runAgain: () => { void run(); },
          }));
      } catch (e) {
        showError(error, e);
      } finally {
        busy(button, false, 'Classify');
      }
    };
    el.addEventListener('submit', (e) => { e.preventDefault(); void run(); });
    panel.append(el);
  },
};
