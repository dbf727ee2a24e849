//! Tests of the `redact` processor: golden files in `test_data/` (`NAME.toml` is the
//! `[pipeline.redact]` section) and inline cases for one string at a time, idempotence,
//! user-id hashing for the API, counters and config errors.

use expect_test::{Expect, expect};
use model::{KeyValue, LlmView, ProjectId, RawSpan, SpanId, SpanKind, StoredSpan, TraceId};

use super::{RawRedactConfig, RedactConfig, RedactProcessor};
use crate::Processor;
use crate::golden::{check_dir, golden_dir};

const KEY: &str = "key = \"test-key-0123456789abcdef\"\n";

fn processor(toml_text: &str) -> RedactProcessor {
    let raw: RawRedactConfig = toml::from_str(toml_text).expect("redact config parses");
    RedactProcessor::new(RedactConfig::from_raw(&raw).expect("redact config is valid"))
}

fn span_with(value: &str) -> StoredSpan {
    let raw = RawSpan {
        kind: SpanKind::Internal,
        attributes: vec![KeyValue::string("text", value)],
        ..RawSpan::new(
            TraceId::from_hex("48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f").expect("valid id"),
            SpanId::from_hex("48f0000000000001").expect("valid id"),
            "span",
            1,
            2,
        )
    };
    StoredSpan { project: ProjectId::default_project(), raw, view: LlmView::default() }
}

/// Redacts one string with the default detectors.
#[track_caller]
fn check(text: &str, expect: Expect) {
    let processor = processor(KEY);
    let mut spans = vec![span_with(text)];
    processor.process(&mut spans);
    let res = spans[0].raw.attributes[0].value.to_text();
    expect.assert_eq(&res);
}

#[test]
fn golden() {
    check_dir(&golden_dir("redact"), |toml_text| Box::new(processor(toml_text)));
}

#[test]
fn smoke() {
    check("mail a@b.io now", expect!["mail <email:e_a24c189b5d72> now"]);
}

#[test]
fn cards_need_a_valid_checksum_and_clear_boundaries() {
    check(
        "4111111111111111 x4111111111111111 4111-1111-1111-1112 378282246310005",
        expect![
            "<card:c_d8b9f30c60a9> x4111111111111111 4111-1111-1111-1112 <card:c_629f80998fa5>"
        ],
    );
}

#[test]
fn ip_addresses() {
    check(
        "10.0.0.1, 1.2.3.4.5, 256.1.1.1, ::1, fe80::1%eth0, abc::def, 12:30:45",
        expect![
            "<ipv4:i_ed2e2afaa884>, 1.2.3.4.5, 256.1.1.1, <ipv6:i_01accee9c2f4>, <ipv6:i_df76a828b63f>%eth0, abc::def, 12:30:45"
        ],
    );
}

#[test]
fn phones_need_enough_digits() {
    check(
        "+1 (415) 555-0132, +33 1 23 45 67 89, 555-0132, +12",
        expect!["<phone:p_371d6da6963a>, <phone:p_6310d2d62d1f>, 555-0132, +12"],
    );
}

#[test]
fn processing_twice_changes_nothing_more() {
    let processor = processor(KEY);
    let mut spans = vec![span_with("jane@example.com")];
    spans[0].raw.attributes.push(KeyValue::string("user.id", "alice"));
    spans[0].view.user_id = Some("alice".to_owned());
    processor.process(&mut spans);
    let once = spans.clone();
    processor.process(&mut spans);
    assert_eq!(once[0].raw.attributes[..2], spans[0].raw.attributes[..2]);
    assert_eq!(once[0].view.user_id, spans[0].view.user_id);
}

#[test]
fn api_can_compute_a_users_hash() {
    let processor = processor(KEY);
    let mut spans = vec![span_with("x")];
    spans[0].raw.attributes.push(KeyValue::string("user.id", "alice"));
    spans[0].view.user_id = Some("alice".to_owned());
    processor.process(&mut spans);
    let hashed = processor.hash_user_id("default", "alice");
    assert_eq!(spans[0].view.user_id.as_deref(), Some(hashed.as_str()));
    assert_eq!(model::attr_str(&spans[0].raw.attributes, "user.id"), Some(hashed.as_str()));
    assert_ne!(processor.hash_user_id("other", "alice"), hashed, "keys differ per project");
}

#[test]
fn known_user_ids_are_replaced_in_text_as_whole_words() {
    let processor = processor(KEY);
    let body = r#"{"user":"cust-4821","note":"not cust-48210 nor xcust-4821, but cust-4821."}"#;
    let mut spans = vec![span_with(body)];
    spans[0].raw.attributes.push(KeyValue::string("user.id", "cust-4821"));
    processor.process(&mut spans);
    let hashed = processor.hash_user_id("default", "cust-4821");
    let text = spans[0].raw.attributes[0].value.to_text();
    assert_eq!(text.matches(hashed.as_str()).count(), 2, "{text}");
    assert!(text.contains("cust-48210") && text.contains("xcust-4821"), "{text}");
    assert_eq!(spans[0].view.flags.redactions.get("user_id"), Some(&3));

    // Ids too short to search for are hashed as attributes only.
    let mut spans = vec![span_with("bob and 42 more")];
    spans[0].raw.attributes.push(KeyValue::string("user.id", "42"));
    processor.process(&mut spans);
    assert_eq!(spans[0].raw.attributes[0].value.to_text(), "bob and 42 more");
}

#[test]
fn counters_count_spans_and_kinds() {
    let processor = processor(KEY);
    let mut spans = vec![span_with("a@b.io and c@d.io"), span_with("nothing here")];
    processor.process(&mut spans);
    let counters = processor.counters();
    assert_eq!((counters.spans, counters.spans_redacted), (2, 1));
    assert_eq!(counters.by_kind.get("email"), Some(&2));
    expect![[r#"
        {
            "email": 2,
        }
    "#]]
    .assert_debug_eq(&spans[0].view.flags.redactions);
}

#[test]
fn config_errors() {
    let errors: Vec<String> = [
        "",
        "key = \"short\"",
        "key = \"test-key-0123456789abcdef\"\ndetectors = [\"emial\"]",
        "key = \"test-key-0123456789abcdef\"\n[[patterns]]\nkind = \"x\"\nregex = \"(\"",
        "key = \"test-key-0123456789abcdef\"\n[[patterns]]\nkind = \"x\"\nregex = \"a*\"",
        "key = \"test-key-0123456789abcdef\"\n[[patterns]]\nkind = \"bad kind\"\nregex = \"a\"",
        "key = \"test-key-0123456789abcdef\"\nhash_chars = 2",
    ]
    .iter()
    .map(|text| {
        let raw: RawRedactConfig = toml::from_str(text).expect("parses");
        RedactConfig::from_raw(&raw).err().map(|e| e.to_string()).unwrap_or_default()
    })
    .collect();
    expect![[r#"
        [
            "invalid pipeline config: redact.key is not set (the app sets a generated one by default)",
            "invalid pipeline config: redact.key must be at least 16 bytes long",
            "invalid pipeline config: redact.detectors: unknown detector \"emial\"; known: anthropic_key, openai_key, aws_key, github_token, slack_token, google_key, jwt, bearer, email, iban, card, ssn, phone, ipv4, ipv6",
            "invalid pipeline config: redact.patterns (x): regex parse error:\n    (\n    ^\nerror: unclosed group",
            "invalid pipeline config: redact.patterns (x): the pattern matches empty text",
            "invalid pipeline config: redact: kind \"bad kind\" must be 1 to 32 letters, digits or '_'",
            "invalid pipeline config: redact.hash_chars must be between 4 and 64, got 2",
        ]
    "#]].assert_debug_eq(&errors);
}

/// Long texts take the path that checks each detector's needs before its regex; it must redact
/// exactly what the regex set finds in short ones.
#[test]
fn long_texts_are_redacted_like_short_ones() {
    let processor = processor(KEY);
    let texts = [
        "mail a@b.io now",
        "4111111111111111 x4111111111111111 4111-1111-1111-1112 378282246310005",
        "4111 1111 1111 1111 and 4111-1111-1111-1111, 5555555555554444",
        "10.0.0.1, 1.2.3.4.5, 256.1.1.1, ::1, fe80::1%eth0, abc::def, 12:30:45",
        "2001:db8:85a3::8a2e:370:7334 and ::ffff:192.0.2.128",
        "+1 (415) 555-0132, +33 1 23 45 67 89, 555-0132, +12",
        "(415) 555-0132 or 415.555.0132",
        "ssn 123-45-6789, not 666-45-6789",
        "DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432",
        "Authorization: Bearer abcdefghijklmnop1234 and BEARER\tqrstuvwxyz0123456789",
        "sk-ant-abcdefghijklmnopqrstuvwxyz sk-proj-abcdefghijklmnopqrstuvwx AKIAABCDEFGHIJKLMNOP",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789 xoxb-1234567890-abc AIzaSyA1234567890abcdefghijklmnopqrstu",
        "eyJhbGciOi.eyJzdWIiOi.abc jane.doe+x@mail.example.co.uk",
        // Past the first 64 bytes of the text.
        "a card in the middle of a sentence, just past the first block: 4111 1111 1111 1111.",
        "an address past the first block of sixty-four bytes, where it is 2001:db8::8a2e:370:7334",
    ];
    for text in texts {
        let short = {
            let mut spans = vec![span_with(text)];
            processor.process(&mut spans);
            spans[0].raw.attributes[0].value.to_text()
        };
        let padded = format!("{text}{}", " ".repeat(200));
        let long = {
            let mut spans = vec![span_with(&padded)];
            processor.process(&mut spans);
            spans[0].raw.attributes[0].value.to_text()
        };
        assert_eq!(long.trim_end_matches(' '), short, "{text}");
        assert_ne!(short, text, "{text} has something to redact");
    }
}

/// The block-skipping pass finds exactly what the byte-by-byte pass finds, wherever the
/// interesting bytes fall relative to the 32-byte blocks: texts of a few short fragments (a
/// feature may need two of them, e.g. two digit runs forming one card number) separated by
/// fillers of pseudo-random length.
#[test]
fn features_fast_path_agrees_with_the_byte_by_byte_pass() {
    use super::detectors::Features;
    const FRAGMENTS: &[&str] =
        &["1234567", "123456", "8", ":", "ab", "fe", "bearer", "BeArEr", "-", " ", ".", "DE"];
    const FILLERS: &[&str] = &["y", "the fox ", "cafe"];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    let mut n_differing_from_empty = 0;
    for _ in 0..20_000 {
        let mut text = String::new();
        for _ in 0..next(6) {
            text.push_str(&FILLERS[next(FILLERS.len())].repeat(next(12)));
            text.push_str(FRAGMENTS[next(FRAGMENTS.len())]);
        }
        text.push_str(&"y".repeat(next(40)));
        let fast = Features::of(&text);
        assert_eq!(fast, Features::of_each_byte(&text), "on {text:?}");
        n_differing_from_empty += usize::from(fast != Features::of_each_byte(""));
    }
    assert!(n_differing_from_empty > 10_000, "the generated texts rarely hold a feature");
}
