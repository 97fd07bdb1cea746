// Vigil's web console: the overview's chart of statements per second by
// decision, as inline SVG (no library).
import { count, h, s } from './dom.js';

const SERIES = [['allow', 'allowed'], ['review', 'to review'], ['deny', 'denied']];

/** Stacked areas of statements per second by decision over the last minute,
 *  drawn at the container's width so that its text keeps its size on a phone. */
export function rateChart(rate, available) {
  const width = Math.max(280, Math.round(available || 600));
  const height = 180;
  const left = 36;
  const bottom = 20;
  const top = 8;
  const totals = rate.map((p) => SERIES.reduce((sum, [key]) => sum + (p[key] || 0), 0));
  const peak = Math.max(1, ...totals);
  const scale = niceCeiling(peak);
  const span = Math.max(1, rate.length - 1);
  const x = (i) => left + ((width - left - 4) * i) / span;
  const y = (v) => top + (height - top - bottom) * (1 - v / scale);
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-labelledby': 'chart-title' });
  const sums = SERIES.map(([key]) => rate.reduce((sum, p) => sum + (p[key] || 0), 0));
  svg.append(s('title', { id: 'chart-title' },
    `Statements per second over the last ${rate.length} seconds: ` +
    SERIES.map(([, label], i) => `${sums[i]} ${label}`).join(', ')));
  for (const v of [0, scale / 2, scale]) {
    svg.append(s('line', { x1: left, x2: width - 4, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, formatRate(v)));
  }
  svg.append(s('text', { x: left, y: height - 4, class: 'axis' }, `${rate.length}s ago`),
    s('text', { x: width - 4, y: height - 4, class: 'axis', 'text-anchor': 'end' }, 'now'));
  if (rate.length) {
    const base = rate.map(() => 0);
    SERIES.forEach(([key], n) => {
      // A series with nothing in the minute would only draw over the axis.
      if (!sums[n]) return;
      const upper = rate.map((p, i) => base[i] + (p[key] || 0));
      const line = upper.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
      const under = base.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).reverse();
      svg.append(s('polygon', { points: [...line, ...under].join(' '), class: `area area-${key}` }),
        s('polyline', { points: line.join(' '), class: `edge edge-${key}` }));
      upper.forEach((v, i) => { base[i] = v; });
    });
  }
  svg.append(s('line', { x1: left, x2: width - 4, y1: y(0), y2: y(0), class: 'baseline' }));
  const legend = h('ul', { class: 'legend' }, SERIES.map(([key, label], i) =>
    h('li', {}, h('span', { class: `swatch area-${key}`, 'aria-hidden': 'true' }), `${label}: ${count(sums[i])}`)));
  return [svg, legend];
}

function niceCeiling(v) {
  const power = 10 ** Math.floor(Math.log10(v));
  for (const step of [1, 2, 5, 10]) if (v <= step * power) return step * power;
  return 10 * power;
}

function formatRate(v) {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
