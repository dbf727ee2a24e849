// Formatting of durations, times, token counts and money for display.

/** Nanoseconds as a number (the API may send big integers as strings). */
export function ns(value) {
  if (value === null || value === undefined || value === '') return null;
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

/** A duration in nanoseconds: `850µs`, `12ms`, `2.61s`, `3m 20s`. */
export function duration(nanos) {
  const n = ns(nanos);
  if (n === null) return '';
  if (n === 0) return '0';
  if (n < 1e3) return `${Math.round(n)}ns`;
  if (n < 1e6) return `${trim(n / 1e3)}µs`;
  if (n < 1e9) return `${trim(n / 1e6)}ms`;
  if (n < 60e9) return `${trim(n / 1e9)}s`;
  const s = Math.round(n / 1e9);
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function trim(x) {
  if (x >= 100) return String(Math.round(x));
  if (x >= 10) return x.toFixed(1).replace(/\.0$/, '');
  return x.toFixed(2).replace(/\.?0+$/, '');
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** A wall-clock time from Unix nanoseconds, local time: `2024-05-22 10:21:03.120`. */
export function time(nanos) {
  const n = ns(nanos);
  if (n === null) return '';
  const d = new Date(n / 1e6);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A short time for table rows: today shows the clock only. */
export function shortTime(nanos) {
  const n = ns(nanos);
  if (n === null) return '';
  const d = new Date(n / 1e6);
  const now = new Date();
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return clock;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock}`;
}

/** "3 min ago" style relative time. */
export function ago(nanos) {
  const n = ns(nanos);
  if (n === null) return '';
  const s = Math.round((Date.now() - n / 1e6) / 1000);
  if (s < 0) return 'in the future';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Integers with thousands separators; empty for null. */
export function int(value) {
  if (value === null || value === undefined || value === '') return '';
  const n = Number(value);
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(value);
}

/** Token counts: `1,234` or `12.3k` when compact. */
export function tokens(value, compact = false) {
  if (value === null || value === undefined || value === '') return '';
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (compact && n >= 10000) return `${trim(n / 1000)}k`;
  return int(n);
}

/**
 * USD from a decimal string (as the API sends money) or number. Small amounts keep their
 * significant digits: `$0.00042`.
 */
export function cost(value) {
  if (value === null || value === undefined || value === '') return '';
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (n === 0) return '$0';
  if (Math.abs(n) >= 1) return `$${n.toFixed(2)}`;
  if (Math.abs(n) >= 0.01) return `$${n.toFixed(4).replace(/0+$/, '')}`;
  return `$${n.toPrecision(2).replace(/0+$/, '')}`;
}

/** A ratio as a percentage. */
export function percent(ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '';
  if (ratio === 0) return '0%';
  if (ratio < 0.001) return '<0.1%';
  return `${(ratio * 100).toFixed(ratio < 0.1 ? 1 : 0)}%`;
}

/** Pretty JSON, or the text itself when it is not JSON. */
export function json(value) {
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

/** Shortens an id for display: the first 8 characters. */
export function shortId(id) {
  return id ? String(id).slice(0, 8) : '';
}
