// The console's entry point: client-side routing over deep links, the theme, global keyboard
// shortcuts, and the navigation bar.

import { apiKey, setApiKey } from './api.js';
import { capabilities } from './caps.js';
import { h, notice, replace } from './dom.js';
import * as dashboard from './dashboard.js';
import * as datasets from './datasets.js';
import * as evals from './evals.js';
import * as sessions from './sessions.js';
import * as settings from './settings.js';
import * as trace from './trace.js';
import * as traces from './traces.js';

const main = document.getElementById('main');

/** Routes: path pattern -> page module and the params it gets. */
const ROUTES = [
  [/^\/(?:traces\/?)?$/, traces, () => ({})],
  [/^\/traces\/([0-9a-fA-F]+)(?:\/spans\/([0-9a-fA-F]+))?\/?$/, trace, (m) => ({ traceId: m[1].toLowerCase(), spanId: m[2] ? m[2].toLowerCase() : null })],
  [/^\/sessions\/?$/, sessions, () => ({})],
  [/^\/sessions\/(.+?)\/?$/, sessions, (m) => ({ sessionId: decodeURIComponent(m[1]) })],
  [/^\/dashboard\/?$/, dashboard, () => ({})],
  [/^\/datasets\/?$/, datasets, () => ({})],
  [/^\/datasets\/([^/]+?)(?:\/versions\/(\d+))?\/?$/, datasets, (m) => ({ name: decodeURIComponent(m[1]), version: m[2] ? Number(m[2]) : null })],
  [/^\/evals\/?$/, evals, () => ({ view: 'list' })],
  [/^\/evals\/runs\/([^/]+?)\/?$/, evals, (m) => ({ view: 'run', runId: decodeURIComponent(m[1]) })],
  [/^\/evals\/compare\/?$/, evals, () => ({ view: 'compare' })],
  [/^\/settings\/?$/, settings, () => ({})],
];

let current = null;

/** Goes to a console URL without reloading the page. */
export function navigate(url, { replace: replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  route();
}

/** Replaces the URL's query without re-rendering (for filters kept in the URL). */
export function setQuery(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== null && value !== undefined && value !== '') search.set(key, value);
  const qs = search.toString();
  history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
}

function route() {
  const path = location.pathname;
  const query = new URLSearchParams(location.search);
  for (const [pattern, page, paramsOf] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    const params = { ...paramsOf(match), query };
    if (current && current.page === page && current.instance && current.instance.update && current.instance.update(params)) {
      markNav();
      return;
    }
    teardown();
    main.replaceChildren();
    current = { page, instance: page.render(main, params, { navigate, setQuery }) || null };
    markNav();
    return;
  }
  teardown();
  markNav();
  replace(main, h('section', { class: 'page' }, h('h1', { text: 'Not found' }), notice('This page does not exist in this version of Loupe.'), h('p', {}, h('a', { href: '/traces', text: 'Go to traces' }))));
  document.title = 'Not found · Loupe';
}

function teardown() {
  if (current && current.instance && current.instance.destroy) current.instance.destroy();
  current = null;
}

function markNav() {
  const section = location.pathname.split('/')[1] || 'traces';
  for (const link of document.querySelectorAll('.nav a')) {
    if (link.dataset.section === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

// ---- Links -----------------------------------------------------------------------------------

document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest('a[href]');
  if (!link || link.target || link.hasAttribute('download')) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener('popstate', route);

// ---- Theme -----------------------------------------------------------------------------------

const themeButton = document.getElementById('theme-button');

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  const next = theme === 'dark' ? 'light' : 'dark';
  themeButton.setAttribute('aria-label', `Switch to ${next} theme`);
  themeButton.title = `Switch to ${next} theme`;
  window.dispatchEvent(new CustomEvent('loupe:theme'));
}

function storedTheme() {
  try {
    return localStorage.getItem('loupe.theme');
  } catch {
    return null;
  }
}

applyTheme(storedTheme() || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));
themeButton.addEventListener('click', () => {
  const theme = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
  try {
    localStorage.setItem('loupe.theme', theme);
  } catch {
    // Private windows may refuse storage; the theme still applies to this page.
  }
  applyTheme(theme);
});

// ---- Keyboard --------------------------------------------------------------------------------

const helpDialog = document.getElementById('help-dialog');
document.getElementById('help-button').addEventListener('click', () => helpDialog.showModal());

let pendingG = false;
document.addEventListener('keydown', (event) => {
  if (event.metaKey || event.ctrlKey || event.altKey || helpDialog.open) return;
  const target = event.target;
  const typing = target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
  if (typing) {
    if (event.key === 'Escape') target.blur();
    return;
  }
  if (pendingG) {
    pendingG = false;
    const to = { t: '/traces', d: '/dashboard', s: '/sessions', e: '/settings' }[event.key];
    if (to) {
      event.preventDefault();
      navigate(to);
      return;
    }
  }
  if (event.key === '/') {
    const filter = main.querySelector('[data-filter]');
    if (filter) {
      event.preventDefault();
      filter.focus();
      filter.select();
    }
  } else if (event.key === '?') {
    helpDialog.showModal();
  } else if (event.key === 'g') {
    pendingG = true;
  } else if (current && current.instance && current.instance.onKey && current.instance.onKey(event)) {
    event.preventDefault();
  }
});

// ---- API key ---------------------------------------------------------------------------------

// A server with API keys configured answers 401 until the browser presents one; ask for it
// once, keep it in this browser, and reload.
const keyDialog = document.getElementById('key-dialog');
const keyInput = document.getElementById('key-input');
window.addEventListener('loupe:unauthorized', () => {
  if (!keyDialog.open) {
    keyInput.value = apiKey() || '';
    keyDialog.showModal();
  }
});
document.getElementById('key-form').addEventListener('submit', () => {
  setApiKey(keyInput.value.trim());
  location.reload();
});

// ---- Optional features -----------------------------------------------------------------------

capabilities().then((caps) => {
  for (const link of document.querySelectorAll('[data-capability]')) link.hidden = !caps[link.dataset.capability];
});

if (location.pathname === '/') history.replaceState(null, '', `/traces${location.search}`);
route();
