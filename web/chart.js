// A small SVG time-series chart (lines or stacked-free bars) with axes, a legend and a hover
// read-out. Colors come from the stylesheet (`.series-N`), so charts follow the theme.

import { h } from './dom.js';

const SVG = (tag, attrs = {}, ...children) => h(`svg:${tag}`, attrs, ...children);
const PAD = { top: 10, right: 14, bottom: 24, left: 56 };
export const N_COLORS = 8;

/** "Nice" tick values from `min` up to the first tick at or above `max`. */
export function ticks(min, max, count = 4, integer = false) {
  if (!(max > min)) return [min, min + 1];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
  if (integer) step = Math.max(1, Math.round(step));
  const res = [];
  let v = Math.ceil(min / step) * step;
  for (; v < max - step * 1e-9; v += step) res.push(Number(v.toPrecision(12)));
  res.push(Number(v.toPrecision(12)));
  return res;
}

function timeLabel(ms, spanMs) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  if (spanMs <= 120e3) return `${pad(d.getMinutes())}:${pad(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0').slice(0, 1)}`;
  if (spanMs <= 2 * 86400e3) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return `${d.getMonth() + 1}/${d.getDate()}`;
}

/**
 * A time-series chart. `series`: `[{name, points: [[ms, value|null], ...]}]`; `x`: `[minMs,
 * maxMs]`; `format(value)` labels the y axis and read-out.
 */
export function timeChart({ title, series, x, format = String, kind = 'line', height = 180, empty = 'No data in this range.', integer = false, bucketMs = null }) {
  const figure = h('figure', { class: 'chart' });
  const caption = h('figcaption', { text: title });
  const plot = h('div', { class: 'chart-plot' });
  const readout = h('div', { class: 'chart-readout', hidden: true, role: 'presentation' });
  const legend = h(
    'ul',
    { class: 'chart-legend', 'aria-label': `${title} legend` },
    series.map((s, i) => h('li', {}, h('span', { class: `swatch series-${i % N_COLORS}` }), h('span', { text: s.name }))),
  );
  figure.append(caption, plot, legend);
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null && Number.isFinite(v)));
  if (!values.length) {
    plot.append(h('p', { class: 'empty', text: empty }));
    return figure;
  }
  plot.append(readout);
  const draw = () => {
    const width = Math.max(240, plot.clientWidth || 480);
    const svg = buildSvg({ title, series, x, format, kind, width, height, values, readout, integer, bucketMs });
    const old = plot.querySelector('svg');
    if (old) old.replaceWith(svg);
    else plot.prepend(svg);
  };
  const observer = new ResizeObserver(() => draw());
  observer.observe(plot);
  requestAnimationFrame(draw);
  return figure;
}

function buildSvg({ title, series, x, format, kind, width, height, values, readout, integer, bucketMs }) {
  const [x0, x1raw] = x;
  const x1 = x1raw > x0 ? x1raw : x0 + 1;
  const yMax = Math.max(...values, 0);
  const yTicks = ticks(0, yMax > 0 ? yMax : 1, 4, integer);
  const yTop = yTicks[yTicks.length - 1] || 1;
  const innerW = width - PAD.left - PAD.right;
  const innerH = height - PAD.top - PAD.bottom;
  const sx = (ms) => PAD.left + ((ms - x0) / (x1 - x0)) * innerW;
  const sy = (v) => PAD.top + innerH - (v / yTop) * innerH;
  const svg = SVG('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `${title}: ${series.length} series, max ${format(yMax)}` });
  const grid = SVG('g', { class: 'grid' });
  for (const t of yTicks) {
    grid.append(SVG('line', { x1: PAD.left, x2: width - PAD.right, y1: sy(t), y2: sy(t) }));
    grid.append(SVG('text', { x: PAD.left - 6, y: sy(t) + 4, 'text-anchor': 'end', class: 'axis-label' }, format(t)));
  }
  const nX = Math.max(2, Math.min(6, Math.floor(innerW / 90)));
  for (let i = 0; i <= nX; i++) {
    const ms = x0 + ((x1 - x0) * i) / nX;
    grid.append(SVG('text', { x: sx(ms), y: height - 6, 'text-anchor': i === 0 ? 'start' : i === nX ? 'end' : 'middle', class: 'axis-label' }, timeLabel(ms, x1 - x0)));
  }
  svg.append(grid);

  const allX = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const step = bucketMs || (allX.length > 1 ? Math.min(...allX.slice(1).map((v, i) => v - allX[i])) : (x1 - x0) / 10);
  const barGroupW = Math.max(2, (step / (x1 - x0)) * innerW * 0.8);
  const plotRight = width - PAD.right;
  series.forEach((s, i) => {
    const cls = `series-${i % N_COLORS}`;
    const points = s.points.filter((p) => p[1] !== null && Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]);
    if (kind === 'bar') {
      const barW = barGroupW / series.length;
      const g = SVG('g', { class: `bars ${cls}` });
      // A bucket's bars sit inside the bucket, which starts at its timestamp.
      for (const [ms, v] of points) {
        const left = Math.max(PAD.left, sx(ms) + barGroupW * 0.1 + i * barW);
        const right = Math.min(plotRight, left + Math.max(1, barW - 1));
        if (right > left) g.append(SVG('rect', { x: left, y: sy(v), width: right - left, height: Math.max(0, sy(0) - sy(v)) }));
      }
      svg.append(g);
      return;
    }
    if (points.length > 1) svg.append(SVG('path', { class: `line ${cls}`, d: points.map(([ms, v], j) => `${j ? 'L' : 'M'}${sx(ms).toFixed(1)},${sy(v).toFixed(1)}`).join('') }));
    const dots = SVG('g', { class: `dots ${cls}` });
    if (points.length <= 60) for (const [ms, v] of points) dots.append(SVG('circle', { cx: sx(ms), cy: sy(v), r: 2.5 }));
    svg.append(dots);
  });

  const cursor = SVG('line', { class: 'cursor', y1: PAD.top, y2: PAD.top + innerH, x1: -10, x2: -10 });
  svg.append(cursor);
  const overlay = SVG('rect', { x: PAD.left, y: PAD.top, width: innerW, height: innerH, fill: 'transparent' });
  overlay.addEventListener('mousemove', (event) => {
    const box = svg.getBoundingClientRect();
    const ms = x0 + ((event.clientX - box.left - PAD.left) / innerW) * (x1 - x0);
    const nearest = allX.reduce((best, v) => (Math.abs(v - ms) < Math.abs(best - ms) ? v : best), allX[0]);
    cursor.setAttribute('x1', sx(nearest));
    cursor.setAttribute('x2', sx(nearest));
    readout.replaceChildren(
      h('div', { class: 'readout-time', text: new Date(nearest).toLocaleString() }),
      ...series.map((s, i) => {
        const point = s.points.find((p) => p[0] === nearest);
        return point && point[1] !== null ? h('div', {}, h('span', { class: `swatch series-${i % N_COLORS}` }), `${s.name}: ${format(point[1])}`) : null;
      }).filter(Boolean),
    );
    readout.hidden = false;
    const left = sx(nearest) + 12;
    readout.style.setProperty('left', `${Math.min(left, width - 180)}px`);
  });
  overlay.addEventListener('mouseleave', () => {
    readout.hidden = true;
    cursor.setAttribute('x1', -10);
    cursor.setAttribute('x2', -10);
  });
  svg.append(overlay);
  return svg;
}

/** A horizontal bar list: `[{label, value, href?, detail?}]`. */
export function barList({ title, rows, format = String, empty = 'No data.' }) {
  const max = Math.max(...rows.map((r) => r.value || 0), 1e-12);
  return h(
    'figure',
    { class: 'chart bar-list' },
    h('figcaption', { text: title }),
    rows.length
      ? h(
          'ol',
          {},
          rows.map((row) =>
            h(
              'li',
              {},
              h('span', { class: 'bar-label' }, row.href ? h('a', { href: row.href, text: row.label }) : row.label),
              h('span', { class: 'bar-track' }, h('span', { class: 'bar-fill', style: { '--w': `${((row.value || 0) / max) * 100}%` } })),
              h('span', { class: 'bar-value', text: format(row.value) }),
              row.detail ? h('span', { class: 'bar-detail muted', text: row.detail }) : null,
            ),
          ),
        )
      : h('p', { class: 'empty', text: empty }),
  );
}
