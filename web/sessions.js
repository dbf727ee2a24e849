// Sessions: recent conversations (traces sharing a session id), and one conversation's turns
// in order, each expandable to what was said and a link to its trace.

import { adaptTrace, get } from './api.js';
import { renderMessage } from './chat.js';
import { facts, h, notice, replace } from './dom.js';
import * as fmt from './fmt.js';
import { itemsOf, statusBadge } from './traces.js';

export function render(main, params, ctx) {
  if (params.sessionId) return renderSession(main, params.sessionId, ctx);
  return renderList(main);
}

/** Recent sessions, grouped from the newest traces that carry a session id. */
function renderList(main) {
  const section = h('section', { class: 'page sessions-page' }, h('div', { class: 'page-head' }, h('h1', { text: 'Sessions' })), notice('Loading sessions…'));
  replace(main, section);
  document.title = 'Sessions · Loupe';
  let destroyed = false;
  get('traces', { q: 'has session', limit: 200 })
    .then((data) => {
      if (destroyed) return;
      const sessions = new Map();
      for (const row of itemsOf(data)) {
        if (!row.session_id) continue;
        const s = sessions.get(row.session_id) || { id: row.session_id, user: row.user_id, n: 0, first: Infinity, last: 0, tokens: 0, errors: 0 };
        s.n += 1;
        s.first = Math.min(s.first, Number(row.start_ns));
        s.last = Math.max(s.last, Number(row.end_ns));
        s.tokens += Number(row.input_tokens || 0) + Number(row.output_tokens || 0);
        s.errors += Number(row.n_errors || 0);
        sessions.set(row.session_id, s);
      }
      const list = [...sessions.values()].sort((a, b) => b.last - a.last);
      section.lastChild.remove();
      if (!list.length) {
        section.append(notice('No sessions yet. Spans with a session id (session.id, gen_ai.conversation.id, langfuse.session.id) are grouped here.'));
        return;
      }
      section.append(
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'data', 'aria-label': 'Sessions' },
            h('thead', {}, h('tr', {}, ['Last activity', 'Session', 'User', 'Turns', 'Duration', 'Tokens', 'Status'].map((t) => h('th', { scope: 'col', text: t })))),
            h(
              'tbody',
              {},
              list.map((s) =>
                h(
                  'tr',
                  {},
                  h('td', { class: 'nowrap', title: fmt.time(s.last) }, fmt.shortTime(s.last)),
                  h('td', { class: 'name-cell' }, h('a', { href: `/sessions/${encodeURIComponent(s.id)}`, text: s.id })),
                  h('td', { text: s.user || '' }),
                  h('td', { class: 'num', text: fmt.int(s.n) }),
                  h('td', { class: 'num', text: fmt.duration(s.last - s.first) }),
                  h('td', { class: 'num', text: s.tokens ? fmt.tokens(s.tokens, true) : '' }),
                  h('td', {}, statusBadge(s.errors ? 'error' : 'ok')),
                ),
              ),
            ),
          ),
        ),
        h('p', { class: 'muted', text: 'Sessions seen in the 200 most recent traces that carry a session id.' }),
      );
    })
    .catch((err) => {
      if (!destroyed) replace(section, h('h1', { text: 'Sessions' }), notice(err.message, 'error'));
    });
  return { destroy: () => { destroyed = true; } };
}

function renderSession(main, sessionId, ctx) {
  const section = h('section', { class: 'page session-page' }, notice('Loading session…'));
  replace(main, section);
  document.title = `Session ${sessionId} · Loupe`;
  let destroyed = false;
  get(`sessions/${encodeURIComponent(sessionId)}`)
    .then((session) => {
      if (destroyed) return;
      const traces = session.traces || [];
      replace(
        section,
        h('div', { class: 'trace-title' }, h('a', { class: 'back', href: '/sessions', text: '← Sessions' }), h('h1', {}, 'Session ', h('code', { text: session.session_id || sessionId }))),
        facts([
          ['User', session.user_id],
          ['Turns', fmt.int(session.n_traces ?? traces.length)],
          ['Started', fmt.time(session.start_ns)],
          ['Duration', fmt.duration(Number(session.end_ns) - Number(session.start_ns))],
          ['Tokens', `${fmt.int(session.rollup_input_tokens)} in · ${fmt.int(session.rollup_output_tokens)} out`],
          ['Cost', fmt.cost(session.cost)],
        ], 'facts inline'),
        traces.length ? h('ol', { class: 'turns', 'aria-label': 'Turns' }, traces.map((row, i) => turn(row, i, i === traces.length - 1))) : notice('This session has no traces.'),
      );
    })
    .catch((err) => {
      if (!destroyed) replace(section, h('a', { class: 'back', href: '/sessions', text: '← Sessions' }), notice(err.status === 404 ? `No session ${sessionId}.` : err.message, 'error'));
    });

  function turn(row, index, open) {
    const body = h('div', { class: 'turn-body' }, notice('Loading…'));
    let loaded = false;
    const details = h(
      'details',
      {
        ontoggle: () => {
          if (details.open && !loaded) {
            loaded = true;
            loadTurn(row.trace_id, body);
          }
        },
      },
      h(
        'summary',
        {},
        h('span', { class: 'turn-index', text: `#${index + 1}` }),
        h('strong', { text: row.root_name || fmt.shortId(row.trace_id) }),
        h('span', { class: 'muted', text: fmt.time(row.start_ns) }),
        h('span', { class: 'muted', text: fmt.duration(row.duration_ns) }),
        row.n_llm_spans ? h('span', { class: 'muted', text: `${row.n_llm_spans} LLM calls` }) : null,
        statusBadge(row.status || (row.n_errors ? 'error' : 'ok')),
      ),
      body,
    );
    if (open) details.open = true;
    return h('li', { class: 'turn' }, details);
  }

  async function loadTurn(traceId, body) {
    try {
      const trace = adaptTrace(await get(`traces/${traceId}`));
      const root = trace.roots[0];
      const llm = trace.spans.filter((span) => span.type === 'llm');
      // What the user said and what they got back: the root's free-form input and output
      // when instrumented, else the last LLM call's last user message and its answer.
      const items = [];
      const lastLlm = llm[llm.length - 1];
      const userMessages = lastLlm ? (lastLlm.view.input_messages || []).filter((m) => m.role === 'user') : [];
      if (root && root.view.input_text) items.push(renderMessage({ role: 'user', parts: [{ type: 'text', content: root.view.input_text }] }));
      else if (userMessages.length) items.push(renderMessage(userMessages[userMessages.length - 1]));
      if (root && root.view.output_text) items.push(renderMessage({ role: 'assistant', parts: [{ type: 'text', content: root.view.output_text }] }));
      else if (lastLlm) (lastLlm.view.output_messages || []).forEach((m) => items.push(renderMessage(m)));
      replace(
        body,
        items.length ? items : notice('No conversation content recorded for this turn.'),
        h('p', {}, h('a', { href: `/traces/${traceId}`, text: `Open trace (${trace.totals.spans} spans) →` })),
      );
    } catch (err) {
      replace(body, notice(err.message, 'error'));
    }
  }

  return { destroy: () => { destroyed = true; } };
}
