//! Price lookup (provider + model pattern, most specific wins, dated snapshots resolve to their
//! family, the price effective on the span's date), cost from token usage as an exact decimal,
//! and the `price` processor. The lookup and cost functions are pure so `loupe pricing
//! recompute` and `loupe pricing unknown` can run them over stored spans.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use model::{LlmView, StoredSpan, UnixNanos, Usage};
use rust_decimal::Decimal;
use serde::Serialize;

use super::config::{ANY_PROVIDER, ModelPrice, PriceTable, canonical_provider};
use crate::Processor;

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// What pricing one span gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PriceOutcome {
    /// The cost in USD.
    Priced(Decimal),
    /// The span has no token counts (not an LLM call, or the sender did not report usage).
    NoUsage,
    /// The span has token counts but no model name.
    NoModel,
    /// The model has no price in the table.
    UnknownModel,
}

/// The price entry for a model on a day (days since 1970-01-01), if any.
///
/// Entries of the span's provider (after aliasing, see [`canonical_provider`]) are tried
/// first, then every entry. Within that, the model name is tried as sent, then without a vendor
/// or region prefix (`openai/`, `us.anthropic.`, `models/`), then as its family (without a date,
/// version or `@snapshot` suffix). An exact pattern for any of these names beats every `*`
/// pattern; among `*` patterns the first name that matches decides and more literal characters
/// win; a config entry beats a built-in one. Of the entries with that provider and pattern, the latest one
/// effective on `day` applies (the earliest when all are later).
pub fn find_price<'a>(
    table: &'a PriceTable,
    provider: Option<&str>,
    model: &str,
    day: i64,
) -> Option<&'a ModelPrice> {
    let lower = model.trim().to_lowercase();
    if lower.is_empty() {
        return None;
    }
    let stripped = strip_prefix(&lower);
    let family = strip_version(stripped);
    let mut names: Vec<&str> = vec![lower.as_str()];
    for name in [stripped, family] {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let vendor = provider.and_then(canonical_provider);
    let of_vendor = |entry: &ModelPrice| {
        vendor.as_deref().is_some_and(|v| entry.provider == v) || entry.provider == ANY_PROVIDER
    };
    for vendor_only in [true, false] {
        let in_pass = |entry: &&ModelPrice| !vendor_only || of_vendor(entry);
        // An exact entry for any spelling (`claude-opus-4-5` for `claude-opus-4-5-20251101`)
        // beats a `*` pattern matching an earlier one (`claude-opus-4*`).
        for name in &names {
            let exact = table.exact.get(*name).into_iter().flatten().map(|i| &table.entries[*i]);
            if let Some(best) = exact.filter(in_pass).max_by_key(|entry| entry.from_config) {
                return Some(effective(table, best, day));
            }
        }
        for name in &names {
            let best = table
                .globs
                .iter()
                .map(|i| &table.entries[*i])
                .filter(in_pass)
                .filter(|entry| glob_match(entry.pattern.as_bytes(), name.as_bytes()))
                .max_by_key(|entry| {
                    (entry.pattern.len() - entry.pattern.matches('*').count(), entry.from_config)
                });
            if let Some(best) = best {
                return Some(effective(table, best, day));
            }
        }
    }
    None
}

/// Of the entries with `best`'s provider and pattern, the one in force on `day`.
fn effective<'a>(table: &'a PriceTable, best: &'a ModelPrice, day: i64) -> &'a ModelPrice {
    let same = || {
        let candidates: Box<dyn Iterator<Item = &usize>> = match table.exact.get(&best.pattern) {
            Some(indexes) => Box::new(indexes.iter()),
            None => Box::new(table.globs.iter()),
        };
        candidates
            .map(|i| &table.entries[*i])
            .filter(|e| e.provider == best.provider && e.pattern == best.pattern)
    };
    same()
        .filter(|e| e.effective_day <= day)
        .max_by_key(|e| e.effective_day)
        .or_else(|| same().min_by_key(|e| e.effective_day))
        .unwrap_or(best)
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

/// The model name without a router's vendor prefix (`openai/gpt-4o`), Google's `models/`, or
/// Bedrock's vendor and region prefix (`us.anthropic.claude-…`).
fn strip_prefix(name: &str) -> &str {
    if name.starts_with("ft:") {
        return name;
    }
    let mut res = name.rsplit('/').next().unwrap_or(name);
    for vendor in ["anthropic.", "meta.", "mistral.", "amazon.", "cohere.", "ai21.", "deepseek."] {
        if let Some(at) = res.find(vendor) {
            let head = &res[..at];
            // Nothing, or a region like `us.` / `eu.` / `apac.`, may precede the vendor.
            if head.is_empty() || (head.ends_with('.') && head.len() <= 5) {
                res = &res[at + vendor.len()..];
                break;
            }
        }
    }
    res
}

/// The model family: the name without snapshot suffixes (`-2024-07-18`, `-20241022`, `-0613`,
/// `-002`, `-v2:0`, `@20240620`, `-latest`).
fn strip_version(mut name: &str) -> &str {
    loop {
        let before = name;
        if let Some(at) = name.rfind('@') {
            name = &name[..at];
        }
        if let Some(rest) = name.strip_suffix("-latest") {
            name = rest;
        }
        if let Some((head, tail)) = name.rsplit_once(':')
            && !tail.is_empty()
            && tail.bytes().all(|b| b.is_ascii_digit())
        {
            name = head;
        }
        let bytes = name.as_bytes();
        let is_date = bytes.len() > 11 && {
            let tail = &bytes[bytes.len() - 11..];
            tail.iter().enumerate().all(|(i, b)| match i {
                0 | 5 | 8 => *b == b'-',
                _ => b.is_ascii_digit(),
            })
        };
        if is_date {
            name = &name[..name.len() - 11];
        } else if let Some((head, tail)) = name.rsplit_once('-') {
            let digits = tail.bytes().all(|b| b.is_ascii_digit());
            let version = tail.len() >= 2
                && tail.starts_with('v')
                && tail[1..].bytes().all(|b| b.is_ascii_digit());
            if !head.is_empty() && ((digits && matches!(tail.len(), 3 | 4 | 8)) || version) {
                name = head;
            }
        }
        if name == before {
            return name;
        }
    }
}

/// The cost of `usage` at `price`. Cache-read and cache-write tokens are part of `input` and
/// reasoning tokens part of `output` ([`Usage`]'s semantics); when the parts exceed the total,
/// the sender reported the total without them (Anthropic's raw `input_tokens`) and it is
/// priced as the uncached part.
pub fn cost_of(price: &ModelPrice, usage: &Usage) -> Decimal {
    let input = usage.input.unwrap_or(0);
    let cache_read = usage.cache_read_input.unwrap_or(0);
    let cache_write = usage.cache_write_input.unwrap_or(0);
    let cached = cache_read.saturating_add(cache_write);
    let uncached = if cached > input { input } else { input - cached };
    let output = usage.output.unwrap_or(0);
    let reasoning = usage.reasoning_output.unwrap_or(0);
    let plain_output = if reasoning > output { output } else { output - reasoning };
    let res = Decimal::from(uncached) * price.input
        + Decimal::from(cache_read) * price.cached_input
        + Decimal::from(cache_write) * price.cache_write
        + Decimal::from(plain_output) * price.output
        + Decimal::from(reasoning) * price.reasoning;
    (res / Decimal::from(1_000_000u32)).normalize()
}

/// Prices one span's view; `start_time_unix_nano` picks the price in force on its date.
pub fn price_view(
    table: &PriceTable,
    view: &LlmView,
    start_time_unix_nano: UnixNanos,
) -> PriceOutcome {
    if view.usage.input.is_none() && view.usage.output.is_none() {
        return PriceOutcome::NoUsage;
    }
    let Some(model) = view.model() else { return PriceOutcome::NoModel };
    let day = i64::try_from(start_time_unix_nano / NANOS_PER_DAY).unwrap_or(i64::MAX);
    match find_price(table, view.provider.as_deref(), model, day) {
        Some(price) => PriceOutcome::Priced(cost_of(price, &view.usage)),
        None => PriceOutcome::UnknownModel,
    }
}

/// Sets a stored span's `view.cost` and `view.flags.unknown_price` from the table, as the
/// `price` processor does at ingest; returns whether either changed. For `loupe pricing
/// recompute`, after which the caller writes the changed views back (`Store::update_views`).
pub fn recompute_cost(table: &PriceTable, span: &mut StoredSpan) -> bool {
    let outcome = price_view(table, &span.view, span.raw.start_time_unix_nano);
    let (cost, unknown) = match outcome {
        PriceOutcome::Priced(cost) => (Some(cost), false),
        PriceOutcome::UnknownModel => (None, true),
        PriceOutcome::NoUsage | PriceOutcome::NoModel => (None, false),
    };
    let changed = span.view.cost != cost || span.view.flags.unknown_price != unknown;
    span.view.cost = cost;
    span.view.flags.unknown_price = unknown;
    changed
}

/// A model seen with token usage but without a price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownModel {
    /// The provider as the spans name it (empty when they name none).
    pub provider: String,
    pub model: String,
    pub n_spans: u64,
}

/// The models of `spans` that have token usage but no price in `table`, most frequent first
/// (for `loupe pricing unknown`, which feeds it pages of `Store::scan_spans`).
pub fn unknown_models<'a>(
    table: &PriceTable,
    spans: impl IntoIterator<Item = &'a StoredSpan>,
) -> Vec<UnknownModel> {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for span in spans {
        if price_view(table, &span.view, span.raw.start_time_unix_nano)
            == PriceOutcome::UnknownModel
        {
            let provider = span.view.provider.clone().unwrap_or_default();
            let model = span.view.model().unwrap_or_default().to_owned();
            *counts.entry((provider, model)).or_insert(0) += 1;
        }
    }
    let mut res: Vec<UnknownModel> = counts
        .into_iter()
        .map(|((provider, model), n_spans)| UnknownModel { provider, model, n_spans })
        .collect();
    res.sort_by(|a, b| b.n_spans.cmp(&a.n_spans).then_with(|| a.model.cmp(&b.model)));
    res
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PriceCounters {
    /// Spans seen.
    pub spans: u64,
    /// Spans given a cost.
    pub spans_priced: u64,
    /// Spans with token usage whose model has no price.
    pub spans_unknown_price: u64,
}

/// The `price` processor.
pub struct PriceProcessor {
    table: PriceTable,
    spans: AtomicU64,
    spans_priced: AtomicU64,
    spans_unknown_price: AtomicU64,
}

impl PriceProcessor {
    pub fn new(table: PriceTable) -> PriceProcessor {
        PriceProcessor {
            table,
            spans: AtomicU64::new(0),
            spans_priced: AtomicU64::new(0),
            spans_unknown_price: AtomicU64::new(0),
        }
    }

    pub fn table(&self) -> &PriceTable {
        &self.table
    }

    pub fn counters(&self) -> PriceCounters {
        PriceCounters {
            spans: self.spans.load(Ordering::Relaxed),
            spans_priced: self.spans_priced.load(Ordering::Relaxed),
            spans_unknown_price: self.spans_unknown_price.load(Ordering::Relaxed),
        }
    }
}

impl Processor for PriceProcessor {
    fn name(&self) -> &'static str {
        "price"
    }

    fn process(&self, spans: &mut Vec<StoredSpan>) {
        let (mut priced, mut unknown) = (0, 0);
        for span in spans.iter_mut() {
            recompute_cost(&self.table, span);
            priced += u64::from(span.view.cost.is_some());
            unknown += u64::from(span.view.flags.unknown_price);
        }
        self.spans.fetch_add(spans.len() as u64, Ordering::Relaxed);
        self.spans_priced.fetch_add(priced, Ordering::Relaxed);
        self.spans_unknown_price.fetch_add(unknown, Ordering::Relaxed);
    }
}
