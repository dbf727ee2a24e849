// The Evals page. Eval suites come from recorded calls: one per dataset version (the `eval`
// export) and one per trace (`/api/v1/traces/{id}/eval-suite`). This page offers both. When the
// server records eval runs (`/api/v1/evals/runs`), they are listed here too; a server without
// that API says so rather than showing anything made up.

import { get } from './api.js';
import { capabilities } from './caps.js';
import { h, notice, replace } from './dom.js';
import * as fmt from './fmt.js';

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

export function render(main, params) {
  const state = { destroyed: false };
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
      replace(runs, notice('This server records no eval runs yet. Once runs are recorded, each appears here with its pass rate, its cases and their outcomes, and two runs can be compared case by case. Until then, run the suites below with your eval tool.'));
      return;
    }
    try {
      const data = await get('evals/runs');
      const list = Array.isArray(data) ? data : data.runs || [];
      if (state.destroyed) return;
      replace(runs, list.length ? h('ul', {}, list.map((run) => h('li', { text: `${run.name || run.id}${run.pass_rate !== undefined ? ` · ${fmt.percent(run.pass_rate)}` : ''}` }))) : notice('No eval runs recorded yet.'));
    } catch (err) {
      if (!state.destroyed) replace(runs, notice(err.message, 'error'));
    }
  });
  return { destroy: () => { state.destroyed = true; } };
}
