// The Datasets pages: every dataset with its latest version and item count; one dataset's
// versions (with their notes and the query that built them), a version's items with their
// splits and links back to the recorded call they came from, an export link per format, and
// importing a JSONL or CSV file as a new version. All of it from `/api/v1/datasets`.

import { ApiError, apiKey, apiUrl, get } from './api.js';
import { h, notice, replace } from './dom.js';
import * as fmt from './fmt.js';

/** The export formats `GET /api/v1/datasets/{name}/export` offers, with what each is for. */
export const EXPORT_FORMATS = [
  ['openai', 'OpenAI JSONL', 'fine-tuning chat format'],
  ['preference', 'Preference JSONL', 'chosen / rejected pairs from corrections'],
  ['anthropic', 'Anthropic JSONL', 'Messages API format'],
  ['hf', 'Hugging Face JSONL', 'messages with splits'],
  ['csv', 'CSV', 'one row per item'],
  ['eval', 'Eval suite YAML', 'cases with assertions'],
];

const ITEMS_PAGE = 50;

function datasetPath(name) {
  return `datasets/${encodeURIComponent(name)}`;
}

function consoleUrl(name, version) {
  return `/datasets/${encodeURIComponent(name)}${version ? `/versions/${version}` : ''}`;
}

/** Text of a message list, for a table cell. */
function messagesText(messages) {
  return (messages || [])
    .map((m) => (m.parts || []).map((p) => (typeof p.content === 'string' ? p.content : p.name ? `${p.name}(…)` : '')).join(' '))
    .join(' · ')
    .trim();
}

function inputText(input) {
  const messages = (input && input.messages) || [];
  const last = [...messages].reverse().find((m) => m.role === 'user') || messages[messages.length - 1];
  return last ? messagesText([last]) : '';
}

function clip(text, n = 160) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

/**
 * A link that downloads an export. With an API key stored in this browser the download goes
 * through `fetch` (a plain link cannot send the key header); otherwise it is an ordinary link.
 */
function downloadLink(name, version, [format, label, hint]) {
  const href = apiUrl(`${datasetPath(name)}/export`, { format, version });
  const link = h('a', { href, download: '', class: 'button-link', dataset: { format }, title: hint, 'aria-label': `Download version ${version} as ${label}`, text: label });
  link.addEventListener('click', (event) => {
    const key = apiKey();
    if (!key) return;
    event.preventDefault();
    fetch(href, { headers: { 'x-loupe-api-key': key } })
      .then(async (response) => {
        if (!response.ok) throw new Error(`export failed: ${response.status}`);
        const disposition = response.headers.get('content-disposition') || '';
        const match = /filename="([^"]+)"/.exec(disposition);
        const url = URL.createObjectURL(await response.blob());
        const a = h('a', { href: url, download: match ? match[1] : `${name}-v${version}` });
        document.body.appendChild(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 1000);
      })
      .catch((err) => alert(err.message));
  });
  return link;
}

// ---- The list --------------------------------------------------------------------------------

function renderList(section, state) {
  get('datasets')
    .then(async (data) => {
      const datasets = data.datasets || [];
      if (state.destroyed) return;
      if (!datasets.length) {
        replace(section.body, notice('No datasets yet. Add a span from a trace ("Add to dataset"), or create one with `loupe dataset create NAME --from FILTER`.'));
        return;
      }
      // The list has no item counts; each dataset's own answer has its versions.
      const details = await Promise.all(datasets.map((d) => get(datasetPath(d.name)).catch(() => d)));
      if (state.destroyed) return;
      replace(
        section.body,
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'data', 'aria-label': 'Datasets' },
            h('thead', {}, h('tr', {}, [['Name'], ['Description'], ['Latest version', 'num'], ['Items', 'num'], ['Created']].map(([t, c]) => h('th', { scope: 'col', class: c || null, text: t })))),
            h(
              'tbody',
              {},
              details.map((d) => {
                const latest = (d.versions || []).find((v) => v.version === d.latest_version);
                return h(
                  'tr',
                  { dataset: { dataset: d.name } },
                  h('td', { class: 'name-cell' }, h('a', { href: consoleUrl(d.name), text: d.name })),
                  h('td', { text: d.description || '' }),
                  h('td', { class: 'num', text: d.latest_version ? `v${d.latest_version}` : '—' }),
                  h('td', { class: 'num', text: latest ? fmt.int(latest.n_items) : '' }),
                  h('td', { class: 'nowrap', text: fmt.time(d.created_ns) }),
                );
              }),
            ),
          ),
        ),
      );
    })
    .catch((err) => {
      if (!state.destroyed) replace(section.body, notice(err.message, 'error'));
    });
}

// ---- One dataset -----------------------------------------------------------------------------

function importForm(name, onImported) {
  const file = h('input', { type: 'file', accept: '.jsonl,.json,.csv,application/json,text/csv', 'aria-label': 'File to import' });
  const note = h('input', { type: 'text', 'aria-label': 'Import note', placeholder: 'note (optional)' });
  const submit = h('button', { type: 'submit', text: 'Import as new version' });
  const status = h('span', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'settings-form', 'aria-label': 'Import' }, file, note, submit, status);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = file.files && file.files[0];
    if (!chosen) {
      status.textContent = 'Choose a JSONL or CSV file first.';
      return;
    }
    const format = /\.csv$/i.test(chosen.name) ? 'csv' : 'jsonl';
    const headers = { Accept: 'application/json', 'Content-Type': format === 'csv' ? 'text/csv' : 'application/x-ndjson' };
    const key = apiKey();
    if (key) headers['x-loupe-api-key'] = key;
    submit.disabled = true;
    status.textContent = 'Importing…';
    fetch(apiUrl(`${datasetPath(name)}/import`, { format, note: note.value.trim() }), { method: 'POST', headers, body: chosen })
      .then(async (response) => {
        const data = await response.json().catch(() => null);
        if (!response.ok) throw new ApiError(response.status, 'import', (data && data.error && data.error.message) || `import failed: ${response.status}`);
        status.textContent = `Imported ${data.n_imported} records as version ${data.version.version}${data.n_rejected ? `; ${data.n_rejected} rejected (first: record ${data.rejected[0].record}: ${data.rejected[0].reason})` : ''}.`;
        onImported(data.version.version);
      })
      .catch((err) => (status.textContent = err.message))
      .finally(() => (submit.disabled = false));
  });
  return form;
}

function itemRow(item) {
  const source = item.source;
  const link = source
    ? h('a', { href: `/traces/${source.trace_id}/spans/${source.span_id}`, class: 'source-link', 'aria-label': `Source call of item ${item.id}`, text: source.span_id })
    : h('span', { class: 'muted', text: item.expected_source === 'imported' ? 'imported' : '—' });
  return h(
    'tr',
    { dataset: { itemId: item.id } },
    h('td', { class: 'mono nowrap', text: item.id.slice(0, 12) }),
    h('td', { class: 'item-text', text: clip(inputText(item.input)) }),
    h('td', { class: 'item-text', text: clip(messagesText(item.expected)) }),
    h('td', {}, h('span', { class: `badge split-${item.split}`, text: item.split })),
    h('td', { class: 'nowrap', text: item.expected_source }),
    h('td', { class: 'nowrap' }, link, item.merged_from && item.merged_from.length ? h('span', { class: 'muted', text: ` +${item.merged_from.length} merged` }) : null),
  );
}

function renderDataset(section, state, name, versionParam, ctx) {
  get(datasetPath(name))
    .then((dataset) => {
      if (state.destroyed) return;
      const versions = (dataset.versions || []).slice().sort((a, b) => b.version - a.version);
      section.title.textContent = dataset.name;
      document.title = `${dataset.name} · Datasets · Loupe`;
      if (!versions.length) {
        replace(section.body, notice('This dataset has no versions yet.'));
        return;
      }
      const version = versions.find((v) => v.version === versionParam) || versions[0];
      const versionTable = h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'data', 'aria-label': 'Versions' },
          h('thead', {}, h('tr', {}, [['Version'], ['Items', 'num'], ['Created'], ['Built from'], ['Note']].map(([t, c]) => h('th', { scope: 'col', class: c || null, text: t })))),
          h(
            'tbody',
            {},
            versions.map((v, i) => {
              const previous = versions[i + 1];
              const delta = previous ? Number(v.n_items) - Number(previous.n_items) : null;
              return h(
                'tr',
                { dataset: { version: v.version }, class: v.version === version.version ? 'is-selected' : null },
                h('td', {}, h('a', { href: consoleUrl(name, v.version), 'aria-current': v.version === version.version ? 'true' : null, text: `v${v.version}` })),
                h('td', { class: 'num', text: `${fmt.int(v.n_items)}${delta ? ` (${delta > 0 ? '+' : ''}${delta})` : ''}` }),
                h('td', { class: 'nowrap', text: fmt.time(v.created_ns) }),
                h('td', { class: 'mono', text: v.query || '' }),
                h('td', { text: v.note || '' }),
              );
            }),
          ),
        ),
      );
      const exports = h('div', { class: 'export-links', role: 'group', 'aria-label': `Export version ${version.version}` }, EXPORT_FORMATS.map((f) => downloadLink(name, version.version, f)));
      const splits = h('p', { class: 'muted split-counts', role: 'status' });
      const itemsBody = h('tbody', {});
      const more = h('button', { type: 'button', text: 'More items', hidden: true });
      const counts = { train: 0, validation: 0, test: 0 };
      let cursor = null;
      let shown = 0;
      const loadItems = () => {
        more.disabled = true;
        get(`${datasetPath(name)}/versions/${version.version}/items`, { limit: ITEMS_PAGE, cursor })
          .then((page) => {
            if (state.destroyed) return;
            for (const item of page.items || []) {
              itemsBody.appendChild(itemRow(item));
              counts[item.split] = (counts[item.split] || 0) + 1;
              shown += 1;
            }
            cursor = page.next_cursor;
            more.hidden = !cursor;
            more.disabled = false;
            splits.textContent = `Showing ${fmt.int(shown)} of ${fmt.int(version.n_items)} items · train ${counts.train}, validation ${counts.validation}, test ${counts.test}${cursor ? ' so far' : ''}`;
          })
          .catch((err) => splits.replaceWith(notice(err.message, 'error')));
      };
      more.addEventListener('click', loadItems);
      replace(
        section.body,
        dataset.description ? h('p', { text: dataset.description }) : null,
        h('h2', { text: 'Versions' }),
        versionTable,
        h('h2', { class: 'section-gap', text: `Version ${version.version}` }),
        h('div', { class: 'toolbar' }, h('span', { class: 'muted', text: 'Export:' }), exports),
        splits,
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'data items', 'aria-label': `Items of version ${version.version}` },
            h('thead', {}, h('tr', {}, ['Item', 'Input (last user message)', 'Expected', 'Split', 'Expected from', 'Source'].map((t) => h('th', { scope: 'col', text: t })))),
            itemsBody,
          ),
        ),
        h('div', { class: 'pager' }, more),
        h('h2', { class: 'section-gap', text: 'Import' }),
        h('p', { class: 'muted', text: 'A JSONL file (any export shape) or CSV becomes a new version on top of the latest; records that cannot be read are listed and skipped.' }),
        importForm(name, (v) => ctx.navigate(consoleUrl(name, v))),
      );
      loadItems();
    })
    .catch((err) => {
      if (state.destroyed) return;
      replace(section.body, notice(err.status === 404 ? `No dataset named ${name} in this project.` : err.message, 'error'));
    });
}

export function render(main, params, ctx) {
  const state = { destroyed: false };
  const title = h('h1', { text: 'Datasets' });
  const body = h('div', {}, notice('Loading…'));
  const crumbs = params.name ? h('a', { href: '/datasets', class: 'back', text: '← Datasets' }) : null;
  replace(main, h('section', { class: 'page datasets' }, crumbs, h('div', { class: 'page-head' }, title), body));
  document.title = 'Datasets · Loupe';
  if (params.name) renderDataset({ title, body }, state, params.name, params.version, ctx);
  else renderList({ title, body }, state);
  return { destroy: () => { state.destroyed = true; } };
}
