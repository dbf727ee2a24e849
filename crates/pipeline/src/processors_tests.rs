//! Tests of the whole processor chain: the shared fixture trace decoded from OTLP JSON and
//! normalized, then run through every processor; the chain's order; and every example config
//! in `docs/pipeline.md`.

use std::fmt::Write as _;

use expect_test::{Expect, expect};
use model::StoredSpan;

use super::{Processors, RawPipelineConfig};

const FIXTURE: &str = "trace-48f.otlp.json";
const KEY: &str = "test-key-0123456789abcdef";

/// The shared fixture, decoded and normalized as the pipeline does before its processors.
fn fixture_spans() -> Vec<StoredSpan> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(FIXTURE);
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let decoded = otlp::decode_json(&body).expect("fixture decodes");
    assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
    decoded
        .spans
        .into_iter()
        .map(|raw| StoredSpan {
            project: model::ProjectId::default_project(),
            view: normalize::derive_view(&raw),
            raw,
        })
        .collect()
}

fn processors(toml_text: &str) -> Processors {
    let mut raw: RawPipelineConfig = toml::from_str(toml_text).expect("config parses");
    raw.redact.key.get_or_insert_with(|| KEY.to_owned());
    Processors::from_raw(&raw).expect("config is valid")
}

/// One line per span: what the processors decided, with hashes shortened.
fn render(spans: &[StoredSpan]) -> String {
    let mut res = String::new();
    for span in spans {
        let view = &span.view;
        let short =
            |s: &Option<String>| s.as_deref().map(|s| s[..8].to_owned()).unwrap_or("-".into());
        let _ = write!(res, "{} {}", span.raw.name, view.span_type.as_str());
        if let Some(model) = view.model() {
            let _ = write!(res, " model={model}");
        }
        if let Some(cost) = view.cost {
            let _ = write!(res, " cost={cost}");
        }
        if let Some(user) = &view.user_id {
            let _ = write!(res, " user={user}");
        }
        if view.input_fingerprint.is_some() || view.system_fingerprint.is_some() {
            let _ = write!(
                res,
                " fp=in:{}/sys:{}",
                short(&view.input_fingerprint),
                short(&view.system_fingerprint)
            );
        }
        let flags = &view.flags;
        if flags.unknown_price {
            res.push_str(" unknown_price");
        }
        if flags.content_removed {
            res.push_str(" content_removed");
        }
        if !flags.redactions.is_empty() {
            let _ = write!(res, " redactions={:?}", flags.redactions);
        }
        let _ = writeln!(res, " has_content={}", view.has_content());
    }
    res
}

#[track_caller]
fn check(toml_text: &str, expect: Expect) {
    let processors = processors(toml_text);
    let mut spans = fixture_spans();
    processors.chain().process(&mut spans);
    expect.assert_eq(&render(&spans));
    // The fixture's user id never reaches the written form.
    let written = serde_json::to_string(&spans).expect("spans serialize");
    assert!(!written.contains("h_38d2"), "raw user id in output");
}

#[test]
fn fixture_through_the_default_chain() {
    check(
        "",
        expect![[r#"
        refund_chat.turn http user=<user:u_b3a662a7022b> fp=in:25401470/sys:- redactions={"user_id": 1} has_content=true
        llm.query_rewrite llm model=gpt-4o-mini-2024-07-18 cost=0.0000258 fp=in:648a9e72/sys:7f7fb8a2 has_content=true
        vector.embed embedding model=text-embedding-3-small cost=0.00000026 has_content=false
        vector.retrieve retrieval has_content=false
        rerank.cross_encoder reranker model=cohere-rerank-3 has_content=false
        llm.generate llm model=claude-3-5-sonnet-20241022 cost=0.00831 fp=in:8a4a8880/sys:4161da52 has_content=true
        tool.citation_check tool has_content=false
        llm.judge.policy_correct evaluator model=gpt-4o has_content=false
    "#]],
    );
}

#[test]
fn fingerprints_survive_content_removal() {
    check(
        "[content]\nrecord = false\n",
        expect![[r#"
        refund_chat.turn http user=<user:u_b3a662a7022b> fp=in:25401470/sys:- content_removed redactions={"user_id": 1} has_content=false
        llm.query_rewrite llm model=gpt-4o-mini-2024-07-18 cost=0.0000258 fp=in:648a9e72/sys:7f7fb8a2 content_removed has_content=false
        vector.embed embedding model=text-embedding-3-small cost=0.00000026 has_content=false
        vector.retrieve retrieval has_content=false
        rerank.cross_encoder reranker model=cohere-rerank-3 has_content=false
        llm.generate llm model=claude-3-5-sonnet-20241022 cost=0.00831 fp=in:8a4a8880/sys:4161da52 content_removed has_content=false
        tool.citation_check tool has_content=false
        llm.judge.policy_correct evaluator model=gpt-4o has_content=false
    "#]],
    );
}

#[test]
fn chain_order_and_counters() {
    let processors = processors("");
    assert_eq!(processors.chain().names(), ["redact", "fingerprint", "content", "price"]);
    let mut spans = fixture_spans();
    processors.chain().process(&mut spans);
    let rendered: String = processors
        .counters()
        .iter()
        .filter(|c| c.value > 0)
        .map(|c| format!("{} {} {:?} {}\n", c.processor, c.name, c.labels, c.value))
        .collect();
    expect![[r#"
        redact spans [] 8
        redact spans_redacted [] 1
        redact redactions [("kind", "user_id")] 1
        fingerprint spans [] 8
        fingerprint spans_input [] 3
        fingerprint spans_system [] 2
        content spans [] 8
        price spans [] 8
        price spans_priced [] 3
    "#]]
    .assert_eq(&rendered);
    let off = self::processors(
        "[redact]\nenabled = false\n[price]\nenabled = false\n[fingerprint]\nenabled = false\n",
    );
    assert_eq!(off.chain().names(), ["content"]);
}

#[test]
fn docs_examples_are_valid_configs() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pipeline.md");
    let text = std::fs::read_to_string(&path).expect("docs/pipeline.md");
    let mut n_blocks = 0;
    for block in text.split("```toml\n").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        let table: toml::Table = toml::from_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let pipeline = table.get("pipeline").cloned().expect("examples are under [pipeline]");
        let mut raw: RawPipelineConfig =
            pipeline.try_into().unwrap_or_else(|e| panic!("{e}\n{block}"));
        raw.redact.key = Some(KEY.to_owned());
        Processors::from_raw(&raw).unwrap_or_else(|e| panic!("{e}\n{block}"));
        n_blocks += 1;
    }
    assert!(n_blocks >= 4, "found {n_blocks} examples");
}

#[test]
fn no_raw_personal_data_leaves_the_chain() {
    let path = crate::golden::golden_dir("redact").join("detectors.in.json");
    let text = std::fs::read_to_string(&path).expect("redact golden input");
    let mut spans: Vec<StoredSpan> = serde_json::from_str(&text).expect("spans");
    processors("[content]\nmax_field_bytes = 64\n").chain().process(&mut spans);
    let written = serde_json::to_string(&spans).expect("spans serialize");
    let secrets = [
        "alice-42",
        "1234567",
        "Jane.Roe",
        "jane.roe@example.co.uk",
        "7946 0958",
        "555-0132",
        "4111 1111 1111 1111",
        "3704 0044 0532 0130 00",
        "203.0.113.7",
        "2001:db8::8a2e:370:7334",
        "10.1.2.3",
        "sk-proj-",
        "sk-ant-",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_",
        "xoxb-",
        "AIzaSy",
        "eyJhbGciOiJIUzI1NiJ9",
        "abcdef0123456789abcdef",
        "123-45-6789",
        "bob@example.com",
        "carol@example.org",
        "dave@example.net",
        "5555 5555 5555 4444",
        "support@example.com",
        "erin@example.com",
        "frank@example.com",
    ];
    let leaked: Vec<&str> = secrets.iter().copied().filter(|s| written.contains(s)).collect();
    assert!(leaked.is_empty(), "raw values in the processed spans: {leaked:?}");
}
