//! Tests of the `content` processor: golden files in `test_data/` (`NAME.toml` is the
//! `[pipeline.content]` section) and inline cases for the policy lookup and sampling.

use expect_test::expect;
use model::TraceId;

use super::{ContentConfig, ContentProcessor, RawContentConfig, trace_sampled};
use crate::golden::{check_dir, golden_dir};

fn config(toml_text: &str) -> ContentConfig {
    let raw: RawContentConfig = toml::from_str(toml_text).expect("content config parses");
    ContentConfig::from_raw(&raw).expect("content config is valid")
}

#[test]
fn golden() {
    check_dir(&golden_dir("content"), |toml_text| {
        Box::new(ContentProcessor::new(config(toml_text)))
    });
}

#[track_caller]
fn check_policies(toml_text: &str, cases: &[(&str, &str)], expect: expect_test::Expect) {
    let config = config(toml_text);
    let mut res = String::new();
    for (project, service) in cases {
        let policy = config.policy(project, service);
        res.push_str(&format!(
            "{project}/{service}: record={} sample={}bp max={:?}\n",
            policy.record, policy.sample_basis_points, policy.max_field_bytes
        ));
    }
    expect.assert_eq(&res);
}

#[test]
fn most_specific_setting_wins() {
    check_policies(
        r#"
        sample_percent = 12.5
        [services.billing]
        record = false
        [projects.acme]
        record = false
        max_field_bytes = 0
        [projects.acme.services.search]
        record = true
        [projects.beta]
        record = true
        "#,
        &[
            ("default", "refund-bot"),
            ("default", "billing"),
            ("acme", "refund-bot"),
            ("acme", "search"),
            ("acme", "billing"),
            ("beta", "billing"),
        ],
        expect![[r#"
            default/refund-bot: record=true sample=1250bp max=Some(65536)
            default/billing: record=false sample=1250bp max=Some(65536)
            acme/refund-bot: record=false sample=1250bp max=None
            acme/search: record=true sample=1250bp max=None
            acme/billing: record=false sample=1250bp max=None
            beta/billing: record=false sample=1250bp max=Some(65536)
        "#]],
    );
}

#[test]
fn invalid_settings_are_rejected() {
    let errors: Vec<String> = ["sample_percent = 101", "max_field_bytes = 10", "[projects.Bad]\n"]
        .iter()
        .map(|text| {
            let raw: RawContentConfig = toml::from_str(text).expect("parses");
            ContentConfig::from_raw(&raw).err().map(|e| e.to_string()).unwrap_or_default()
        })
        .collect();
    expect![[r#"
        [
            "invalid pipeline config: content.sample_percent must be between 0 and 100, got 101",
            "invalid pipeline config: content.max_field_bytes must be 0 (no cap) or at least 64, got 10",
            "invalid pipeline config: content.projects: invalid project id \"Bad\": use 1 to 64 lowercase letters, digits, '-' or '_'",
        ]
    "#]]
    .assert_debug_eq(&errors);
    let unknown = toml::from_str::<RawContentConfig>("recrod = true");
    assert!(unknown.is_err(), "unknown fields are rejected");
}

#[test]
fn content_sampling_is_deterministic_and_proportional() {
    let n = 20_000u32;
    let mut kept = 0;
    for i in 0..n {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        bytes[15] = 1;
        let trace_id = TraceId::from_bytes(&bytes).expect("non-zero id");
        let first = trace_sampled(trace_id, 2_500);
        assert_eq!(first, trace_sampled(trace_id, 2_500), "same trace, same decision");
        assert!(!first || trace_sampled(trace_id, 5_000), "a larger sample keeps a superset");
        kept += u32::from(first);
    }
    // 25% of sequential (non-random) ids, within 1.5 percentage points.
    assert!((4_700..=5_300).contains(&kept), "kept {kept} of {n}");
}
