// The model picker: every model of GET /v1/models with its provenance (ImageNet weights, fine-tuned, imported,
// untrained-synthetic) and input size; models that are not ready are listed but disabled, with install commands.
import { api } from './api.js';
import { h } from './dom.js';

export interface ModelInfo {
  name: string; status: string; architecture?: string; task?: string; classes?: number;
  input?: { height: number; width: number; channels: number; fixed_size?: boolean };
  weights?: { untrained: boolean; provenance: string; note?: string };
  install?: string[]; error?: string; percent?: number;
}

let loading: Promise<ModelInfo[]> | undefined;
export const loadModels = (): Promise<ModelInfo[]> => (loading ??= api<{ models: ModelInfo[] }>('/v1/models').then((r) => r.models));
/** Asks the server again (a fine-tune job has just installed a model). */
export const reloadModels = (): Promise<ModelInfo[]> => { loading = undefined; return loadModels(); };

const PROVENANCE: Record<string, string> = { imagenet: 'ImageNet weights', synthetic: 'untrained (synthetic)', 'fine-tuned': 'fine-tuned', trained: 'trained here', imported: 'imported' };

export function provenanceBadge(m: ModelInfo): HTMLElement | null {
  if (!m.weights) return null;
  const untrained = m.weights.untrained;
  return h('span', {
    class: `badge prov-${m.weights.provenance}${untrained ? ' warn' : ''}`,
    title: untrained ? 'Seeded random weights: the predictions mean nothing' : m.weights.note ?? '',
    text: untrained ? 'untrained weights' : PROVENANCE[m.weights.provenance] ?? m.weights.provenance,
  });
}

const inputSize = (m: ModelInfo) => (m.input ? `${m.input.width}×${m.input.height}${m.input.channels === 1 ? ' grey' : ''}` : '');

export interface ModelPicker {
  el: HTMLElement;
  select: HTMLSelectElement;
  chosen: () => ModelInfo | undefined;
  /** Lists the models again from the server, keeping the choice when it is still there. */
  refresh: () => Promise<void>;
}

/** A labelled <select> of models plus a line describing the chosen one. `want` filters (e.g. classifiers). */
export async function modelPicker(id: string, opts: { prefer: string[]; want?: (m: ModelInfo) => boolean; label?: string }): Promise<ModelPicker> {
  let models: ModelInfo[] = [];
  const select = h('select', { id, name: 'model' });
  const info = h('div', { class: 'model-info', 'aria-live': 'polite' });
  const ready = () => models.filter((m) => m.status === 'ready');
  const chosen = () => models.find((m) => m.name === select.value);
  const describe = () => {
    const m = chosen();
    info.replaceChildren();
    if (!m) { if (!ready().length) info.append(h('span', { class: 'muted', text: 'No model is ready: install one (see Models below).' })); return; }
    info.append(provenanceBadge(m) ?? '', ' ', h('span', { class: 'muted', text: [m.architecture, inputSize(m) && `input ${inputSize(m)}`, m.classes && `${m.classes} classes`].filter(Boolean).join(' · ') }));
  };
  const fill = (list: ModelInfo[]) => {
    const was = select.value;
    models = list.filter(opts.want ?? (() => true));
    select.replaceChildren();
    for (const m of models) {
      const parts = [m.weights?.untrained ? 'untrained weights' : m.weights ? PROVENANCE[m.weights.provenance] : '', inputSize(m), m.status !== 'ready' ? m.status : ''].filter(Boolean);
      select.append(h('option', { value: m.name, disabled: m.status !== 'ready', text: `${m.name}${parts.length ? ` — ${parts.join(', ')}` : ''}` }));
    }
    const prefer = [was, ...opts.prefer, ready()[0]?.name].find((n) => n && ready().some((m) => m.name === n));
    if (prefer) select.value = prefer;
    describe();
  };
  fill(await loadModels());
  select.addEventListener('change', describe);
  const el = h('div', { class: 'param model-pick' }, h('label', { for: id, text: opts.label ?? 'Model' }), select, info);
  return { el, select, chosen, refresh: async () => fill(await reloadModels()) };
}

/** The list of all models (status, provenance, install commands) for the Models fold. */
export async function renderModelList(list: HTMLElement): Promise<void> {
  const models = await loadModels();
  list.replaceChildren();
  for (const m of models) {
    const li = h('li', { class: `model ${m.status}` },
      h('strong', { text: m.name }), ' ',
      h('span', { class: `badge status-${m.status}`, text: m.status + (m.percent !== undefined ? ` ${m.percent.toFixed(0)} %` : '') }), ' ',
      provenanceBadge(m), ' ',
      h('span', { class: 'muted', text: [m.architecture, inputSize(m) && `input ${inputSize(m)}`, m.classes && `${m.classes} classes`].filter(Boolean).join(' · ') }));
    if (m.status === 'missing' && m.install?.length) li.append(h('div', { class: 'install' }, 'Install with: ', ...m.install.flatMap((c, i) => [i ? ' or ' : '', h('code', { text: c })])));
    if (m.error) li.append(h('div', { class: 'muted', text: m.error }));
    list.append(li);
  }
}
