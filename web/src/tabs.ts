// Tasks as tabs (WAI-ARIA tablist: arrows, Home and End move between tabs; the panel follows). A tab is one
// module under tabs/ that exports a `TaskTab`; main.ts lists them, so adding a task is one file and one line.

export interface TaskTab {
  /** Element id stem: the tab is `tab-<id>`, its panel `panel-<id>`. */
  id: string;
  label: string;
  /** Fills the panel; called once at start. May be async (loads what it needs from the API). */
  render(panel: HTMLElement): void | Promise<void>;
}

export function buildTabs(list: HTMLElement, panels: HTMLElement, tabs: TaskTab[]): Promise<void>[] {
  list.setAttribute('role', 'tablist');
  const buttons: HTMLButtonElement[] = [];
  const select = (i: number, focus: boolean) => {
    buttons.forEach((b, j) => {
      const on = i === j;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
      document.getElementById(b.getAttribute('aria-controls')!)!.hidden = !on;
    });
    if (focus) buttons[i]!.focus();
    history.replaceState(null, '', `#${tabs[i]!.id}`);
  };
  const work: Promise<void>[] = [];
  tabs.forEach((t, i) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.id = `tab-${t.id}`;
    b.className = 'tab';
    b.setAttribute('role', 'tab');
    b.setAttribute('aria-controls', `panel-${t.id}`);
    b.textContent = t.label;
    b.addEventListener('click', () => select(i, false));
    b.addEventListener('keydown', (e) => {
      const n = tabs.length;
      const to = e.key === 'ArrowRight' ? (i + 1) % n : e.key === 'ArrowLeft' ? (i + n - 1) % n : e.key === 'Home' ? 0 : e.key === 'End' ? n - 1 : -1;
      if (to < 0) return;
      e.preventDefault();
      select(to, true);
    });
    buttons.push(b);
    list.append(b);
    const panel = document.createElement('section');
    panel.id = `panel-${t.id}`;
    panel.className = 'panel';
    panel.setAttribute('role', 'tabpanel');
    panel.setAttribute('aria-labelledby', b.id);
    panel.tabIndex = 0;
    panels.append(panel);
    work.push(Promise.resolve().then(() => t.render(panel)));
  });
  const start = tabs.findIndex((t) => `#${t.id}` === location.hash);
  select(Math.max(0, start), false);
  return work;
}

export function selectTab(id: string): void {
  document.getElementById(`tab-${id}`)?.click();
}
