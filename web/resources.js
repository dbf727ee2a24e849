// Datasets and eval runs, listed as the server returns them. The navigation shows these pages
// only when the server answers their endpoints (see caps.js); until their dedicated views
// exist, this page lists the records with their plain fields.

import { get } from './api.js';
import { capabilities } from './caps.js';
import { h, notice, replace } from './dom.js';

const PAGES = {
  datasets: { title: 'Datasets', path: 'datasets', capability: 'datasets' },
  evals: { title: 'Evals', path: 'evals/runs', capability: 'evals' },
};

/** The first list in a response: the response itself, or its first array-valued field. */
function listOf(data) {
  if (Array.isArray(data)) return data;
  if (data && typeof data === 'object') for (const value of Object.values(data)) if (Array.isArray(value)) return value;
  return [];
}

function cell(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value).slice(0, 120);
  return String(value);
}

export function render(main, params) {
  const page = PAGES[params.section];
  const section = h('section', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', { text: page.title })), notice('Loading…'));
  replace(main, section);
  document.title = `${page.title} · Loupe`;
  let destroyed = false;
  capabilities()
    .then(async (caps) => {
      if (!caps[page.capability]) {
        section.lastChild.replaceWith(notice(`This server does not offer ${page.title.toLowerCase()} yet.`));
        return;
      }
      const items = listOf(await get(page.path));
      if (destroyed) return;
      if (!items.length) {
        section.lastChild.replaceWith(notice(`No ${page.title.toLowerCase()} yet.`));
        return;
      }
      const columns = [...new Set(items.slice(0, 20).flatMap((item) => Object.keys(item).filter((key) => typeof item[key] !== 'object' || item[key] === null)))].slice(0, 7);
      section.lastChild.replaceWith(
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'data', 'aria-label': page.title },
            h('thead', {}, h('tr', {}, columns.map((key) => h('th', { scope: 'col', text: key })))),
            h('tbody', {}, items.map((item) => h('tr', {}, columns.map((key) => h('td', { text: cell(item[key]) }))))),
          ),
        ),
      );
    })
    .catch((err) => {
      if (!destroyed) section.lastChild.replaceWith(notice(err.message, 'error'));
    });
  return { destroy: () => { destroyed = true; } };
}
