// The trace page: a virtualized waterfall of the span tree (only the rows in view exist in the
// DOM, so traces of thousands of spans open at once) and the selected span's details.

import { adaptTrace, attributePairs, get } from './api.js';
import { capabilities } from './caps.js';
import { renderView } from './chat.js';
import { copyText, facts, h, notice, replace, throttleFrame } from './dom.js';
import { feedbackPanel } from './feedback.js';
import * as fmt from './fmt.js';
import { statusBadge } from './traces.js';

const ROW_HEIGHT = 28;
const OVERSCAN = 8;
const INDENT_PX = 14;
const MAX_INDENT_DEPTH = 24;

/** Short labels drawn as the span type icon. */
export const TYPE_ICONS = {
  llm: 'AI', embedding: 'EM', retrieval: 'RT', reranker: 'RR', tool: 'TL', agent: 'AG', chain: 'CH',
  evaluator: 'EV', guardrail: 'GR', http: 'HT', db: 'DB', other: '·',
};

export function typeIcon(type) {
  const known = Object.hasOwn(TYPE_ICONS, type) ? type : 'other';
  return h('span', { class: `type-icon type-${known}`, title: type, 'aria-hidden': 'true', text: TYPE_ICONS[known] });
}

/** Marks the slowest spans: the top 5% by self time (at least one), ignoring zero self time. */
function markSlow(spans) {
  const timed = spans.filter((span) => span.selfTime > 0 && span.depth > 0).sort((a, b) => b.selfTime - a.selfTime);
  const n = Math.max(1, Math.floor(timed.length * 0.05));
  if (timed.length < 3) return;
  timed.slice(0, n).forEach((span) => {
    span.slow = true;
  });
}

export function render(main, params, ctx) {
  const state = {
    traceId: params.traceId,
    trace: null,
    visible: [],
    collapsed: new Set(),
    selected: null,
    search: '',
    tab: 'overview',
    destroyed: false,
    caps: {},
  };
  const section = h('section', { class: 'page trace-page' }, notice('Loading trace…'));
  replace(main, section);
  document.title = `Trace ${fmt.shortId(state.traceId)} · Loupe`;
  const started = performance.now();
  Promise.all([get(`traces/${state.traceId}`), capabilities()])
    .then(([data, caps]) => {
      if (state.destroyed) return;
      state.caps = caps;
      state.trace = adaptTrace(data);
      if (!state.trace.spans.length) {
        replace(section, backLink(), notice('This trace has no spans.', 'error'));
        return;
      }
      markSlow(state.trace.spans);
      build();
      const initial = (params.spanId && state.trace.byId.get(params.spanId)) || state.trace.spans[0];
      select(initial, { scroll: true, updateUrl: false });
      section.dataset.renderMs = String(Math.round(performance.now() - started));
    })
    .catch((err) => {
      if (state.destroyed) return;
      const message = err.status === 404 ? `No trace ${state.traceId} in this project.` : err.message;
      replace(section, backLink(), notice(message, 'error'));
    });

  // Elements built once the trace has loaded.
  let scroller;
  let spacer;
  let rowsLayer;
  let detail;
  let countLabel;

  function backLink() {
    return h('a', { class: 'back', href: '/traces', text: '← Traces' });
  }

  function build() {
    const trace = state.trace;
    const root = trace.roots[0];
    const totalDuration = trace.end - trace.start;
    const status = trace.totals.errors ? 'error' : 'ok';
    document.title = `${root.name} · Trace · Loupe`;

    const idButton = h('button', { type: 'button', class: 'link-button mono', title: 'Copy trace id', 'aria-label': `Copy trace id ${trace.traceId}`, text: trace.traceId, onclick: () => copyText(trace.traceId) });
    const head = h(
      'div',
      { class: 'trace-head' },
      h('div', { class: 'trace-title' }, backLink(), h('h1', {}, typeIcon(root.type), ' ', root.name), statusBadge(status, trace.totals.errors > 1 ? `${trace.totals.errors} errors` : null)),
      facts([
        ['Trace', idButton],
        ['Started', fmt.time(trace.start)],
        ['Duration', fmt.duration(totalDuration)],
        ['Spans', fmt.int(trace.totals.spans)],
        ['LLM calls', fmt.int(trace.totals.llm)],
        ['Tokens', trace.totals.input + trace.totals.output ? `${fmt.int(trace.totals.input)} in · ${fmt.int(trace.totals.output)} out` : null],
        ['Cost', trace.totals.hasCost ? fmt.cost(trace.totals.cost) : null],
        ['Service', root.service],
        ['Session', root.view.session_id ? h('a', { href: `/sessions/${encodeURIComponent(root.view.session_id)}`, text: root.view.session_id }) : null],
        ['User', root.view.user_id],
      ], 'facts inline'),
    );

    const searchInput = h('input', {
      type: 'search',
      class: 'span-search',
      placeholder: 'Find spans by name, type or model  (/)',
      'aria-label': 'Find spans',
      'data-filter': '',
      oninput: () => {
        state.search = searchInput.value.trim().toLowerCase();
        refreshVisible();
      },
      onkeydown: (event) => {
        if (event.key === 'Enter' && state.visible.length) {
          const match = state.visible.find((span) => matches(span)) || state.visible[0];
          select(match, { scroll: true });
          scroller.focus();
        }
      },
    });
    countLabel = h('span', { class: 'muted count', 'aria-live': 'polite' });
    const tools = h(
      'div',
      { class: 'waterfall-tools' },
      searchInput,
      h('button', { type: 'button', class: 'quiet', text: 'Expand all', onclick: () => { state.collapsed.clear(); refreshVisible(); } }),
      h('button', { type: 'button', class: 'quiet', text: 'Collapse all', onclick: () => { trace.spans.forEach((span) => span.children.length && span.depth > 0 && state.collapsed.add(span.id)); refreshVisible(); } }),
      countLabel,
    );
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((at) => h('span', { class: 'tick', style: { '--at': `${at * 100}%` }, text: at ? fmt.duration(totalDuration * at) : '0' }));
    const header = h('div', { class: 'waterfall-header', 'aria-hidden': 'true' }, h('span', { class: 'wf-name-col', text: 'Span' }), h('span', { class: 'wf-time-col' }, ticks));
    rowsLayer = h('div', { class: 'wf-rows' });
    spacer = h('div', { class: 'wf-spacer' }, rowsLayer);
    scroller = h('div', { class: 'waterfall', role: 'tree', tabindex: '0', 'aria-label': 'Span tree' }, spacer);
    scroller.addEventListener('scroll', throttleFrame(drawRows));
    scroller.addEventListener('keydown', onTreeKey);
    const legend = h(
      'div',
      { class: 'legend', 'aria-label': 'Legend' },
      h('span', {}, h('span', { class: 'swatch swatch-error' }), 'error'),
      h('span', {}, h('span', { class: 'swatch swatch-slow' }), 'slow (top 5% self time)'),
      h('span', {}, h('span', { class: 'swatch swatch-llm' }), 'LLM call'),
    );
    detail = h('aside', { class: 'detail-pane', 'aria-label': 'Span details' });
    replace(section, head, h('div', { class: 'trace-layout' }, h('div', { class: 'waterfall-pane' }, tools, header, scroller, legend), detail));
    refreshVisible();
    new ResizeObserver(throttleFrame(drawRows)).observe(scroller);
  }

  function matches(span) {
    if (!state.search) return true;
    const hay = `${span.name} ${span.type} ${span.model || ''} ${span.service || ''} ${span.id}`.toLowerCase();
    return hay.includes(state.search);
  }

  function refreshVisible() {
    const trace = state.trace;
    if (state.search) {
      const keep = new Set();
      for (const span of trace.spans) {
        if (!matches(span)) continue;
        for (let s = span; s && !keep.has(s.id); s = s.parentId ? trace.byId.get(s.parentId) : null) keep.add(s.id);
      }
      state.visible = trace.spans.filter((span) => keep.has(span.id));
      const n = trace.spans.filter(matches).length;
      countLabel.textContent = `${fmt.int(n)} of ${fmt.int(trace.spans.length)} spans match`;
    } else {
      const visible = [];
      const walk = (span) => {
        visible.push(span);
        if (!state.collapsed.has(span.id)) span.children.forEach(walk);
      };
      trace.roots.forEach(walk);
      state.visible = visible;
      countLabel.textContent = `${fmt.int(trace.spans.length)} spans`;
    }
    state.visible.forEach((span, i) => {
      span.row = i;
    });
    spacer.style.setProperty('height', `${state.visible.length * ROW_HEIGHT}px`);
    drawRows();
  }

  function drawRows() {
    if (!scroller) return;
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(state.visible.length, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    const rows = [];
    for (let i = first; i < last; i++) rows.push(spanRow(state.visible[i], i));
    rowsLayer.replaceChildren(...rows);
    if (state.selected && state.selected.row !== undefined) scroller.setAttribute('aria-activedescendant', `span-row-${state.selected.id}`);
  }

  function spanRow(span, i) {
    const trace = state.trace;
    const total = Math.max(1, trace.end - trace.start);
    const left = ((span.start - trace.start) / total) * 100;
    const width = Math.max(0.15, (span.duration / total) * 100);
    const hasChildren = span.children.length > 0;
    const collapsed = state.collapsed.has(span.id) && !state.search;
    const selected = state.selected === span;
    const classes = ['wf-row', `type-${span.type}`];
    if (selected) classes.push('is-selected');
    if (span.status === 'error') classes.push('is-error');
    if (span.slow) classes.push('is-slow');
    if (state.search && !matches(span)) classes.push('is-context');
    const caret = hasChildren
      ? h('button', {
          type: 'button',
          class: 'caret',
          tabindex: '-1',
          'aria-label': collapsed ? `Expand ${span.name}` : `Collapse ${span.name}`,
          text: collapsed ? '▸' : '▾',
          onclick: (event) => {
            event.stopPropagation();
            toggle(span);
          },
        })
      : h('span', { class: 'caret' });
    const label = `${span.name}, ${span.type}, ${fmt.duration(span.duration)}${span.status === 'error' ? ', error' : ''}`;
    return h(
      'div',
      {
        class: classes.join(' '),
        id: `span-row-${span.id}`,
        role: 'treeitem',
        'aria-level': String(span.depth + 1),
        'aria-selected': String(selected),
        'aria-expanded': hasChildren ? String(!collapsed) : null,
        'aria-label': label,
        dataset: { spanId: span.id, name: span.name },
        style: { top: `${i * ROW_HEIGHT}px` },
        onclick: () => select(span),
      },
      h(
        'span',
        { class: 'wf-name-col', style: { 'padding-left': `${Math.min(span.depth, MAX_INDENT_DEPTH) * INDENT_PX + 4}px` } },
        caret,
        typeIcon(span.type),
        h('span', { class: 'wf-name', text: span.name }),
        span.status === 'error' ? h('span', { class: 'error-mark', title: span.statusMessage || 'error', text: '!' }) : null,
        span.model ? h('span', { class: 'wf-model', text: span.model }) : null,
      ),
      h(
        'span',
        { class: 'wf-time-col' },
        h('span', { class: 'wf-bar', style: { left: `${left}%`, width: `${width}%` } }),
        durationLabel(span, left, width),
      ),
    );
  }

  function toggle(span, open = null) {
    if (!span.children.length) return;
    const isOpen = !state.collapsed.has(span.id);
    const next = open === null ? !isOpen : open;
    if (next) state.collapsed.delete(span.id);
    else state.collapsed.add(span.id);
    refreshVisible();
  }

  function select(span, { scroll = false, updateUrl = true } = {}) {
    if (!span) return;
    // A selected span inside a collapsed subtree opens its ancestors.
    for (let p = span.parentId ? state.trace.byId.get(span.parentId) : null; p; p = p.parentId ? state.trace.byId.get(p.parentId) : null) {
      if (state.collapsed.delete(p.id)) refreshVisible();
    }
    state.selected = span;
    if (updateUrl) history.replaceState(null, '', `/traces/${state.traceId}/spans/${span.id}`);
    if (scroll && span.row !== undefined) {
      const top = span.row * ROW_HEIGHT;
      if (top < scroller.scrollTop || top + ROW_HEIGHT > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = Math.max(0, top - scroller.clientHeight / 3);
    }
    drawRows();
    renderDetail();
  }

  function move(delta) {
    const index = state.selected ? state.selected.row ?? -1 : -1;
    const next = state.visible[Math.max(0, Math.min(state.visible.length - 1, index + delta))];
    if (next) select(next, { scroll: true });
  }

  function onTreeKey(event) {
    const span = state.selected;
    const keys = { ArrowDown: () => move(1), ArrowUp: () => move(-1), Home: () => move(-Infinity), End: () => move(Infinity),
      ArrowRight: () => span && toggle(span, true), ArrowLeft: () => span && (span.children.length && !state.collapsed.has(span.id) ? toggle(span, false) : select(state.trace.byId.get(span.parentId), { scroll: true })) };
    if (keys[event.key]) {
      event.preventDefault();
      event.stopPropagation();
      keys[event.key]();
    }
  }

  function renderDetail() {
    const span = state.selected;
    const trace = state.trace;
    const view = span.view || {};
    const usage = span.usage || {};
    const tokenText = [
      usage.input !== undefined ? `${fmt.int(usage.input)} in` : null,
      usage.output !== undefined ? `${fmt.int(usage.output)} out` : null,
      usage.cache_read_input ? `${fmt.int(usage.cache_read_input)} cached` : null,
      usage.reasoning_output ? `${fmt.int(usage.reasoning_output)} reasoning` : null,
    ].filter(Boolean).join(' · ');
    const spanIdButton = h('button', { type: 'button', class: 'link-button mono', title: 'Copy span id', 'aria-label': `Copy span id ${span.id}`, text: span.id, onclick: () => copyText(span.id) });
    const summary = facts([
      ['Span', spanIdButton],
      ['Type', span.type],
      ['Kind', span.kind],
      ['Service', span.service],
      ['Start', `+${fmt.duration(span.start - trace.start) || '0'}`],
      ['Duration', fmt.duration(span.duration)],
      ['Self time', span.selfTime !== null ? fmt.duration(span.selfTime) : null],
      ['Model', span.model],
      ['Requested', view.request_model && view.request_model !== span.model ? view.request_model : null],
      ['Provider', view.provider],
      ['Operation', view.operation_name],
      ['Tool', view.tool_name],
      ['Tokens', tokenText],
      ['Cost', span.cost !== null && span.cost !== undefined ? fmt.cost(span.cost) : view.flags && view.flags.unknown_price ? 'unknown price' : null],
      ['First token', view.time_to_first_token_ns ? fmt.duration(view.time_to_first_token_ns) : null],
      ['Finish', (view.finish_reasons || []).join(', ')],
      ['Status', span.status !== 'unset' ? `${span.status}${span.statusMessage ? `: ${span.statusMessage}` : ''}` : null],
      ['Tags', (view.tags || []).join(', ')],
    ]);
    const tabs = [
      ['overview', 'Overview'],
      ['attributes', `Attributes (${span.attributes.length})`],
      ['events', `Events (${span.events.length})`],
      ['resource', 'Resource'],
      ['json', 'JSON'],
    ];
    const panelId = 'span-tab-panel';
    const tabList = h(
      'div',
      { class: 'tabs', role: 'tablist', 'aria-label': 'Span detail sections' },
      tabs.map(([key, label]) =>
        h('button', {
          type: 'button',
          role: 'tab',
          id: `tab-${key}`,
          'aria-selected': String(state.tab === key),
          'aria-controls': panelId,
          tabindex: state.tab === key ? '0' : '-1',
          text: label,
          onclick: () => {
            state.tab = key;
            renderDetail();
          },
        }),
      ),
    );
    const panel = h('div', { class: 'tab-panel', id: panelId, role: 'tabpanel', 'aria-labelledby': `tab-${state.tab}` }, tabContent(span));
    replace(
      detail,
      h('header', { class: 'detail-head' }, h('h2', {}, typeIcon(span.type), ' ', h('span', { text: span.name })), span.status !== 'unset' ? statusBadge(span.status) : null, span.slow ? h('span', { class: 'badge slow', text: 'slow' }) : null),
      summary,
      tabList,
      panel,
    );
  }

  function tabContent(span) {
    switch (state.tab) {
      case 'attributes':
        return kvTable(span.attributes, 'Attributes');
      case 'events':
        return span.events.length
          ? h(
              'ol',
              { class: 'events' },
              span.events.map((event) =>
                h('li', {}, h('div', { class: 'event-head' }, h('strong', { text: event.name }), h('span', { class: 'muted', text: `+${fmt.duration(fmt.ns(event.time_unix_nano ?? event.time_ns) - state.trace.start) || '0'}` })), kvTable(attributePairs(event.attributes), 'Event attributes')),
              ),
            )
          : notice('No events.');
      case 'resource':
        return h('div', {}, kvTable(span.resource, 'Resource attributes'), span.scope ? h('p', { class: 'muted', text: `Scope: ${span.scope.name || '(unnamed)'}${span.scope.version ? ` ${span.scope.version}` : ''}` }) : null);
      case 'json':
        return h('pre', { class: 'code json', tabindex: '0', 'aria-label': 'Span JSON', text: JSON.stringify(span.json, null, 2) });
      default: {
        const parts = renderView(span);
        return h(
          'div',
          { class: 'overview' },
          parts.length ? parts : notice('This span carries no messages, text or documents. See its attributes.'),
          state.caps.feedback ? feedbackPanel(span, state.traceId, state.caps) : null,
        );
      }
    }
  }

  return {
    update(next) {
      if (!state.trace || next.traceId !== state.traceId) return false;
      const span = next.spanId ? state.trace.byId.get(next.spanId) : state.trace.spans[0];
      if (span) select(span, { scroll: true, updateUrl: false });
      return true;
    },
    destroy() {
      state.destroyed = true;
    },
    onKey(event) {
      if (!state.trace) return false;
      if (event.key === 'j') move(1);
      else if (event.key === 'k') move(-1);
      else if (event.key === 'h' && state.selected) toggle(state.selected, false);
      else if (event.key === 'l' && state.selected) toggle(state.selected, true);
      else if (event.key === 'Escape') ctx.navigate('/traces');
      else return false;
      return true;
    },
  };
}

/** The duration next to its bar: inside a wide bar, else on whichever side has room. */
function durationLabel(span, left, width) {
  const text = fmt.duration(span.duration);
  if (width >= 18) return h('span', { class: 'wf-dur is-inside', style: { left: `calc(${left}% + 4px)` }, text });
  if (left + width > 78) return h('span', { class: 'wf-dur', style: { right: `calc(${100 - left}% + 4px)` }, text });
  return h('span', { class: 'wf-dur', style: { left: `calc(${left + width}% + 4px)` }, text });
}

function kvTable(pairs, label) {
  if (!pairs.length) return notice('None.');
  return h(
    'table',
    { class: 'kv', 'aria-label': label },
    h('tbody', {}, pairs.map(([key, value]) => h('tr', {}, h('th', { scope: 'row', text: key }), h('td', {}, typeof value === 'string' ? (value.length > 200 || value.includes('\n') ? h('pre', { class: 'code wrap', text: fmt.json(value) }) : value) : h('code', { text: JSON.stringify(value) }))))),
  );
}
