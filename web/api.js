// The console's only way to the server: the public JSON API under /api/v1 (the same one users
// script against), and the adapters that turn its trace payloads into the shapes the views use.

import { ns } from './fmt.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Builds `/api/v1/<path>?<params>`, leaving out empty params. */
export function apiUrl(path, params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === '') continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.set(key, String(value));
  }
  const qs = search.toString();
  return `/api/v1/${path}${qs ? `?${qs}` : ''}`;
}

const KEY_STORAGE = 'loupe.apiKey';

/** The API key this browser sends (a server with keys configured requires one), or null. */
export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Without storage the key cannot be kept; requests go out without one.
  }
}

function headers(json) {
  const res = { Accept: 'application/json' };
  if (json) res['Content-Type'] = 'application/json';
  const key = apiKey();
  if (key) res['x-loupe-api-key'] = key;
  return res;
}

/** GETs a JSON document. Errors carry the API's `{"error":{"code","message"}}`. */
export async function get(path, params = {}, options = {}) {
  return request('GET', path, params, undefined, options);
}

export async function send(method, path, body, options = {}) {
  return request(method, path, {}, body, options);
}

async function request(method, path, params, body, options) {
  let response;
  try {
    response = await fetch(apiUrl(path, params), {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: options.signal,
      credentials: 'same-origin',
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, 'unavailable', 'cannot reach the Loupe server');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    if (response.status === 401) window.dispatchEvent(new CustomEvent('loupe:unauthorized', { detail: error.message || '' }));
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || `${response.status} ${response.statusText}`);
  }
  return data;
}

/** Whether an endpoint exists (answers anything but 404/405/501). */
export async function probe(path) {
  try {
    const response = await fetch(apiUrl(path), { headers: headers(false) });
    return response.ok;
  } catch {
    return false;
  }
}

// ---- Attribute values ------------------------------------------------------------------------

/**
 * Turns an attribute value into plain JSON. Accepts the stored shape (`{"string":"x"}`,
 * `{"int":3}`, `{"kv_list":[...]}`, `"empty"`), OTLP JSON (`{"stringValue":"x"}`) and plain JSON.
 */
export function plainValue(value) {
  if (value === null || value === undefined || value === 'empty') return null;
  if (typeof value !== 'object' || Array.isArray(value)) return value;
  const keys = Object.keys(value);
  if (keys.length !== 1) return value;
  const [key] = keys;
  const inner = value[key];
  switch (key) {
    case 'string': case 'stringValue': case 'bool': case 'boolValue': case 'double': case 'doubleValue':
    case 'bytes': case 'bytesValue':
      return inner;
    case 'int': case 'intValue':
      return typeof inner === 'string' && Math.abs(Number(inner)) < Number.MAX_SAFE_INTEGER ? Number(inner) : inner;
    case 'array': return (inner || []).map(plainValue);
    case 'arrayValue': return ((inner && inner.values) || []).map(plainValue);
    case 'kv_list': return Object.fromEntries((inner || []).map((kv) => [kv.key, plainValue(kv.value)]));
    case 'kvlistValue': return Object.fromEntries(((inner && inner.values) || []).map((kv) => [kv.key, plainValue(kv.value)]));
    default: return value;
  }
}

/** Attributes as sorted `[key, plainValue]` pairs, from a key/value list or an object. */
export function attributePairs(attributes) {
  if (!attributes) return [];
  const pairs = Array.isArray(attributes)
    ? attributes.map((kv) => [kv.key, plainValue(kv.value)])
    : Object.entries(attributes).map(([key, value]) => [key, plainValue(value)]);
  return pairs.sort((a, b) => a[0].localeCompare(b[0]));
}

// ---- Traces ----------------------------------------------------------------------------------

function statusOf(item, raw) {
  const status = item.status ?? raw.status;
  if (typeof status === 'string') return { code: status.toLowerCase(), message: item.status_message || '' };
  if (status && typeof status === 'object') {
    const code = typeof status.code === 'number' ? ['unset', 'ok', 'error'][status.code] || 'unset' : String(status.code || 'unset').toLowerCase();
    return { code, message: status.message || '' };
  }
  return { code: 'unset', message: '' };
}

/** One span in the console's shape, from whatever nesting the API uses for it. */
export function adaptSpan(item, parentFromNesting = null) {
  const raw = item.raw || item.span || item;
  const view = item.view || item.llm || item;
  const start = ns(item.start_ns ?? item.start_time_unix_nano ?? raw.start_time_unix_nano);
  let end = ns(item.end_ns ?? item.end_time_unix_nano ?? raw.end_time_unix_nano);
  const durationNs = ns(item.duration_ns) ?? (end !== null && start !== null ? end - start : 0);
  if (end === null && start !== null) end = start + durationNs;
  const resource = raw.resource && raw.resource.attributes ? raw.resource.attributes : item.resource || raw.resource || [];
  const status = statusOf(item, raw);
  const spanType = (view.span_type || item.span_type || item.type || 'other').toLowerCase();
  const usage = view.usage || item.usage || {};
  return {
    id: item.span_id ?? raw.span_id,
    parentId: item.parent_span_id ?? raw.parent_span_id ?? parentFromNesting,
    traceId: item.trace_id ?? raw.trace_id,
    name: item.name ?? raw.name ?? '',
    kind: item.kind ?? raw.kind ?? '',
    start: start ?? 0,
    end: end ?? start ?? 0,
    duration: durationNs,
    selfTime: ns(item.self_time_ns ?? item.self_ns),
    status: status.code,
    statusMessage: status.message,
    type: spanType,
    view,
    usage,
    model: view.response_model || view.request_model || item.model || null,
    cost: view.cost ?? item.cost ?? null,
    attributes: attributePairs(item.attributes ?? raw.attributes),
    events: item.events ?? raw.events ?? [],
    links: item.links ?? raw.links ?? [],
    resource: attributePairs(resource),
    scope: item.scope ?? raw.scope ?? null,
    service: item.service ?? serviceOf(resource),
    json: item,
    children: [],
    depth: 0,
  };
}

function serviceOf(resource) {
  const pair = attributePairs(resource).find(([key]) => key === 'service.name');
  return pair ? String(pair[1]) : null;
}

/**
 * A trace as `{ traceId, spans (depth-first order), roots, byId, start, end, totals }`.
 * Accepts a flat span list or nested `children`, and places orphans (parent never arrived)
 * under the trace as roots.
 */
export function adaptTrace(data) {
  const items = [];
  const walk = (item, parentId) => {
    items.push([item, parentId]);
    for (const child of item.children || []) walk(child, item.span_id ?? (item.raw || item.span || item).span_id);
  };
  const top = data.spans || data.roots || data.tree || (data.root ? [data.root] : []);
  for (const item of top) walk(item, null);

  const byId = new Map();
  for (const [item, parentId] of items) {
    const span = adaptSpan(item, parentId);
    if (!byId.has(span.id)) byId.set(span.id, span);
  }
  const roots = [];
  for (const span of byId.values()) {
    const parent = span.parentId ? byId.get(span.parentId) : null;
    if (parent && parent !== span) parent.children.push(span);
    else {
      span.orphan = Boolean(span.parentId);
      roots.push(span);
    }
  }
  const byStart = (a, b) => a.start - b.start || a.name.localeCompare(b.name);
  roots.sort(byStart);
  const spans = [];
  const order = (span, depth) => {
    span.depth = depth;
    span.index = spans.length;
    spans.push(span);
    span.children.sort(byStart);
    for (const child of span.children) order(child, depth + 1);
  };
  roots.forEach((root) => order(root, 0));

  let start = Infinity;
  let end = -Infinity;
  const totals = { spans: spans.length, llm: 0, errors: 0, input: 0, output: 0, cost: 0, hasCost: false };
  for (const span of spans) {
    start = Math.min(start, span.start);
    end = Math.max(end, span.end);
    if (span.type === 'llm') totals.llm += 1;
    if (span.status === 'error') totals.errors += 1;
    totals.input += Number(span.usage.input || 0);
    totals.output += Number(span.usage.output || 0);
    if (span.cost !== null && span.cost !== undefined) {
      totals.cost += Number(span.cost);
      totals.hasCost = true;
    }
    if (span.selfTime === null) {
      // Self time: the span's duration minus the union of its children's intervals.
      let covered = 0;
      let cursor = span.start;
      for (const child of span.children) {
        const from = Math.max(child.start, cursor);
        const to = Math.min(child.end, span.end);
        if (to > from) {
          covered += to - from;
          cursor = to;
        }
      }
      span.selfTime = Math.max(0, span.duration - covered);
    }
  }
  if (!spans.length) {
    start = 0;
    end = 0;
  }
  // The server's roll-up is authoritative (it knows which span types count for tokens).
  const rollup = data.rollup;
  if (rollup) {
    totals.input = Number(rollup.input_tokens ?? totals.input);
    totals.output = Number(rollup.output_tokens ?? totals.output);
    totals.llm = Number(rollup.n_llm_spans ?? totals.llm);
    totals.errors = Number(rollup.n_errors ?? totals.errors);
    totals.hasCost = rollup.cost !== null && rollup.cost !== undefined;
    totals.cost = totals.hasCost ? Number(rollup.cost) : 0;
  }
  const traceId = data.trace_id || (spans[0] && spans[0].traceId) || '';
  return { traceId, spans, roots, byId, start, end, totals, json: data };
}
