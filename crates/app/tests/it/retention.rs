//! Tiered retention through the binary: a data dir filled over OTLP with old timestamps,
//! `loupe retention run --dry-run` (reports, changes nothing), a real run doing what the dry run
//! said, and the background runner's counters on `/metrics`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use test_support::{otlp, spawn_app};

use crate::{hex, trace_id};

const HOUR: u64 = 3_600 * 1_000_000_000;
const DAY: u64 = 24 * HOUR;

const CONFIG: &str = r#"
[retention]
enabled = false
[retention.downsample]
enabled = true
after = "1h"
[[retention.downsample.policies]]
name = "sessions"
type = "string_attribute"
key = "session.id"
values = ["sess-1"]
[retention.projects.default]
fingerprints_after = "20d"
"#;

fn run_json(app: &test_support::App, args: &[&str]) -> serde_json::Value {
    let output = app.cli(args);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the report is JSON")
}

#[tokio::test]
async fn dry_run_reports_and_real_run_does_it() {
    let mut app = spawn_app(CONFIG).await;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    // (trace, start): 905 has no session, so downsampling drops it; 902 goes to structure, 903
    // to fingerprints (the project's override: 20 days), 904 is deleted, 901 is kept as is. A
    // fresh trace is sent last: SQLite defers deleting the trace holding its newest row (until
    // a later delete), which a dry run cannot foresee.
    let traces = [
        (trace_id(905), now - 3 * HOUR),
        (trace_id(902), now - 2 * DAY),
        (trace_id(903), now - 25 * DAY),
        (trace_id(904), now - 400 * DAY),
        (trace_id(901), now - 3 * HOUR),
    ];
    for (id, start) in traces {
        let mut spans = otlp::agent_trace(id, start);
        if id == trace_id(905) {
            spans[0].attributes.retain(|kv| kv.key != "session.id");
        }
        let request = otlp::request("svc", spans);
        app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    }
    let path = |n: u64| format!("/api/v1/traces/{}", hex(&trace_id(n)));
    let mut before = Vec::new();
    for n in 901..=905 {
        let trace = app.get_json(&path(n)).await;
        assert!(trace.to_string().contains("thirty days"), "{trace}");
        before.push(trace);
    }

    app.kill9();
    let output = app.cli(&["retention", "run", "--dry-run"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(table.starts_with("dry run: nothing was changed"), "{table}");
    assert!(table.contains("default"), "{table}");
    let dry = run_json(&app, &["retention", "run", "--dry-run", "--json"]);
    let expected = serde_json::json!([{
        "project": "default",
        "traces_decided": 5,
        "traces_downsampled": 1,
        "spans_downsampled": 3,
        "spans_deleted": 3,
        "spans_to_fingerprints": 3,
        "spans_to_structure": 3,
    }]);
    assert_eq!(dry["projects"], expected, "{dry}");
    assert_eq!(dry["dry_run"], true);

    app.restart();
    for (n, trace) in (901..=905).zip(&before) {
        assert_eq!(&app.get_json(&path(n)).await, trace, "the dry run changed trace {n}");
    }
    app.kill9();

    let real = run_json(&app, &["retention", "run", "--json"]);
    assert_eq!(real["projects"], expected, "{real}");
    assert_eq!(real["dry_run"], false);

    // Now with the background runner on: its first pass finds nothing left to do.
    let config = CONFIG.replace("enabled = false", "enabled = true");
    std::fs::write(app.dir().join("loupe.toml"), config).unwrap();
    app.restart();
    assert_eq!(app.get_json(&path(901)).await, before[0], "fresh, kept trace untouched");
    for n in [904, 905] {
        app.get(&path(n), &[]).await.assert_status(404);
    }
    let structure = app.get_json(&path(902)).await.to_string();
    assert!(!structure.contains("thirty days") && !structure.contains("refund window"));
    assert!(structure.contains("gpt-4o") && structure.contains("sess-1"), "{structure}");
    let fingerprints = app.get_json(&path(903)).await.to_string();
    assert!(!fingerprints.contains("thirty days") && !fingerprints.contains("sess-1"));
    assert!(fingerprints.contains("gpt-4o"), "{fingerprints}");

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = app.get("/metrics", &[]).await.text();
        if metrics.contains("loupe_retention_passes_total 1") {
            assert!(metrics.contains("loupe_retention_spans_deleted_total 0"), "{metrics}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no retention pass:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
