//! Tests for `export-trace`: the shared fixture gives two cases, corrections add a check,
//! traces without content fail with a message saying why and how to fix it.

use expect_test::{Expect, expect, expect_file};
use model::{
    Feedback, FeedbackContent, FeedbackSource, FeedbackTarget, Message, ProjectId, SpanId,
    StoredSpan, TraceId,
};

use crate::export_trace;

/// 2026-03-19T12:00:00Z.
const EXPORTED_AT_NS: u64 = 1_773_921_600_000_000_000;

fn fixture_spans() -> Vec<StoredSpan> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/export_trace/trace-48f.spans.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn trace_id() -> TraceId {
    TraceId::from_hex("48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f").unwrap()
}

fn correction_on(span_id: &str, text: &str) -> Feedback {
    Feedback {
        id: "fb_test".to_owned(),
        project: ProjectId::default_project(),
        target: FeedbackTarget::Span {
            span_id: SpanId::from_hex(span_id).unwrap(),
            trace_id: None,
        },
        content: FeedbackContent {
            correction: Some(vec![Message::text("assistant", text)]),
            ..FeedbackContent::default()
        },
        source: FeedbackSource::Human,
        author: Some("ana".to_owned()),
        created_ns: 1,
        updated_ns: 1,
        history: Vec::new(),
    }
}

/// Renders an export (or its error) with its file name and warnings.
fn render(spans: &[StoredSpan], feedback: &[Feedback]) -> String {
    match export_trace(trace_id(), spans, feedback, EXPORTED_AT_NS) {
        Ok(export) => {
            let mut res = format!("file: {}\ncases: {}\n", export.file_name, export.n_cases);
            for warning in &export.warnings {
                res.push_str(&format!("warning: {warning}\n"));
            }
            res.push_str("---\n");
            res.push_str(&export.yaml);
            res
        }
        Err(e) => format!("error ({:?}): {e}\n", e.code()),
    }
}

#[track_caller]
fn check(spans: &[StoredSpan], feedback: &[Feedback], expect: Expect) {
    expect.assert_eq(&render(spans, feedback));
}

#[test]
fn fixture_gives_two_cases() {
    let spans = fixture_spans();
    let export = export_trace(trace_id(), &spans, &[], EXPORTED_AT_NS).unwrap();
    assert_eq!(export.file_name, "trace-48f9c3e1.eval.yaml");
    assert_eq!(export.n_cases, 2);
    assert!(export.warnings.is_empty());
    expect_file!["../../test_data/export_trace/trace-48f.eval.yaml"].assert_eq(&export.yaml);

    // The file is YAML any reader accepts, with toad-eye's keys in toad-eye's order.
    let suite: serde_norway::Value = serde_norway::from_str(&export.yaml).unwrap();
    let keys: Vec<&str> =
        suite.as_mapping().unwrap().keys().map(|key| key.as_str().unwrap()).collect();
    assert_eq!(keys, ["name", "source", "metadata", "cases"]);
    let cases = suite["cases"].as_sequence().unwrap();
    let ids: Vec<&str> = cases.iter().map(|case| case["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["production-case-2", "production-case-6"]);
    // The answer of the generating call is 173 UTF-16 units long: ceil(173 * 1.5) = 260.
    assert_eq!(cases[1]["assertions"][0]["value"].as_u64(), Some(260));
    assert_eq!(suite["metadata"]["exported_at"].as_str(), Some("2026-03-19T12:00:00.000Z"));
}

#[test]
fn spans_in_any_order_give_the_same_suite() {
    let spans = fixture_spans();
    let mut reversed = spans.clone();
    reversed.reverse();
    assert_eq!(render(&spans, &[]), render(&reversed, &[]));
}

#[test]
fn correction_gives_equals_or_contains() {
    let spans = fixture_spans();
    let short = correction_on("48f0000000000002", "refund late delivery order 4481");
    let long = correction_on(
        "48f0000000000006",
        "Refunds are accepted within 30 days of delivery [pol_refund_v7], and orders delivered \
         more than 7 days late qualify for a full refund [pol_late_delivery_v3]. Order 4481 \
         qualifies.",
    );
    let rendered = render(&spans, &[short, long]);
    let cases = rendered.split("  - id: ").skip(1).collect::<Vec<_>>().join("  - id: ");
    expect![[r#"
        production-case-2
            variables:
              input: "Rewrite the user message as a search query for the policy index.\ni want refund for order 4481, it was late by 2 weeks"
            assertions:
              - type: max_length
                value: 47
              - type: not_contains
                value: i cannot
              - type: not_contains
                value: "i can't"
              - type: not_contains
                value: i am unable
              - type: not_contains
                value: "i'm unable"
              - type: equals
                value: refund late delivery order 4481
            metadata:
              trace_id: "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f"
              span_id: "48f0000000000002"
              model: gpt-4o-mini
              provider: openai
              exported_at: 2026-03-19T12:00:00.000Z
          - id: production-case-6
            variables:
              input: "Policy documents:\n[pol_courtesy_v2_draft] DRAFT - Courtesy clause: late deliveries may be refunded within a 14-day refund window...\n[pol_refund_v7] Refunds are accepted within 30 days of delivery...\n[pol_late_delivery_v3] Orders delivered more than 7 days late qualify for a full refund...\n\nCustomer: i want refund for order 4481, it was late by 2 weeks"
            assertions:
              - type: max_length
                value: 269
              - type: not_contains
                value: i cannot
              - type: not_contains
                value: "i can't"
              - type: not_contains
                value: i am unable
              - type: not_contains
                value: "i'm unable"
              - type: contains
                value: "Refunds are accepted within 30 days of delivery [pol_refund_v7], and orders delivered more than 7 days late qualify for a full refund [pol_late_delivery_v3]. Order 4481 qualifies."
            metadata:
              trace_id: "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f"
              span_id: "48f0000000000006"
              model: claude-3-5-sonnet-20241022
              provider: anthropic
              exported_at: 2026-03-19T12:00:00.000Z
    "#]]
    .assert_eq(&cases);
}

#[test]
fn no_content_says_recording_was_off() {
    let mut spans = fixture_spans();
    for span in &mut spans {
        span.view.input_messages.clear();
        span.view.output_messages.clear();
        span.view.system_instructions.clear();
    }
    check(
        &spans,
        &[],
        expect![[r#"
            error (BadRequest): no exportable spans in trace 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f: content recording was off for its 3 LLM call(s), so no prompt was recorded; to record it, set OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true (or your instrumentation's record-content option) in the application, or send the calls through the Loupe gateway with content recording on, then record the calls again
        "#]],
    );
    for span in &mut spans {
        span.view.flags.content_removed = span.view.operation_name.as_deref() == Some("chat");
    }
    check(
        &spans,
        &[],
        expect![[r#"
            error (BadRequest): no exportable spans in trace 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f: the content of its 3 LLM call(s) was removed by this server's content policy; record content for these calls to export them
        "#]],
    );
    check(
        &[],
        &[],
        expect![[r#"
            error (NotFound): trace 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f not found
        "#]],
    );
}

#[test]
fn hashed_and_redacted_content_warns() {
    let mut spans = fixture_spans();
    let hashed = format!("sha256:{}", "ab".repeat(32));
    spans[1].view.input_messages = vec![Message::text("user", hashed)];
    spans[5].view.flags.redactions.insert("email".to_owned(), 1);
    let rendered = render(&spans, &[]);
    let head: String = rendered.lines().take(4).map(|line| format!("{line}\n")).collect();
    expect![[r#"
        file: trace-48f9c3e1.eval.yaml
        cases: 2
        warning: span 48f0000000000002: content is hashed (sha256:...), so the case's input is a hash, not the original prompt
        warning: span 48f0000000000006: content was redacted, so the case's input differs from the original prompt
    "#]]
    .assert_eq(&head);
}
