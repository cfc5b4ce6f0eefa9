// Recent jobs (GET /v1/jobs) as thumbnails with status, kind and time; open or download the result, cancel a
// job that is still queued or running (DELETE /v1/jobs/{id}). Probe kinds (blur-sweep) are not shown.
import { api, imageUrl } from './api.js';
import { $, type Json, clearError, h, showError } from './dom.js';

/** Job kinds that exist for testing the machinery, not for people. */
export const PROBE_KINDS = new Set(['blur-sweep']);

let refreshing: Promise<void> | undefined;

export function refreshGallery(): Promise<void> {
  refreshing ??= render().finally(() => { refreshing = undefined; });
  return refreshing;
}

async function render(): Promise<void> {
  const err = $('gallery-error');
  try {
    const { jobs } = await api<{ jobs: Json[] }>('/v1/jobs?limit=24');
    clearError(err);
    const list = $('gallery-list');
    const shown = jobs.filter((j) => !PROBE_KINDS.has(j.kind));
    const items = await Promise.all(shown.map(card));
    list.replaceChildren(...items);
    $('gallery-empty').hidden = shown.length > 0;
  } catch (e) {
    showError(err, e);
  }
}

async function card(j: Json): Promise<HTMLElement> {
  // A result that is not a picture (a fine-tune's report.json) is linked, not shown; its last preview is the thumb.
  const resultIsImage = String(j.result?.content_type ?? 'image/png').startsWith('image/');
  const thumbSrc: string | undefined = (resultIsImage ? j.result?.url : undefined) ?? (j.previews as string[]).at(-1);
  const url = thumbSrc ? await imageUrl(thumbSrc).catch(() => undefined) : undefined;
  const resultUrl = j.result ? (resultIsImage ? url : await imageUrl(j.result.url).catch(() => undefined)) : undefined;
  const extension = resultIsImage ? 'png' : String(j.result?.content_type).includes('json') ? 'json' : 'bin';
  const when = new Date(j.created_at);
  const li = h('li', { class: 'job-card', 'data-id': j.id, 'data-status': j.status },
    url ? h('img', { src: url, alt: `${j.kind} ${j.result && resultIsImage ? 'result' : 'preview'}`, class: 'thumb' }) : h('div', { class: 'thumb empty', 'aria-hidden': 'true' }),
    h('div', { class: 'job-meta' },
      h('strong', { text: j.kind }), ' ',
      h('span', { class: `badge job-${j.status}`, text: j.status }),
      h('div', {}, h('time', { datetime: j.created_at, class: 'muted', text: when.toLocaleString() })),
      j.status === 'running' || j.status === 'queued' ? h('div', { class: 'muted', text: `step ${j.progress.step}/${j.progress.total}` }) : null,
      j.error ? h('div', { class: 'muted', text: j.error.detail }) : null));
  const actions = h('div', { class: 'row' });
  if (resultUrl) {
    actions.append(h('a', { href: resultUrl, target: '_blank', rel: 'noopener', text: 'Open', 'aria-label': `Open the ${j.kind} result` }),
      h('a', { href: resultUrl, download: `${j.kind}-${String(j.id).slice(0, 8)}.${extension}`, text: 'Download', 'aria-label': `Download the ${j.kind} result` }));
  }
  if (j.status === 'running' || j.status === 'queued') {
    const cancel = h('button', { type: 'button', class: 'secondary small', text: 'Cancel', 'aria-label': `Cancel the ${j.kind} job` });
    cancel.addEventListener('click', async () => {
      cancel.disabled = true;
      try { await api(`/v1/jobs/${j.id}`, { method: 'DELETE' }); } catch (e) { showError($('gallery-error'), e); }
      await refreshGallery();
    });
    actions.append(cancel);
  }
  li.append(actions);
  return li;
}
