// Small DOM helpers. Everything the console shows from a trace goes through text nodes
// (never innerHTML), so recorded prompts and outputs cannot inject markup.

/**
 * Creates an element. `attrs` keys: `class`, `text`, `on<event>` (listener), `dataset` (object),
 * `style` (object of CSS properties, set through the CSSOM so the CSP allows it), boolean and
 * string attributes. Children are nodes, strings, or nested arrays; null/false are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style') for (const [prop, v] of Object.entries(value)) el.style.setProperty(prop, v);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces all children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A definition list from [label, value] pairs, skipping empty values. */
export function facts(pairs, cls = 'facts') {
  const items = [];
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === '') continue;
    items.push(h('div', {}, h('dt', { text: label }), h('dd', {}, value)));
  }
  return items.length ? h('dl', { class: cls }, items) : null;
}

/** A status message for a loading or failed view. */
export function notice(text, kind = 'empty') {
  return h('p', { class: kind, role: kind === 'error' ? 'alert' : 'status', text });
}

/** Copies text to the clipboard, quietly ignoring browsers that refuse. */
export function copyText(text) {
  if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
}

/** Runs `fn` at most once per animation frame. */
export function throttleFrame(fn) {
  let queued = false;
  return (...args) => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn(...args);
    });
  };
}

/** Debounces `fn` by `ms`. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
