// Runs one job kind from a task tab: submit (multipart), then follow its events (fetch-streamed SSE) with a
// progress bar + ETA and the live preview image, cancel, and the result in place (before/after, download,
// copy as curl, run again with the same settings). A tab whose job takes no picture from the image well
// (fine-tune: an archive) leaves out `imageField` and shows progress and result its own way through the hooks.
import { api, imageUrl, streamEvents } from './api.js';
import { $, type Json, busy, clearError, errorBox, fmtEta, fmtNum, h, showError } from './dom.js';
import { refreshGallery } from './gallery.js';
import { needImage } from './image-well.js';
import { compareSlider, curlCommand, resultActions } from './results.js';
import type { ParamForm } from './schema-form.js';

/** The data of a `progress` event. */
export interface JobProgress { step: number; total: number; fraction: number; eta_s?: number; metrics?: Record<string, number> }

/** What a finished, succeeded job hands to `showResult`. */
export interface JobOutcome { id: string; result: { url: string; content_type?: string }; curl: string; runAgain: () => void }

export interface JobRunnerOptions {
  kind: string;
  /** The multipart name of the picked image (dream: image, style: content); absent: no image from the well. */
  imageField?: string;
  form: ParamForm;
  /** Further file parts (the style image, the fine-tune archive); throw when a required one is missing. */
  extraImages?: () => [string, File][];
  /** Fields from the tab's own controls (not the schema form); throw when one is missing or invalid. */
  extraFields?: () => [string, string][];
  startLabel: string;
  /** What one step of the job is called in the status line (default: step; fine-tune: epoch). */
  stepName?: string;
  /** Shown under the progress bar while the job runs and after (e.g. the per-epoch metrics). */
  liveExtra?: HTMLElement;
  /** Called on every progress event (after the progress bar and status line are updated). */
  onProgress?: (p: JobProgress) => void;
  /** Called when a job is submitted (e.g. to clear the previous run's table). */
  onStart?: (id: string) => void;
  /** Renders a succeeded job's result; default: the result image against the picked one (compare slider). */
  showResult?: (o: JobOutcome) => Promise<Node>;
}

export class JobRunner {
  readonly el: HTMLElement;
  private jobId?: string;
  private abort?: AbortController;
  private last?: { values: [string, string][] };

  constructor(private readonly o: JobRunnerOptions) {
    const k = o.kind;
    const submit = h('button', { type: 'button', id: `${k}-submit`, class: 'primary', text: o.startLabel });
    const cancel = h('button', { type: 'button', id: `${k}-cancel`, class: 'secondary', disabled: true, text: 'Cancel' });
    submit.addEventListener('click', () => { void this.submit(); });
    cancel.addEventListener('click', () => { void this.cancel(); });
    const live = h('div', { class: 'job-live', id: `${k}-live`, hidden: true },
      h('div', { class: 'progress-row' }, h('progress', { id: `${k}-progress`, max: '1', value: '0', 'aria-label': `${k} progress` }), h('span', { id: `${k}-status`, class: 'job-status', role: 'status' })),
      o.liveExtra,
      h('figure', { class: 'live-preview', id: `${k}-live-preview`, hidden: true, 'data-previews': '0' }, h('img', { id: `${k}-preview`, alt: 'Live preview of the running job' }), h('figcaption', { id: `${k}-preview-caption` })),
      h('div', { id: `${k}-result`, class: 'job-result' }));
    this.el = h('div', { class: 'runner' }, h('div', { class: 'row' }, submit, cancel), errorBox(`${k}-error`), live);
  }

  async submit(): Promise<void> {
    const k = this.o.kind;
    const err = $(`${k}-error`);
    clearError(err);
    const btn = $<HTMLButtonElement>(`${k}-submit`);
    try {
      const img = this.o.imageField ? needImage() : undefined;
      const extra = this.o.extraImages?.() ?? [];
      const values = [...(this.o.extraFields?.() ?? []), ...this.o.form.values()];
      const body = new FormData();
      if (img && this.o.imageField) body.append(this.o.imageField, img.blob, img.name);
      for (const [n, f] of extra) body.append(n, f, f.name);
      for (const [n, v] of values) body.append(n, v);
      busy(btn, true, 'Submitting…');
      const r = await api<{ id: string }>(`/v1/jobs/${k}`, { method: 'POST', body });
      this.last = { values: this.o.form.values() };
      const files: [string, { file: string }][] = [...(img && this.o.imageField ? [[this.o.imageField, { file: img.name }] as [string, { file: string }]] : []), ...extra.map(([n, f]): [string, { file: string }] => [n, { file: f.name }])];
      this.follow(r.id, img?.url, curlCommand(`/v1/jobs/${k}`, [...files, ...values]));
      void refreshGallery();
    } catch (e) {
      showError(err, e);
      busy(btn, false, this.o.startLabel);
    }
  }

  private follow(id: string, beforeUrl: string | undefined, curl: string): void {
    const k = this.o.kind;
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.jobId = id;
    this.o.onStart?.(id);
    $(`${k}-live`).hidden = false;
    const figure = $(`${k}-live-preview`);
    figure.hidden = true;
    figure.dataset.previews = '0';
    $(`${k}-result`).replaceChildren();
    const progress = $<HTMLProgressElement>(`${k}-progress`);
    progress.value = 0;
    const status = $(`${k}-status`);
    status.textContent = 'queued';
    $<HTMLButtonElement>(`${k}-cancel`).disabled = false;
    const started = Date.now();
    void streamEvents(`/v1/jobs/${id}/events`, (ev) => {
      const d = JSON.parse(ev.data) as Json;
      if (ev.event === 'status') status.textContent = d.status + (d.reason ? ` (${d.reason})` : '');
      else if (ev.event === 'progress') {
        progress.value = d.fraction;
        const metrics = Object.entries((d.metrics ?? {}) as Record<string, number>).map(([m, v]) => `${m} ${fmtNum(v)}`).join(' · ');
        status.textContent = `${Math.round(d.fraction * 100)} % · ${this.o.stepName ?? 'step'} ${d.step}/${d.total}${metrics ? ` · ${metrics}` : ''} · ETA ${fmtEta(d.eta_s)}`;
        this.o.onProgress?.(d as JobProgress);
      } else if (ev.event === 'preview') {
        void imageUrl(d.url).then((u) => {
          const img = $<HTMLImageElement>(`${k}-preview`);
          if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
          img.src = u;
          figure.hidden = false;
          figure.dataset.previews = String(Number(figure.dataset.previews) + 1);
          $(`${k}-preview-caption`).textContent = `Live preview after step ${d.step}`;
        });
      } else if (ev.event === 'done') {
        void this.finish(id, d, beforeUrl, curl, (Date.now() - started) / 1000);
        return true;
      }
      return false;
    }, abort.signal).catch((e: unknown) => showError($(`${k}-error`), e));
  }

  private async finish(id: string, d: Json, beforeUrl: string | undefined, curl: string, seconds: number): Promise<void> {
    const k = this.o.kind;
    $<HTMLButtonElement>(`${k}-cancel`).disabled = true;
    busy($<HTMLButtonElement>(`${k}-submit`), false, this.o.startLabel);
    const status = $(`${k}-status`);
    const result = $(`${k}-result`);
    try {
      if (d.status === 'succeeded' && d.result) {
        $<HTMLProgressElement>(`${k}-progress`).value = 1;
        status.textContent = `100 % · done: ${d.progress?.total ?? '?'} ${this.o.stepName ?? 'step'}s in ${fmtEta(seconds)}`;
        const outcome: JobOutcome = { id, result: d.result, curl, runAgain: () => this.runAgain() };
        $(`${k}-live-preview`).hidden = true;
        result.replaceChildren(await (this.o.showResult ?? ((o) => this.imageResult(o, beforeUrl)))(outcome));
      } else {
        status.textContent = d.status;
        if (d.error) showError($(`${k}-error`), new Error(`${d.error.type}: ${d.error.detail}`));
      }
    } catch (e) {
      showError($(`${k}-error`), e);
    }
    void refreshGallery();
  }

  /** The default result: the picked image against the job's image, with download, curl and run again. */
  private async imageResult(o: JobOutcome, beforeUrl: string | undefined): Promise<Node> {
    const k = this.o.kind;
    const url = await imageUrl(o.result.url);
    return h('div', {}, beforeUrl ? compareSlider(`${k}-compare`, beforeUrl, url, k) : h('img', { src: url, alt: `${k}: result`, id: `${k}-result-img` }),
      resultActions(k, { download: { url, name: `${k}-${o.id.slice(0, 8)}.png` }, curl: o.curl, runAgain: o.runAgain }));
  }

  private runAgain(): void {
    if (!this.last) return;
    this.o.form.reset();
    for (const [n, v] of this.last.values) this.o.form.set(n, v);
    void this.submit();
  }

  private async cancel(): Promise<void> {
    if (!this.jobId) return;
    try {
      const j = await api<{ status: string }>(`/v1/jobs/${this.jobId}`, { method: 'DELETE' });
      if (j.status !== 'cancelled') $(`${this.o.kind}-status`).textContent = 'cancelling…';
    } catch (e) {
      showError($(`${this.o.kind}-error`), e);
    }
  }
}
