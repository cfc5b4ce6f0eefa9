// What every task shows after a run: a before/after slider (a range input, so keyboard operable), a download
// link, "copy as curl" with the exact parameters, and "run again with these settings".
import { apiKey } from './api.js';
import { h } from './dom.js';

/** Before/after comparison: the after image is clipped at the slider position (a CSS variable). */
export function compareSlider(id: string, beforeUrl: string, afterUrl: string, label: string): HTMLElement {
  const after = h('img', { src: afterUrl, alt: `${label}: result`, class: 'after', id: `${id}-after` });
  const wrap = h('div', { class: 'compare', id },
    h('img', { src: beforeUrl, alt: `${label}: original`, class: 'before' }), after);
  const range = h('input', { type: 'range', min: '0', max: '100', value: '50', id: `${id}-range`, 'aria-label': 'Before / after: drag or use the arrow keys' });
  const move = () => wrap.style.setProperty('--pos', `${range.value}%`);
  range.addEventListener('input', move);
  move();
  return h('div', { class: 'compare-wrap' }, wrap, range);
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The same request as a curl command: form fields in order, image parts as @file. */
export function curlCommand(path: string, fields: [string, string | { file: string }][], query: [string, string][] = []): string {
  const url = new URL(path, location.origin);
  for (const [k, v] of query) url.searchParams.set(k, v);
  const parts = [`curl -X POST ${quote(url.href)}`];
  if (apiKey()) parts.push(`-H "Authorization: Bearer $CONVSERVE_API_KEY"`);
  for (const [k, v] of fields) parts.push(typeof v === 'string' ? `-F ${quote(`${k}=${v}`)}` : `-F ${quote(`${k}=@${v.file}`)}`);
  return parts.join(' \\\n  ');
}

export interface ResultActions { download: { url: string; name: string }; curl: string; runAgain: () => void }

export function resultActions(id: string, a: ResultActions): HTMLElement {
  const copy = h('button', { type: 'button', class: 'secondary', id: `${id}-curl`, text: 'Copy as curl' });
  const status = h('span', { class: 'muted', role: 'status' });
  const pre = h('pre', { class: 'curl', id: `${id}-curl-text`, hidden: true, text: a.curl });
  copy.addEventListener('click', async () => {
    pre.hidden = false;
    try { await navigator.clipboard.writeText(a.curl); status.textContent = 'Copied.'; } catch { status.textContent = 'Select and copy the command below.'; }
  });
  const again = h('button', { type: 'button', class: 'secondary', id: `${id}-again`, text: 'Run again with these settings' });
  again.addEventListener('click', a.runAgain);
  return h('div', {},
    h('div', { class: 'row actions' }, h('a', { class: 'button', href: a.download.url, download: a.download.name, id: `${id}-download`, text: 'Download' }), copy, again, status),
    pre);
}
