// Where does the model look? Under a classification result: each predicted label is a toggle button; pressing one
// asks POST /v1/explain for that class (by index) with the picked method and shows the heatmap PNG (the server
// blends it over the classified picture) in place. Changing the method asks again for the pressed label.
import { apiFetch, problemOf } from './api.js';
import { clearError, errorBox, h, showError } from './dom.js';

/** The methods of /v1/explain, in the order offered; the first is the default. */
export const EXPLAIN_METHODS: [string, string][] = [
  ['gradcam', 'Grad-CAM'],
  ['saliency', 'Saliency'],
  ['integrated-gradients', 'Integrated gradients'],
  ['smoothgrad', 'SmoothGrad'],
];

export interface ExplainTarget {
  model: string;
  /** The picture that was classified (not whatever the image well holds by the time a label is pressed). */
  image: { blob: Blob; name: string };
  /** Classify's resize mode, so the map is of the same crop the model classified; undefined: the default. */
  resize?: string;
}

export interface Explained { label: string; index?: number; wnid?: string }

export interface ExplainView {
  /** The method picker, the heatmap figure and its error box. */
  el: HTMLElement;
  /** A button showing `p.label` that explains that class when pressed. */
  labelButton(p: Explained): HTMLButtonElement;
}

export function explainView(t: ExplainTarget): ExplainView {
  const method = h('select', { id: 'explain-method' }, ...EXPLAIN_METHODS.map(([v, text]) => h('option', { value: v, text })));
  const status = h('span', { id: 'explain-status', class: 'muted', role: 'status' });
  const img = h('img', { id: 'explain-img', alt: '' });
  const caption = h('figcaption', { id: 'explain-caption' });
  const figure = h('figure', { id: 'explain-figure', class: 'heatmap', hidden: true }, img, caption);
  const error = errorBox('explain-error');
  const buttons: HTMLButtonElement[] = [];
  let pressed: { button: HTMLButtonElement; p: Explained } | undefined;
  let latest = 0;
  let inFlight: AbortController | undefined;

  const methodName = () => EXPLAIN_METHODS.find(([v]) => v === method.value)?.[1] ?? method.value;
  const classText = (p: Explained) => (p.index !== undefined ? `${p.label} (class ${p.index})` : p.label);

  const run = async () => {
    if (!pressed) return;
    const { p } = pressed;
    const ticket = ++latest;
    inFlight?.abort();
    const abort = new AbortController();
    inFlight = abort;
    clearError(error);
    const name = methodName();
    status.textContent = `Computing ${name} for ${classText(p)}…`;
    figure.setAttribute('aria-busy', 'true');
    figure.classList.add('loading');
    const body = new FormData();
    body.set('image', t.image.blob, t.image.name);
    body.set('model', t.model);
    const cls = p.index !== undefined ? String(p.index) : p.label;
    body.set('class', cls);
    body.set('method', method.value);
    body.set('format', 'png');
    if (t.resize) body.set('resize', t.resize);
    try {
      const res = await apiFetch('/v1/explain', { method: 'POST', body, signal: abort.signal });
      if (!res.ok) throw await problemOf(res);
      const url = URL.createObjectURL(await res.blob());
      if (ticket !== latest) { URL.revokeObjectURL(url); return; }
      if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
      img.src = url;
      img.alt = `${name} heatmap of ${classText(p)} over the picture: warm colours are where the model looked`;
      img.dataset.method = method.value;
      img.dataset.class = cls;
      caption.textContent = `${name} · ${classText(p)} · ${t.model}`;
      figure.hidden = false;
      status.textContent = '';
    } catch (e) {
      if (ticket !== latest) return;
      status.textContent = '';
      showError(error, e);
    } finally {
      if (ticket === latest) {
        figure.removeAttribute('aria-busy');
        figure.classList.remove('loading');
      }
    }
  };

  method.addEventListener('change', () => { void run(); });

  const el = h('div', { class: 'explain', id: 'explain' },
    h('div', { class: 'row' },
      h('label', { for: 'explain-method', text: 'Heatmap method' }), method,
      h('span', { class: 'muted', id: 'explain-hint', text: 'Press a label to see where the model looked for it.' })),
    status, error, figure);

  return {
    el,
    labelButton(p) {
      const button = h('button', { type: 'button', class: 'bar-label label-button', 'aria-pressed': 'false', 'aria-describedby': 'explain-hint', title: `Show where the model sees ${classText(p)}${p.wnid ? ` (${p.wnid})` : ''}`, text: p.label });
      if (p.index !== undefined) button.dataset.index = String(p.index);
      button.addEventListener('click', () => {
        for (const b of buttons) b.setAttribute('aria-pressed', String(b === button));
        pressed = { button, p };
        void run();
      });
      buttons.push(button);
      return button;
    },
  };
}
