//! Tests for items: built from the fixture's spans, stable ids and splits, fingerprints that
//! ignore key order, and merging of duplicate inputs.

use expect_test::expect;
use model::{
    DatasetItem, ExpectedSource, Feedback, FeedbackContent, FeedbackSource, FeedbackTarget,
    ItemInput, Message, ProjectId, Split, StoredSpan,
};

use crate::{SplitConfig, assign_split, dedup, input_fingerprint, item_from_span};

fn fixture_spans() -> Vec<StoredSpan> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/test_data/export_trace/trace-48f.spans.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn correction(span: &StoredSpan, text: &str) -> Feedback {
    Feedback {
        id: "fb_01".to_owned(),
        project: ProjectId::default_project(),
        target: FeedbackTarget::Span {
            span_id: span.raw.span_id,
            trace_id: Some(span.raw.trace_id),
        },
        content: FeedbackContent {
            correction: Some(vec![Message::text("assistant", text)]),
            tags: vec!["refund".to_owned()],
            rating: Some(model::Rating::Down),
            ..FeedbackContent::default()
        },
        source: FeedbackSource::Human,
        author: None,
        created_ns: 1,
        updated_ns: 1,
        history: Vec::new(),
    }
}

#[test]
fn item_from_corrected_span() {
    let spans = fixture_spans();
    let generate = &spans[5];
    let feedback = correction(generate, "Refunds are accepted within 30 days [pol_refund_v7].");
    let item = item_from_span(generate, Some(&feedback), SplitConfig::default()).unwrap();
    expect![[r#"
        {
          "id": "itm_09a3aa0b1a1c5baf8b8d241c",
          "input": {
            "system": [
              {
                "type": "text",
                "content": "You are a refund assistant. Answer only from the policy documents provided. Cite the policy id."
              }
            ],
            "messages": [
              {
                "role": "user",
                "parts": [
                  {
                    "type": "text",
                    "content": "Policy documents:\n[pol_courtesy_v2_draft] DRAFT - Courtesy clause: late deliveries may be refunded within a 14-day refund window...\n[pol_refund_v7] Refunds are accepted within 30 days of delivery...\n[pol_late_delivery_v3] Orders delivered more than 7 days late qualify for a full refund...\n\nCustomer: i want refund for order 4481, it was late by 2 weeks"
                  }
                ]
              }
            ]
          },
          "expected": [
            {
              "role": "assistant",
              "parts": [
                {
                  "type": "text",
                  "content": "Refunds are accepted within 30 days [pol_refund_v7]."
                }
              ]
            }
          ],
          "expected_source": "correction",
          "recorded": [
            {
              "role": "assistant",
              "parts": [
                {
                  "type": "text",
                  "content": "You are eligible for a refund of ₹1,250 on order 4481. Our refund window is 14 days from delivery; since your delivery was late, this is processed under the courtesy clause."
                }
              ],
              "finish_reason": "end_turn"
            }
          ],
          "metadata": {
            "model": "claude-3-5-sonnet-20241022",
            "operation": "refund_chat.turn",
            "provider": "anthropic",
            "rating": 1,
            "service": "refund-bot",
            "span_name": "llm.generate",
            "tags": [
              "refund"
            ]
          },
          "source": {
            "trace_id": "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f",
            "span_id": "48f0000000000006",
            "feedback_id": "fb_01"
          },
          "input_fingerprint": "f2cc373c62801b62eb254de022d2cf44c66ab819ee8b7b28107740c720e27b43",
          "split": "test"
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&item).unwrap());

    // Without feedback the recorded output is expected, and the id (so the split) is the same.
    let plain = item_from_span(generate, None, SplitConfig::default()).unwrap();
    assert_eq!(plain.id, item.id);
    assert_eq!(plain.expected_source, ExpectedSource::Recorded);
    assert_eq!(plain.expected, item.recorded);
    assert!(plain.recorded.is_empty());

    // Spans without recorded input give no item: the judge, the embedding, the tool.
    let n_items = spans
        .iter()
        .filter(|span| item_from_span(span, None, SplitConfig::default()).is_some())
        .count();
    assert_eq!(n_items, 3, "the root's input.value, the rewrite and the generation");
}

#[test]
fn splits_are_deterministic_and_proportional() {
    let config = SplitConfig::default();
    let mut counts = [0u32; 3];
    for i in 0..10_000 {
        let id = format!("itm_{i:024x}");
        let split = assign_split(&id, config);
        assert_eq!(split, assign_split(&id, config));
        counts[match split {
            Split::Train => 0,
            Split::Validation => 1,
            Split::Test => 2,
        }] += 1;
    }
    expect![[r#"
        [
            7975,
            1023,
            1002,
        ]
    "#]]
    .assert_debug_eq(&counts);
    let all_train = SplitConfig { train_percent: 100, validation_percent: 0 };
    assert_eq!(assign_split("itm_anything", all_train), Split::Train);
}

#[test]
fn fingerprint_ignores_key_order() {
    let a: ItemInput = serde_json::from_str(
        r#"{"messages": [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}],
            "tools": [{"name": "f", "parameters": {"type": "object", "properties": {}}}]}"#,
    )
    .unwrap();
    let b: ItemInput = serde_json::from_str(
        r#"{"tools": [{"parameters": {"properties": {}, "type": "object"}, "name": "f"}],
            "messages": [{"parts": [{"content": "hi", "type": "text"}], "role": "user"}]}"#,
    )
    .unwrap();
    assert_eq!(input_fingerprint(&a), input_fingerprint(&b));
    let mut c = a.clone();
    c.messages[0] = Message::text("user", "hi!");
    assert_ne!(input_fingerprint(&a), input_fingerprint(&c));
}

#[test]
fn duplicates_merge_and_corrections_win() {
    let spans = fixture_spans();
    let generate = &spans[5];
    let mut again = generate.clone();
    again.raw.span_id = model::SpanId::from_hex("48f00000000000aa").unwrap();
    let mut corrected = generate.clone();
    corrected.raw.span_id = model::SpanId::from_hex("48f00000000000bb").unwrap();
    let feedback = correction(&corrected, "Refunds are accepted within 30 days.");
    let rewrite = &spans[1];

    let items: Vec<DatasetItem> = [
        item_from_span(generate, None, SplitConfig::default()),
        item_from_span(rewrite, None, SplitConfig::default()),
        item_from_span(&again, None, SplitConfig::default()),
        item_from_span(&corrected, Some(&feedback), SplitConfig::default()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let (merged, n_merged) = dedup(items);
    let rendered: Vec<String> = merged
        .iter()
        .map(|item| {
            let merged_from: Vec<String> =
                item.merged_from.iter().map(|source| source.span_id.to_hex()).collect();
            format!(
                "{} {:?} from={} merged_from={merged_from:?}",
                item.id,
                item.expected_source,
                item.source.as_ref().unwrap().span_id
            )
        })
        .collect();
    assert_eq!(n_merged, 2);
    expect![[r#"
        [
            "itm_b4fb381c235bd765e46aba2d Correction from=48f00000000000bb merged_from=[\"48f00000000000aa\", \"48f0000000000006\"]",
            "itm_1d2344d2331a33aa924aaab7 Recorded from=48f0000000000002 merged_from=[]",
        ]
    "#]]
    .assert_debug_eq(&rendered);
}
