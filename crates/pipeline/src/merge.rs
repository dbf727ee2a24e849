//! Span events that arrive apart from their spans (GenAI events sent as OTLP log records) and
//! how they become events of their stored span.
//!
//! A span and its events may arrive in either order, over different requests. Both kinds of
//! write go through the one writer task, so they are serialized, and after each write the
//! writer merges what can be merged:
//!
//! 1. Events are first processed like spans (redaction, content policy, ...: see
//!    [`process_events`]), so what is saved is what a span event would have become.
//! 2. The writer saves them (`Store::put_span_events`): a 2xx means they are durable.
//! 3. After every write (of spans or of events), [`merge_saved_events`] looks up the saved
//!    events of the spans just written (or of the spans the events name), appends those not
//!    there yet to each stored span's raw events, derives the view again and runs the
//!    processors (as `loupe reindex` does), replaces the span (`Store::rewrite_spans`), and
//!    deletes the saved events. Events whose span is not stored yet stay saved until it is.
//!
//! The merge is idempotent: an event equal to one the span already has is not added again, so a
//! retried export, or a merge interrupted between the rewrite and the delete, adds nothing twice.
//! Because the merged events are in the raw span, `loupe reindex` keeps them.

use std::collections::{BTreeMap, BTreeSet};

use model::{ProjectId, RawSpan, SpanEvent, SpanId, StoredSpan, TraceId};
use store::{RetentionTier, Store};

use crate::ProcessorChain;

/// Runs the processors over events the way they would run over the same events on their span:
/// the events of each span are put on a stand-in span, processed, and taken back.
pub(crate) fn process_events(
    processors: &ProcessorChain,
    project: &ProjectId,
    events: Vec<SpanEvent>,
) -> Vec<SpanEvent> {
    let mut by_span: BTreeMap<(TraceId, SpanId), Vec<model::Event>> = BTreeMap::new();
    for it in events {
        by_span.entry((it.trace_id, it.span_id)).or_default().push(it.event);
    }
    let mut stand_ins: Vec<StoredSpan> = by_span
        .into_iter()
        .map(|((trace_id, span_id), events)| {
            let start = events.iter().map(|e| e.time_unix_nano).min().unwrap_or(0);
            let end = events.iter().map(|e| e.time_unix_nano).max().unwrap_or(0);
            let raw = RawSpan { events, ..RawSpan::new(trace_id, span_id, "", start, end) };
            let view = normalize::derive_view(&raw);
            StoredSpan { project: project.clone(), raw, view }
        })
        .collect();
    processors.process(&mut stand_ins);
    stand_ins
        .into_iter()
        .flat_map(|span| {
            let (trace_id, span_id) = (span.raw.trace_id, span.raw.span_id);
            span.raw.events.into_iter().map(move |event| SpanEvent { trace_id, span_id, event })
        })
        .collect()
}

/// Merges the saved events of these spans into those of them that are stored. Returns how many
/// spans were rewritten.
pub(crate) async fn merge_saved_events(
    store: &dyn Store,
    processors: &ProcessorChain,
    spans: BTreeMap<ProjectId, BTreeSet<(TraceId, SpanId)>>,
) -> store::Result<u64> {
    let mut res = 0;
    for (project, keys) in spans {
        let keys: Vec<(TraceId, SpanId)> = keys.into_iter().collect();
        let saved = store.span_events(&project, &keys).await?;
        if saved.is_empty() {
            continue;
        }
        let mut by_span: BTreeMap<(TraceId, SpanId), Vec<model::Event>> = BTreeMap::new();
        for it in saved {
            by_span.entry((it.trace_id, it.span_id)).or_default().push(it.event);
        }
        let trace_ids: BTreeSet<TraceId> = by_span.keys().map(|(trace_id, _)| *trace_id).collect();
        let mut merged: Vec<StoredSpan> = Vec::new();
        let mut found: Vec<(TraceId, SpanId)> = Vec::new();
        for trace_id in trace_ids {
            for span in store.get_trace(&project, trace_id).await? {
                let key = (span.raw.trace_id, span.raw.span_id);
                let Some(events) = by_span.get(&key) else { continue };
                found.push(key);
                let mut raw = span.raw;
                let n_before = raw.events.len();
                for event in events {
                    if !raw.events.contains(event) {
                        raw.events.push(event.clone());
                    }
                }
                if raw.events.len() == n_before {
                    continue;
                }
                raw.events.sort_by_key(|event| event.time_unix_nano);
                let view = normalize::derive_view(&raw);
                merged.push(StoredSpan { project: project.clone(), raw, view });
            }
        }
        if !merged.is_empty() {
            processors.process(&mut merged);
            res += store.rewrite_spans(&merged, RetentionTier::Full).await?;
        }
        if !found.is_empty() {
            store.delete_span_events(&project, &found).await?;
        }
    }
    Ok(res)
}
