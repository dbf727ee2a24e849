//! Backend-neutral checks for span events saved apart from their spans (`put_span_events`,
//! `span_events`, `delete_span_events`). Backends call [`run_all`] from their tests, next to
//! [`super::run_all`].
//!
//! The checks pin:
//! - saved events come back for exactly the spans asked for, in the order they were saved,
//!   whether or not the span is stored, and asking twice for a span returns its events once;
//! - `delete_span_events` deletes the events of the spans given and no others;
//! - deleting a trace (`delete_traces`) deletes its saved events, and `delete_traces_before`
//!   deletes the saved events older than its cutoff;
//! - nothing of one project is read or deleted through another.

use std::future::Future;

use model::{Event, KeyValue, SpanEvent};

use super::{T0, project, span, span_id, trace_id, write};
use crate::Store;

/// Runs every span-event check against stores made by `make_store`.
pub async fn run_all<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn Store>>,
{
    span_events_round_trip(&*make_store().await).await;
}

fn event(trace: u64, span: u64, name: &str, content: &str) -> SpanEvent {
    SpanEvent {
        trace_id: trace_id(trace),
        span_id: span_id(span),
        event: Event {
            time_unix_nano: T0 + span,
            name: name.to_owned(),
            attributes: vec![KeyValue::string("content", content)],
            dropped_attributes_count: 0,
        },
    }
}

fn contents(events: &[SpanEvent]) -> Vec<String> {
    events
        .iter()
        .map(|it| {
            let content = model::attr_str(&it.event.attributes, "content").unwrap_or_default();
            format!("{}:{content}", it.event.name)
        })
        .collect()
}

pub async fn span_events_round_trip(store: &dyn Store) {
    let (a, b) = (project("default"), project("other"));
    // Asked before any event is saved: a backend that remembers the table was empty must
    // still see what is saved next.
    assert!(store.span_events(&a, &[(trace_id(1), span_id(2))]).await.expect("get").is_empty());
    let batch = [
        event(1, 2, "gen_ai.user.message", "hi"),
        event(1, 3, "gen_ai.user.message", "elsewhere"),
        event(1, 2, "gen_ai.choice", "hello"),
    ];
    store.put_span_events(&a, &batch).await.expect("put events");
    store
        .put_span_events(&a, &[event(1, 2, "gen_ai.choice", "again")])
        .await
        .expect("put more events");
    store
        .put_span_events(&b, &[event(1, 2, "gen_ai.user.message", "other project")])
        .await
        .expect("put other project's events");
    let key = (trace_id(1), span_id(2));
    let got = store.span_events(&a, &[key, key]).await.expect("get events");
    assert_eq!(
        contents(&got),
        ["gen_ai.user.message:hi", "gen_ai.choice:hello", "gen_ai.choice:again"],
        "in saved order, once per span"
    );
    assert_eq!(got[0], batch[0], "events round-trip");
    let got = store.span_events(&b, &[key]).await.expect("get other project's events");
    assert_eq!(contents(&got), ["gen_ai.user.message:other project"]);
    assert!(store.span_events(&a, &[(trace_id(9), span_id(2))]).await.expect("get").is_empty());

    store.delete_span_events(&a, &[key]).await.expect("delete events");
    assert!(store.span_events(&a, &[key]).await.expect("get after delete").is_empty());
    let other_span = store.span_events(&a, &[(trace_id(1), span_id(3))]).await.expect("get");
    assert_eq!(contents(&other_span), ["gen_ai.user.message:elsewhere"], "other spans kept");
    assert_eq!(store.span_events(&b, &[key]).await.expect("get").len(), 1, "projects isolated");

    // Deleting a trace deletes its saved events. A later trace's span is written last (a
    // backend may postpone deleting the trace holding its newest span).
    write(store, &[span("default", 1, 3, None, "call", 0, 10)]).await;
    write(store, &[span("default", 2, 1, None, "later", 20, 10)]).await;
    store.delete_traces(&a, &[trace_id(1)]).await.expect("delete trace");
    assert!(store.span_events(&a, &[(trace_id(1), span_id(3))]).await.expect("get").is_empty());
    assert_eq!(store.span_events(&b, &[key]).await.expect("get").len(), 1, "projects isolated");

    // Retention deletes saved events older than its cutoff, whose span never came.
    let waiting = [event(3, 1, "gen_ai.user.message", "old"), event(3, 9, "gen_ai.choice", "new")];
    store.put_span_events(&a, &waiting).await.expect("put events");
    store.delete_traces_before(&a, T0 + 5, 100).await.expect("retention");
    let keys = [(trace_id(3), span_id(1)), (trace_id(3), span_id(9))];
    let left = store.span_events(&a, &keys).await.expect("get");
    assert_eq!(contents(&left), ["gen_ai.choice:new"], "only the old event deleted");
    assert_eq!(store.span_events(&b, &[key]).await.expect("get").len(), 1, "projects isolated");
}
