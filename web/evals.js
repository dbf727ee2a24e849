// The Evals pages. The runs `loupe eval run --record` sent to `/api/v1/evals/runs` are listed
// with their pass rates; a run's page (`/evals/runs/<id>`) lists its cases with outcome,
// output, failed assertions and a link to the span a case came from; the compare view
// (`/evals/compare?base=..&head=..`, two runs picked in the table) joins two runs by case id,
// regressions first, with a word diff of the outputs. Below the runs, the suites to run: one per
// dataset version (the `eval` export) and one per trace (`/api/v1/traces/{id}/eval-suite`).
// Everything recorded is inserted as text.

import { get } from './api.js';
import { capabilities } from './caps.js';
import { facts, h, notice, replace } from './dom.js';
import * as fmt from './fmt.js';

/** Nanoseconds since the epoch of an RFC 3339 time, or null. */
function timeNs(text) {
  const ms = Date.parse(text || '');
  return Number.isFinite(ms) ? ms * 1e6 : null;
}

function passBar(rate) {
  return h('span', { class: 'pass-bar', role: 'img', 'aria-label': `pass rate ${fmt.percent(rate)}`, style: { '--w': `${Math.max(0, Math.min(1, rate || 0)) * 100}%` } });
}

function outcome(side) {
  if (!side) return h('span', { class: 'muted', text: '—' });
  if (side.error) return h('span', { class: 'badge status-error', text: 'error' });
  return side.passed ? h('span', { class: 'badge status-ok', text: 'pass' }) : h('span', { class: 'badge status-error', text: 'fail' });
}

function assertionText(a) {
  const value = a.value === null || a.value === undefined ? '' : ` ${typeof a.value === 'string' ? JSON.stringify(a.value) : JSON.stringify(a.value)}`;
  return `${a.type}${value}${a.reason ? ` — ${a.reason}` : ''}`;
}

function sourceLink(source) {
  if (!source || !source.trace_id || !source.span_id) return null;
  return h('a', { class: 'source', href: `/traces/${encodeURIComponent(source.trace_id)}/spans/${encodeURIComponent(source.span_id)}`, text: 'source span' });
}

function runsTable(list, navigate) {
  const selected = [];
  const button = h('button', { type: 'button', class: 'compare-runs', disabled: true, text: 'Compare selected runs' });
  const hint = h('span', { class: 'muted', text: 'Pick two runs to compare them case by case.' });
  button.addEventListener('click', () => {
    if (selected.length !== 2) return;
    // The older run (lower in the newest-first list) is the base.
    const [a, b] = selected.map((id) => list.findIndex((r) => r.id === id));
    const base = list[Math.max(a, b)].id;
    const head = list[Math.min(a, b)].id;
    navigate(`/evals/compare?base=${encodeURIComponent(base)}&head=${encodeURIComponent(head)}`);
  });
  const rows = list.map((run) => {
    const stats = run.stats || {};
    const box = h('input', { type: 'checkbox', 'aria-label': `Select run ${run.name}` });
    box.addEventListener('change', () => {
      const at = selected.indexOf(run.id);
      if (box.checked && at < 0) selected.push(run.id);
      if (!box.checked && at >= 0) selected.splice(at, 1);
      button.disabled = selected.length !== 2;
    });
    const started = timeNs(run.started_at);
    return h(
      'tr',
      { dataset: { run: run.id } },
      h('td', {}, box),
      h('td', {}, h('a', { href: `/evals/runs/${encodeURIComponent(run.id)}`, text: run.name }), h('div', { class: 'muted', text: run.suite })),
      h('td', { text: run.model }),
      h('td', { title: run.started_at, text: started ? fmt.ago(started) : run.started_at }),
      h('td', { class: 'num', text: fmt.int(stats.total) }),
      h('td', { class: 'num' }, passBar(stats.pass_rate), fmt.percent(stats.pass_rate)),
      h('td', { class: 'num', text: `${fmt.int(stats.avg_latency_ms)} ms` }),
      h('td', { class: 'num', text: fmt.tokens(stats.total_tokens) }),
    );
  });
  return [
    h('div', { class: 'toolbar' }, button, hint),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'data', 'aria-label': 'Eval runs' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, h('span', { class: 'visually-hidden', text: 'Select' })), ['Run', 'Model', 'When', 'Cases', 'Pass rate', 'Avg latency', 'Tokens'].map((t, i) => h('th', { scope: 'col', class: i >= 3 ? 'num' : null, text: t })))),
        h('tbody', {}, rows),
      ),
    ),
  ];
}

function listView(main, params, ctx, state) {
  document.title = 'Evals · Loupe';
  const runs = h('div', {}, notice('Checking for recorded eval runs…'));
  const suites = h('div', {}, notice('Loading datasets…'));
  replace(
    main,
    h(
      'section',
      { class: 'page evals' },
      h('div', { class: 'page-head' }, h('h1', { text: 'Evals' })),
      h('h2', { text: 'Runs' }),
      h('p', { class: 'muted', text: 'Runs recorded with `loupe eval run SUITE --record`: each case replayed against a model and checked with its assertions.' }),
      runs,
      h('h2', { class: 'section-gap', text: 'Eval suites from datasets' }),
      h('p', { class: 'muted', text: 'Each dataset version exports as an eval suite: one case per item, with assertions from its expected output (the correction when there is one).' }),
      suites,
      h('h2', { class: 'section-gap', text: 'Eval suite from a trace' }),
      h('p', { class: 'muted', text: 'One case per LLM call of the trace with recorded input (the same as `loupe export-trace`).' }),
      traceSuite(state),
    ),
  );
  const prefill = params.query && params.query.get('trace');
  if (prefill) main.querySelector('input[aria-label="Trace id"]').value = prefill;
  capabilities().then(async (caps) => {
    if (state.destroyed) return;
    if (caps.datasets) datasetSuites(suites, state);
    else replace(suites, notice('This server does not offer datasets.'));
    if (!caps.evals) {
      replace(runs, notice('This server does not record eval runs. Run the suites below with `loupe eval run`; its results JSON and JUnit files hold each case\'s outcome.'));
      return;
    }
    try {
      const data = await get('evals/runs', { limit: 200 });
      if (state.destroyed) return;
      const list = data.runs || [];
      replace(runs, list.length ? runsTable(list, ctx.navigate) : notice('No eval runs recorded yet. Record one with `loupe eval run SUITE --record`.'));
    } catch (err) {
      if (!state.destroyed) replace(runs, notice(err.message, 'error'));
    }
  });
}

function runView(main, params, state) {
  document.title = 'Eval run · Loupe';
  const body = h('div', {}, notice('Loading the run…'));
  replace(main, h('section', { class: 'page evals' }, h('p', {}, h('a', { href: '/evals', text: '← Evals' })), body));
  get(`evals/runs/${encodeURIComponent(params.runId)}`)
    .then((run) => {
      if (state.destroyed) return;
      document.title = `${run.name} · Evals · Loupe`;
      const stats = run.stats || {};
      const onlyFailing = h('input', { type: 'checkbox', 'aria-label': 'Only cases that did not pass' });
      const rows = (run.cases || []).map((c) =>
        h(
          'tr',
          { dataset: { case: c.id }, class: c.passed ? null : 'is-error' },
          h('td', { class: 'mono', text: c.id }),
          h('td', {}, outcome(c)),
          h('td', {}, h('div', { class: 'case-text muted', text: c.input }), c.error ? h('div', { class: 'error', text: c.error }) : h('pre', { class: 'code wrap case-output', text: c.output })),
          h('td', {}, h('ul', { class: 'assertions' }, (c.assertions || []).filter((a) => !a.passed).map((a) => h('li', { text: assertionText(a) })))),
          h('td', { class: 'num', text: `${fmt.int(c.latency_ms)} ms` }),
          h('td', { class: 'num', text: fmt.int(c.tokens) }),
          h('td', {}, sourceLink(c.source)),
        ),
      );
      const tbody = h('tbody', {}, rows);
      onlyFailing.addEventListener('change', () => {
        for (const row of tbody.children) row.hidden = onlyFailing.checked && !row.classList.contains('is-error');
      });
      replace(
        body,
        h('div', { class: 'page-head' }, h('h1', { text: run.name }), h('span', { class: stats.passed === stats.total ? 'badge status-ok' : 'badge status-error', text: `${fmt.int(stats.passed)}/${fmt.int(stats.total)} passed` })),
        facts([
          ['Suite', run.suite],
          ['Model', run.model],
          ['Endpoint', run.base_url],
          ['Started', run.started_at],
          ['Duration', `${fmt.int(run.duration_ms)} ms`],
          ['Pass rate', h('span', {}, passBar(stats.pass_rate), fmt.percent(stats.pass_rate))],
          ['Failed / errors', `${fmt.int(stats.failed)} / ${fmt.int(stats.errors)}`],
          ['Avg latency', `${fmt.int(stats.avg_latency_ms)} ms`],
          ['Tokens', fmt.int(stats.total_tokens)],
          ['Commit', run.metadata && run.metadata.commit],
          ['Suite SHA-256', run.metadata && run.metadata.suite_sha256 ? run.metadata.suite_sha256.slice(0, 12) : null],
          ['Run id', run.id],
        ]),
        h('div', { class: 'toolbar' }, h('label', {}, onlyFailing, ' Only cases that did not pass')),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'data', 'aria-label': 'Cases' },
            h('thead', {}, h('tr', {}, ['Case', 'Outcome', 'Input and output', 'Failed assertions', 'Latency', 'Tokens', 'Source'].map((t) => h('th', { scope: 'col', text: t })))),
            tbody,
          ),
        ),
      );
    })
    .catch((err) => {
      if (!state.destroyed) replace(body, notice(err.message, 'error'));
    });
}

/** Word-level diff of two texts as nodes: removed words struck, added ones marked. */
function wordDiff(before, after) {
  const a = (before || '').split(/(\s+)/);
  const b = (after || '').split(/(\s+)/);
  if (a.length * b.length > 4_000_000) return [h('del', { class: 'diff-del', text: before }), ' ', h('ins', { class: 'diff-ins', text: after })];
  // Longest common subsequence table, from the end.
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) for (let j = b.length - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0;
  let j = 0;
  const push = (kind, text) => {
    const last = out[out.length - 1];
    if (last && last.kind === kind) last.text += text;
    else out.push({ kind, text });
  };
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      push('same', a[i]);
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) push('del', a[i++]);
    else push('ins', b[j++]);
  }
  while (i < a.length) push('del', a[i++]);
  while (j < b.length) push('ins', b[j++]);
  return out.map((part) => (part.kind === 'same' ? part.text : h(part.kind, { class: `diff-${part.kind}`, text: part.text })));
}

function compareView(main, params, state) {
  document.title = 'Compare eval runs · Loupe';
  const base = params.query && params.query.get('base');
  const head = params.query && params.query.get('head');
  const body = h('div', {}, notice('Comparing…'));
  replace(main, h('section', { class: 'page evals' }, h('p', {}, h('a', { href: '/evals', text: '← Evals' })), h('div', { class: 'page-head' }, h('h1', { text: 'Compare eval runs' })), body));
  if (!base || !head) {
    replace(body, notice('Pick two runs in the runs table to compare them.', 'error'));
    return;
  }
  get('evals/compare', { base, head })
    .then((cmp) => {
      if (state.destroyed) return;
      const c = cmp.counts;
      const runLink = (run) => h('a', { href: `/evals/runs/${encodeURIComponent(run.id)}`, text: run.name });
      const rows = cmp.cases.map((d) => {
        const before = d.base ? d.base.error || d.base.output : '';
        const after = d.head ? d.head.error || d.head.output : '';
        const failing = (d.head && !d.head.passed ? d.head : d.base && !d.base.passed ? d.base : null);
        return h(
          'tr',
          { dataset: { case: d.id, change: d.change }, class: d.change === 'regressed' ? 'is-error' : null },
          h('td', { class: 'mono' }, d.id, d.source ? h('div', {}, sourceLink(d.source)) : null),
          h('td', {}, h('span', { class: `badge change-${d.change}`, text: d.change })),
          h('td', {}, outcome(d.base)),
          h('td', {}, outcome(d.head)),
          h('td', {}, h('div', { class: 'case-text muted', text: d.input }), h('pre', { class: 'code wrap case-output diff' }, d.base && d.head ? wordDiff(before, after) : after || before)),
          h('td', {}, failing ? h('ul', { class: 'assertions' }, failing.failed_assertions.map((a) => h('li', { text: assertionText(a) }))) : null),
          h('td', { class: 'num', text: `${d.base ? fmt.int(d.base.latency_ms) : '—'} → ${d.head ? fmt.int(d.head.latency_ms) : '—'} ms` }),
          h('td', { class: 'num', text: `${d.base ? fmt.int(d.base.tokens) : '—'} → ${d.head ? fmt.int(d.head.tokens) : '—'}` }),
        );
      });
      const delta = cmp.pass_rate_delta * 100;
      replace(
        body,
        h(
          'p',
          { class: 'compare-summary' },
          'Base ', runLink(cmp.base), ` (${fmt.percent(cmp.base.stats.pass_rate)}, ${cmp.base.model}) → head `, runLink(cmp.head), ` (${fmt.percent(cmp.head.stats.pass_rate)}, ${cmp.head.model}), ${delta >= 0 ? '+' : ''}${delta.toFixed(1)} points: `,
          `${c.regressed} regressed, ${c.improved} improved, ${c.unchanged} unchanged, ${c.added} added, ${c.removed} removed.`,
        ),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'data', 'aria-label': 'Case comparison' },
            h('thead', {}, h('tr', {}, ['Case', 'Change', 'Base', 'Head', 'Output (base → head)', 'Failed assertions', 'Latency', 'Tokens'].map((t) => h('th', { scope: 'col', text: t })))),
            h('tbody', {}, rows),
          ),
        ),
      );
    })
    .catch((err) => {
      if (!state.destroyed) replace(body, notice(err.message, 'error'));
    });
}

function datasetSuites(body, state) {
  get('datasets')
    .then((data) => {
      if (state.destroyed) return;
      const datasets = (data.datasets || []).filter((d) => d.latest_version);
      if (!datasets.length) {
        replace(body, notice('No datasets yet: build one from recorded calls, then export it here as an eval suite.'));
        return;
      }
      replace(
        body,
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'data', 'aria-label': 'Eval suites from datasets' },
            h('thead', {}, h('tr', {}, ['Dataset', 'Version', 'Suite'].map((t) => h('th', { scope: 'col', text: t })))),
            h(
              'tbody',
              {},
              datasets.map((d) =>
                h(
                  'tr',
                  { dataset: { dataset: d.name } },
                  h('td', {}, h('a', { href: `/datasets/${encodeURIComponent(d.name)}`, text: d.name })),
                  h('td', { text: `v${d.latest_version}` }),
                  h('td', {}, h('a', { class: 'button-link', download: '', href: `/api/v1/datasets/${encodeURIComponent(d.name)}/export?format=eval&version=${d.latest_version}`, 'aria-label': `Download the eval suite of ${d.name} v${d.latest_version}`, text: 'Download YAML' })),
                ),
              ),
            ),
          ),
        ),
      );
    })
    .catch((err) => {
      if (!state.destroyed) replace(body, notice(err.message, 'error'));
    });
}

function traceSuite(state) {
  const input = h('input', { type: 'text', class: 'mono', 'aria-label': 'Trace id', placeholder: '32 hex characters', pattern: '[0-9a-fA-F]{32}', required: true, size: 36 });
  const submit = h('button', { type: 'submit', text: 'Build suite' });
  const out = h('div', { class: 'suite-out' });
  const form = h('form', { class: 'settings-form', 'aria-label': 'Eval suite from a trace' }, input, submit);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const traceId = input.value.trim().toLowerCase();
    replace(out, notice('Building…'));
    get(`traces/${traceId}/eval-suite`)
      .then((suite) => {
        if (state.destroyed) return;
        const blob = URL.createObjectURL(new Blob([suite.yaml], { type: 'application/yaml' }));
        replace(
          out,
          h('p', {}, `${fmt.int(suite.n_cases)} cases from `, h('a', { href: `/traces/${traceId}`, text: `trace ${traceId.slice(0, 8)}` }), '. ', h('a', { href: blob, download: suite.file_name, class: 'button-link', text: `Download ${suite.file_name}` })),
          (suite.warnings || []).length ? h('ul', { class: 'muted' }, suite.warnings.map((w) => h('li', { text: w }))) : null,
          h('pre', { class: 'json suite-yaml', 'aria-label': 'Eval suite YAML', text: suite.yaml }),
        );
      })
      .catch((err) => replace(out, notice(err.message, 'error')));
  });
  return [form, out];
}

export function render(main, params, ctx = {}) {
  const state = { destroyed: false };
  const navigate = ctx.navigate || ((url) => { location.href = url; });
  if (params.view === 'run') runView(main, params, state);
  else if (params.view === 'compare') compareView(main, params, state);
  else listView(main, params, { navigate }, state);
  return { destroy: () => { state.destroyed = true; } };
}
