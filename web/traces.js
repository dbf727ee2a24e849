// The traces page: newest traces first, filtered in the shared query syntax, with cursor
// paging, a live tail, and saved views kept in this browser.

import { get } from './api.js';
import { capabilities } from './caps.js';
import { h, notice, replace } from './dom.js';
import * as fmt from './fmt.js';
import { queryBox } from './query.js';

const PAGE_SIZE = 50;
const LIVE_EVERY_MS = 2000;
const VIEWS_KEY = 'loupe.views';

/** Time ranges offered, as [value, label, milliseconds back from now or null for all]. */
export const RANGES = [
  ['all', 'All time', null],
  ['15m', 'Last 15 minutes', 15 * 60e3],
  ['1h', 'Last hour', 3600e3],
  ['6h', 'Last 6 hours', 6 * 3600e3],
  ['24h', 'Last 24 hours', 24 * 3600e3],
  ['7d', 'Last 7 days', 7 * 86400e3],
  ['30d', 'Last 30 days', 30 * 86400e3],
];

/** `from` for the API: the API reads relative times (`15m`, `7d`) as "that long ago". */
export function rangeFrom(range) {
  const entry = RANGES.find(([value]) => value === range);
  return entry && entry[2] ? entry[0] : null;
}

function loadViews() {
  try {
    const views = JSON.parse(localStorage.getItem(VIEWS_KEY) || '[]');
    return Array.isArray(views) ? views : [];
  } catch {
    return [];
  }
}

function storeViews(views) {
  try {
    localStorage.setItem(VIEWS_KEY, JSON.stringify(views));
  } catch {
    // Storage may be unavailable (private window); views then last for this page only.
  }
}

/** The items of a list response, whatever the envelope is called. */
export function itemsOf(data) {
  if (Array.isArray(data)) return data;
  return (data && (data.items || data.traces || data.spans || data.data)) || [];
}

export function render(main, params, ctx) {
  const state = {
    q: params.query.get('q') || '',
    range: params.query.get('range') || 'all',
    cursors: [null],
    rows: [],
    selected: -1,
    live: false,
    liveTimer: 0,
    abort: null,
    destroyed: false,
    seen: new Set(),
  };

  const box = queryBox({
    value: state.q,
    label: 'Filter traces',
    placeholder: 'Filter, e.g. type = llm and model ~ "gpt-4o*" and duration > 2s   (press / to focus)',
    onSubmit: (text) => {
      state.q = text;
      viewSelect.value = '';
      reset();
    },
  });

  const rangeSelect = h(
    'select',
    { 'aria-label': 'Time range', onchange: () => { state.range = rangeSelect.value; reset(); } },
    RANGES.map(([value, label]) => h('option', { value, selected: value === state.range, text: label })),
  );

  const liveToggle = h('input', { type: 'checkbox', id: 'live-toggle', onchange: () => setLive(liveToggle.checked) });
  const liveLabel = h('label', { class: 'toggle', for: 'live-toggle' }, liveToggle, h('span', { text: 'Live' }));

  const viewSelect = h('select', { 'aria-label': 'Saved views', onchange: () => applyView(viewSelect.value) });
  const saveButton = h('button', { type: 'button', class: 'save-view-button', text: 'Save view', onclick: () => openSaveForm() });
  const deleteButton = h('button', { type: 'button', class: 'quiet', text: 'Delete view', hidden: true, onclick: () => deleteView() });
  const viewName = h('input', { type: 'text', 'aria-label': 'View name', placeholder: 'View name', maxlength: 60 });
  const saveForm = h(
    'form',
    { class: 'save-view', hidden: true, onsubmit: (event) => { event.preventDefault(); saveView(); } },
    viewName,
    h('button', { type: 'submit', text: 'Save' }),
    h('button', { type: 'button', class: 'quiet', text: 'Cancel', onclick: () => { saveForm.hidden = true; } }),
  );

  const status = h('div', { class: 'status-line', role: 'status', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'data traces-table', 'aria-label': 'Traces' },
    h('thead', {}, h('tr', {}, ['Time', 'Name', 'Service', 'Operation', 'Duration', 'LLM calls', 'Tokens', 'Cost', 'Status', 'Feedback'].map((label, i) => h('th', { scope: 'col', class: i >= 4 && i <= 7 ? 'num' : null, text: label })))),
    tbody,
  );
  const newer = h('button', { type: 'button', text: '← Newer', disabled: true, onclick: () => page(-1) });
  const older = h('button', { type: 'button', text: 'Older →', disabled: true, onclick: () => page(1) });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, newer, older);

  replace(
    main,
    h(
      'section',
      { class: 'page traces-page' },
      h('div', { class: 'page-head' }, h('h1', { text: 'Traces' }), status),
      h('div', { class: 'toolbar' }, box.el, rangeSelect, liveLabel),
      h('div', { class: 'toolbar views' }, viewSelect, saveButton, deleteButton, saveForm),
      h('div', { class: 'table-wrap' }, table),
      pager,
    ),
  );
  document.title = 'Traces · Loupe';
  renderViews();
  load();

  function renderViews() {
    const views = loadViews();
    replace(viewSelect, h('option', { value: '', text: views.length ? 'Saved views…' : 'No saved views' }), views.map((view, i) => h('option', { value: String(i), text: view.name })));
    viewSelect.disabled = views.length === 0;
    deleteButton.hidden = true;
  }

  function applyView(index) {
    const view = loadViews()[Number(index)];
    deleteButton.hidden = !view;
    if (!view) return;
    state.q = view.q || '';
    state.range = view.range || 'all';
    box.setValue(state.q);
    rangeSelect.value = state.range;
    reset();
  }

  function openSaveForm() {
    saveForm.hidden = false;
    viewName.value = state.q ? state.q.slice(0, 40) : 'All traces';
    viewName.focus();
    viewName.select();
  }

  function saveView() {
    const name = viewName.value.trim();
    if (!name) return;
    const views = loadViews().filter((view) => view.name !== name);
    views.push({ name, q: box.input.value.trim(), range: state.range });
    views.sort((a, b) => a.name.localeCompare(b.name));
    storeViews(views);
    saveForm.hidden = true;
    renderViews();
    viewSelect.value = String(views.findIndex((view) => view.name === name));
    deleteButton.hidden = false;
  }

  function deleteView() {
    const views = loadViews();
    views.splice(Number(viewSelect.value), 1);
    storeViews(views);
    renderViews();
  }

  function reset() {
    state.cursors = [null];
    state.selected = -1;
    ctx.setQuery({ q: state.q, range: state.range === 'all' ? '' : state.range });
    load();
  }

  function page(delta) {
    if (delta > 0 && state.next) state.cursors.push(state.next);
    if (delta < 0 && state.cursors.length > 1) state.cursors.pop();
    state.selected = -1;
    load();
  }

  async function fetchPage(cursor, signal) {
    return get('traces', { q: state.q, from: rangeFrom(state.range), limit: PAGE_SIZE, cursor }, { signal });
  }

  async function load() {
    if (state.abort) state.abort.abort();
    const abort = new AbortController();
    state.abort = abort;
    status.textContent = 'Loading…';
    box.input.removeAttribute('aria-invalid');
    try {
      const data = await fetchPage(state.cursors[state.cursors.length - 1], abort.signal);
      if (abort.signal.aborted || state.destroyed) return;
      state.next = data && data.next_cursor ? data.next_cursor : null;
      state.seen = new Set(itemsOf(data).map((row) => row.trace_id));
      showRows(itemsOf(data), new Set());
      const total = data && data.total !== undefined && data.total !== null ? ` of ${fmt.int(data.total)}` : '';
      status.textContent = `${state.rows.length ? `${fmt.int(state.rows.length)}${total} trace${state.rows.length === 1 && !total ? '' : 's'}` : ''}${state.live ? ' · live' : ''}`;
    } catch (err) {
      if (err.name === 'AbortError' || state.destroyed) return;
      state.rows = [];
      status.textContent = '';
      if (err.status === 400) box.input.setAttribute('aria-invalid', 'true');
      replace(tbody, h('tr', {}, h('td', { colspan: 10 }, notice(err.message, 'error'))));
    }
    newer.disabled = state.cursors.length <= 1;
    older.disabled = !state.next;
  }

  function showRows(rows, fresh) {
    state.rows = rows;
    if (!rows.length) {
      const hint = state.q || state.range !== 'all' ? 'No traces match this filter and time range.' : 'No traces yet. Point an OpenTelemetry exporter at this server (OTLP/HTTP on this port, /v1/traces) or send calls through the gateway.';
      replace(tbody, h('tr', {}, h('td', { colspan: 10 }, notice(hint))));
      return;
    }
    const maxDuration = Math.max(1, ...rows.map(durationOf));
    replace(tbody, rows.map((row, i) => traceRow(row, i, maxDuration, fresh.has(row.trace_id))));
    if (state.selected >= 0) select(Math.min(state.selected, rows.length - 1));
    markFeedback(rows);
  }

  /** Marks the rows whose traces have feedback, and which of them were rated down. */
  async function markFeedback(rows) {
    const caps = await capabilities();
    if (!caps.feedback || !rows.length || state.destroyed) return;
    const ids = `(${rows.map((row) => `trace_id = "${row.trace_id}"`).join(' or ')})`;
    try {
      const [withFeedback, ratedDown] = await Promise.all([
        get('traces', { q: `${ids} and has feedback`, limit: rows.length }),
        get('traces', { q: `${ids} and rating <= 2`, limit: rows.length }),
      ]);
      const down = new Set(itemsOf(ratedDown).map((row) => row.trace_id));
      for (const row of itemsOf(withFeedback)) {
        const cell = tbody.querySelector(`tr[data-trace-id='${row.trace_id}'] .feedback-cell`);
        if (cell) replace(cell, h('span', { class: `badge ${down.has(row.trace_id) ? 'status-error' : ''}`, title: down.has(row.trace_id) ? 'has feedback, rated down' : 'has feedback', text: down.has(row.trace_id) ? '✗ rated' : '✎ yes' }));
      }
    } catch {
      // Feedback marks are a nicety; the table stands without them.
    }
  }

  function traceRow(row, i, maxDuration, fresh) {
    const duration = durationOf(row);
    const errors = Number(row.n_errors || 0);
    const tokens = Number(row.input_tokens || 0) + Number(row.output_tokens || 0);
    const href = `/traces/${row.trace_id}`;
    return h(
      'tr',
      {
        class: `${errors ? 'is-error' : ''} ${fresh ? 'is-fresh' : ''}`.trim() || null,
        dataset: { traceId: row.trace_id, index: String(i) },
        onclick: (event) => {
          if (!event.target.closest('a')) ctx.navigate(href);
        },
      },
      h('td', { class: 'nowrap', title: fmt.time(row.start_ns) }, fmt.shortTime(row.start_ns)),
      h('td', { class: 'name-cell' }, h('a', { href, text: row.root_name || `(missing root) ${fmt.shortId(row.trace_id)}` })),
      h('td', { text: row.service || '' }),
      h('td', { text: row.operation_id || '' }),
      h('td', { class: 'num' }, h('span', { class: 'mini-bar', style: { '--w': `${Math.max(2, (duration / maxDuration) * 100)}%` } }), fmt.duration(duration)),
      h('td', { class: 'num', text: row.n_llm_spans ? fmt.int(row.n_llm_spans) : '' }),
      h('td', { class: 'num', title: `in ${fmt.int(row.input_tokens)} · out ${fmt.int(row.output_tokens)}`, text: tokens ? fmt.tokens(tokens, true) : '' }),
      h('td', { class: 'num', text: fmt.cost(row.cost) }),
      h('td', {}, statusBadge(errors ? 'error' : 'ok', errors > 1 ? `${errors} errors` : null)),
      h('td', { class: 'feedback-cell' }),
    );
  }

  function select(index) {
    const rows = [...tbody.querySelectorAll('tr[data-trace-id]')];
    if (!rows.length) return;
    state.selected = Math.max(0, Math.min(index, rows.length - 1));
    rows.forEach((tr, i) => tr.classList.toggle('is-selected', i === state.selected));
    rows[state.selected].scrollIntoView({ block: 'nearest' });
  }

  function setLive(on) {
    state.live = on;
    clearTimeout(state.liveTimer);
    if (on) {
      state.cursors = [null];
      tick();
    } else load();
  }

  async function tick() {
    if (!state.live || state.destroyed) return;
    try {
      const data = await fetchPage(null);
      if (!state.live || state.destroyed) return;
      const rows = itemsOf(data);
      const fresh = new Set(rows.map((row) => row.trace_id).filter((id) => !state.seen.has(id)));
      rows.forEach((row) => state.seen.add(row.trace_id));
      state.next = data && data.next_cursor ? data.next_cursor : null;
      showRows(rows, fresh);
      status.textContent = `${fmt.int(rows.length)} trace${rows.length === 1 ? '' : 's'} · live`;
      newer.disabled = true;
      older.disabled = !state.next;
    } catch (err) {
      status.textContent = `Live tail paused: ${err.message}`;
    }
    state.liveTimer = setTimeout(tick, LIVE_EVERY_MS);
  }

  return {
    destroy() {
      state.destroyed = true;
      clearTimeout(state.liveTimer);
      if (state.abort) state.abort.abort();
    },
    onKey(event) {
      if (event.key === 'j') select(state.selected + 1);
      else if (event.key === 'k') select(state.selected - 1);
      else if (event.key === 'Enter' && state.selected >= 0 && state.rows[state.selected]) ctx.navigate(`/traces/${state.rows[state.selected].trace_id}`);
      else return false;
      return true;
    },
  };
}

function durationOf(row) {
  if (row.duration_ns !== undefined) return Number(row.duration_ns);
  return Math.max(0, Number(row.end_ns || 0) - Number(row.start_ns || 0));
}

/** A status pill. */
export function statusBadge(status, text = null) {
  return h('span', { class: `badge status-${status}`, text: text || status });
}
