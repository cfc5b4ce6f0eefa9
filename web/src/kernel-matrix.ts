// Kernel matrices for the Filter tab: parse the custom matrix text, render a matrix as a small table.
import { fmtNum, h } from './dom.js';

export function matrixTable(m: number[][], scale?: number): HTMLElement {
  const table = h('table', { class: 'matrix' });
  for (const row of m) table.append(h('tr', {}, ...row.map((v) => h('td', { text: fmtNum(v) }))));
  const wrap = h('div', { class: 'matrix-wrap' });
  if (scale !== undefined && scale !== 1) wrap.append(h('span', { class: 'scale', text: `1/${fmtNum(scale)} ×` }));
  wrap.append(table);
  return wrap;
}

/** Parses the custom matrix text; returns the matrix or the reason it is invalid. */
export function parseMatrix(text: string, max: number): { matrix: number[][] } | { error: string } {
  const t = text.trim();
  if (!t) return { error: 'Enter at least one row.' };
  let rows: unknown;
  if (t.startsWith('[')) {
    try { rows = JSON.parse(t); } catch { return { error: 'Not valid JSON.' }; }
  } else {
    rows = t.split(/\n+/).map((line) => line.trim()).filter(Boolean).map((line) => line.split(/[\s,;]+/).filter(Boolean).map(Number));
  }
  if (!Array.isArray(rows) || !rows.length || !rows.every(Array.isArray)) return { error: 'Expected rows of numbers.' };
  const m = rows as unknown[][];
  const w = m[0]!.length;
  for (const [i, r] of m.entries()) {
    if (r.length !== w) return { error: `Row ${i + 1} has ${r.length} entries; row 1 has ${w}.` };
    const bad = r.findIndex((v) => typeof v !== 'number' || !Number.isFinite(v));
    if (bad >= 0) return { error: `Row ${i + 1}, entry ${bad + 1} is not a number.` };
  }
  if (w % 2 === 0 || m.length % 2 === 0) return { error: `${m.length}×${w}: both sides must be odd (1, 3, 5 … ${max}).` };
  if (w > max || m.length > max) return { error: `${m.length}×${w}: the largest allowed is ${max}×${max}.` };
  return { matrix: m as number[][] };
}
