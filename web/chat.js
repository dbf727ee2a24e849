// Renders the normalized LLM view of a span: messages as a chat (system, user, assistant, tool
// calls and results), the output, request parameters and retrieved documents.

import { h } from './dom.js';
import * as fmt from './fmt.js';

const ROLE_LABELS = { system: 'System', user: 'User', assistant: 'Assistant', tool: 'Tool', developer: 'Developer' };

/** One message part. */
export function renderPart(part) {
  switch (part.type) {
    case 'text':
      return h('div', { class: 'part-text', text: part.content ?? '' });
    case 'reasoning':
      return h('details', { class: 'part-reasoning' }, h('summary', { text: 'Reasoning' }), h('div', { class: 'part-text', text: part.content ?? '' }));
    case 'tool_call':
      return h(
        'div',
        { class: 'part-tool-call' },
        h('div', { class: 'part-label' }, h('span', { class: 'chip', text: 'tool call' }), h('code', { text: part.name || '' }), part.id ? h('span', { class: 'muted', text: part.id }) : null),
        part.arguments !== undefined && part.arguments !== null ? h('pre', { class: 'code', text: fmt.json(part.arguments) }) : null,
      );
    case 'tool_call_response':
      return h(
        'div',
        { class: 'part-tool-result' },
        h('div', { class: 'part-label' }, h('span', { class: 'chip', text: 'tool result' }), part.id ? h('span', { class: 'muted', text: part.id }) : null),
        h('pre', { class: 'code', text: fmt.json(part.response) }),
      );
    case 'media':
      return h('div', { class: 'part-media' }, h('span', { class: 'chip', text: part.modality || 'media' }), ' ', part.mime_type || '', ' ', part.uri || part.file_id || (part.content ? `${part.content.length} bytes inline` : ''));
    default:
      return h('pre', { class: 'code', text: fmt.json(part.value ?? part) });
  }
}

/** A chat message bubble. */
export function renderMessage(message) {
  const role = String(message.role || 'unknown').toLowerCase();
  const parts = Array.isArray(message.parts) ? message.parts : message.content !== undefined ? [{ type: 'text', content: typeof message.content === 'string' ? message.content : fmt.json(message.content) }] : [];
  return h(
    'article',
    { class: `message role-${/^[a-z_-]+$/.test(role) ? role : 'other'}`, 'aria-label': `${ROLE_LABELS[role] || role} message` },
    h('header', {}, h('span', { class: 'role', text: ROLE_LABELS[role] || role }), message.name ? h('span', { class: 'muted', text: message.name }) : null, message.finish_reason ? h('span', { class: 'chip', title: 'finish reason', text: message.finish_reason }) : null),
    parts.map(renderPart),
  );
}

export function renderMessages(messages, label) {
  if (!messages || !messages.length) return null;
  return h('section', { class: 'chat', 'aria-label': label }, h('h3', { text: label }), messages.map(renderMessage));
}

/** Request parameters as a definition list. */
export function renderParams(request) {
  if (!request || !Object.keys(request).length) return null;
  const rows = [];
  for (const [key, value] of Object.entries(request)) {
    if (key === 'tools' || key === 'other') continue;
    rows.push([key, Array.isArray(value) ? value.join(', ') : String(value)]);
  }
  for (const [key, value] of Object.entries(request.other || {})) rows.push([key, typeof value === 'string' ? value : JSON.stringify(value)]);
  return h(
    'section',
    { class: 'params' },
    h('h3', { text: 'Parameters' }),
    rows.length ? h('dl', { class: 'facts compact' }, rows.map(([k, v]) => h('div', {}, h('dt', { text: k }), h('dd', { text: v })))) : null,
    request.tools && request.tools.length
      ? h('details', {}, h('summary', { text: `${request.tools.length} tool definition${request.tools.length > 1 ? 's' : ''}` }), h('pre', { class: 'code', text: fmt.json(request.tools) }))
      : null,
  );
}

/** Retrieved documents with their scores. */
export function renderDocuments(documents) {
  if (!documents || !documents.length) return null;
  const maxScore = Math.max(...documents.map((d) => (typeof d.score === 'number' ? Math.abs(d.score) : 0)), 1e-9);
  return h(
    'section',
    { class: 'documents' },
    h('h3', { text: `Documents (${documents.length})` }),
    h(
      'ol',
      { class: 'doc-list' },
      documents.map((doc) =>
        h(
          'li',
          {},
          h(
            'div',
            { class: 'doc-head' },
            h('code', { text: doc.id || '(no id)' }),
            typeof doc.score === 'number'
              ? h('span', { class: 'score' }, h('span', { class: 'score-bar', style: { '--w': `${(Math.abs(doc.score) / maxScore) * 100}%` } }), h('span', { text: doc.score.toFixed(3) }))
              : null,
          ),
          doc.content ? h('div', { class: 'part-text doc-content', text: doc.content }) : null,
          doc.metadata ? h('details', {}, h('summary', { text: 'Metadata' }), h('pre', { class: 'code', text: fmt.json(doc.metadata) })) : null,
        ),
      ),
    ),
  );
}

/** Free-form input/output text (tool arguments, `input.value`). */
export function renderText(label, text) {
  if (text === null || text === undefined || text === '') return null;
  return h('section', { class: 'io' }, h('h3', { text: label }), h('pre', { class: 'code wrap', text: fmt.json(text) }));
}

/** Everything the normalized view says about a span, most useful first. */
export function renderView(span) {
  const view = span.view || {};
  const system = view.system_instructions && view.system_instructions.length ? [{ role: 'system', parts: view.system_instructions }] : [];
  const input = [...system, ...(view.input_messages || [])];
  return [
    renderMessages(input, 'Input'),
    renderMessages(view.output_messages, 'Output'),
    renderText('Input', view.input_text),
    renderText('Output', view.output_text),
    renderDocuments(view.documents),
    renderParams(view.request),
  ].filter(Boolean);
}
