//! `loupe pricing` through the real binary: `unknown` lists the models stored spans used without
//! a price, `show` prints the entry that prices a model, and after a price is added to the
//! config, `recompute` writes the new costs, which the API then serves (span and roll-ups).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use test_support::otlp::{int, span, string};
use test_support::{App, eventually, spawn_app};

use crate::{hex, trace_id};

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// A root with two LLM calls of a million input and a million output tokens each: one of a
/// built-in model (`gpt-4o-mini`), one of a model no table knows.
async fn ingest(app: &App, trace: [u8; 16]) {
    let base = now_ns() - 60_000_000_000;
    let root = span(trace, 1, None, "turn", base, base + 3_000_000_000);
    let llm = |span_id, provider: &str, model: &str| {
        let mut llm = span(trace, span_id, Some(1), "chat", base + 1_000, base + 1_000_000_000);
        llm.kind = 3;
        llm.attributes.extend([
            string("gen_ai.operation.name", "chat"),
            string("gen_ai.provider.name", provider),
            string("gen_ai.request.model", model),
            int("gen_ai.usage.input_tokens", 1_000_000),
            int("gen_ai.usage.output_tokens", 1_000_000),
        ]);
        llm
    };
    let spans =
        vec![root, llm(2, "openai", "gpt-4o-mini"), llm(3, "acme-internal", "house-model-7b")];
    let body = test_support::otlp::encode(&test_support::otlp::request("pricing", spans));
    app.post_otlp_protobuf(body).await.assert_status(200);
}

fn stdout_of(app: &App, args: &[&str]) -> String {
    let output = app.cli(args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "loupe {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The span's `view` by span id (16 hex).
fn view<'a>(tree: &'a Value, span_id: &str) -> &'a Value {
    let spans = tree["spans"][0]["children"].as_array().expect("children");
    &spans.iter().find(|s| s["span_id"] == span_id).expect("span in tree")["view"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_are_listed_and_recompute_applies_a_new_price() {
    let mut app = spawn_app("").await;
    let trace = hex(&trace_id(4_001));
    ingest(&app, trace_id(4_001)).await;
    let tree = eventually(Duration::from_secs(10), "the trace", || async {
        let response = app.get(&format!("/api/v1/traces/{trace}"), &[]).await;
        (response.status == 200 && response.json()["rollup"]["n_spans"] == 3)
            .then(|| response.json())
    })
    .await;
    // gpt-4o-mini: $0.15 in + $0.60 out per million tokens.
    assert_eq!(view(&tree, "0000000000000002")["cost"], "0.75");
    assert_eq!(view(&tree, "0000000000000003")["cost"], Value::Null);
    assert_eq!(view(&tree, "0000000000000003")["flags"]["unknown_price"], true);
    app.terminate();

    let unknown = stdout_of(&app, &["pricing", "unknown", "--since", "1d"]);
    let rows: Vec<&str> = unknown.lines().filter(|l| l.starts_with("acme-internal")).collect();
    assert_eq!(rows.len(), 1, "{unknown}");
    assert!(rows[0].contains("house-model-7b"), "{unknown}");
    assert!(rows[0].contains(" 1 "), "one span: {unknown}");
    assert!(!unknown.contains("gpt-4o-mini"), "{unknown}");
    assert!(unknown.contains("[[pipeline.price.models]]"), "says how to add a price: {unknown}");
    // Another project has no such spans.
    let other = stdout_of(&app, &["pricing", "unknown", "--project", "other", "--since", "1d"]);
    assert!(!other.contains("house-model-7b"), "{other}");

    let missing = app.cli(&["pricing", "show", "house-model-7b", "--provider", "acme-internal"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("[[pipeline.price.models]]"));

    // Add a price for the unknown model and make gpt-4o-mini dearer.
    std::fs::write(
        app.dir().join("loupe.toml"),
        "[[pipeline.price.models]]\nprovider = \"acme-internal\"\npattern = \"house-model-*\"\n\
         input = \"0.20\"\noutput = \"0.40\"\n\n\
         [[pipeline.price.models]]\nprovider = \"openai\"\npattern = \"gpt-4o-mini\"\n\
         input = \"1\"\noutput = \"2\"\n",
    )
    .unwrap();
    let show =
        stdout_of(&app, &["pricing", "show", "house-model-7b", "--provider", "acme-internal"]);
    assert!(show.contains("house-model-*") && show.contains("config"), "{show}");
    let table = stdout_of(&app, &["pricing", "show"]);
    assert!(table.contains("claude") && table.contains("house-model-*"), "{table}");

    let dry = stdout_of(&app, &["pricing", "recompute", "--since", "1d", "--dry-run"]);
    assert!(dry.contains("would reprice 2 of 3 spans"), "{dry}");
    assert!(dry.contains("$0.75 -> $3.6"), "{dry}");
    let recompute = stdout_of(&app, &["pricing", "recompute", "--since", "1d"]);
    assert!(recompute.contains("repriced 2 of 3 spans"), "{recompute}");
    // Nothing left to do.
    let again = stdout_of(&app, &["pricing", "recompute", "--since", "1d"]);
    assert!(again.contains("repriced 0 of 3 spans"), "{again}");
    let none = stdout_of(&app, &["pricing", "unknown", "--since", "1d"]);
    assert!(none.contains("every model"), "{none}");

    app.restart();
    let tree = app.get_json(&format!("/api/v1/traces/{trace}")).await;
    assert_eq!(view(&tree, "0000000000000002")["cost"], "3");
    assert_eq!(view(&tree, "0000000000000003")["cost"], "0.6");
    assert_ne!(view(&tree, "0000000000000003")["flags"]["unknown_price"], true);
    assert_eq!(tree["rollup"]["cost"], "3.6");
    let traces = app.get_json("/api/v1/traces?limit=1").await;
    let row = &traces["traces"][0];
    assert_eq!(row["trace_id"], trace.as_str(), "{traces}");
    assert_eq!(row["cost"], "3.6", "the trace roll-up follows: {traces}");
}
