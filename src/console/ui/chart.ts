/**
 * Small line charts in SVG for the Figures view: a few series over a sliding window, a zero
 * baseline, a rounded top, a legend. The SVG stretches to its box; lines keep their width.
 */
import { el } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 300;
const HEIGHT = 100;

export interface Series {
  label: string;
  values: readonly number[];
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attributes: Record<string, string>): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  return node;
}

/** The smallest of 1, 2, 2.5, 5 × 10^k at or above `n` (and at least `floor`). */
export function niceCeiling(n: number, floor = 1): number {
  const target = Math.max(n, floor);
  const power = 10 ** Math.floor(Math.log10(target));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= target) return step * power;
  return 10 * power;
}

/**
 * Draws `series` (each `capacity` points at most, oldest first) into `host`, replacing what was
 * there. `format` writes axis and legend numbers; `describe` is the chart's accessible name.
 */
export function drawChart(host: HTMLElement, series: readonly Series[], capacity: number, format: (n: number) => string, describe: string, floor = 1): void {
  let max = 0;
  for (const s of series) for (const v of s.values) if (Number.isFinite(v) && v > max) max = v;
  const top = niceCeiling(max, floor);
  const x = (i: number, length: number): number => ((capacity - length + i) / Math.max(1, capacity - 1)) * WIDTH;
  const y = (v: number): number => HEIGHT - (Math.max(0, Number.isFinite(v) ? v : 0) / top) * HEIGHT;

  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': describe });
  for (const f of [0, 0.5, 1]) chart.append(svg('line', { class: 'grid', x1: '0', x2: String(WIDTH), y1: String(f * HEIGHT), y2: String(f * HEIGHT), 'vector-effect': 'non-scaling-stroke' }));
  series.forEach((s, n) => {
    if (s.values.length === 0) return;
    const points = s.values.map((v, i) => `${x(i, s.values.length).toFixed(1)},${y(v).toFixed(1)}`);
    if (n === 0 && s.values.length > 1) {
      const first = x(0, s.values.length).toFixed(1);
      chart.append(svg('polygon', { class: `area s${n + 1}`, points: `${first},${HEIGHT} ${points.join(' ')} ${WIDTH},${HEIGHT}` }));
    }
    chart.append(svg('polyline', { class: `s${n + 1}`, points: points.join(' ') }));
  });

  const axis = el('div', { class: 'chart-axis', 'aria-hidden': 'true' }, el('span', {}, format(top)), el('span', {}, '0'));
  const legend = el(
    'ul',
    { class: 'legend' },
    ...series.map((s, n) => el('li', {}, el('span', { class: `swatch s${n + 1}` }), `${s.label} ${format(s.values.at(-1) ?? 0)}`)),
  );
  host.replaceChildren(el('div', { class: 'chart-body' }, axis, chart), legend);
}

/** A tiny line without axes, for table cells. */
export function drawSparkline(values: readonly number[], capacity: number, describe: string): SVGSVGElement {
  const max = Math.max(...values, 0) || 1;
  const spark = svg('svg', { viewBox: `0 0 ${WIDTH} 30`, preserveAspectRatio: 'none', role: 'img', 'aria-label': describe });
  const points = values.map((v, i) => `${(((capacity - values.length + i) / Math.max(1, capacity - 1)) * WIDTH).toFixed(1)},${(30 - (v / max) * 28 - 1).toFixed(1)}`);
  spark.append(svg('polyline', { points: points.join(' ') }));
  return spark;
}
