//! The command line: `--help`, `loupe traces`, `loupe trace`, `loupe reindex`, and refusing to
//! listen on a public address without keys.

use expect_test::expect;
use test_support::{otlp, spawn_app};

use crate::{hex, trace_id};

#[tokio::test]
async fn traces_and_trace_print_a_table_and_a_tree() {
    let app = spawn_app("").await;
    let fixture = test_support::fixture("trace-48f.otlp.json");
    app.post_otlp_json(&fixture).await.assert_status(200);

    let output = app.cli(&["traces", "--limit", "5"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("START (UTC)"), "{table}");
    assert!(table.contains("48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f  refund_chat.turn"), "{table}");

    let output = app.cli(&["trace", "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    expect![[r#"
        trace 48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f  2.62s  8 spans (2 llm)  tokens 1967/202  $0.008336  ok
        └─ refund_chat.turn  2.61s  http  ok
           ├─ llm.query_rewrite  35ms  llm gpt-4o-mini-2024-07-18  tokens 84/22  $0.000026  ok
           ├─ vector.embed  18ms  embedding text-embedding-3-small  tokens 13/0  $0  ok
           ├─ vector.retrieve  220ms  retrieval  ok
           │  └─ rerank.cross_encoder  45ms  reranker cohere-rerank-3  ok
           ├─ llm.generate  1.80s  llm claude-3-5-sonnet-20241022  tokens 1870/180  $0.00831  ok
           ├─ tool.citation_check  110ms  tool  ok
           └─ llm.judge.policy_correct  380ms  evaluator gpt-4o  ok
    "#]].assert_eq(&String::from_utf8(output.stdout).unwrap());

    let output = app.cli(&["trace", "0123456789abcdef0123456789abcdef"]);
    assert!(!output.status.success());
    expect![[r#"
        error: 404 Not Found: trace 0123456789abcdef0123456789abcdef not found
    "#]]
    .assert_eq(&String::from_utf8(output.stderr).unwrap());
}

#[tokio::test]
async fn reindex_rebuilds_views_from_raw_spans() {
    let mut app = spawn_app("").await;
    let id = trace_id(700);
    let request = otlp::request("svc", otlp::agent_trace(id, 1_700_000_000_000_000_000));
    app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    let path = format!("/api/v1/traces/{}", hex(&id));
    let before = app.get_json(&path).await;
    app.kill9();
    let output = app.cli(&["reindex"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "reindexed 3 spans\n");
    app.restart();
    let after = app.get_json(&path).await;
    assert_eq!(before["spans"], after["spans"]);
}

#[test]
fn help_teaches_with_examples() {
    let output =
        std::process::Command::new(test_support::spawn::binary()).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in ["serve", "traces", "trace", "keys", "reindex", "Examples:", "loupe.toml"] {
        assert!(help.contains(needle), "{needle} missing from --help:\n{help}");
    }
    let output = std::process::Command::new(test_support::spawn::binary())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.contains("--data-dir")
            && help.contains("LOUPE_DATA_DIR")
            && help.contains("--insecure"),
        "{help}"
    );
}

#[test]
fn public_address_without_keys_is_refused_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(test_support::spawn::binary())
        .current_dir(dir.path())
        .args(["serve", "--http-addr", "0.0.0.0:0", "--grpc-addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    expect![[r#"
        error: refusing to listen on 0.0.0.0:0 without API keys: anyone who can reach it could read and write your traces. Configure keys ([[auth.keys]] in loupe.toml, see docs/configuration.md) or pass --insecure
    "#]].assert_eq(&String::from_utf8(output.stderr).unwrap());
}
