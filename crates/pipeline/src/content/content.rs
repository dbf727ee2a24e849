//! The content policy processor: removes content from spans whose project or service does not
//! record it or whose trace is not in the content sample, and cuts oversized content fields,
//! in both the raw span and the normalized view.

use std::sync::atomic::{AtomicU64, Ordering};

use model::{AnyValue, KeyValue, LlmView, Part, StoredSpan, TraceId};
use serde::Serialize;

use super::config::ContentConfig;
use super::keys::{is_content_event_key, is_content_key};
use crate::Processor;

/// The attribute set on a span whose content was removed; its value says why (`disabled` or
/// `sampled_out`).
pub const CONTENT_REMOVED_ATTR: &str = "loupe.content.removed";

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ContentCounters {
    /// Spans seen.
    pub spans: u64,
    /// Spans whose content was removed because their project or service does not record it.
    pub spans_removed_disabled: u64,
    /// Spans whose content was removed because their trace is outside the content sample.
    pub spans_removed_sampled_out: u64,
    /// Spans with at least one field cut to the size cap.
    pub spans_truncated: u64,
    /// Content fields cut to the size cap.
    pub fields_truncated: u64,
}

#[derive(Default)]
struct Counters {
    spans: AtomicU64,
    spans_removed_disabled: AtomicU64,
    spans_removed_sampled_out: AtomicU64,
    spans_truncated: AtomicU64,
    fields_truncated: AtomicU64,
}

/// The `content` processor.
pub struct ContentProcessor {
    config: ContentConfig,
    counters: Counters,
}

impl ContentProcessor {
    pub fn new(config: ContentConfig) -> ContentProcessor {
        ContentProcessor { config, counters: Counters::default() }
    }

    pub fn counters(&self) -> ContentCounters {
        let c = &self.counters;
        ContentCounters {
            spans: c.spans.load(Ordering::Relaxed),
            spans_removed_disabled: c.spans_removed_disabled.load(Ordering::Relaxed),
            spans_removed_sampled_out: c.spans_removed_sampled_out.load(Ordering::Relaxed),
            spans_truncated: c.spans_truncated.load(Ordering::Relaxed),
            fields_truncated: c.fields_truncated.load(Ordering::Relaxed),
        }
    }

    fn process_span(&self, span: &mut StoredSpan, local: &mut ContentCounters) {
        let policy = self.config.policy(span.project.as_str(), span.raw.service_name());
        let reason = if !policy.record {
            Some("disabled")
        } else if !trace_sampled(span.raw.trace_id, policy.sample_basis_points) {
            Some("sampled_out")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                if remove_content(span) {
                    span.raw.attributes.push(KeyValue::string(CONTENT_REMOVED_ATTR, reason));
                    span.view.flags.content_removed = true;
                    if reason == "disabled" {
                        local.spans_removed_disabled += 1;
                    } else {
                        local.spans_removed_sampled_out += 1;
                    }
                }
            }
            None => {
                if let Some(max) = policy.max_field_bytes {
                    let n_fields = truncate_content(span, max);
                    if n_fields > 0 {
                        span.view.flags.content_truncated = true;
                        local.spans_truncated += 1;
                        local.fields_truncated += n_fields;
                    }
                }
            }
        }
    }
}

impl Processor for ContentProcessor {
    fn name(&self) -> &'static str {
        "content"
    }

    fn process(&self, spans: &mut Vec<StoredSpan>) {
        let mut local = ContentCounters::default();
        for span in spans.iter_mut() {
            self.process_span(span, &mut local);
        }
        let c = &self.counters;
        c.spans.fetch_add(spans.len() as u64, Ordering::Relaxed);
        c.spans_removed_disabled.fetch_add(local.spans_removed_disabled, Ordering::Relaxed);
        c.spans_removed_sampled_out.fetch_add(local.spans_removed_sampled_out, Ordering::Relaxed);
        c.spans_truncated.fetch_add(local.spans_truncated, Ordering::Relaxed);
        c.fields_truncated.fetch_add(local.fields_truncated, Ordering::Relaxed);
    }
}

/// A well-mixed 64-bit hash of a trace id, the same on every node and every run. Trace ids from
/// OTel SDKs are random, but not every sender's are, so the bytes are mixed rather than read.
pub fn trace_hash(trace_id: TraceId) -> u64 {
    let bytes = trace_id.as_bytes();
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&bytes[..8]);
    lo.copy_from_slice(&bytes[8..]);
    let mix = |mut z: u64| {
        // The splitmix64 finalizer.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    mix(mix(u64::from_be_bytes(hi)) ^ u64::from_be_bytes(lo))
}

/// Whether a trace falls in a sample of `basis_points` hundredths of a percent.
pub fn trace_sampled(trace_id: TraceId, basis_points: u32) -> bool {
    if basis_points >= 10_000 {
        return true;
    }
    trace_hash(trace_id) % 10_000 < u64::from(basis_points)
}

/// Removes every content field from the raw span and the view; true when anything was there.
/// Used by the content policy, by retention's `Structure` tier and by erasure.
pub fn remove_content(span: &mut StoredSpan) -> bool {
    let raw = &mut span.raw;
    let n_before = raw.attributes.len();
    raw.attributes.retain(|kv| !is_content_key(&kv.key));
    let mut removed = raw.attributes.len() != n_before;
    for event in &mut raw.events {
        let n_before = event.attributes.len();
        let name = &event.name;
        event.attributes.retain(|kv| !is_content_event_key(name, &kv.key));
        removed |= event.attributes.len() != n_before;
    }
    let view = &mut span.view;
    removed |= view.has_content() || view.documents.iter().any(|d| d.content.is_some());
    view.system_instructions.clear();
    view.input_messages.clear();
    view.output_messages.clear();
    view.input_text = None;
    view.output_text = None;
    for document in &mut view.documents {
        document.content = None;
    }
    removed
}

/// Cuts every content field longer than `max` bytes; returns how many were cut.
fn truncate_content(span: &mut StoredSpan, max: usize) -> u64 {
    let mut n = 0;
    for kv in &mut span.raw.attributes {
        if is_content_key(&kv.key) {
            n += truncate_any(&mut kv.value, max);
        }
    }
    for event in &mut span.raw.events {
        for kv in &mut event.attributes {
            if is_content_event_key(&event.name, &kv.key) {
                n += truncate_any(&mut kv.value, max);
            }
        }
    }
    n + truncate_view(&mut span.view, max)
}

fn truncate_view(view: &mut LlmView, max: usize) -> u64 {
    let mut n = 0;
    n += truncate_parts(&mut view.system_instructions, max);
    for message in view.input_messages.iter_mut().chain(&mut view.output_messages) {
        n += truncate_parts(&mut message.parts, max);
    }
    for text in [&mut view.input_text, &mut view.output_text].into_iter().flatten() {
        n += u64::from(truncate_string(text, max));
    }
    for document in &mut view.documents {
        if let Some(text) = &mut document.content {
            n += u64::from(truncate_string(text, max));
        }
    }
    n
}

fn truncate_parts(parts: &mut [Part], max: usize) -> u64 {
    let mut n = 0;
    for part in parts {
        match part {
            Part::Text { content } | Part::Reasoning { content } => {
                n += u64::from(truncate_string(content, max));
            }
            Part::ToolCall { arguments, .. } => n += truncate_json(arguments, max),
            Part::ToolCallResponse { response, .. } => n += truncate_json(response, max),
            Part::Media { content, .. } => {
                // Inline media is base64; a cut would leave garbage, so oversized media is
                // dropped whole (its modality, mime type and uri stay).
                if content.as_ref().is_some_and(|c| c.len() > max) {
                    *content = None;
                    n += 1;
                }
            }
            Part::Other { value } => n += truncate_json(value, max),
        }
    }
    n
}

/// Truncates the string leaves of a JSON value.
fn truncate_json(value: &mut serde_json::Value, max: usize) -> u64 {
    match value {
        serde_json::Value::String(text) => u64::from(truncate_string(text, max)),
        serde_json::Value::Array(values) => values.iter_mut().map(|v| truncate_json(v, max)).sum(),
        serde_json::Value::Object(map) => map.values_mut().map(|v| truncate_json(v, max)).sum(),
        _ => 0,
    }
}

/// Truncates the string leaves of an attribute value. A string holding a JSON document (as
/// `gen_ai.input.messages` often is) has its leaves cut instead, so it stays valid JSON and the
/// view can still be rebuilt from it.
fn truncate_any(value: &mut AnyValue, max: usize) -> u64 {
    match value {
        AnyValue::String(text) => {
            if text.len() <= max {
                return 0;
            }
            if text.starts_with(['[', '{'])
                && let Ok(mut json) = serde_json::from_str::<serde_json::Value>(text)
            {
                let n = truncate_json(&mut json, max);
                if n > 0 {
                    *text = json.to_string();
                }
                return n;
            }
            u64::from(truncate_string(text, max))
        }
        AnyValue::Array(values) => values.iter_mut().map(|v| truncate_any(v, max)).sum(),
        AnyValue::KvList(kvs) => kvs.iter_mut().map(|kv| truncate_any(&mut kv.value, max)).sum(),
        _ => 0,
    }
}

/// Cuts `text` to at most `max` bytes (on a character boundary) and appends the marker.
fn truncate_string(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let n_removed = text.len() - cut;
    text.truncate(cut);
    text.push_str(&format!("…[truncated {n_removed} bytes]"));
    true
}
