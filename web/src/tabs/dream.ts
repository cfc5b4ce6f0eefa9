// DeepDream: three presets (how strong) and the layer family (what it dreams of); the rest under Advanced.
import { h } from '../dom.js';
import { JobRunner } from '../job-runner.js';
import { modelPicker } from '../models.js';
import { formParams, paramForm } from '../schema-form.js';
import type { TaskTab } from '../tabs.js';

/** Iterations × octaves × step: subtle stays close to the photo, intense rewrites it. */
const PRESETS = {
  subtle: { octaves: 2, iterations: 10, step: 0.01 },
  classic: { octaves: 3, iterations: 20, step: 0.01 },
  intense: { octaves: 4, iterations: 30, step: 0.02 },
} as const;

/** InceptionV3 layer families (keras-io names); empty: the model's own default layers. */
const FAMILIES: [string, string][] = [
  ['', 'the model\'s default'],
  ['mixed2:1,mixed3:1', 'early: lines and textures'],
  ['mixed4:1,mixed5:1.5,mixed6:2,mixed7:2.5', 'middle: patterns and eyes (keras-io)'],
  ['mixed8:1,mixed9:1.5', 'late: objects and animals'],
];

export const dreamTab: TaskTab = {
  id: 'dream',
  label: 'DeepDream',
  async render(panel) {
    const form = paramForm('dream', await formParams('/v1/jobs/dream'), ['model']);
    const picker = await modelPicker('dream-model', { prefer: ['inception_v3'] });
    picker.select.addEventListener('change', () => form.set('model', picker.select.value));
    form.set('model', picker.select.value);
    const presets = h('fieldset', { class: 'presets' }, h('legend', { text: 'Strength' }));
    for (const [name, values] of Object.entries(PRESETS)) {
      const id = `dream-preset-${name}`;
      const radio = h('input', { type: 'radio', name: 'dream-preset', id, value: name, checked: name === 'subtle' });
      radio.addEventListener('change', () => { for (const [k, v] of Object.entries(values)) form.set(k, v); });
      presets.append(h('label', { for: id, class: 'chip' }, radio, ` ${name}`));
    }
    for (const [k, v] of Object.entries(PRESETS.subtle)) form.set(k, v);
    const family = h('select', { id: 'dream-family' }, ...FAMILIES.map(([v, t]) => h('option', { value: v, text: t })));
    family.addEventListener('change', () => form.set('layers', family.value));
    const size = h('select', { id: 'dream-size' }, ...[['256', 'small (256 px, quick)'], ['512', 'medium (512 px)'], ['', 'full size']].map(([v, t]) => h('option', { value: v!, text: t! })));
    size.addEventListener('change', () => form.set('max_size', size.value));
    form.set('max_size', '256');
    const runner = new JobRunner({ kind: 'dream', imageField: 'image', form, startLabel: 'Dream' });
    panel.append(h('div', { class: 'task-form' },
      h('p', { class: 'muted', text: 'Amplify what a network sees in the picture: gradient ascent on its layers, octave by octave.' }),
      h('div', { class: 'controls' }, picker.el, presets,
        h('div', { class: 'param' }, h('label', { for: 'dream-family', text: 'Layers' }), family),
        h('div', { class: 'param' }, h('label', { for: 'dream-size', text: 'Size' }), size)),
      form.fold, runner.el));
  },
};
