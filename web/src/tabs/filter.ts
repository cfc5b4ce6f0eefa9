// Filter: the kernel gallery (each kernel with a live thumbnail of the picked image through it), or a custom
// matrix; the result as a before/after comparison.
import { api, apiFetch, problemOf } from '../api.js';
import { busy, clearError, errorBox, fmtNum, h, showError } from '../dom.js';
import { type PickedImage, currentImage, needImage, onImage } from '../image-well.js';
import { matrixTable, parseMatrix } from '../kernel-matrix.js';
import { compareSlider, curlCommand, resultActions } from '../results.js';
import { formParams, paramForm } from '../schema-form.js';
import type { TaskTab } from '../tabs.js';

interface Kernel { name: string; matrix: number[][]; scale: number; zero_sum: boolean; description: string }

const THUMB_SIDE = 96;

/** The picked image shrunk to a thumbnail (the kernel previews filter this, not the full image). */
async function thumbnail(img: PickedImage): Promise<Blob> {
  const bmp = await createImageBitmap(img.blob);
  const k = THUMB_SIDE / Math.max(bmp.width, bmp.height);
  const canvas = new OffscreenCanvas(Math.max(1, Math.round(bmp.width * k)), Math.max(1, Math.round(bmp.height * k)));
  canvas.getContext('2d')!.drawImage(bmp, 0, 0, canvas.width, canvas.height);
  return canvas.convertToBlob({ type: 'image/png' });
}

async function filtered(image: Blob, name: string, kernel: string, grayscale: boolean): Promise<Blob> {
  const body = new FormData();
  body.set('image', image, name);
  body.set('kernel', kernel);
  if (grayscale) body.set('grayscale', 'true');
  const res = await apiFetch('/v1/filter?format=png', { method: 'POST', body });
  if (!res.ok) throw await problemOf(res);
  return res.blob();
}

export const filterTab: TaskTab = {
  id: 'filter',
  label: 'Filter',
  async render(panel) {
    const { kernels, custom } = await api<{ kernels: Kernel[]; custom: { max_size: number } }>('/v1/kernels');
    const form = paramForm('filter', await formParams('/v1/filter'), ['kernel', 'grayscale', 'format']);
    const gallery = h('div', { class: 'kernels', role: 'radiogroup', 'aria-label': 'Kernel' });
    const thumbs = new Map<string, HTMLImageElement>();
    for (const k of [...kernels, { name: 'custom', description: 'Your own matrix' } as Kernel]) {
      const id = `kernel-${k.name}`;
      const thumb = h('img', { alt: '', class: 'kthumb', hidden: true });
      thumbs.set(k.name, thumb);
      gallery.append(h('label', { class: 'kernel', for: id, title: k.description },
        h('input', { type: 'radio', name: 'kernel', id, value: k.name, checked: k.name === 'edge-3' }),
        h('span', { class: 'kthumb-box' }, thumb, k.matrix ? null : h('span', { class: 'kplus', 'aria-hidden': 'true', text: '⊞' })),
        h('span', { text: k.name })));
    }
    const grayscale = h('input', { type: 'checkbox', id: 'grayscale' });
    const preview = h('div', { id: 'kernel-preview' });
    const desc = h('p', { id: 'kernel-desc', class: 'muted' });
    const customText = h('textarea', { id: 'custom', rows: '5', cols: '24', spellcheck: 'false', 'aria-describedby': 'custom-msg' });
    customText.value = '0 -1 0\n-1 5 -1\n0 -1 0';
    const customMsg = h('p', { id: 'custom-msg', class: 'muted', 'aria-live': 'polite' });
    const customWrap = h('div', { id: 'custom-wrap', hidden: true }, h('label', { for: 'custom', text: `Custom matrix (rows on lines; odd × odd, up to ${custom.max_size})` }), customText, customMsg);
    const button = h('button', { type: 'submit', id: 'filter-btn', class: 'primary', text: 'Apply filter' });
    const error = errorBox('filter-error');
    const out = h('div', { id: 'filter-result', 'aria-live': 'polite' });
    const selected = () => gallery.querySelector<HTMLInputElement>('input:checked')?.value ?? 'edge-3';

    const validateCustom = (): number[][] | undefined => {
      const r = parseMatrix(customText.value, custom.max_size);
      if ('error' in r) {
        customMsg.textContent = r.error;
        customMsg.className = 'invalid';
        customText.setAttribute('aria-invalid', 'true');
        preview.replaceChildren();
        return undefined;
      }
      const sum = r.matrix.flat().reduce((a, b) => a + b, 0);
      customMsg.textContent = `${r.matrix.length}×${r.matrix[0]!.length}, sum ${fmtNum(sum)}${Math.abs(sum) < 1e-12 ? ' (zero-sum: absolute response)' : ` (divided by ${fmtNum(sum)})`}`;
      customMsg.className = 'valid';
      customText.removeAttribute('aria-invalid');
      preview.replaceChildren(matrixTable(r.matrix));
      return r.matrix;
    };
    const kernelChanged = () => {
      const name = selected();
      customWrap.hidden = name !== 'custom';
      if (name === 'custom') { desc.textContent = 'Custom kernel.'; validateCustom(); return; }
      const k = kernels.find((x) => x.name === name);
      preview.replaceChildren(k ? matrixTable(k.matrix, k.scale) : '');
      desc.textContent = k ? `${k.description}${k.zero_sum ? ' Absolute response (zero-sum kernel).' : ''}` : '';
    };
    gallery.addEventListener('change', kernelChanged);
    customText.addEventListener('input', () => { validateCustom(); });
    kernelChanged();

    // Live thumbnails: the picked image, shrunk, through every named kernel (one after another: the server is small).
    let generation = 0;
    const refreshThumbs = async (img: PickedImage) => {
      const mine = ++generation;
      const small = await thumbnail(img).catch(() => undefined);
      if (!small) return; // not decodable here: the server says why when the filter runs
      for (const k of kernels) {
        if (mine !== generation) return;
        const blob = await filtered(small, 'thumb.png', k.name, grayscale.checked).catch(() => undefined);
        const t = thumbs.get(k.name)!;
        if (!blob || mine !== generation) continue;
        if (t.src) URL.revokeObjectURL(t.src);
        t.src = URL.createObjectURL(blob);
        t.hidden = false;
      }
    };
    onImage((img) => { void refreshThumbs(img); });
    grayscale.addEventListener('change', () => { const img = currentImage(); if (img) void refreshThumbs(img); });

    const run = async () => {
      clearError(error);
      try {
        const img = needImage();
        const name = selected();
        let kernel = name;
        if (name === 'custom') {
          const m = validateCustom();
          if (!m) throw new Error(`Custom matrix: ${customMsg.textContent}`);
          kernel = JSON.stringify(m);
        }
        busy(button, true, 'Filtering…');
        form.set('kernel', kernel);
        form.set('grayscale', grayscale.checked);
        const values = form.values();
        const body = new FormData();
        body.set('image', img.blob, img.name);
        for (const [n, v] of values) body.append(n, v);
        const res = await apiFetch('/v1/filter?format=png', { method: 'POST', body });
        if (!res.ok) throw await problemOf(res);
        const url = URL.createObjectURL(await res.blob());
        out.replaceChildren(compareSlider('filter-compare', img.url, url, `${name} filter`),
          resultActions('filter', {
            download: { url, name: `${img.name.replace(/\.\w+$/, '')}-${name}.png` },
            curl: curlCommand('/v1/filter', [['image', { file: img.name }], ...values], [['format', 'png']]),
            runAgain: () => { void run(); },
          }));
      } catch (e) {
        showError(error, e);
      } finally {
        busy(button, false, 'Apply filter');
      }
    };
    const el = h('form', { class: 'task-form' },
      h('p', { class: 'muted', text: 'Convolve the picture with a kernel: edges, sharpening, blur, emboss, or your own matrix.' }),
      gallery,
      h('div', { class: 'kernel-area' }, h('div', {}, h('p', { class: 'small-h', text: 'Matrix' }), preview, desc), customWrap),
      h('div', { class: 'row' }, h('label', { class: 'check', for: 'grayscale' }, grayscale, ' Greyscale'), button),
      form.fold, error, out);
    el.addEventListener('submit', (e) => { e.preventDefault(); void run(); });
    panel.append(el);
  },
};
