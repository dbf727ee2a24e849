//! Tests of span events that arrive apart from their spans: merged into the stored span
//! whichever arrives first, processed (redacted) before they are saved, never added twice, and
//! left saved while their span is missing.

use std::fmt::Write as _;

use expect_test::{Expect, expect};
use model::{Event, KeyValue, ProjectId, RawSpan, SpanEvent, SpanId, TraceId};

use crate::{Batch, EventBatch, Pipeline};

struct Setup {
    pipeline: Pipeline,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = crate::sqlite_test_pipeline(dir.path());
    Setup { pipeline, _dir: dir }
}

fn ids(span: u8) -> (TraceId, SpanId) {
    (TraceId::from_bytes(&[7; 16]).expect("id"), SpanId::from_bytes(&[span; 8]).expect("id"))
}

fn chat_span(span: u8) -> RawSpan {
    let (trace_id, span_id) = ids(span);
    RawSpan {
        kind: model::SpanKind::Client,
        attributes: vec![
            KeyValue::string("gen_ai.operation.name", "chat"),
            KeyValue::string("gen_ai.request.model", "gpt-4o"),
        ],
        ..RawSpan::new(trace_id, span_id, "chat gpt-4o", 1_000, 2_000)
    }
}

fn event(span: u8, name: &str, time: u64, attributes: Vec<KeyValue>) -> SpanEvent {
    let (trace_id, span_id) = ids(span);
    SpanEvent {
        trace_id,
        span_id,
        event: Event {
            time_unix_nano: time,
            name: name.to_owned(),
            attributes,
            dropped_attributes_count: 0,
        },
    }
}

fn conversation(span: u8) -> Vec<SpanEvent> {
    let choice = KeyValue::new(
        "message",
        model::AnyValue::KvList(vec![
            KeyValue::string("role", "assistant"),
            KeyValue::string("content", "Sure, I wrote to you."),
        ]),
    );
    vec![
        event(span, "gen_ai.system.message", 1_100, vec![KeyValue::string("content", "Be brief.")]),
        event(
            span,
            "gen_ai.user.message",
            1_200,
            vec![KeyValue::string("content", "Mail me at jane@example.com")],
        ),
        event(span, "gen_ai.choice", 1_900, vec![KeyValue::int("index", 0), choice]),
    ]
}

async fn submit_span(pipeline: &Pipeline, span: u8) {
    let batch = Batch { project: ProjectId::default_project(), spans: vec![chat_span(span)] };
    pipeline.submit(batch).await.expect("submit span");
}

async fn submit_events(pipeline: &Pipeline, events: Vec<SpanEvent>) {
    let batch = EventBatch { project: ProjectId::default_project(), events };
    pipeline.submit_events(batch).await.expect("submit events");
}

/// The stored trace: per span, its events and the messages of its view; then what is still
/// saved apart.
async fn check(pipeline: &Pipeline, expect: Expect) {
    let project = ProjectId::default_project();
    let store = pipeline.store();
    let spans = store.get_trace(&project, ids(1).0).await.expect("get trace");
    let mut res = String::new();
    for span in &spans {
        let _ = writeln!(res, "span {} ({} events)", span.raw.span_id, span.raw.events.len());
        for part in &span.view.system_instructions {
            let _ = writeln!(res, "  system: {}", serde_json::to_string(part).unwrap_or_default());
        }
        for message in span.view.input_messages.iter().chain(&span.view.output_messages) {
            let _ = writeln!(res, "  {}: {}", message.role, message.text_content());
        }
    }
    let keys = [ids(1), ids(2)];
    let saved = store.span_events(&project, &keys).await.expect("saved events");
    let _ = writeln!(res, "saved apart: {}", saved.len());
    expect.assert_eq(&res);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_their_span_are_merged() {
    let setup = setup();
    submit_span(&setup.pipeline, 1).await;
    submit_events(&setup.pipeline, conversation(1)).await;
    // A retried export adds nothing.
    submit_events(&setup.pipeline, conversation(1)).await;
    check(
        &setup.pipeline,
        expect![[r#"
            span 0101010101010101 (3 events)
              system: Be brief.
              user: Mail me at <email:e_4e046cedb8cc>
              assistant: Sure, I wrote to you.
            saved apart: 0
        "#]],
    )
    .await;
    setup.pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_before_their_span_wait_for_it() {
    let setup = setup();
    submit_events(&setup.pipeline, conversation(1)).await;
    submit_events(&setup.pipeline, conversation(2)[1..2].to_vec()).await;
    check(
        &setup.pipeline,
        expect![[r#"
            saved apart: 4
        "#]],
    )
    .await;
    // What waits is already redacted.
    let project = ProjectId::default_project();
    let saved = setup.pipeline.store().span_events(&project, &[ids(1)]).await.expect("saved");
    let text = serde_json::to_string(&saved).expect("json");
    assert!(!text.contains("jane@example.com"), "{text}");
    submit_span(&setup.pipeline, 1).await;
    check(
        &setup.pipeline,
        expect![[r#"
            span 0101010101010101 (3 events)
              system: Be brief.
              user: Mail me at <email:e_4e046cedb8cc>
              assistant: Sure, I wrote to you.
            saved apart: 1
        "#]],
    )
    .await;
    setup.pipeline.shutdown().await;
}
