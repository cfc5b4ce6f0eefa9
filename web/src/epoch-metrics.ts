// A training job's metrics, one row per epoch as its progress events arrive (events may be replayed after a
// reconnect: a step seen twice replaces its row), and the accuracies as a small line chart (SVG, no script
// strings, so the strict CSP is fine).
import { fmtNum, h } from './dom.js';

/** The fine-tune job's metric names, in column order; any other metric the server sends follows them. */
const KNOWN = ['loss', 'accuracy', 'val_loss', 'val_accuracy'];
/** Metrics that are the row's own epoch number, not a column. */
const ROW_KEYS = new Set(['epoch']);
const HEADINGS: Record<string, string> = { lr: 'learning rate' };
const SVG = 'http://www.w3.org/2000/svg';
const CHART = { width: 240, height: 90, pad: 6 };

const heading = (m: string) => HEADINGS[m] ?? m.replace(/^val_/, 'val. ').replace(/_/g, ' ');
const shown = (m: string, v: number) => (m.endsWith('accuracy') ? `${(v * 100).toFixed(1)} %` : fmtNum(v));

export interface EpochMetrics {
  el: HTMLElement;
  /** Records the metrics after `step` (an epoch); ignored when there are none. */
  add(step: number, metrics: Record<string, number> | undefined): void;
  clear(): void;
  /** The last epoch's metrics, if any. */
  last(): Record<string, number> | undefined;
}

export function epochMetrics(id: string, caption: string): EpochMetrics {
  const rows = new Map<number, Record<string, number>>();
  const table = h('table', { class: 'metrics', id });
  const chart = document.createElementNS(SVG, 'svg');
  chart.setAttribute('viewBox', `0 0 ${CHART.width} ${CHART.height}`);
  chart.setAttribute('class', 'metrics-chart');
  chart.setAttribute('role', 'img');
  chart.setAttribute('aria-label', 'Accuracy per epoch');
  chart.id = `${id}-chart`;
  const el = h('div', { class: 'epoch-metrics', hidden: true }, h('div', { class: 'table-scroll' }, table), chart);

  const render = () => {
    const steps = [...rows.keys()].sort((a, b) => a - b);
    const names = [...new Set([...KNOWN.filter((m) => steps.some((s) => m in rows.get(s)!)), ...steps.flatMap((s) => Object.keys(rows.get(s)!))])].filter((m) => !ROW_KEYS.has(m));
    table.replaceChildren(
      h('caption', { text: caption }),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Epoch' }), ...names.map((m) => h('th', { scope: 'col', text: heading(m) })))),
      h('tbody', {}, ...steps.map((s) => h('tr', { 'data-step': String(s) }, h('th', { scope: 'row', text: String(s) }), ...names.map((m) => {
        const v = rows.get(s)![m];
        return h('td', { text: v === undefined ? '–' : shown(m, v) });
      })))));
    drawChart(steps);
    el.hidden = steps.length === 0;
  };

  /** Accuracy (solid) and validation accuracy (dashed) from 0 to 100 % over the epochs so far. */
  const drawChart = (steps: number[]) => {
    chart.replaceChildren();
    const lines = (['accuracy', 'val_accuracy'] as const).filter((m) => steps.some((s) => rows.get(s)![m] !== undefined));
    chart.style.display = lines.length === 0 ? 'none' : '';
    chart.setAttribute('aria-label', `Accuracy per epoch over ${steps.length} epochs: training solid, validation dashed`);
    const { width, height, pad } = CHART;
    const x = (i: number) => pad + (steps.length < 2 ? (width - 2 * pad) / 2 : (i * (width - 2 * pad)) / (steps.length - 1));
    const y = (v: number) => height - pad - Math.min(1, Math.max(0, v)) * (height - 2 * pad);
    const frame = document.createElementNS(SVG, 'rect');
    for (const [k, v] of Object.entries({ x: pad, y: pad, width: width - 2 * pad, height: height - 2 * pad, class: 'frame' })) frame.setAttribute(k, String(v));
    chart.append(frame);
    for (const m of lines) {
      const points = steps.map((s, i) => [i, rows.get(s)![m]] as const).filter(([, v]) => v !== undefined).map(([i, v]) => `${x(i).toFixed(1)},${y(v!).toFixed(1)}`);
      const line = document.createElementNS(SVG, 'polyline');
      line.setAttribute('points', points.join(' '));
      line.setAttribute('class', `line ${m.replace('_', '-')}`);
      chart.append(line);
    }
  };

  return {
    el,
    add(step, metrics) {
      if (!metrics || Object.keys(metrics).length === 0) return;
      rows.set(step, metrics);
      render();
    },
    clear() { rows.clear(); render(); },
    last() {
      const steps = [...rows.keys()].sort((a, b) => a - b);
      return steps.length ? rows.get(steps[steps.length - 1]!) : undefined;
    },
  };
}
