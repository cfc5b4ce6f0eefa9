// The convserve web page: pick an image, classify it, filter it, run DeepDream / style-transfer jobs with live
// progress (SSE), and browse recent jobs. Plain TypeScript and the DOM; every server error (problem+json
// `detail`) is shown next to the control that caused it.

type Json = Record<string, any>;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | undefined> = {}, ...children: (Node | string | null | undefined)[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined) el.append(c);
  return el;
}

/** An error carrying the server's problem+json. */
class ApiError extends Error {
  constructor(readonly status: number, readonly problem: Json | undefined, message: string) { super(message); }
}

async function problemOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  let body: Json | undefined;
  try { body = JSON.parse(text) as Json; } catch { /* not JSON */ }
  const detail = body?.detail ?? (text || res.statusText);
  return new ApiError(res.status, body, `${res.status} ${body?.title ?? res.statusText}: ${detail}`);
}

async function api<T = Json>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, init);
  if (!res.ok) throw await problemOf(res);
  return (await res.json()) as T;
}

function showError(id: string, e: unknown): void {
  const box = $(id);
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}
function clearError(id: string): void {
  const box = $(id);
  box.hidden = true;
  box.textContent = '';
}

function busy(btn: HTMLButtonElement, on: boolean, label?: string): void {
  btn.disabled = on;
  btn.setAttribute('aria-busy', String(on));
  if (label) btn.textContent = label;
}

const fmtEta = (s: number | undefined) => (s === undefined ? '…' : s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`);
const fmtNum = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : String(Number(v.toPrecision(4))));

// ---- the selected image -------------------------------------------------------------------------------------

let current: { blob: Blob; name: string; url: string } | undefined;

function setImage(blob: Blob, name: string): void {
  if (current) URL.revokeObjectURL(current.url);
  current = { blob, name, url: URL.createObjectURL(blob) };
  ($('current-img') as HTMLImageElement).src = current.url;
  $('current-name').textContent = `${name} · ${(blob.size / 1024).toFixed(0)} kB`;
  $('current').hidden = false;
  document.querySelectorAll('.samples button').forEach((b) => b.setAttribute('aria-pressed', String(b.getAttribute('data-name') === name)));
}

function needImage(): { blob: Blob; name: string } {
  if (!current) throw new Error('Choose an image first (drop one, pick a file, or use a sample).');
  return current;
}

function initInput(): void {
  const file = $<HTMLInputElement>('file');
  file.addEventListener('change', () => { const f = file.files?.[0]; if (f) setImage(f, f.name); });
  const drop = $('drop');
  for (const ev of ['dragenter', 'dragover']) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add('over'); });
  for (const ev of ['dragleave', 'drop']) drop.addEventListener(ev, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    const f = (e as DragEvent).dataTransfer?.files?.[0];
    if (f) setImage(f, f.name);
  });
}

async function loadSamples(): Promise<void> {
  const { samples } = await api<{ samples: { name: string; url: string }[] }>('/v1/samples');
  const list = $('samples');
  for (const s of samples) {
    const btn = h('button', { type: 'button', class: 'sample', 'data-name': s.name, 'aria-pressed': 'false', title: `Use the sample ${s.name}` },
      h('img', { src: s.url, alt: '', loading: 'lazy' }), h('span', { text: s.name }));
    btn.addEventListener('click', async () => {
      try {
        const res = await fetch(s.url);
        if (!res.ok) throw await problemOf(res);
        setImage(await res.blob(), s.name);
      } catch (e) { showError('classify-error', e); }
    });
    list.append(h('li', {}, btn));
  }
}

// ---- classify ---------------------------------------------------------------------------------------------

interface ModelInfo { name: string; status: string; architecture?: string; classes?: number; weights?: { untrained: boolean; provenance: string; note?: string }; install?: string[]; error?: string; percent?: number }
let models: ModelInfo[] = [];

function untrainedBadge(): HTMLElement {
  return h('span', { class: 'badge warn', title: 'Seeded random weights: the predictions mean nothing', text: 'untrained weights' });
}

async function loadModels(): Promise<void> {
  ({ models } = await api<{ models: ModelInfo[] }>('/v1/models'));
  const select = $<HTMLSelectElement>('model');
  const previous = select.value;
  select.replaceChildren();
  const ready = models.filter((m) => m.status === 'ready');
  for (const m of models) {
    const label = `${m.name}${m.weights?.untrained ? ' (untrained weights)' : ''}${m.status !== 'ready' ? ` — ${m.status}` : ''}`;
    select.append(h('option', { value: m.name, disabled: m.status !== 'ready', text: label }));
  }
  const prefer = [previous, 'vgg19', 'inception_v3', ready[0]?.name].find((n) => n && ready.some((m) => m.name === n));
  if (prefer) select.value = prefer;
  showModelInfo();

  const list = $('models-list');
  list.replaceChildren();
  for (const m of models) {
    const li = h('li', { class: `model ${m.status}` },
      h('strong', { text: m.name }), ' ',
      h('span', { class: `badge status-${m.status}`, text: m.status + (m.percent !== undefined ? ` ${m.percent.toFixed(0)} %` : '') }), ' ',
      m.weights?.untrained ? untrainedBadge() : null, ' ',
      m.architecture ? h('span', { class: 'muted', text: `${m.architecture}${m.classes ? `, ${m.classes} classes` : ''}${m.weights ? `, ${m.weights.provenance}` : ''}` }) : null);
    if (m.status === 'missing' && m.install?.length) {
      li.append(h('div', { class: 'install' }, 'Install with: ', ...m.install.flatMap((c, i) => [i ? ' or ' : '', h('code', { text: c })])));
    }
    if (m.error) li.append(h('div', { class: 'muted', text: m.error }));
    list.append(li);
  }
  if (!ready.length) showError('classify-error', new Error('No model is ready. Install one: see "All models" below for the commands.'));
}

function showModelInfo(): void {
  const m = models.find((x) => x.name === $<HTMLSelectElement>('model').value);
  const box = $('model-info');
  box.replaceChildren();
  if (!m) return;
  if (m.weights?.untrained) box.append(untrainedBadge(), ' ', h('span', { class: 'muted', text: m.weights.note ?? '' }));
  const top = $<HTMLInputElement>('top');
  if (m.classes) { top.max = String(m.classes); if (Number(top.value) > m.classes) top.value = String(m.classes); }
}

async function classify(e: Event): Promise<void> {
  e.preventDefault();
  clearError('classify-error');
  const btn = $<HTMLButtonElement>('classify-btn');
  const out = $('classify-result');
  try {
    const img = needImage();
    busy(btn, true, 'Classifying…');
    const form = new FormData();
    form.set('image', img.blob, img.name);
    const q = new URLSearchParams({ model: $<HTMLSelectElement>('model').value, top: $<HTMLInputElement>('top').value });
    const r = await api<{ model: string; weights: { untrained: boolean }; predictions: { label: string; probability: number; wnid?: string }[]; timing_ms: Record<string, number> }>(`/v1/classify?${q}`, { method: 'POST', body: form });
    out.replaceChildren();
    const chart = h('ol', { class: 'bars', 'aria-label': `Top ${r.predictions.length} predictions of ${r.model}` });
    const max = Math.max(...r.predictions.map((p) => p.probability), 1e-9);
    for (const p of r.predictions) {
      const pct = (p.probability * 100).toFixed(p.probability >= 0.1 ? 1 : 2);
      const bar = h('span', { class: 'bar' });
      bar.style.width = `${Math.max(0.5, (p.probability / max) * 100)}%`;
      chart.append(h('li', {}, h('span', { class: 'bar-label', text: p.label, title: p.wnid ?? '' }), h('span', { class: 'bar-track' }, bar), h('span', { class: 'bar-value', text: `${pct} %` })));
    }
    out.append(h('p', { class: 'muted' }, `${r.model} · ${r.timing_ms.infer} ms inference`, r.weights.untrained ? ' · ' : '', r.weights.untrained ? untrainedBadge() : null), chart);
  } catch (err) {
    showError('classify-error', err);
  } finally {
    busy(btn, false, 'Classify');
  }
}

// ---- filter -----------------------------------------------------------------------------------------------

interface Kernel { name: string; matrix: number[][]; scale: number; zero_sum: boolean; description: string }
let kernels: Kernel[] = [];
let maxKernel = 15;

function matrixTable(m: number[][], scale?: number): HTMLElement {
  const table = h('table', { class: 'matrix' });
  for (const row of m) table.append(h('tr', {}, ...row.map((v) => h('td', { text: fmtNum(v) }))));
  const wrap = h('div', { class: 'matrix-wrap' });
  if (scale !== undefined && scale !== 1) wrap.append(h('span', { class: 'scale', text: `1/${fmtNum(scale)} ×` }));
  wrap.append(table);
  return wrap;
}

/** Parses the custom matrix text; returns the matrix or the reason it is invalid. */
export function parseMatrix(text: string, max: number): { matrix: number[][] } | { error: string } {
  const t = text.trim();
  if (!t) return { error: 'Enter at least one row.' };
  let rows: unknown;
  if (t.startsWith('[')) {
    try { rows = JSON.parse(t); } catch { return { error: 'Not valid JSON.' }; }
  } else {
    rows = t.split(/\n+/).map((line) => line.trim()).filter(Boolean).map((line) => line.split(/[\s,;]+/).filter(Boolean).map(Number));
  }
  if (!Array.isArray(rows) || !rows.length || !rows.every(Array.isArray)) return { error: 'Expected rows of numbers.' };
  const m = rows as unknown[][];
  const w = m[0]!.length;
  for (const [i, r] of m.entries()) {
    if (r.length !== w) return { error: `Row ${i + 1} has ${r.length} entries; row 1 has ${w}.` };
    const bad = r.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
    if (bad >= 0) return { error: `Row ${i + 1}, entry ${bad + 1} is not a number.` };
  }
  if (w % 2 === 0 || m.length % 2 === 0) return { error: `${m.length}×${w}: both sides must be odd (1, 3, 5 … ${max}).` };
  if (w > max || m.length > max) return { error: `${m.length}×${w}: the largest allowed is ${max}×${max}.` };
  return { matrix: m as number[][] };
}

function kernelChanged(): void {
  const name = $<HTMLSelectElement>('kernel').value;
  const custom = name === 'custom';
  $('custom-wrap').hidden = !custom;
  const preview = $('kernel-preview');
  if (custom) { validateCustom(); return; }
  const k = kernels.find((x) => x.name === name);
  preview.replaceChildren(k ? matrixTable(k.matrix, k.scale) : '');
  $('kernel-desc').textContent = k ? `${k.description}${k.zero_sum ? ' Absolute response (zero-sum kernel).' : ''}` : '';
}

function validateCustom(): number[][] | undefined {
  const r = parseMatrix($<HTMLTextAreaElement>('custom').value, maxKernel);
  const msg = $('custom-msg');
  const ta = $<HTMLTextAreaElement>('custom');
  if ('error' in r) {
    msg.textContent = r.error;
    msg.className = 'invalid';
    ta.setAttribute('aria-invalid', 'true');
    $('kernel-preview').replaceChildren();
    $('kernel-desc').textContent = '';
    return undefined;
  }
  const sum = r.matrix.flat().reduce((a, b) => a + b, 0);
  msg.textContent = `${r.matrix.length}×${r.matrix[0]!.length}, sum ${fmtNum(sum)}${Math.abs(sum) < 1e-12 ? ' (zero-sum: absolute response)' : ` (divided by ${fmtNum(sum)})`}`;
  msg.className = 'valid';
  ta.removeAttribute('aria-invalid');
  $('kernel-preview').replaceChildren(matrixTable(r.matrix));
  $('kernel-desc').textContent = 'Custom kernel.';
  return r.matrix;
}

async function loadKernels(): Promise<void> {
  const r = await api<{ kernels: Kernel[]; custom: { max_size: number } }>('/v1/kernels');
  kernels = r.kernels;
  maxKernel = r.custom.max_size;
  const select = $<HTMLSelectElement>('kernel');
  for (const k of kernels) select.append(h('option', { value: k.name, text: k.name }));
  select.append(h('option', { value: 'custom', text: 'custom matrix…' }));
  select.value = kernels.some((k) => k.name === 'edge-3') ? 'edge-3' : kernels[0]?.name ?? 'custom';
  kernelChanged();
}

let filteredUrl: string | undefined;

async function filter(e: Event): Promise<void> {
  e.preventDefault();
  clearError('filter-error');
  const btn = $<HTMLButtonElement>('filter-btn');
  try {
    const img = needImage();
    const name = $<HTMLSelectElement>('kernel').value;
    let kernel = name;
    if (name === 'custom') {
      const m = validateCustom();
      if (!m) throw new Error(`Custom matrix: ${$('custom-msg').textContent}`);
      kernel = JSON.stringify(m);
    }
    busy(btn, true, 'Filtering…');
    const form = new FormData();
    form.set('image', img.blob, img.name);
    form.set('kernel', kernel);
    if ($<HTMLInputElement>('grayscale').checked) form.set('grayscale', 'true');
    const res = await fetch('/v1/filter?format=png', { method: 'POST', body: form });
    if (!res.ok) throw await problemOf(res);
    const blob = await res.blob();
    if (filteredUrl) URL.revokeObjectURL(filteredUrl);
    filteredUrl = URL.createObjectURL(blob);
    ($('filter-before') as HTMLImageElement).src = img === current ? current.url : URL.createObjectURL(img.blob);
    ($('filter-after') as HTMLImageElement).src = filteredUrl;
    const dl = $<HTMLAnchorElement>('filter-download');
    dl.href = filteredUrl;
    dl.download = `${img.name.replace(/\.\w+$/, '')}-${name}.png`;
    $('filter-result').hidden = false;
  } catch (err) {
    showError('filter-error', err);
  } finally {
    busy(btn, false, 'Apply filter');
  }
}

// ---- jobs (dream, style, others) -----------------------------------------------------------------------------

interface JobKindInfo { name: string; description: string; inputs: { name: string; required: boolean; max_count: number }[] }
let spec: Json | undefined;

/** The parameter schema of a job kind, from /openapi.json (generated from the kind's zod schema). */
function kindParams(kind: string): { properties: Record<string, Json>; required: string[] } {
  const body = spec?.paths?.[`/v1/jobs/${kind}`]?.post?.requestBody?.content?.['multipart/form-data']?.schema as Json | undefined;
  const properties: Record<string, Json> = {};
  for (const [k, v] of Object.entries((body?.properties ?? {}) as Record<string, Json>)) if (v.contentMediaType !== 'image/*' && v.type !== 'array') properties[k] = v;
  return { properties, required: (body?.required ?? []) as string[] };
}

/** Sensible starting values for the page (small and quick on a CPU); the server's defaults otherwise. */
const PAGE_DEFAULTS: Record<string, Record<string, unknown>> = {
  dream: { iterations: 10, octaves: 3 },
  style: { iterations: 10 },
  'blur-sweep': { steps: 20, sigma: 1.5, preview_every: 4 },
};

function paramField(kind: string, name: string, schema: Json, required: boolean): HTMLElement {
  const id = `${kind}-p-${name}`;
  const opts = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
  const base = opts?.find((o) => o.type && o.type !== 'null') ?? schema;
  const def = PAGE_DEFAULTS[kind]?.[name] ?? schema.default;
  const hint = [base.minimum !== undefined ? `min ${base.minimum}` : '', base.maximum !== undefined ? `max ${base.maximum}` : '', schema.default !== undefined ? `server default ${JSON.stringify(schema.default)}` : ''].filter(Boolean).join(', ');
  let input: HTMLElement;
  if (base.enum) {
    input = h('select', { id, name }, ...(base.enum as unknown[]).map((v) => h('option', { value: String(v), text: String(v), selected: v === def })));
  } else if (base.type === 'boolean') {
    input = h('input', { id, name, type: 'checkbox', checked: def === true, 'data-default': String(schema.default === true) });
  } else if (base.type === 'integer' || base.type === 'number') {
    input = h('input', { id, name, type: 'number', step: base.type === 'integer' ? '1' : 'any', min: base.minimum !== undefined ? String(base.minimum) : undefined, max: base.maximum !== undefined ? String(base.maximum) : undefined, value: def !== undefined ? String(def) : '', required: required && def === undefined, class: 'narrow' });
  } else {
    input = h('input', { id, name, type: 'text', value: def !== undefined ? (typeof def === 'string' ? def : JSON.stringify(def)) : '' });
  }
  return h('div', { class: 'param' }, h('label', { for: id, text: name.replace(/_/g, ' ') }), input, hint ? h('small', { class: 'muted', text: hint }) : null, schema.description ? h('small', { class: 'muted', text: schema.description }) : null);
}

class JobPanel {
  private es?: EventSource;
  private jobId?: string;
  private readonly ids: { form: string; submit: string; cancel: string; error: string; progress: string; status: string; previews: string; result: string };
  private readonly extraImages = new Map<string, HTMLInputElement>();

  constructor(private readonly root: HTMLElement, private readonly kind: JobKindInfo) {
    const k = kind.name;
    this.ids = { form: `${k}-form`, submit: `${k}-submit`, cancel: `${k}-cancel`, error: `${k}-error`, progress: `${k}-progress`, status: `${k}-status`, previews: `${k}-previews`, result: `${k}-result` };
    this.render();
  }

  private render(): void {
    const k = this.kind.name;
    const { properties, required } = kindParams(k);
    const form = h('form', { id: this.ids.form, class: 'job-form', 'data-kind': k });
    form.append(h('p', { class: 'muted', text: this.kind.description }));
    const inputs = h('div', { class: 'job-inputs' });
    for (const f of this.kind.inputs) {
      if (f.name === 'image' || f.name === 'content') { inputs.append(h('p', { class: 'muted' }, `${f.name}: the image selected above`)); continue; }
      const id = `${k}-file-${f.name}`;
      const input = h('input', { id, type: 'file', accept: 'image/*', name: f.name });
      this.extraImages.set(f.name, input);
      inputs.append(h('div', { class: 'param' }, h('label', { for: id, text: `${f.name} image${f.required ? '' : ' (optional)'}` }), input));
    }
    form.append(inputs);
    const grid = h('div', { class: 'params' });
    for (const [name, schema] of Object.entries(properties)) grid.append(paramField(k, name, schema, required.includes(name)));
    form.append(grid);
    const submit = h('button', { type: 'submit', id: this.ids.submit, text: `Start ${k}` });
    const cancel = h('button', { type: 'button', id: this.ids.cancel, class: 'secondary', disabled: true, text: 'Cancel' });
    form.append(h('div', { class: 'row' }, submit, cancel));
    form.addEventListener('submit', (e) => { e.preventDefault(); void this.submit(); });
    cancel.addEventListener('click', () => { void this.cancel(); });

    const progress = h('progress', { id: this.ids.progress, max: '1', value: '0', 'aria-label': `${k} progress` });
    const live = h('div', { class: 'job-live', hidden: true },
      h('div', { class: 'progress-row' }, progress, h('span', { id: this.ids.status, class: 'job-status', 'aria-live': 'polite' })),
      h('div', { class: 'previews', id: this.ids.previews, 'aria-label': 'Previews' }),
      h('div', { id: this.ids.result, class: 'job-result', 'aria-live': 'polite' }));
    this.root.append(form, h('div', { class: 'error', id: this.ids.error, role: 'alert', hidden: true }), live);
  }

  private async submit(): Promise<void> {
    clearError(this.ids.error);
    const btn = $<HTMLButtonElement>(this.ids.submit);
    try {
      const form = new FormData();
      for (const f of this.kind.inputs) {
        if (f.name === 'image' || f.name === 'content') { const img = needImage(); form.append(f.name, img.blob, img.name); continue; }
        const file = this.extraImages.get(f.name)?.files?.[0];
        if (file) form.append(f.name, file, file.name);
        else if (f.required) throw new Error(`Choose the ${f.name} image.`);
      }
      for (const el of $(this.ids.form).querySelectorAll<HTMLInputElement | HTMLSelectElement>('.params input, .params select')) {
        if (el instanceof HTMLInputElement && el.type === 'checkbox') { if (String(el.checked) !== el.dataset.default) form.append(el.name, String(el.checked)); }
        else if (el.value !== '') form.append(el.name, el.value);
      }
      busy(btn, true, 'Submitting…');
      const r = await api<{ id: string; links: { events: string } }>(`/v1/jobs/${this.kind.name}`, { method: 'POST', body: form });
      this.follow(r.id);
      void refreshJobs();
    } catch (err) {
      showError(this.ids.error, err);
      busy(btn, false, `Start ${this.kind.name}`);
    }
  }

  follow(id: string): void {
    this.es?.close();
    this.jobId = id;
    const live = this.root.querySelector<HTMLElement>('.job-live')!;
    live.hidden = false;
    $(this.ids.previews).replaceChildren();
    $(this.ids.result).replaceChildren();
    const progress = $<HTMLProgressElement>(this.ids.progress);
    progress.value = 0;
    $(this.ids.status).textContent = 'queued';
    $<HTMLButtonElement>(this.ids.cancel).disabled = false;
    const es = new EventSource(`/v1/jobs/${id}/events`);
    this.es = es;
    const data = (ev: Event) => JSON.parse((ev as MessageEvent).data as string) as Json;
    es.addEventListener('status', (ev) => { const d = data(ev); $(this.ids.status).textContent = d.status + (d.reason ? ` (${d.reason})` : ''); });
    es.addEventListener('progress', (ev) => {
      const p = data(ev);
      progress.value = p.fraction;
      const metrics = Object.entries((p.metrics ?? {}) as Record<string, number>).map(([k, v]) => `${k} ${fmtNum(v)}`).join(' · ');
      $(this.ids.status).textContent = `${Math.round(p.fraction * 100)} % · step ${p.step}/${p.total}${metrics ? ` · ${metrics}` : ''} · ETA ${fmtEta(p.eta_s)}`;
    });
    es.addEventListener('preview', (ev) => {
      const p = data(ev);
      const box = $(this.ids.previews);
      box.append(h('figure', { class: 'preview' }, h('img', { src: p.url, alt: `Preview after step ${p.step}` }), h('figcaption', { text: `step ${p.step}` })));
      box.scrollLeft = box.scrollWidth;
    });
    es.addEventListener('done', (ev) => {
      const d = data(ev);
      es.close();
      $<HTMLButtonElement>(this.ids.cancel).disabled = true;
      busy($<HTMLButtonElement>(this.ids.submit), false, `Start ${this.kind.name}`);
      const result = $(this.ids.result);
      if (d.status === 'succeeded' && d.result) {
        progress.value = 1;
        $(this.ids.status).textContent = `100 % · done in ${d.progress?.total ?? '?'} steps`;
        result.replaceChildren(h('figure', { class: 'result' },
          h('img', { src: d.result.url, alt: `${this.kind.name} result` }),
          h('figcaption', {}, 'Result · ', h('a', { href: d.result.url, download: `${this.kind.name}-${id.slice(0, 8)}.png`, text: 'Download' }))));
      } else {
        $(this.ids.status).textContent = d.status;
        if (d.error) showError(this.ids.error, new Error(`${d.error.type}: ${d.error.detail}`));
        result.replaceChildren(h('p', { class: 'muted', text: `Job ${d.status}.` }));
      }
      void refreshJobs();
    });
    es.onerror = () => { /* EventSource reconnects with Last-Event-ID by itself */ };
  }

  private async cancel(): Promise<void> {
    if (!this.jobId) return;
    try {
      const j = await api<{ status: string }>(`/v1/jobs/${this.jobId}`, { method: 'DELETE' });
      $(this.ids.status).textContent = j.status === 'cancelled' ? 'cancelled' : 'cancelling…';
    } catch (err) {
      showError(this.ids.error, err);
    }
  }
}

async function initJobs(): Promise<void> {
  const [{ kinds }, openapi] = await Promise.all([api<{ kinds: JobKindInfo[] }>('/v1/job-kinds'), api('/openapi.json')]);
  spec = openapi;
  const used = new Set<string>();
  for (const card of document.querySelectorAll<HTMLElement>('.job-card')) {
    const want = card.dataset.kind!;
    if (want === '*') {
      const others = kinds.filter((k) => !used.has(k.name));
      if (!others.length) continue;
      card.hidden = false;
      for (const k of others) { card.append(h('h3', { text: k.name })); new JobPanel(card, k); }
      continue;
    }
    used.add(want);
    const k = kinds.find((x) => x.name === want);
    if (k) new JobPanel(card, k);
    else card.append(h('p', { class: 'muted notice' }, `The ${want} job kind is not installed on this server yet (known kinds: ${kinds.map((x) => x.name).join(', ') || 'none'}).`));
  }
}

// ---- recent jobs --------------------------------------------------------------------------------------------

async function refreshJobs(): Promise<void> {
  try {
    const { jobs } = await api<{ jobs: Json[] }>('/v1/jobs?limit=20');
    clearError('jobs-error');
    const body = $('jobs-body');
    body.replaceChildren();
    if (!jobs.length) body.append(h('tr', {}, h('td', { colspan: '5', class: 'muted', text: 'No jobs yet.' })));
    for (const j of jobs) {
      const thumb = j.result?.url ?? j.previews?.at(-1);
      body.append(h('tr', { 'data-id': j.id },
        h('td', {}, thumb ? h('a', { href: thumb, 'aria-label': `${j.kind} ${j.status} image` }, h('img', { src: thumb, alt: '', class: 'thumb', loading: 'lazy' })) : h('span', { class: 'muted', text: '—' })),
        h('td', { text: j.kind }),
        h('td', {}, h('span', { class: `badge job-${j.status}`, text: j.status }), j.error ? h('small', { class: 'muted', text: ` ${j.error.detail}` }) : null),
        h('td', { text: `${j.progress.step}/${j.progress.total}` }),
        h('td', {}, h('time', { datetime: j.created_at, text: new Date(j.created_at).toLocaleString() }))));
    }
  } catch (e) {
    showError('jobs-error', e);
  }
}

// ---- start ----------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  initInput();
  $('classify-form').addEventListener('submit', (e) => { void classify(e); });
  $('model').addEventListener('change', showModelInfo);
  $('filter-form').addEventListener('submit', (e) => { void filter(e); });
  $('kernel').addEventListener('change', kernelChanged);
  $('custom').addEventListener('input', () => { validateCustom(); });
  $('jobs-refresh').addEventListener('click', () => { void refreshJobs(); });
  const steps: [string, () => Promise<void>][] = [['classify-error', loadModels], ['filter-error', loadKernels], ['classify-error', loadSamples], ['jobs-error', initJobs], ['jobs-error', refreshJobs]];
  await Promise.all(steps.map(([box, f]) => f().catch((e: unknown) => showError(box, e))));
  document.body.dataset.ready = 'true';
}

void main();
