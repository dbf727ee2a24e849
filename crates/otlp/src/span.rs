//! Per-span validation shared by the protobuf and JSON readers: id lengths and the all-zero
//! rule, the parent id, timestamps. Each failure is a sentence naming what was wrong.

use model::{SpanId, TraceId};

/// The checked identity and timing of one span.
pub(crate) struct CheckedSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
}

/// Checks the ids and times of a span. An empty or all-zero parent id means "no parent".
pub(crate) fn check_span(
    trace_id: &[u8],
    span_id: &[u8],
    parent_span_id: &[u8],
    start_time_unix_nano: u64,
    end_time_unix_nano: u64,
) -> Result<CheckedSpan, String> {
    let trace_id = TraceId::from_bytes(trace_id).map_err(|e| e.to_string())?;
    let span_id = SpanId::from_bytes(span_id).map_err(|e| e.to_string())?;
    let parent_span_id = if parent_span_id.iter().all(|b| *b == 0) {
        if !parent_span_id.is_empty() && parent_span_id.len() != SpanId::LEN {
            return Err(format!(
                "parent span id must be 8 bytes (16 hex characters) or empty, got {} bytes",
                parent_span_id.len()
            ));
        }
        None
    } else {
        Some(SpanId::from_bytes(parent_span_id).map_err(|e| format!("parent {e}"))?)
    };
    if start_time_unix_nano == 0 {
        return Err("start time is missing (0)".to_owned());
    }
    if end_time_unix_nano < start_time_unix_nano {
        return Err(format!(
            "end time {end_time_unix_nano} is before start time {start_time_unix_nano}"
        ));
    }
    Ok(CheckedSpan { trace_id, span_id, parent_span_id })
}

/// A link's ids, or `None` when they are not valid ids (the link is then dropped and counted in
/// the span's `dropped_links_count`, as OTLP does for links a sender could not keep).
pub(crate) fn check_link(trace_id: &[u8], span_id: &[u8]) -> Option<(TraceId, SpanId)> {
    Some((TraceId::from_bytes(trace_id).ok()?, SpanId::from_bytes(span_id).ok()?))
}
