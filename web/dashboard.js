// The dashboard: request counts, error rates and latency percentiles over time per span name
// (or model, service, operation), cost and tokens over time by model, and the slowest and most
// expensive operations. Everything comes from /api/v1/aggregate.

import { get } from './api.js';
import { barList, timeChart } from './chart.js';
import { h, notice, replace } from './dom.js';
import * as fmt from './fmt.js';
import { queryBox } from './query.js';
import { itemsOf } from './traces.js';

const RANGES = [
  ['auto', 'Latest activity'],
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
];

const GROUPS = [
  ['name', 'span name'],
  ['model', 'model'],
  ['service', 'service'],
  ['operation', 'operation'],
  ['provider', 'provider'],
  ['attr.experiment.variant', 'experiment variant'],
];

const COST_GROUPS = [
  ['model', 'model'],
  ['operation', 'operation'],
  ['user', 'user'],
];

const BUCKETS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
const MAX_SERIES = 8;

/** A bucket width (seconds) giving about `target` buckets over `rangeNs`. */
export function bucketSeconds(rangeNs, target = 40) {
  const raw = rangeNs / 1e9 / target;
  return BUCKETS_S.find((s) => s >= raw) || BUCKETS_S[BUCKETS_S.length - 1];
}

function bucketText(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/** The aggregate endpoint, in the API's parameter names. */
function aggregate({ q, from, to, groupBy = [], metrics, bucket = null, limit = MAX_SERIES }) {
  return get('aggregate', { q, from, to, group_by: groupBy.join(','), metrics: metrics.join(','), bucket, limit });
}

const num = (value) => (value === null || value === undefined ? null : Number(value));

/** Turns bucketed rows into chart series, one per group value, the largest first. */
export function seriesOf(rows, groupKey, valueOf, { fill = null, allBuckets = null } = {}) {
  const byGroup = new Map();
  // Counts are zero in buckets without rows; other values are simply missing there.
  const seen = rows.map((row) => num(row.bucket_start_ns));
  const buckets = [...new Set(fill !== null && allBuckets ? [...allBuckets, ...seen] : seen)].sort((a, b) => a - b);
  for (const row of rows) {
    const name = groupKey ? row.group[groupKey] ?? '(none)' : 'all';
    if (!byGroup.has(name)) byGroup.set(name, new Map());
    byGroup.get(name).set(num(row.bucket_start_ns), valueOf(row.values));
  }
  const res = [...byGroup.entries()].map(([name, points]) => ({
    name: String(name),
    weight: [...points.values()].reduce((a, v) => a + (v || 0), 0),
    points: buckets.map((b) => [b / 1e6, points.has(b) ? points.get(b) : fill]),
  }));
  return res.sort((a, b) => b.weight - a.weight).slice(0, MAX_SERIES);
}

export function render(main, params, ctx) {
  const state = {
    q: params.query.get('q') || '',
    range: params.query.get('range') || 'auto',
    group: params.query.get('group') || 'name',
    costGroup: params.query.get('cost') || 'model',
    destroyed: false,
    generation: 0,
  };

  const box = queryBox({ value: state.q, label: 'Filter spans', placeholder: 'Filter spans, e.g. type = llm   (press / to focus)', onSubmit: (text) => { state.q = text; reload(); } });
  const rangeSelect = h('select', { 'aria-label': 'Time range', onchange: () => { state.range = rangeSelect.value; reload(); } }, RANGES.map(([v, l]) => h('option', { value: v, selected: v === state.range, text: l })));
  const groupSelect = h('select', { 'aria-label': 'Group by', onchange: () => { state.group = groupSelect.value; reload(); } }, GROUPS.map(([v, l]) => h('option', { value: v, selected: v === state.group, text: `By ${l}` })));
  const costSelect = h('select', { 'aria-label': 'Break cost and tokens down by', onchange: () => { state.costGroup = costSelect.value; reload(); } }, COST_GROUPS.map(([v, l]) => h('option', { value: v, selected: v === state.costGroup, text: `Cost by ${l}` })));
  const status = h('div', { class: 'status-line', role: 'status', 'aria-live': 'polite' });
  const body = h('div', { class: 'dash-body' });
  replace(
    main,
    h('section', { class: 'page dashboard-page' }, h('div', { class: 'page-head' }, h('h1', { text: 'Dashboard' }), status), h('div', { class: 'toolbar' }, box.el, rangeSelect, groupSelect, costSelect), body),
  );
  document.title = 'Dashboard · Loupe';
  reload();

  async function timeWindow() {
    if (state.range !== 'auto') {
      const back = { '1h': 3600e9, '24h': 86400e9, '7d': 7 * 86400e9, '30d': 30 * 86400e9 }[state.range];
      const to = Date.now() * 1e6;
      return { from: to - back, to };
    }
    // Latest activity: the window covered by the newest traces, so a quiet server still shows
    // its last burst of traffic.
    const data = await get('traces', { limit: 100, q: '' });
    const rows = itemsOf(data);
    if (!rows.length) return null;
    const from = Math.min(...rows.map((r) => num(r.start_ns)));
    const to = Math.max(...rows.map((r) => num(r.end_ns)));
    const pad = Math.max((to - from) * 0.05, 1e9);
    return { from: from - pad, to: to + pad };
  }

  async function reload() {
    const generation = ++state.generation;
    ctx.setQuery({ q: state.q, range: state.range === 'auto' ? '' : state.range, group: state.group === 'name' ? '' : state.group, cost: state.costGroup === 'model' ? '' : state.costGroup });
    status.textContent = 'Loading…';
    box.input.removeAttribute('aria-invalid');
    try {
      const win = await timeWindow();
      if (generation !== state.generation || state.destroyed) return;
      if (!win) {
        status.textContent = '';
        replace(body, notice('No traces yet. Charts appear once spans arrive.'));
        return;
      }
      const bucketS = bucketSeconds(win.to - win.from);
      // Align the window to whole buckets, so every bucket lies inside the charts.
      win.from = Math.floor(win.from / (bucketS * 1e9)) * bucketS * 1e9;
      win.to = Math.ceil(win.to / (bucketS * 1e9)) * bucketS * 1e9;
      const from = String(win.from);
      const to = String(win.to);
      const bucket = bucketText(bucketS);
      const base = { q: state.q, from, to };
      const [byGroup, latency, byModel, totals, slowest, costly] = await Promise.all([
        aggregate({ ...base, groupBy: [state.group], metrics: ['count', 'errors'], bucket }),
        aggregate({ ...base, groupBy: [], metrics: ['count', 'p50', 'p95', 'p99'], bucket }),
        aggregate({ ...base, groupBy: [state.costGroup], metrics: ['cost', 'input_tokens', 'output_tokens'], bucket, q: state.q ? `(${state.q}) and has model` : 'has model' }),
        aggregate({ ...base, groupBy: [], metrics: ['count', 'errors', 'p95', 'input_tokens', 'output_tokens', 'cost'] }),
        aggregate({ ...base, groupBy: ['name'], metrics: ['count', 'p50', 'p95', 'p99'], limit: 50 }),
        aggregate({ ...base, groupBy: ['operation'], metrics: ['count', 'cost', 'input_tokens', 'output_tokens'], limit: 50 }),
      ]);
      if (generation !== state.generation || state.destroyed) return;
      const x = [win.from / 1e6, win.to / 1e6];
      const allBuckets = [];
      for (let b = win.from; b < win.to && allBuckets.length < 500; b += bucketS * 1e9) allBuckets.push(b);
      status.textContent = `${fmt.time(win.from)} – ${fmt.time(win.to)} · ${bucket} buckets`;
      const groupLabel = GROUPS.find(([v]) => v === state.group)?.[1] || state.group;
      const costLabel = state.costGroup;
      const groupKey = byGroup.group_by && byGroup.group_by[0] ? byGroup.group_by[0] : state.group;
      replace(
        body,
        statRow(totals.rows[0]),
        h(
          'div',
          { class: 'dash-grid' },
          timeChart({ title: `Requests by ${groupLabel}`, series: seriesOf(byGroup.rows, groupKey, (v) => num(v.count), { fill: 0, allBuckets }), x, format: (v) => fmt.int(v), integer: true }),
          timeChart({
            title: `Error rate by ${groupLabel}`,
            series: seriesOf(byGroup.rows, groupKey, (v) => (num(v.count) ? num(v.errors) / num(v.count) : null)),
            x,
            format: (v) => fmt.percent(v),
          }),
          timeChart({
            title: 'Latency percentiles (all matching spans)',
            series: ['p50', 'p95', 'p99'].map((p) => ({ name: p, points: latency.rows.map((row) => [num(row.bucket_start_ns) / 1e6, num(row.values[p])]) })),
            x,
            format: (v) => fmt.duration(v),
          }),
          timeChart({ title: `Cost by ${costLabel}`, series: seriesOf(byModel.rows, state.costGroup, (v) => num(v.cost), { fill: 0, allBuckets }), x, format: (v) => fmt.cost(v), kind: 'bar', bucketMs: bucketS * 1e3, empty: 'No priced LLM calls in this range.' }),
          timeChart({
            title: `Tokens by ${costLabel}`,
            series: seriesOf(byModel.rows, state.costGroup, (v) => (num(v.input_tokens) || 0) + (num(v.output_tokens) || 0), { fill: 0, allBuckets }),
            x,
            format: (v) => fmt.tokens(v, true),
            kind: 'bar',
            bucketMs: bucketS * 1e3,
            integer: true,
            empty: 'No LLM calls in this range.',
          }),
          barList({
            title: 'Slowest operations (p95 by span name)',
            rows: slowest.rows
              .map((row) => ({ label: row.group.name ?? '(none)', value: num(row.values.p95), detail: `${fmt.int(row.values.count)} calls · p50 ${fmt.duration(row.values.p50)} · p99 ${fmt.duration(row.values.p99)}`, href: `/traces?q=${encodeURIComponent(`name = ${JSON.stringify(String(row.group.name ?? ''))}`)}` }))
              .sort((a, b) => b.value - a.value)
              .slice(0, 10),
            format: (v) => fmt.duration(v),
          }),
          barList({
            title: 'Most expensive operations',
            rows: costly.rows
              .filter((row) => num(row.values.cost) > 0 || num(row.values.input_tokens) > 0)
              .map((row) => ({ label: row.group.operation ?? '(none)', value: num(row.values.cost) || 0, detail: `${fmt.int(row.values.count)} spans · ${fmt.tokens((num(row.values.input_tokens) || 0) + (num(row.values.output_tokens) || 0), true)} tokens`, href: row.group.operation ? `/traces?q=${encodeURIComponent(`operation = ${JSON.stringify(String(row.group.operation))}`)}` : null }))
              .sort((a, b) => b.value - a.value)
              .slice(0, 10),
            format: (v) => fmt.cost(v),
            empty: 'No cost recorded in this range.',
          }),
        ),
      );
    } catch (err) {
      if (generation !== state.generation || state.destroyed) return;
      status.textContent = '';
      if (err.status === 400) box.input.setAttribute('aria-invalid', 'true');
      replace(body, notice(err.message, 'error'));
    }
  }

  function statRow(row) {
    const values = row ? row.values : {};
    const count = num(values.count) || 0;
    const stat = (label, value) => h('div', { class: 'stat' }, h('div', { class: 'stat-label', text: label }), h('div', { class: 'stat-value', text: value || '–' }));
    return h(
      'div',
      { class: 'stat-row' },
      stat('Spans', fmt.int(count)),
      stat('Error rate', count ? fmt.percent((num(values.errors) || 0) / count) : ''),
      stat('p95 latency', fmt.duration(values.p95)),
      stat('Tokens', fmt.tokens((num(values.input_tokens) || 0) + (num(values.output_tokens) || 0), true)),
      stat('Cost', fmt.cost(values.cost)),
    );
  }

  return {
    destroy() {
      state.destroyed = true;
    },
  };
}
