// Style transfer: a style image, how strongly, at what size, keeping the photo's colours or not.
import { $, h } from '../dom.js';
import { JobRunner } from '../job-runner.js';
import { modelPicker } from '../models.js';
import { formParams, paramForm } from '../schema-form.js';
import type { TaskTab } from '../tabs.js';

/** Slider position 1…5 → style_weight (keras-io default 1e-6 at the middle, ×10 per notch). */
const STRENGTH = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4];

export const styleTab: TaskTab = {
  id: 'style',
  label: 'Style',
  async render(panel) {
    const form = paramForm('style', await formParams('/v1/jobs/style'), ['model']);
    const picker = await modelPicker('style-model', { prefer: ['vgg19'] });
    picker.select.addEventListener('change', () => form.set('model', picker.select.value));
    form.set('model', picker.select.value);
    const styleFile = h('input', { type: 'file', id: 'style-image', accept: 'image/*' });
    const strength = h('input', { type: 'range', id: 'style-strength', min: '1', max: '5', step: '1', value: '3', 'aria-valuetext': 'medium' });
    const names = ['very light', 'light', 'medium', 'strong', 'very strong'];
    strength.addEventListener('input', () => {
      const i = Number(strength.value) - 1;
      strength.setAttribute('aria-valuetext', names[i]!);
      $('style-strength-out').textContent = names[i]!;
      form.set('style_weight', i === 2 ? '' : String(STRENGTH[i]));
    });
    const size = h('select', { id: 'style-size' }, ...[['128', 'small (128 px, quick)'], ['256', 'medium (256 px)'], ['400', 'large (400 px)']].map(([v, t]) => h('option', { value: v!, text: t! })));
    size.addEventListener('change', () => form.set('size', size.value));
    form.set('size', '128');
    form.set('iterations', '20');
    const keep = h('input', { type: 'checkbox', id: 'style-keep-colours' });
    keep.addEventListener('change', () => form.set('preserve_color', keep.checked));
    const runner = new JobRunner({
      kind: 'style', imageField: 'content', form, startLabel: 'Transfer style',
      extraImages: () => {
        const f = styleFile.files?.[0];
        if (!f) throw new Error('Choose a style image (a painting, a texture…).');
        return [['style', f]];
      },
    });
    panel.append(h('div', { class: 'task-form' },
      h('p', { class: 'muted', text: 'Paint the picture above in the style of another image (Gatys et al.).' }),
      h('div', { class: 'controls' },
        h('div', { class: 'param' }, h('label', { for: 'style-image', text: 'Style image' }), styleFile),
        picker.el,
        h('div', { class: 'param' }, h('label', { for: 'style-strength', text: 'Strength' }), strength, h('output', { id: 'style-strength-out', for: 'style-strength', class: 'muted', text: 'medium' })),
        h('div', { class: 'param' }, h('label', { for: 'style-size', text: 'Size' }), size),
        h('label', { class: 'check', for: 'style-keep-colours' }, keep, ' Keep the photo\'s colours')),
      form.fold, runner.el));
  },
};
