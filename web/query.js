// The filter box: the shared query syntax (docs/query.md) with completion of field names,
// operators and values. Values come from /api/v1/facets.

import { get } from './api.js';
import { h } from './dom.js';

/** Field names the syntax accepts (canonical names only), with a hint for the list. */
export const FIELDS = [
  ['type', 'span type: llm, tool, retrieval…'],
  ['name', 'span name'],
  ['service', 'resource service.name'],
  ['operation', 'application operation id'],
  ['model', 'model (response, else request)'],
  ['provider', 'model provider'],
  ['status', 'ok, error, unset'],
  ['duration', 'span duration, e.g. > 2s'],
  ['trace.duration', 'whole trace duration'],
  ['root_name', 'root span name'],
  ['input_tokens', 'input tokens'],
  ['output_tokens', 'output tokens'],
  ['tokens', 'total tokens'],
  ['cost', 'cost in USD'],
  ['session', 'session id'],
  ['user', 'user id'],
  ['tag', 'span tag'],
  ['env', 'deployment environment'],
  ['kind', 'OTel span kind'],
  ['trace_id', 'trace id'],
  ['span_id', 'span id'],
  ['text', 'full text in inputs and outputs'],
  ['attr.', 'span attribute: attr."key" = value'],
  ['resource.', 'resource attribute'],
];

const KEYWORDS = ['and', 'or', 'not', 'has'];

const STATIC_VALUES = {
  status: ['ok', 'error', 'unset'],
  kind: ['internal', 'server', 'client', 'producer', 'consumer', 'unspecified'],
  type: ['llm', 'embedding', 'retrieval', 'reranker', 'tool', 'agent', 'chain', 'evaluator', 'guardrail', 'http', 'db', 'other'],
  duration: ['100ms', '500ms', '1s', '2s', '5s', '10s'],
  'trace.duration': ['1s', '2s', '5s', '10s', '30s'],
};

/** Which facet list holds a field's values. */
const FACET_OF = {
  type: 'span_types', name: 'span_names', service: 'services', model: 'models',
  provider: 'providers', operation: 'operations', env: 'environments', tag: 'tags', root_name: 'span_names',
};

/** Aliases the syntax accepts, mapped to the canonical field for value lookup. */
const ALIASES = {
  span_type: 'type', 'span.type': 'type', span_name: 'name', 'span.name': 'name', 'service.name': 'service',
  service_name: 'service', operation_id: 'operation', op: 'operation', environment: 'env', tags: 'tag',
  'session.id': 'session', session_id: 'session', user_id: 'user', 'user.id': 'user', root: 'root_name',
};

const OPERATORS = [['=', 'equals'], ['!=', 'not equal'], ['~', 'glob match, e.g. "gpt-4o*"'], ['!~', 'no glob match'], ['>', 'greater'], ['>=', 'at least'], ['<', 'less'], ['<=', 'at most']];

/** Facet lists as `{name: [value, ...]}`, from `[[value, count]]` or `[{value, count}]`. */
export function facetValues(facets) {
  const res = {};
  for (const [key, list] of Object.entries(facets || {})) {
    if (!Array.isArray(list)) continue;
    res[key] = list.map((entry) => (Array.isArray(entry) ? entry[0] : entry && typeof entry === 'object' ? entry.value ?? entry.name : entry)).filter((v) => v !== null && v !== undefined).map(String);
  }
  return res;
}

let facetsPromise = null;
let facetsAt = 0;

/** Facets, cached for a minute. */
export function loadFacets() {
  if (!facetsPromise || Date.now() - facetsAt > 60000) {
    facetsAt = Date.now();
    facetsPromise = get('facets', { limit: 50 }).then(facetValues).catch(() => ({}));
  }
  return facetsPromise;
}

function quoteIfNeeded(value) {
  return /^[\w.\-*:/@]+$/.test(value) && !KEYWORDS.includes(value.toLowerCase()) ? value : `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * What to suggest for the text before the cursor: `{kind, from, items}` where `from` is where
 * the replaced token starts and items are `{label, insert, hint}`.
 */
export function suggest(before, facets) {
  const value = /(?:^|[\s(])([A-Za-z_][\w."-]*)\s*(==|!=|<=|>=|!~|=|<|>|~)\s*("?[^"\s()]*)$/.exec(before);
  if (value) {
    const field = ALIASES[value[1].toLowerCase()] || value[1].toLowerCase();
    const partial = value[3].replace(/^"/, '').toLowerCase();
    const facetList = FACET_OF[field] ? facets[FACET_OF[field]] || [] : [];
    const all = [...new Set([...(STATIC_VALUES[field] || []), ...facetList])];
    const starts = all.filter((v) => v.toLowerCase().startsWith(partial));
    const contains = all.filter((v) => !v.toLowerCase().startsWith(partial) && v.toLowerCase().includes(partial));
    const items = [...starts, ...contains]
      .slice(0, 12)
      .map((v) => ({ label: v, insert: `${quoteIfNeeded(v)} `, hint: '' }));
    return { kind: 'value', from: before.length - value[3].length, items };
  }
  const connectives = [['and', 'both must match'], ['or', 'either matches']].map(([k, hint]) => ({ label: k, insert: `${k} `, hint }));
  if (/(==|!=|<=|>=|!~|=|<|>|~)\s*("[^"]*"|[^\s"()]+)\s+$/.test(before) || /\)\s+$/.test(before)) {
    // A complete comparison (or group): what comes next is a connective or another term.
    return { kind: 'connective', from: before.length, items: connectives };
  }
  const afterField = /(?:^|[\s(])([A-Za-z_][\w."-]*)\s+$/.exec(before);
  if (afterField && !KEYWORDS.includes(afterField[1].toLowerCase())) {
    const prior = before.slice(0, before.length - afterField[0].length).trimEnd();
    if (/\bhas$/i.test(prior)) return { kind: 'connective', from: before.length, items: connectives };
    return { kind: 'operator', from: before.length, items: OPERATORS.map(([op, hint]) => ({ label: op, insert: `${op} `, hint })) };
  }
  const word = /(?:^|[\s(])([A-Za-z_][\w."-]*)?$/.exec(before);
  const partial = (word && word[1]) || '';
  const lower = partial.toLowerCase();
  const items = FIELDS.filter(([name]) => name.startsWith(lower) && name !== lower).map(([name, hint]) => ({
    label: name,
    insert: name.endsWith('.') ? name : `${name} `,
    hint,
  }));
  if (partial) {
    for (const keyword of KEYWORDS) if (keyword.startsWith(lower) && keyword !== lower) items.push({ label: keyword, insert: `${keyword} `, hint: 'keyword' });
  }
  return { kind: 'field', from: before.length - partial.length, items: items.slice(0, 14) };
}

let boxCounter = 0;

/**
 * A filter input with completion. `onSubmit(text)` runs on Enter (when no suggestion is
 * highlighted). Returns `{ el, input, setValue }`.
 */
export function queryBox({ value = '', placeholder = '', label = 'Filter', onSubmit }) {
  boxCounter += 1;
  const listId = `query-suggestions-${boxCounter}`;
  const input = h('input', {
    type: 'search',
    class: 'query-input',
    value,
    placeholder,
    'aria-label': label,
    role: 'combobox',
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
    autocomplete: 'off',
    spellcheck: 'false',
    'data-filter': '',
  });
  const list = h('ul', { class: 'suggestions', id: listId, role: 'listbox', 'aria-label': 'Suggestions', hidden: true });
  const el = h('div', { class: 'query-box' }, input, list);
  let current = { items: [], from: 0 };
  let active = -1;
  let facets = {};
  loadFacets().then((f) => {
    facets = f;
  });

  const close = () => {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  };

  const highlight = (index) => {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute('aria-selected', String(i === index)));
    if (index >= 0) {
      input.setAttribute('aria-activedescendant', `${listId}-${index}`);
      list.children[index].scrollIntoView({ block: 'nearest' });
    } else input.removeAttribute('aria-activedescendant');
  };

  const accept = (index) => {
    const item = current.items[index];
    if (!item) return;
    const cursor = input.selectionStart ?? input.value.length;
    const text = input.value;
    input.value = text.slice(0, current.from) + item.insert + text.slice(cursor);
    const at = current.from + item.insert.length;
    input.setSelectionRange(at, at);
    input.focus();
    refresh();
  };

  const refresh = () => {
    const cursor = input.selectionStart ?? input.value.length;
    current = suggest(input.value.slice(0, cursor), facets);
    if (!current.items.length || document.activeElement !== input) {
      close();
      return;
    }
    list.replaceChildren(
      ...current.items.map((item, i) =>
        h(
          'li',
          {
            id: `${listId}-${i}`,
            role: 'option',
            'aria-selected': 'false',
            onmousedown: (event) => {
              event.preventDefault();
              accept(i);
            },
          },
          h('span', { class: 'suggestion-label', text: item.label }),
          item.hint ? h('span', { class: 'suggestion-hint', text: item.hint }) : null,
        ),
      ),
    );
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    highlight(-1);
  };

  input.addEventListener('input', refresh);
  input.addEventListener('focus', refresh);
  input.addEventListener('click', refresh);
  input.addEventListener('blur', () => setTimeout(close, 100));
  input.addEventListener('keydown', (event) => {
    const open = !list.hidden && current.items.length > 0;
    if (event.key === 'ArrowDown' && open) {
      event.preventDefault();
      highlight((active + 1) % current.items.length);
    } else if (event.key === 'ArrowUp' && open) {
      event.preventDefault();
      highlight(active <= 0 ? current.items.length - 1 : active - 1);
    } else if (event.key === 'Tab' && open && !event.shiftKey) {
      event.preventDefault();
      accept(active >= 0 ? active : 0);
    } else if (event.key === 'Enter') {
      event.preventDefault();
      if (open && active >= 0) accept(active);
      else {
        close();
        onSubmit(input.value.trim());
      }
    } else if (event.key === 'Escape') {
      if (open) close();
      else input.blur();
      event.stopPropagation();
    }
  });

  return {
    el,
    input,
    setValue(text) {
      input.value = text;
    },
  };
}
