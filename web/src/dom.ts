// DOM helpers shared by every module of the page: element lookup, a tiny element factory, number formatting.

export type Json = Record<string, any>;

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};

type Attrs = Record<string, string | boolean | undefined>;
type Child = Node | string | null | undefined | false;

/** `h('button', { type: 'button', text: 'Go' }, child…)`: attributes (`text` sets textContent), then children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k === 'text') el.textContent = String(v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

export function showError(box: HTMLElement, e: unknown): void {
  box.textContent = e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

export function clearError(box: HTMLElement): void {
  box.hidden = true;
  box.textContent = '';
}

export function errorBox(id: string): HTMLElement {
  return h('div', { class: 'error', id, role: 'alert', hidden: true });
}

export function busy(btn: HTMLButtonElement, on: boolean, label?: string): void {
  btn.disabled = on;
  btn.setAttribute('aria-busy', String(on));
  if (label) btn.textContent = label;
}

export const fmtEta = (s: number | undefined): string =>
  s === undefined ? '…' : s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : s >= 60 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${Math.round(s)} s`;

export const fmtNum = (v: number): string =>
  Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : String(Number(v.toPrecision(4)));

/** A labelled control in a `.param` block. */
export function field(id: string, label: string, control: HTMLElement, hint?: string): HTMLElement {
  return h('div', { class: 'param' }, h('label', { for: id, text: label }), control, hint ? h('small', { class: 'muted', text: hint }) : null);
}
