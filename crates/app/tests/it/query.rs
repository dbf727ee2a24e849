//! The query API over HTTP: search with the shared filter syntax, paging, sessions, facets,
//! aggregates, and the error shape.

use expect_test::expect;
use test_support::{App, otlp, spawn_app};

use crate::{hex, trace_id};

/// Ten agent traces one second apart; every third one has an errored tool span.
async fn seeded() -> App {
    let app = spawn_app("").await;
    let base = 1_700_000_000_000_000_000u64;
    for n in 0..10u64 {
        let mut spans = otlp::agent_trace(trace_id(600 + n), base + n * 1_000_000_000);
        if n % 3 == 0 {
            spans[2].status = otlp::error_status("lookup failed");
        }
        app.post_otlp_protobuf(otlp::encode(&otlp::request("svc", spans))).await.assert_status(200);
    }
    app
}

fn ids(list: &serde_json::Value, key: &str, field: &str) -> Vec<String> {
    list[key].as_array().unwrap().iter().map(|t| t[field].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn search_filters_pages_and_counts() {
    let app = seeded().await;
    let list = app.get_json("/api/v1/traces?limit=4&total=true").await;
    assert_eq!(list["total"], 10);
    let first = ids(&list, "traces", "trace_id");
    assert_eq!(first[0], hex(&trace_id(609)), "newest first");
    let cursor = list["next_cursor"].as_str().unwrap();
    let next = app.get_json(&format!("/api/v1/traces?limit=4&cursor={cursor}")).await;
    let second = ids(&next, "traces", "trace_id");
    assert_eq!(second[0], hex(&trace_id(605)));

    let errors = app.get_json("/api/v1/traces?q=status%20%3D%20error&total=true").await;
    assert_eq!(errors["total"], 4, "{errors}");
    let llm = app.get_json("/api/v1/spans?q=type%20%3D%20llm&limit=100").await;
    let names = ids(&llm, "spans", "name");
    assert_eq!(names.len(), 10, "{llm}");
    assert!(names.iter().all(|n| n == "chat gpt-4o"));
    let text = app.get_json("/api/v1/spans?q=%22refund%20window%22").await;
    assert_eq!(text["spans"].as_array().unwrap().len(), 10, "{text}");

    let from =
        app.get_json("/api/v1/traces?from=1700000005000000000&to=2023-11-14T22:13:28Z").await;
    assert_eq!(ids(&from, "traces", "trace_id").len(), 3, "{from}");
}

#[tokio::test]
async fn sessions_facets_and_aggregates() {
    let app = seeded().await;
    let session = app.get_json("/api/v1/sessions/sess-1").await;
    assert_eq!(session["n_traces"], 10);
    assert_eq!(session["traces"][0]["trace_id"], hex(&trace_id(600)), "oldest first");
    app.get("/api/v1/sessions/nope", &[]).await.assert_status(404);

    let facets = app.get_json("/api/v1/facets?from=2023-01-01T00:00:00Z").await;
    expect![[r#"[{"value":"agent.run","count":10},{"value":"chat gpt-4o","count":10},{"value":"execute_tool lookup","count":10}]"#]].assert_eq(&serde_json::to_string(&facets["span_names"]).unwrap());

    let aggregate =
        app.get_json("/api/v1/aggregate?group_by=name&metrics=count,errors,input_tokens").await;
    let mut rows: Vec<String> = aggregate["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            format!("{} {}", row["group"]["name"], serde_json::to_string(&row["values"]).unwrap())
        })
        .collect();
    rows.sort();
    expect![[r#"
        "agent.run" {"count":10,"errors":0,"input_tokens":0}
        "chat gpt-4o" {"count":10,"errors":0,"input_tokens":1200}
        "execute_tool lookup" {"count":10,"errors":4,"input_tokens":0}"#]]
    .assert_eq(&rows.join("\n"));
}

#[tokio::test]
async fn bad_queries_get_json_errors() {
    let app = seeded().await;
    let mut res = String::new();
    for path in [
        "/api/v1/traces?q=type%20%3D",
        "/api/v1/traces?from=yesterday",
        "/api/v1/traces?limit=0",
        "/api/v1/traces?limit=abc",
        "/api/v1/traces/not-a-trace-id",
        "/api/v1/traces/0123456789abcdef0123456789abcdef",
        "/api/v1/aggregate?metrics=p42",
    ] {
        let response = app.get(path, &[]).await;
        res.push_str(&format!("{path}\n  {} {}\n", response.status, response.text()));
    }
    expect![[r#"
        /api/v1/traces?q=type%20%3D
          400 {"error":{"code":"bad_request","message":"q: at column 7: expected a value after '='"}}
        /api/v1/traces?from=yesterday
          400 {"error":{"code":"bad_request","message":"from: cannot read time \"yesterday\": use RFC 3339 (2024-05-22T10:01:03Z), unix nanoseconds, or a relative time such as 15m, 1h, 7d"}}
        /api/v1/traces?limit=0
          400 {"error":{"code":"bad_request","message":"limit must be at least 1"}}
        /api/v1/traces?limit=abc
          400 {"error":{"code":"bad_request","message":"Failed to deserialize query string: limit: invalid digit found in string"}}
        /api/v1/traces/not-a-trace-id
          400 {"error":{"code":"bad_request","message":"trace id must be 16 bytes (32 hex characters), got 7 bytes"}}
        /api/v1/traces/0123456789abcdef0123456789abcdef
          404 {"error":{"code":"not_found","message":"trace 0123456789abcdef0123456789abcdef not found"}}
        /api/v1/aggregate?metrics=p42
          400 {"error":{"code":"bad_request","message":"metrics: unknown metric \"p42\": use count, errors, p50, p95, p99, input_tokens, output_tokens or cost"}}
    "#]].assert_eq(&res);
}
