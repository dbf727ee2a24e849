// Feedback in place, on the selected span: rate it, set scores from the annotation schema, tag
// and comment, write a correction next to the recorded output (shown as a diff), and add the
// span to a dataset or download it as an eval case. Shown only when the server offers the
// feedback API (see caps.js).

import { get, send } from './api.js';
import { h, notice, replace } from './dom.js';
import * as fmt from './fmt.js';

/** The text of the recorded output: output messages, else free-form output text. */
export function recordedOutput(view) {
  const messages = (view && view.output_messages) || [];
  const text = messages
    .map((m) => (m.parts || []).filter((p) => p.type === 'text').map((p) => p.content).join('\n'))
    .filter(Boolean)
    .join('\n\n');
  return text || (view && view.output_text) || '';
}

/** The text of a correction (a list of messages). */
function correctionText(correction) {
  if (!correction) return '';
  if (typeof correction === 'string') return correction;
  return recordedOutput({ output_messages: correction });
}

/**
 * A word-level diff of `before` -> `after` as `[op, text]` runs (`=`, `-`, `+`), by longest
 * common subsequence. Long texts fall back to a whole replacement to stay fast.
 */
export function diffWords(before, after) {
  const a = before.split(/(\s+)/).filter((t) => t !== '');
  const b = after.split(/(\s+)/).filter((t) => t !== '');
  if (a.length * b.length > 4e6) return [['-', before], ['+', after]];
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const res = [];
  const push = (op, text) => {
    if (res.length && res[res.length - 1][0] === op) res[res.length - 1][1] += text;
    else res.push([op, text]);
  };
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      push('=', a[i]);
      i += 1;
      j += 1;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) push('-', a[i++]);
    else push('+', b[j++]);
  }
  while (i < a.length) push('-', a[i++]);
  while (j < b.length) push('+', b[j++]);
  return res;
}

function renderDiff(before, after) {
  return h(
    'div',
    { class: 'diff', 'aria-label': 'Correction compared with the recorded output' },
    diffWords(before, after).map(([op, text]) => (op === '=' ? text : h(op === '+' ? 'ins' : 'del', { text }))),
  );
}

function ratingLabel(rating) {
  if (rating === 'up') return '✓ good';
  if (rating === 'down') return '✗ bad';
  if (typeof rating === 'number') return `${'★'.repeat(rating)}${'☆'.repeat(5 - rating)}`;
  return '';
}

function entryView(entry) {
  const scores = Object.entries(entry.scores || {}).map(([k, v]) => `${k}: ${v}`).join(', ');
  return h(
    'li',
    { class: 'feedback-entry', dataset: { feedbackId: entry.id } },
    h(
      'div',
      { class: 'feedback-meta' },
      entry.rating !== undefined ? h('strong', { text: ratingLabel(entry.rating) }) : null,
      h('span', { class: 'muted', text: `${entry.source || ''}${entry.author ? ` · ${entry.author}` : ''} · ${fmt.ago(entry.updated_ns)}` }),
      entry.history && entry.history.length ? h('span', { class: 'chip', text: `edited ${entry.history.length}×` }) : null,
      entry.status && entry.status !== 'attached' ? h('span', { class: 'chip', text: entry.status }) : null,
    ),
    scores ? h('div', { text: scores }) : null,
    (entry.tags || []).length ? h('div', {}, entry.tags.map((t) => h('span', { class: 'chip tag', text: t }))) : null,
    entry.comment ? h('div', { class: 'part-text', text: entry.comment }) : null,
    entry.correction ? h('details', {}, h('summary', { text: 'Correction' }), h('div', { class: 'part-text correction-text', text: correctionText(entry.correction) })) : null,
  );
}

function scoreInput(config, value) {
  const id = `score-${config.name}`;
  let input;
  if (config.type === 'numeric') {
    input = h('input', { type: 'number', id, min: config.min, max: config.max, step: 'any', value: value ?? '' });
  } else if (config.type === 'categorical') {
    input = h('select', { id }, h('option', { value: '', text: '—' }), (config.values || []).map((v) => h('option', { value: v, text: v, selected: v === value })));
  } else {
    input = h('select', { id }, h('option', { value: '', text: '—' }), h('option', { value: 'true', text: 'yes', selected: value === true }), h('option', { value: 'false', text: 'no', selected: value === false }));
  }
  input.dataset.score = config.name;
  input.dataset.kind = config.type;
  return h('label', { class: 'score-field', for: id, title: config.description || '' }, h('span', { text: config.name }), input);
}

function readScores(form) {
  const res = {};
  for (const input of form.querySelectorAll('[data-score]')) {
    if (input.value === '') continue;
    if (input.dataset.kind === 'numeric') res[input.dataset.score] = Number(input.value);
    else if (input.dataset.kind === 'boolean') res[input.dataset.score] = input.value === 'true';
    else res[input.dataset.score] = input.value;
  }
  return res;
}

/** The feedback panel of one span. `caps` says whether datasets exist. */
export function feedbackPanel(span, traceId, caps) {
  const panel = h('section', { class: 'feedback', 'aria-label': 'Feedback' }, h('h3', { text: 'Feedback' }), notice('Loading feedback…'));
  Promise.all([get(`spans/${span.id}/feedback`), get('score-configs').catch(() => ({ score_configs: [] }))])
    .then(([data, configs]) => build(data, configs.score_configs || []))
    .catch((err) => replace(panel, h('h3', { text: 'Feedback' }), notice(err.message, 'error')));

  function build(data, scoreConfigs) {
    const entries = (data.feedback || []).slice().sort((a, b) => Number(a.created_ns) - Number(b.created_ns));
    const mine = [...entries].reverse().find((e) => e.source === 'human' && e.author === 'console');
    const recorded = recordedOutput(span.view);
    let rating = mine ? mine.rating : undefined;

    const up = h('button', { type: 'button', class: 'rate', 'aria-label': 'Rate good', 'aria-pressed': String(rating === 'up'), text: '✓ Good' });
    const down = h('button', { type: 'button', class: 'rate', 'aria-label': 'Rate bad', 'aria-pressed': String(rating === 'down'), text: '✗ Bad' });
    const setRating = (value) => {
      rating = rating === value ? undefined : value;
      up.setAttribute('aria-pressed', String(rating === 'up'));
      down.setAttribute('aria-pressed', String(rating === 'down'));
    };
    up.addEventListener('click', () => setRating('up'));
    down.addEventListener('click', () => setRating('down'));

    const tags = h('input', { type: 'text', 'aria-label': 'Tags', placeholder: 'tags, comma separated', list: `tags-${span.id}`, autocomplete: 'off', value: mine ? (mine.tags || []).join(', ') : '' });
    const tagList = tagSuggestions(tags, `tags-${span.id}`, scoreConfigs, traceId);
    const comment = h('textarea', { 'aria-label': 'Comment', rows: 2, placeholder: 'Comment' });
    comment.value = mine && mine.comment ? mine.comment : '';
    const correction = h('textarea', { class: 'correction-input', 'aria-label': 'Correction', rows: 6 });
    correction.value = mine && mine.correction ? correctionText(mine.correction) : recorded;
    const diff = h('div', { class: 'diff-wrap' });
    const updateDiff = () => replace(diff, correction.value !== recorded ? renderDiff(recorded, correction.value) : h('p', { class: 'muted', text: 'Same as the recorded output.' }));
    correction.addEventListener('input', updateDiff);
    updateDiff();
    const status = h('span', { class: 'muted', role: 'status', 'aria-live': 'polite' });

    const form = h(
      'form',
      {
        class: 'feedback-form',
        onsubmit: async (event) => {
          event.preventDefault();
          const body = {
            span_id: span.id,
            trace_id: traceId,
            source: 'human',
            author: 'console',
            tags: tags.value.split(',').map((t) => t.trim()).filter(Boolean),
            scores: readScores(form),
          };
          if (mine) body.id = mine.id;
          if (rating !== undefined) body.rating = rating;
          if (comment.value.trim()) body.comment = comment.value.trim();
          if (correction.value.trim() && correction.value !== recorded) body.correction = correction.value;
          status.textContent = 'Saving…';
          try {
            await send('POST', 'feedback', body);
            status.textContent = 'Saved';
            panel.replaceWith(feedbackPanel(span, traceId, caps));
          } catch (err) {
            status.textContent = err.message;
          }
        },
      },
      h('div', { class: 'rate-row' }, up, down, scoreConfigs.map((config) => scoreInput(config, mine && mine.scores ? mine.scores[config.name] : undefined))),
      tags,
      tagList,
      comment,
      recorded || (mine && mine.correction)
        ? h('details', { class: 'correction', open: Boolean(mine && mine.correction) }, h('summary', { text: 'Correct the output' }), correction, diff)
        : null,
      h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary', text: mine ? 'Update feedback' : 'Save feedback' }), status),
    );

    const datasets = data.datasets || [];
    replace(
      panel,
      h('h3', { text: `Feedback (${entries.length})` }),
      entries.length ? h('ol', { class: 'feedback-list' }, entries.map(entryView)) : null,
      form,
      datasets.length ? h('p', { class: 'muted' }, 'In datasets: ', datasets.map((d, i) => [i ? ', ' : '', h('a', { href: `/datasets/${encodeURIComponent(d.dataset)}/versions/${d.version}`, text: `${d.dataset} v${d.version}` })])) : null,
      h(
        'div',
        { class: 'form-actions' },
        caps.datasets ? datasetAdder(span) : null,
        traceId ? h('button', { type: 'button', text: 'Export as eval case', title: 'Download this trace as an eval suite (YAML) for loupe eval', onclick: () => downloadEvalSuite(traceId) }) : null,
      ),
    );
  }
  return panel;
}

/**
 * Suggestions for the comma-separated tags box: the project's span tags (`/api/v1/facets`),
 * the tags people gave anywhere in this trace, and the categories of the score configs. Each
 * option keeps the tags already typed, so picking one completes the last tag instead of
 * replacing them all.
 */
function tagSuggestions(input, id, scoreConfigs, traceId) {
  const list = h('datalist', { id });
  const known = new Set();
  for (const config of scoreConfigs) if (config.type === 'categorical') (config.values || []).forEach((v) => known.add(v));
  const refresh = () => {
    const parts = input.value.split(',');
    const last = parts.pop().trim().toLowerCase();
    const typed = new Set(parts.map((p) => p.trim()).filter(Boolean));
    const prefix = parts.length ? `${parts.map((p) => p.trim()).filter(Boolean).join(', ')}, ` : '';
    const options = [...known].filter((tag) => !typed.has(tag) && tag.toLowerCase().startsWith(last)).slice(0, 30);
    replace(list, options.map((tag) => h('option', { value: `${prefix}${tag}`, label: tag })));
  };
  const facets = get('facets', { limit: 200 }).then((data) => (data.tags || []).map((tag) => tag.value));
  const given = traceId ? get(`traces/${traceId}/feedback`).then((data) => (data.feedback || []).flatMap((entry) => entry.tags || [])) : Promise.resolve([]);
  Promise.allSettled([facets, given]).then((results) => {
    for (const result of results) if (result.status === 'fulfilled') result.value.forEach((tag) => known.add(tag));
    refresh();
  });
  input.addEventListener('input', refresh);
  return list;
}

/** "Add to dataset": a dataset name (existing or new) and a button. */
function datasetAdder(span) {
  const listId = `datasets-${span.id}`;
  const name = h('input', { type: 'text', list: listId, 'aria-label': 'Dataset name', placeholder: 'dataset', size: 14 });
  const options = h('datalist', { id: listId });
  const status = h('span', { class: 'muted', role: 'status' });
  get('datasets')
    .then((data) => {
      const names = ((data && (data.datasets || data.items)) || []).map((d) => d.name).filter(Boolean);
      replace(options, names.map((n) => h('option', { value: n })));
      if (names.length && !name.value) name.value = names[0];
    })
    .catch(() => {});
  const add = async () => {
    const dataset = name.value.trim();
    if (!dataset) return;
    status.textContent = 'Adding…';
    const q = `span_id = ${span.id}`;
    try {
      const exists = [...options.children].some((o) => o.value === dataset);
      if (exists) await send('POST', `datasets/${encodeURIComponent(dataset)}/versions`, { q });
      else await send('POST', 'datasets', { name: dataset, q });
      status.textContent = `Added to ${dataset}`;
    } catch (err) {
      status.textContent = err.message;
    }
  };
  return h('span', { class: 'dataset-adder' }, name, options, h('button', { type: 'button', text: 'Add to dataset', onclick: add }), status);
}

/** Downloads the trace's eval suite as the YAML file the API names (`trace-<8 hex>.eval.yaml`). */
function downloadEvalSuite(traceId) {
  get(`traces/${traceId}/eval-suite`)
    .then((suite) => {
      const url = URL.createObjectURL(new Blob([suite.yaml], { type: 'application/yaml' }));
      const a = h('a', { href: url, download: suite.file_name || `trace-${traceId.slice(0, 8)}.eval.yaml` });
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    })
    .catch((err) => alert(err.message));
}
