//! Tests of the `fingerprint` processor: golden files in `test_data/`, and the properties the
//! fingerprints exist for (a retry has the input fingerprint of the original; one system prompt
//! has one system fingerprint however it is carried).

use super::FingerprintProcessor;
use crate::golden::{check_dir, golden_dir};

#[test]
fn golden() {
    check_dir(&golden_dir("fingerprint"), |_| Box::new(FingerprintProcessor::new()));
}

#[test]
fn retries_and_templates_share_fingerprints() {
    let text =
        std::fs::read_to_string(golden_dir("fingerprint").join("messages.in.json")).expect("input");
    let mut spans: Vec<model::StoredSpan> = serde_json::from_str(&text).expect("spans");
    let processor = FingerprintProcessor::new();
    crate::Processor::process(&processor, &mut spans);
    let input = |i: usize| spans[i].view.input_fingerprint.clone();
    let system = |i: usize| spans[i].view.system_fingerprint.clone();
    assert_eq!(input(0), input(1), "a retry with a new tool call id is the same input");
    assert_ne!(input(0), input(2));
    assert_eq!(system(0), system(2), "same system prompt in messages");
    assert_eq!(system(0), system(3), "same system prompt as instructions");
    assert!(input(4).is_some() && system(4).is_none());
    assert!(input(5).is_none() && system(5).is_none());
    let counters = processor.counters();
    assert_eq!((counters.spans, counters.spans_input, counters.spans_system), (6, 5, 4));
}
