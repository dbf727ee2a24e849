//! OTLP/HTTP: JSON, protobuf, gzip, the shared fixture, and the answers' formats.

use std::io::Write;

use expect_test::expect;
use prost::Message;
use test_support::{otlp, spawn_app};

use crate::{ZERO_CONFIG, hex, render_tree, trace_id};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn fixture_over_json_reads_back_as_a_tree() {
    let app = spawn_app(ZERO_CONFIG).await;
    let fixture = test_support::fixture("trace-48f.otlp.json");
    let response = app.post_otlp_json(&fixture).await;
    response.assert_status(200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(crate::partial_success(&response), "none");

    let tree = app.get_json("/api/v1/traces/48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f").await;
    assert_eq!(tree["rollup"]["n_spans"], 8);
    expect![[r#"
        refund_chat.turn type=http llm=false status=ok
          llm.query_rewrite type=llm llm=true status=ok
          vector.embed type=embedding llm=false status=ok
          vector.retrieve type=retrieval llm=false status=ok
            rerank.cross_encoder type=reranker llm=false status=ok
          llm.generate type=llm llm=true status=ok
          tool.citation_check type=tool llm=false status=ok
          llm.judge.policy_correct type=evaluator llm=false status=ok
    "#]]
    .assert_eq(&render_tree(&tree));
}

#[tokio::test]
async fn protobuf_and_gzip_are_accepted_and_answered_in_kind() {
    let app = spawn_app(ZERO_CONFIG).await;
    let id = trace_id(1);
    let request = otlp::request("checkout", otlp::agent_trace(id, 1_700_000_000_000_000_000));
    let response = app.post_otlp_protobuf(otlp::encode(&request)).await;
    response.assert_status(200);
    assert_eq!(response.header("content-type"), Some("application/x-protobuf"));
    let decoded =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            &response.body[..],
        )
        .unwrap();
    assert_eq!(decoded.partial_success, None);

    // The same trace id again, gzipped, with one more span: stored once, assembled into one tree.
    let mut spans = otlp::agent_trace(id, 1_700_000_000_000_000_000);
    spans.push(otlp::span(
        id,
        4,
        Some(2),
        "retry",
        1_700_000_000_100_000_000,
        1_700_000_000_200_000_000,
    ));
    let body = gzip(&otlp::encode(&otlp::request("checkout", spans)));
    let response = app
        .post(
            "/v1/traces",
            &[("content-type", "application/x-protobuf"), ("content-encoding", "gzip")],
            body,
        )
        .await;
    response.assert_status(200);

    let json = serde_json::to_vec(&serde_json::json!({"resourceSpans": []})).unwrap();
    let response = app
        .post(
            "/v1/traces",
            &[("content-type", "application/json"), ("content-encoding", "gzip")],
            gzip(&json),
        )
        .await;
    response.assert_status(200);

    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&id))).await;
    expect![[r#"
        agent.run type=other llm=false status=unset
          chat gpt-4o type=llm llm=true status=unset
            retry type=other llm=false status=unset
          execute_tool lookup type=tool llm=false status=unset
    "#]]
    .assert_eq(&render_tree(&tree));
    assert_eq!(tree["rollup"]["n_spans"], 4);
}

#[tokio::test]
async fn metrics_signal_is_not_supported() {
    let app = spawn_app(ZERO_CONFIG).await;
    let response =
        app.post("/v1/metrics", &[("content-type", "application/json")], b"{}".to_vec()).await;
    expect![[r#"501 {"code":12,"message":"the metrics signal is not supported: loupe accepts traces (POST /v1/traces, TraceService/Export) and GenAI events as logs (POST /v1/logs, LogsService/Export)"}"#]]
    .assert_eq(&format!("{} {}", response.status, response.text()));
    let response =
        app.post("/v1/metrics", &[("content-type", "application/x-protobuf")], Vec::new()).await;
    assert_eq!(response.status, 501);
    assert_eq!(response.header("content-type"), Some("application/x-protobuf"));
}

#[tokio::test]
async fn metrics_endpoint_counts_ingest() {
    let app = spawn_app(ZERO_CONFIG).await;
    let request = otlp::request("svc", otlp::agent_trace(trace_id(9), 1_700_000_000_000_000_000));
    app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    let text = app.get("/metrics", &[]).await.text();
    for needle in [
        "loupe_ingest_requests_total{transport=\"http\",outcome=\"ok\"} 1",
        "loupe_ingest_spans_accepted_total{transport=\"http\"} 3",
        "loupe_queue_capacity_spans 200000",
        "loupe_store_spans_written_total{backend=\"sqlite\"} 3",
        "loupe_ingest_request_duration_seconds_count{transport=\"http\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics:\n{text}");
    }
    let busy: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("loupe_writer_busy_seconds_total "))
        .unwrap_or_else(|| panic!("loupe_writer_busy_seconds_total missing:\n{text}"))
        .parse()
        .expect("a number");
    assert!(busy > 0.0 && busy < 60.0, "the writer wrote one group: {busy} s");
    for needle in
        ["\nloupe_sqlite_index_lag_spans ", "\nloupe_sqlite_index_handoffs_dropped_total 0\n"]
    {
        assert!(text.contains(needle), "{needle} missing from /metrics:\n{text}");
    }
    // Full-text search waits for the index, after which no span is behind it.
    app.get("/api/v1/spans?q=refund", &[]).await.assert_status(200);
    let text = app.get("/metrics", &[]).await.text();
    assert!(text.contains("\nloupe_sqlite_index_lag_spans 0\n"), "index caught up:\n{text}");
}
