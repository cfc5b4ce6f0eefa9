// report.png / report.json of a trained model: learning curves and the confusion matrix drawn as an SVG and
// rasterised with sharp (people would rather look at curves than read numbers). Used by MNIST training and
// fine-tuning.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { svgToPng } from '../image/svg.js';
import type { EpochRecord } from './metrics.js';

// ------------------------------------------------------------------------------------------------ report.png

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function lineChart(
  x0: number, y0: number, w: number, h: number, title: string, series: { name: string; color: string; values: number[]; dash?: boolean }[],
  bestEpoch: number, fmt: (v: number) => string, legend: 'top' | 'bottom' = 'top', range?: [number, number],
): string {
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
  const pad = (hi - lo) * 0.08;
  lo -= pad; hi += pad;
  if (range) { lo = Math.max(lo, range[0]); hi = Math.min(hi, range[1]); }
  const n = Math.max(...series.map((s) => s.values.length));
  const px = (i: number) => x0 + (n <= 1 ? w / 2 : (i / (n - 1)) * w);
  const py = (v: number) => y0 + h - ((v - lo) / (hi - lo)) * h;
  const parts: string[] = [];
  parts.push(`<text x="${x0 + w / 2}" y="${y0 - 14}" font-size="16" font-weight="bold" text-anchor="middle">${esc(title)}</text>`);
  parts.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#999"/>`);
  for (let t = 0; t <= 4; t++) {
    const v = lo + ((hi - lo) * t) / 4;
    const y = py(v);
    parts.push(`<line x1="${x0}" x2="${x0 + w}" y1="${y}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${x0 - 6}" y="${y + 4}" font-size="11" text-anchor="end">${fmt(v)}</text>`);
  }
  const tickEvery = Math.max(1, Math.ceil(n / 10));
  for (let i = 0; i < n; i += tickEvery) parts.push(`<text x="${px(i)}" y="${y0 + h + 16}" font-size="11" text-anchor="middle">${i + 1}</text>`);
  parts.push(`<text x="${x0 + w / 2}" y="${y0 + h + 34}" font-size="12" text-anchor="middle">epoch</text>`);
  if (bestEpoch >= 1) parts.push(`<line x1="${px(bestEpoch - 1)}" x2="${px(bestEpoch - 1)}" y1="${y0}" y2="${y0 + h}" stroke="#2a2" stroke-dasharray="4 3"/>`);
  series.forEach((s, k) => {
    const pts = s.values.map((v, i) => `${px(i).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ' stroke-dasharray="6 3"' : ''}/>`);
    s.values.forEach((v, i) => parts.push(`<circle cx="${px(i).toFixed(1)}" cy="${py(v).toFixed(1)}" r="2.5" fill="${s.color}"/>`));
    const ly = legend === 'top' ? y0 + 14 + k * 16 : y0 + h - 14 - (series.length - 1 - k) * 16;
    const lx = x0 + w - 130;
    parts.push(`<rect x="${lx - 4}" y="${ly - 8}" width="126" height="16" fill="white" fill-opacity="0.85"/>`);
    parts.push(`<line x1="${lx}" x2="${lx + 20}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`);
    parts.push(`<text x="${lx + 25}" y="${ly + 4}" font-size="12">${esc(s.name)}</text>`);
  });
  return parts.join('\n');
}

export interface ReportOptions {
  /** Headline (default: `mnist-cnn — best epoch B, test accuracy A %`). */
  title?: string;
  /** Class names, one per confusion-matrix row (default "0", "1", …). */
  labels?: string[];
  /** Which set the confusion matrix counts (default 'test'). */
  evalSet?: string;
  /** Drawn in red under the headline (a result that cannot be trusted must not look like a good one). */
  warnings?: string[];
}

const shortLabel = (s: string, max: number) => (s.length <= max ? s : `${s.slice(0, Math.max(1, max - 1))}…`);

/** Learning curves + confusion matrix (any number of classes, named by `opts.labels`) as an SVG string. */
export function reportSvg(history: EpochRecord[], confusion: number[][], bestEpoch: number, testAccuracy: number, opts: ReportOptions = {}): string {
  const n = confusion.length;
  const labels = opts.labels ?? Array.from({ length: n }, (_, i) => String(i));
  if (labels.length !== n) throw new Error(`reportSvg: ${labels.length} labels for a ${n}-class confusion matrix`);
  const longest = Math.max(1, ...labels.map((l) => l.length));
  const cell = Math.max(14, Math.min(42, Math.floor(440 / Math.max(n, 1))));
  const labelChars = Math.min(longest, 14);
  const labelPx = Math.min(longest > 2 ? 7 * labelChars + 8 : 18, 110);
  const cx = 560 + Math.max(0, labelPx - 18);
  const warnings = opts.warnings ?? [];
  // Each warning wraps to lines of ~150 characters, drawn between the headline and the charts.
  const warningLines = warnings.flatMap((w) => `⚠ ${w}`.match(/.{1,150}(\s|$)/g) ?? [w]);
  const shift = warningLines.length ? warningLines.length * 18 + 10 : 0;
  const cy = 80 + shift + (longest > 2 ? Math.min(labelPx, 90) + 20 : 0);
  const W = Math.max(1200, cx + n * cell + 40);
  const H = Math.max(600 + shift, cy + n * cell + 60);
  const font = Math.max(8, Math.min(13, Math.floor(cell * 0.32)));
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, Arial, sans-serif">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  const title = opts.title ?? `mnist-cnn — best epoch ${bestEpoch}, test accuracy ${(testAccuracy * 100).toFixed(2)} %`;
  parts.push(`<text x="20" y="28" font-size="18" font-weight="bold">${esc(title)}</text>`);
  warningLines.forEach((line, i) => parts.push(`<text x="20" y="${54 + i * 18}" font-size="14" font-weight="bold" fill="#c00000">${esc(line.trim())}</text>`));
  if (shift) parts.push(`<g transform="translate(0 ${shift})">`);
  parts.push(lineChart(70, 80, 330, 190, 'loss', [
    { name: 'loss', color: '#1f77b4', values: history.map((h) => h.loss) },
    { name: 'val_loss', color: '#ff7f0e', values: history.map((h) => h.val_loss), dash: true },
  ], bestEpoch, (v) => v.toFixed(3), 'top', [0, Infinity]));
  parts.push(lineChart(70, 340, 330, 190, 'accuracy', [
    { name: 'accuracy', color: '#1f77b4', values: history.map((h) => h.acc) },
    { name: 'val_accuracy', color: '#ff7f0e', values: history.map((h) => h.val_acc), dash: true },
  ], bestEpoch, (v) => v.toFixed(3), 'bottom', [0, 1]));
  if (shift) parts.push('</g>');
  // confusion matrix
  const max = Math.max(1, ...confusion.flatMap((r, i) => r.filter((_, j) => j !== i)));
  const diagMax = Math.max(1, ...confusion.map((r, i) => r[i]!));
  const mid = cx + (n * cell) / 2;
  parts.push(`<text x="${mid}" y="${cy - (longest > 2 ? Math.min(labelPx, 90) + 30 : 30)}" font-size="16" font-weight="bold" text-anchor="middle">confusion matrix (${esc(opts.evalSet ?? 'test')} set)</text>`);
  parts.push(`<text x="${mid}" y="${cy - (longest > 2 ? Math.min(labelPx, 90) + 10 : 10)}" font-size="12" text-anchor="middle">predicted</text>`);
  const tx = cx - labelPx - 16;
  parts.push(`<text x="${tx}" y="${cy + (n * cell) / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 ${tx} ${cy + (n * cell) / 2})">true</text>`);
  for (let i = 0; i < n; i++) {
    const lab = esc(shortLabel(labels[i]!, labelChars));
    parts.push(`<text x="${cx - 6}" y="${cy + i * cell + cell / 2 + 4}" font-size="${font}" text-anchor="end">${lab}</text>`);
    if (longest > 2) {
      const x = cx + i * cell + cell / 2 + 4;
      parts.push(`<text x="${x}" y="${cy - 6}" font-size="${font}" text-anchor="start" transform="rotate(-60 ${x} ${cy - 6})">${lab}</text>`);
    } else {
      parts.push(`<text x="${cx + i * cell + cell / 2}" y="${cy + n * cell + 18}" font-size="${font}" text-anchor="middle">${lab}</text>`);
    }
    for (let j = 0; j < n; j++) {
      const v = confusion[i]![j]!;
      const frac = i === j ? v / diagMax : v / max;
      const color = i === j
        ? `rgb(${Math.round(255 - 200 * frac)},${Math.round(255 - 120 * frac)},${Math.round(255 - 200 * frac)})`
        : v === 0 ? 'rgb(250,250,250)' : `rgb(255,${Math.round(230 - 160 * frac)},${Math.round(230 - 160 * frac)})`;
      parts.push(`<rect x="${cx + j * cell}" y="${cy + i * cell}" width="${cell}" height="${cell}" fill="${color}" stroke="#ccc"/>`);
      if (v > 0 && cell >= 18) parts.push(`<text x="${cx + j * cell + cell / 2}" y="${cy + i * cell + cell / 2 + 4}" font-size="${font}" text-anchor="middle">${v}</text>`);
    }
  }
  parts.push('</svg>');
  return parts.join('\n');
}

export async function renderReportPng(history: EpochRecord[], confusion: number[][], bestEpoch: number, testAccuracy: number, opts: ReportOptions = {}): Promise<Buffer> {
  return svgToPng(reportSvg(history, confusion, bestEpoch, testAccuracy, opts));
}

/** Reads report.json from a model folder (for tests and the CLI). */
export function readReport(dir: string): unknown {
  return JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
}
