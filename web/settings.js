// The Settings page, for the caller's project: the effective price table (searchable),
// retention, redaction rules, content policy and sampling policies as the server runs them
// (`/api/v1/settings`, read-only: they are changed in loupe.toml), and the parts people edit
// here: score configs (`/api/v1/score-configs`) and API keys (`/api/v1/keys`).

import { get, send } from './api.js';
import { facts, h, notice, replace } from './dom.js';
import * as fmt from './fmt.js';

/** `YYYY-MM-DD` of a day number (days since 1970-01-01). */
function day(n) {
  return new Date(Number(n) * 86400000).toISOString().slice(0, 10);
}

function dollars(value) {
  return value === null || value === undefined ? '' : `$${value}`;
}

function yesNo(value) {
  return value ? 'yes' : 'no';
}

function section(id, title, ...children) {
  return h('section', { class: 'settings-section', id, 'aria-labelledby': `${id}-title` }, h('h2', { id: `${id}-title`, text: title }), children);
}

function table(label, columns, rows, attrs = {}) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'data', 'aria-label': label, ...attrs },
      h('thead', {}, h('tr', {}, columns.map(([name, cls]) => h('th', { scope: 'col', class: cls || null, text: name })))),
      h('tbody', {}, rows),
    ),
  );
}

// ---- Price table -----------------------------------------------------------------------------

function priceSection(settings) {
  const price = settings.price || {};
  const models = price.models || [];
  if (!price.enabled) return section('prices', 'Price table', notice('Pricing is off on this server ([pipeline.price] enabled = false): spans get no cost.'));
  const search = h('input', { type: 'search', class: 'settings-search', 'aria-label': 'Search prices', placeholder: 'Search provider or model…', 'data-filter': '' });
  const count = h('span', { class: 'muted', role: 'status' });
  const rows = models.map((m) =>
    h(
      'tr',
      { dataset: { provider: m.provider, pattern: m.pattern }, class: 'price-row' },
      h('td', { text: m.provider }),
      h('td', { class: 'mono', text: m.pattern }),
      h('td', { class: 'num', text: dollars(m.input) }),
      h('td', { class: 'num', text: dollars(m.output) }),
      h('td', { class: 'num', text: dollars(m.cached_input) }),
      h('td', { class: 'num', text: dollars(m.cache_write) }),
      h('td', { class: 'num', text: dollars(m.reasoning) }),
      h('td', { class: 'nowrap', text: day(m.effective_day) }),
      h('td', { text: m.from_config ? 'loupe.toml' : 'built-in' }),
    ),
  );
  const apply = () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of rows) {
      const text = `${row.dataset.provider} ${row.dataset.pattern}`;
      row.hidden = !words.every((w) => text.includes(w));
      if (!row.hidden) shown += 1;
    }
    count.textContent = `${shown} of ${rows.length} prices`;
  };
  search.addEventListener('input', apply);
  apply();
  return section(
    'prices',
    'Price table',
    h('p', { class: 'muted', text: 'US dollars per million tokens. The newest entry whose effective date is on or before a call applies; entries from loupe.toml come before the built-in ones.' }),
    h('div', { class: 'toolbar' }, search, count),
    table(
      'Prices',
      [['Provider'], ['Model pattern'], ['Input', 'num'], ['Output', 'num'], ['Cached input', 'num'], ['Cache write', 'num'], ['Reasoning', 'num'], ['Effective'], ['From']],
      rows,
    ),
  );
}

// ---- Retention -------------------------------------------------------------------------------

function hoursOrDays(value, unit) {
  if (value === null || value === undefined) return 'never';
  return `${value} ${unit}`;
}

function retentionSection(settings) {
  const retention = settings.retention;
  if (!retention) {
    return section('retention', 'Retention', notice('No retention is configured: spans are kept, with their content, until deleted. Configure it in the [retention] section of loupe.toml.'));
  }
  const own = retention.project_overrides || {};
  const pick = (key) => (own[key] !== undefined ? own[key] : retention[key]);
  return section(
    'retention',
    'Retention',
    retention.project_overrides ? h('p', { class: 'muted', text: 'This project has its own tiers; the rest come from the defaults.' }) : null,
    facts([
      ['Enabled', yesNo(retention.enabled !== false)],
      ['Content kept', hoursOrDays(pick('content_hours'), 'hours')],
      ['Fingerprints kept', hoursOrDays(pick('fingerprint_days'), 'days')],
      ['Deleted after', hoursOrDays(pick('delete_days'), 'days')],
      ['Downsampling', pick('downsample') ? `on${retention.downsample_after_days !== undefined ? ` after ${retention.downsample_after_days} days` : ''}` : 'off'],
    ]),
  );
}

// ---- Redaction, content, sampling ------------------------------------------------------------

function list(values, empty = 'none') {
  return values && values.length ? h('span', {}, values.map((v) => h('code', { class: 'setting-value', text: v }))) : h('span', { class: 'muted', text: empty });
}

function redactSection(settings) {
  const redact = settings.redact;
  if (!redact) return null;
  if (!redact.enabled) return section('redaction', 'Redaction', notice('Redaction is off: personal data and secrets are stored as sent.', 'error'));
  return section(
    'redaction',
    'Redaction',
    facts([
      ['Built-in detectors', redact.detectors === 'all' ? 'all' : list(redact.detectors)],
      ['Custom patterns', list(redact.patterns)],
      ['Exact-value lists', redact.values && redact.values.length ? redact.values.map((v) => `${v.kind}: ${fmt.int(v.n_values)} values${v.ignore_case ? ' (any case)' : ''}`).join(', ') : h('span', { class: 'muted', text: 'none' })],
      ['Placeholder hash', `${redact.hash_chars} hex characters`],
    ]),
    h('h3', { text: 'Keys passed through' }),
    h('p', {}, list(redact.allow_keys, 'no extra keys'), h('span', { class: 'muted', text: ` and ${(redact.default_allow_keys || []).length} built-in` })),
    h('h3', { text: 'Keys hashed' }),
    h('p', {}, list([...(redact.default_hash_keys || []), ...(redact.hash_keys || [])])),
  );
}

function policyText(policy) {
  if (!policy) return '';
  if (!policy.record) return 'not recorded';
  const cap = policy.max_field_bytes ? `, fields capped at ${fmt.int(policy.max_field_bytes)} bytes` : ', no size cap';
  return `recorded for ${policy.sample_percent}% of traces${cap}`;
}

function contentSection(settings) {
  const content = settings.content;
  if (!content) return null;
  const scope = content.project_overrides || content;
  const services = Object.entries(scope.services || {});
  return section(
    'content',
    'Content policy',
    facts([['Prompts and outputs', policyText(scope.policy)], ['Project', content.project_overrides ? 'own policy' : 'server default']]),
    services.length
      ? table('Content policy by service', [['Service'], ['Content']], services.map(([name, policy]) => h('tr', {}, h('td', { text: name }), h('td', { text: policyText(policy) }))))
      : null,
  );
}

function sampleSection(settings) {
  const sample = settings.sample;
  if (!sample) return null;
  if (!sample.enabled) return section('sampling', 'Sampling', notice('Tail sampling is off: every trace is kept.'));
  return section(
    'sampling',
    'Sampling',
    facts([['Decision wait', `${sample.decision_wait_secs} s`], ['Traces held', fmt.int(sample.num_traces)]]),
    table('Sampling policies', [['Policy'], ['Keeps traces when']], (sample.policies || []).map((p) => h('tr', {}, h('td', { text: p.name }), h('td', { class: 'mono', text: p.rule })))),
  );
}

// ---- Score configs ---------------------------------------------------------------------------

/** What values a score config allows (its kind is flattened into it: `type`, `min`, ...). */
function kindText(config) {
  if (config.type === 'numeric') return `number ${config.min} to ${config.max}`;
  if (config.type === 'categorical') return `one of ${(config.values || []).join(', ')}`;
  return 'yes / no';
}

function scoreSection() {
  const body = h('div', {}, notice('Loading score configs…'));
  const name = h('input', { type: 'text', 'aria-label': 'Score name', placeholder: 'name, e.g. helpfulness', required: true, pattern: '[A-Za-z0-9_.\\-]+' });
  const type = h('select', { 'aria-label': 'Score type' }, h('option', { value: 'numeric', text: 'Number' }), h('option', { value: 'categorical', text: 'Category' }), h('option', { value: 'boolean', text: 'Yes / no' }));
  const min = h('input', { type: 'number', 'aria-label': 'Minimum', placeholder: 'min', value: '1', step: 'any', class: 'narrow' });
  const max = h('input', { type: 'number', 'aria-label': 'Maximum', placeholder: 'max', value: '5', step: 'any', class: 'narrow' });
  const values = h('input', { type: 'text', 'aria-label': 'Categories', placeholder: 'categories, comma separated', hidden: true });
  const description = h('input', { type: 'text', 'aria-label': 'Description', placeholder: 'description (optional)' });
  const status = h('span', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', text: 'Save score config' });
  const showKind = () => {
    min.hidden = max.hidden = type.value !== 'numeric';
    values.hidden = type.value !== 'categorical';
  };
  type.addEventListener('change', showKind);
  const form = h('form', { class: 'settings-form', 'aria-label': 'Score config' }, name, type, min, max, values, description, save, status);

  const edit = (config) => {
    name.value = config.name;
    type.value = config.type;
    if (config.type === 'numeric') {
      min.value = config.min;
      max.value = config.max;
    }
    if (config.type === 'categorical') values.value = (config.values || []).join(', ');
    description.value = config.description || '';
    showKind();
    name.focus();
    status.textContent = `Editing ${config.name}: save to replace it.`;
  };

  const load = () =>
    get('score-configs')
      .then((data) => {
        const configs = data.score_configs || [];
        if (!configs.length) return replace(body, notice('No score configs yet. Define one to offer it in the feedback form.'));
        return replace(
          body,
          table(
            'Score configs',
            [['Name'], ['Values'], ['Description'], ['', 'actions']],
            configs.map((config) =>
              h(
                'tr',
                { dataset: { score: config.name } },
                h('td', { class: 'mono', text: config.name }),
                h('td', { text: kindText(config) }),
                h('td', { text: config.description || '' }),
                h(
                  'td',
                  { class: 'actions' },
                  h('button', { type: 'button', class: 'quiet', 'aria-label': `Edit score ${config.name}`, text: 'Edit', onclick: () => edit(config) }),
                  h('button', {
                    type: 'button',
                    class: 'quiet',
                    'aria-label': `Delete score ${config.name}`,
                    text: 'Delete',
                    onclick: () => {
                      if (!confirm(`Delete the score config ${config.name}? Feedback already given keeps its values.`)) return;
                      send('DELETE', `score-configs/${encodeURIComponent(config.name)}`)
                        .then(() => {
                          status.textContent = `Deleted ${config.name}.`;
                          return load();
                        })
                        .catch((err) => (status.textContent = err.message));
                    },
                  }),
                ),
              ),
            ),
          ),
        );
      })
      .catch((err) => replace(body, notice(err.message, 'error')));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = { type: type.value };
    if (type.value === 'numeric') {
      body.min = Number(min.value);
      body.max = Number(max.value);
    }
    if (type.value === 'categorical') body.values = values.value.split(',').map((v) => v.trim()).filter(Boolean);
    if (description.value.trim()) body.description = description.value.trim();
    const saved = name.value.trim();
    save.disabled = true;
    send('PUT', `score-configs/${encodeURIComponent(saved)}`, body)
      .then(() => {
        status.textContent = `Saved ${saved}.`;
        form.reset();
        showKind();
        return load();
      })
      .catch((err) => (status.textContent = err.message))
      .finally(() => (save.disabled = false));
  });
  showKind();
  load();
  return section('scores', 'Score configs', h('p', { class: 'muted', text: 'The annotation schema: each score config becomes a field of the feedback form.' }), body, form);
}

// ---- API keys --------------------------------------------------------------------------------

function keySection() {
  const body = h('div', {}, notice('Loading keys…'));
  const name = h('input', { type: 'text', 'aria-label': 'Key name', placeholder: 'name, e.g. ci', required: true, maxlength: 100 });
  const status = h('span', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  const shown = h('div', { class: 'new-key', hidden: true });
  const create = h('button', { type: 'submit', text: 'Create key' });
  const form = h('form', { class: 'settings-form', 'aria-label': 'New API key' }, name, create, status);

  const load = () =>
    get('keys')
      .then((data) => {
        const keys = data.keys || [];
        if (!keys.length) return replace(body, notice('No keys stored for this project. Keys configured in loupe.toml are not listed here.'));
        return replace(
          body,
          table(
            'API keys',
            [['Name'], ['Key'], ['Id'], ['Created'], ['', 'actions']],
            keys.map((key) =>
              h(
                'tr',
                { dataset: { keyId: key.id } },
                h('td', { text: key.name }),
                h('td', { class: 'mono', text: `${key.prefix}…` }),
                h('td', { class: 'mono', text: key.id }),
                h('td', { class: 'nowrap', text: fmt.time(key.created_ns) }),
                h(
                  'td',
                  { class: 'actions' },
                  h('button', {
                    type: 'button',
                    class: 'quiet',
                    'aria-label': `Revoke key ${key.name}`,
                    text: 'Revoke',
                    onclick: () => {
                      if (!confirm(`Revoke the key ${key.name}? Clients using it are refused within 10 seconds.`)) return;
                      send('DELETE', `keys/${encodeURIComponent(key.id)}`)
                        .then(() => {
                          status.textContent = `Revoked ${key.name}.`;
                          return load();
                        })
                        .catch((err) => (status.textContent = err.message));
                    },
                  }),
                ),
              ),
            ),
          ),
        );
      })
      .catch((err) => replace(body, notice(err.status === 404 ? 'This server does not manage keys over the API; use `loupe keys`.' : err.message, err.status === 404 ? 'empty' : 'error')));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    create.disabled = true;
    send('POST', 'keys', { name: name.value.trim() })
      .then((created) => {
        const value = h('code', { class: 'new-key-value', text: created.key });
        replace(shown, h('p', {}, h('strong', { text: `Key ${created.name} created. ` }), 'Copy it now: it is shown only once, and only its hash is kept.'), value);
        shown.hidden = false;
        name.value = '';
        status.textContent = '';
        return load();
      })
      .catch((err) => (status.textContent = err.message))
      .finally(() => (create.disabled = false));
  });
  load();
  return section('keys', 'API keys', h('p', { class: 'muted', text: 'Keys for this project: for the OTLP receivers, the gateway and this API.' }), body, form, shown);
}

// ---- Page ------------------------------------------------------------------------------------

export function render(main) {
  document.title = 'Settings · Loupe';
  const config = h('div', { class: 'settings-config' }, notice('Loading settings…'));
  const nav = h(
    'nav',
    { class: 'settings-nav', 'aria-label': 'Settings sections' },
    [['prices', 'Prices'], ['retention', 'Retention'], ['redaction', 'Redaction'], ['content', 'Content'], ['sampling', 'Sampling'], ['scores', 'Score configs'], ['keys', 'API keys']].map(([id, text]) =>
      h('a', { href: `#${id}`, text, onclick: (event) => { event.preventDefault(); const el = document.getElementById(id); if (el) el.scrollIntoView(); } }),
    ),
  );
  const project = h('span', { class: 'status-line' });
  const page = h('section', { class: 'page settings' }, h('div', { class: 'page-head' }, h('h1', { text: 'Settings' }), project), nav, config, scoreSection(), keySection());
  replace(main, page);
  let destroyed = false;
  get('settings')
    .then((settings) => {
      if (destroyed) return;
      project.textContent = `project ${settings.project}`;
      replace(
        config,
        h('p', { class: 'muted', text: 'How this server processes spans, as loaded from loupe.toml at start. Change them there and restart.' }),
        priceSection(settings),
        retentionSection(settings),
        redactSection(settings),
        contentSection(settings),
        sampleSection(settings),
      );
    })
    .catch((err) => {
      if (!destroyed) replace(config, notice(err.message, 'error'));
    });
  return { destroy: () => { destroyed = true; } };
}
