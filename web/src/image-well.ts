// The image well on top of the page: drop, paste (Ctrl+V anywhere), choose a file, or take a sample. Every task
// reads the current image from here; nothing is shown until one is picked (no empty <img> placeholders).
import { api, apiFetch, problemOf } from './api.js';
import { $, h, showError } from './dom.js';

export interface PickedImage { blob: Blob; name: string; url: string }

let current: PickedImage | undefined;
const listeners: ((img: PickedImage) => void)[] = [];

export const currentImage = (): PickedImage | undefined => current;
export const onImage = (f: (img: PickedImage) => void): void => { listeners.push(f); };

export function needImage(): PickedImage {
  if (!current) throw new Error('Choose an image first (drop one, paste it, pick a file, or use a sample).');
  return current;
}

export function setImage(blob: Blob, name: string): void {
  if (current) URL.revokeObjectURL(current.url);
  current = { blob, name, url: URL.createObjectURL(blob) };
  const img = $<HTMLImageElement>('current-img');
  img.src = current.url;
  img.alt = `The selected image: ${name}`;
  $('current-name').textContent = `${name} · ${(blob.size / 1024).toFixed(0)} kB`;
  $('current').hidden = false;
  $('well').classList.add('has-image');
  for (const b of document.querySelectorAll('.samples button')) b.setAttribute('aria-pressed', String(b.getAttribute('data-name') === name));
  for (const f of listeners) f(current);
}

export function initImageWell(): void {
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
  document.addEventListener('paste', (e) => {
    const item = [...(e.clipboardData?.items ?? [])].find((i) => i.kind === 'file' && i.type.startsWith('image/'));
    const f = item?.getAsFile();
    if (!f) return;
    e.preventDefault();
    setImage(f, f.name && f.name !== 'image.png' ? f.name : `pasted.${f.type.split('/')[1] ?? 'png'}`);
  });
}

export async function loadSamples(): Promise<void> {
  const { samples } = await api<{ samples: { name: string; url: string }[] }>('/v1/samples');
  const list = $('samples');
  for (const s of samples) {
    const btn = h('button', { type: 'button', class: 'sample', 'data-name': s.name, 'aria-pressed': 'false', 'aria-label': `Use the sample ${s.name}` },
      h('img', { src: s.url, alt: '', loading: 'lazy', width: '72', height: '54' }), h('span', { text: s.name }));
    btn.addEventListener('click', async () => {
      try {
        const res = await apiFetch(s.url);
        if (!res.ok) throw await problemOf(res);
        setImage(await res.blob(), s.name);
      } catch (e) { showError($('well-error'), e); }
    });
    list.append(h('li', {}, btn));
  }
}
