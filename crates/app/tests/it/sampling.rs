//! Tail sampling through the real binary: the whole pipeline on the shared example trace (kept
//! by the low-CSAT and variant policies, LLM spans priced, the user id hashed), decisions
//! counted per policy on `/metrics`, and acknowledged traces surviving `kill -9` during their
//! decision wait: decided by policy after a restart, or all kept when the restart turns
//! sampling off.

use std::time::Duration;

use test_support::{App, eventually, otlp, spawn_app};

use crate::{hex, trace_id};

const TRACE_48F: &str = "48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f";

fn config(decision_wait_secs: u64) -> String {
    format!(
        "[pipeline.sample]\nenabled = true\ndecision_wait_secs = {decision_wait_secs}\n\n\
         [[pipeline.sample.policies]]\nname = \"errors\"\ntype = \"status_code\"\n\
         status_codes = [\"ERROR\"]\n\n\
         [[pipeline.sample.policies]]\nname = \"low-csat\"\ntype = \"numeric_attribute\"\n\
         key = \"outcome.csat_response\"\nmax_value = 2\n\n\
         [[pipeline.sample.policies]]\nname = \"variant\"\ntype = \"string_attribute\"\n\
         key = \"experiment.variant\"\nvalues = [\"B\"]\n"
    )
}

/// The value of one `/metrics` series, e.g. `loupe_processor_sample_passes_total`, or
/// `name{labels}` exactly as exposed.
async fn metric(app: &App, series: &str) -> Option<f64> {
    let text = app.get("/metrics", &[]).await.text();
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        // Series without labels are written `name{} value`.
        let rest = rest.strip_prefix("{}").unwrap_or(rest);
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

/// Waits until the sampler has finished a pass, so its tracking covers what is sent next.
async fn sampler_running(app: &App) {
    eventually(Duration::from_secs(20), "a sampling pass", || async {
        metric(app, "loupe_processor_sample_passes_total").await.filter(|n| *n >= 1.0)
    })
    .await;
}

async fn decided(app: &App, n_traces: f64) {
    eventually(Duration::from_secs(30), "sampling decisions", || async {
        let kept = metric(app, "loupe_processor_sample_traces_kept_total").await?;
        let dropped = metric(app, "loupe_processor_sample_traces_dropped_total").await?;
        (kept + dropped >= n_traces).then_some(())
    })
    .await;
}

async fn status_of(app: &App, trace: &str) -> u16 {
    app.get(&format!("/api/v1/traces/{trace}"), &[]).await.status
}

/// A plain agent trace, which no policy keeps; with `error`, its root failed.
async fn send_agent_trace(app: &App, n: u64, error: bool) {
    let mut spans = otlp::agent_trace(trace_id(n), 1_700_000_000_000_000_000 + n);
    if error {
        spans[0].status = otlp::error_status("upstream timeout");
    }
    let request = otlp::request("svc", spans);
    app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_trace_goes_through_the_whole_pipeline_and_is_kept_by_policy() {
    let app = spawn_app(&config(1)).await;
    sampler_running(&app).await;
    send_agent_trace(&app, 6_001, false).await;
    app.post_otlp_json(&test_support::fixture("trace-48f.otlp.json")).await.assert_status(200);
    // Staged until decided: not shown yet (the decision wait is a second).
    assert_eq!(status_of(&app, TRACE_48F).await, 404);
    decided(&app, 2.0).await;

    let series = |policy: &str, decision: &str| {
        format!(
            "loupe_processor_sample_policy_traces_total{{policy=\"{policy}\",decision=\"{decision}\"}}"
        )
    };
    assert_eq!(metric(&app, "loupe_processor_sample_traces_kept_total").await, Some(1.0));
    assert_eq!(metric(&app, "loupe_processor_sample_traces_dropped_total").await, Some(1.0));
    assert_eq!(metric(&app, &series("low-csat", "kept")).await, Some(1.0));
    assert_eq!(metric(&app, &series("variant", "kept")).await, Some(1.0));
    assert_eq!(metric(&app, &series("errors", "kept")).await, Some(0.0));
    assert_eq!(metric(&app, &series("errors", "dropped")).await, Some(2.0));

    // The same counts as JSON.
    let stats = app.get_json("/api/v1/sampling").await;
    assert_eq!(stats["enabled"], true, "{stats}");
    assert_eq!(
        (stats["traces_kept"].as_u64(), stats["traces_dropped"].as_u64()),
        (Some(1), Some(1))
    );
    let policies: Vec<String> = stats["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!("{} kept={} dropped={}", p["name"].as_str().unwrap(), p["kept"], p["dropped"])
        })
        .collect();
    assert_eq!(
        policies,
        ["errors kept=0 dropped=2", "low-csat kept=1 dropped=1", "variant kept=1 dropped=1"]
    );

    let tree = app.get_json(&format!("/api/v1/traces/{TRACE_48F}")).await;
    assert_eq!(tree["rollup"]["n_spans"], 8);
    let spans: Vec<&serde_json::Value> = {
        fn walk<'a>(node: &'a serde_json::Value, res: &mut Vec<&'a serde_json::Value>) {
            res.push(node);
            for child in node["children"].as_array().into_iter().flatten() {
                walk(child, res);
            }
        }
        let mut res = Vec::new();
        for node in tree["spans"].as_array().unwrap() {
            walk(node, &mut res);
        }
        res
    };
    let by_name = |name: &str| *spans.iter().find(|s| s["name"] == name).expect(name);
    for llm in ["llm.query_rewrite", "llm.generate", "llm.judge.policy_correct"] {
        let view = &by_name(llm)["view"];
        // The judge span reports no tokens, so it has no cost and is not flagged.
        if view["usage"]["input"].is_null() {
            assert!(view["cost"].is_null(), "{llm}: {view}");
        } else {
            assert!(view["cost"].as_str().is_some_and(|c| c != "0"), "{llm} priced: {view}");
        }
        assert_ne!(view["flags"]["unknown_price"], true, "{llm}");
    }
    let root = by_name("refund_chat.turn").to_string();
    assert!(!root.contains("h_38d2"), "the raw user id is stored: {root}");
    assert!(root.contains("<user:u_"), "the user id is hashed: {root}");
    assert!(tree["rollup"]["cost"].as_str().is_some(), "cost rolled up: {}", tree["rollup"]);

    // No policy keeps the plain agent trace: it was never stored.
    assert_eq!(status_of(&app, &hex(&trace_id(6_001))).await, 404);
    // Its late spans are discarded.
    send_agent_trace(&app, 6_001, false).await;
    assert_eq!(status_of(&app, &hex(&trace_id(6_001))).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_trace_survives_kill_9_during_the_decision_wait() {
    let mut app = spawn_app(&config(3_600)).await;
    sampler_running(&app).await;
    send_agent_trace(&app, 6_101, false).await;
    send_agent_trace(&app, 6_102, true).await;
    // Acknowledged, an hour before any decision: kill -9 now.
    app.kill9();

    // Restart with a short wait so the decision happens within the test.
    std::fs::write(app.dir().join("loupe.toml"), config(1)).unwrap();
    app.restart();
    decided(&app, 2.0).await;
    assert_eq!(metric(&app, "loupe_processor_sample_traces_kept_total").await, Some(1.0));
    assert_eq!(metric(&app, "loupe_processor_sample_traces_dropped_total").await, Some(1.0));
    assert_eq!(
        metric(
            &app,
            "loupe_processor_sample_policy_traces_total{policy=\"errors\",decision=\"kept\"}"
        )
        .await,
        Some(1.0)
    );
    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&trace_id(6_102)))).await;
    assert_eq!(tree["rollup"]["n_spans"], 3, "the failed trace survived kill -9 and is kept");
    assert_eq!(status_of(&app, &hex(&trace_id(6_101))).await, 404, "the plain trace is dropped");
    let unsampled = spawn_app("").await;
    assert_eq!(unsampled.get_json("/api/v1/sampling").await["enabled"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_traces_are_kept_when_a_restart_turns_sampling_off() {
    let mut app = spawn_app(&config(3_600)).await;
    sampler_running(&app).await;
    send_agent_trace(&app, 6_201, false).await;
    send_agent_trace(&app, 6_202, true).await;
    assert_eq!(status_of(&app, &hex(&trace_id(6_201))).await, 404, "staged, not shown");
    app.kill9();

    std::fs::write(app.dir().join("loupe.toml"), "").unwrap();
    app.restart();
    for n in [6_201, 6_202] {
        let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&trace_id(n)))).await;
        assert_eq!(tree["rollup"]["n_spans"], 3, "trace {n} survived kill -9 and is kept");
    }
    // Stored whole: the full-text index has them too.
    let found = app.get_json("/api/v1/traces?q=refund").await;
    assert_eq!(found["traces"].as_array().map(Vec::len), Some(2), "{found}");
}
