// Runs one job kind from a task tab: submit (multipart), then follow its events (fetch-streamed SSE) with a
// progress bar + ETA and the live preview image, cancel, and the result in place (before/after, download,
// copy as curl, run again with the same settings).
import { api, imageUrl, streamEvents } from './api.js';
import { $, type Json, busy, clearError, errorBox, fmtEta, fmtNum, h, showError } from './dom.js';
import { refreshGallery } from './gallery.js';
import { needImage } from './image-well.js';
import { compareSlider, curlCommand, resultActions } from './results.js';
import type { ParamForm } from './schema-form.js';

export interface JobRunnerOptions {
  kind: string;
  /** The multipart name of the picked image (dream: image, style: content). */
  imageField: string;
  form: ParamForm;
  /** Further image parts (e.g. the style image); throw when a required one is missing. */
  extraImages?: () => [string, File][];
  startLabel: string;
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
      const img = needImage();
      const values = this.o.form.values();
      const extra = this.o.extraImages?.() ?? [];
      const body = new FormData();
      body.append(this.o.imageField, img.blob, img.name);
      for (const [n, f] of extra) body.append(n, f, f.name);
      for (const [n, v] of values) body.append(n, v);
      busy(btn, true, 'Submitting…');
      const r = await api<{ id: string }>(`/v1/jobs/${k}`, { method: 'POST', body });
      this.last = { values };
      const curl = curlCommand(`/v1/jobs/${k}`, [[this.o.imageField, { file: img.name }], ...extra.map(([n, f]): [string, { file: string }] => [n, { file: f.name }]), ...values]);
      this.follow(r.id, img.url, curl);
      void refreshGallery();
    } catch (e) {
      showError(err, e);
      busy(btn, false, this.o.startLabel);
    }
  }

  private follow(id: string, beforeUrl: string, curl: string): void {
    const k = this.o.kind;
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.jobId = id;
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
        status.textContent = `${Math.round(d.fraction * 100)} % · step ${d.step}/${d.total}${metrics ? ` · ${metrics}` : ''} · ETA ${fmtEta(d.eta_s)}`;
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

  private async finish(id: string, d: Json, beforeUrl: string, curl: string, seconds: number): Promise<void> {
    const k = this.o.kind;
    $<HTMLButtonElement>(`${k}-cancel`).disabled = true;
    busy($<HTMLButtonElement>(`${k}-submit`), false, this.o.startLabel);
    const status = $(`${k}-status`);
    const result = $(`${k}-result`);
    if (d.status === 'succeeded' && d.result) {
      $<HTMLProgressElement>(`${k}-progress`).value = 1;
      status.textContent = `100 % · done: ${d.progress?.total ?? '?'} steps in ${fmtEta(seconds)}`;
      const url = await imageUrl(d.result.url);
      $(`${k}-live-preview`).hidden = true;
      result.replaceChildren(compareSlider(`${k}-compare`, beforeUrl, url, k),
        resultActions(k, { download: { url, name: `${k}-${id.slice(0, 8)}.png` }, curl, runAgain: () => this.runAgain() }));
    } else {
      status.textContent = d.status;
      if (d.error) showError($(`${k}-error`), new Error(`${d.error.type}: ${d.error.detail}`));
    }
    void refreshGallery();
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
