// The convserve web page: the image well on top, the tasks as tabs (one module each under tabs/), the gallery of
// recent jobs, the models. Every request goes through api.ts (API key, problem+json errors).
import { $, showError } from './dom.js';
import { refreshGallery } from './gallery.js';
import { initImageWell, loadSamples } from './image-well.js';
import { renderModelList } from './models.js';
import { classifyTab } from './tabs/classify.js';
import { dreamTab } from './tabs/dream.js';
import { filterTab } from './tabs/filter.js';
import { finetuneTab } from './tabs/finetune.js';
import { styleTab } from './tabs/style.js';
import { type TaskTab, buildTabs } from './tabs.js';

/** The tasks, in tab order. A new task is a module under tabs/ and one entry here. */
const TABS: TaskTab[] = [classifyTab, filterTab, dreamTab, styleTab, finetuneTab];

async function main(): Promise<void> {
  initImageWell();
  $('gallery-refresh').addEventListener('click', () => { void refreshGallery(); });
  $('key-change').addEventListener('click', () => $<HTMLDialogElement>('key-dialog').showModal());
  const tabs = buildTabs($('tablist'), $('panels'), TABS).map((p, i) => p.catch((e: unknown) => {
    const panel = $(`panel-${TABS[i]!.id}`);
    const box = document.createElement('div');
    box.className = 'error';
    box.setAttribute('role', 'alert');
    panel.append(box);
    showError(box, e);
  }));
  await Promise.all([
    ...tabs,
    loadSamples().catch((e: unknown) => showError($('well-error'), e)),
    renderModelList($('models-list')).catch((e: unknown) => showError($('gallery-error'), e)),
    refreshGallery(),
  ]);
  document.body.dataset.ready = 'true';
}

void main();
