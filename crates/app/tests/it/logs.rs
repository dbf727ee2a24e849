//! GenAI events sent as OTLP log records (`/v1/logs`, `LogsService/Export`): they become events
//! of their span, whichever arrives first, and the span's view shows their messages; other log
//! records are dropped and said so in `partial_success` and `/metrics`. Also the in-flight byte
//! budget being one for all gRPC connections and HTTP.

use std::io::Write;

use bytes::Bytes;
use expect_test::{Expect, expect};
use futures::SinkExt;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use test_support::{App, eventually, otlp, spawn_app};

use crate::{ZERO_CONFIG, hex, trace_id};

/// Per span of a trace tree: its name and the messages of its view, one line each.
fn render_messages(tree: &serde_json::Value) -> String {
    fn text(parts: &serde_json::Value) -> String {
        let parts = parts.as_array().into_iter().flatten();
        parts
            .map(|part| match part["content"].as_str() {
                Some(content) => content.to_owned(),
                None => part.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    fn walk(node: &serde_json::Value, res: &mut String) {
        let view = &node["view"];
        res.push_str(&format!("{}\n", node["name"].as_str().unwrap_or("?")));
        if view["system_instructions"].as_array().is_some_and(|it| !it.is_empty()) {
            res.push_str(&format!("  system: {}\n", text(&view["system_instructions"])));
        }
        for key in ["input_messages", "output_messages"] {
            for message in view[key].as_array().into_iter().flatten() {
                let role = message["role"].as_str().unwrap_or("?");
                res.push_str(&format!("  {role}: {}\n", text(&message["parts"])));
            }
        }
        for child in node["children"].as_array().into_iter().flatten() {
            walk(child, res);
        }
    }
    let mut res = String::new();
    for node in tree["spans"].as_array().into_iter().flatten() {
        walk(node, &mut res);
    }
    res
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn logs_json(trace: &str, span: &str) -> String {
    format!(
        r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[
            {{"timeUnixNano":"1700000000100000000","eventName":"gen_ai.user.message",
              "traceId":"{trace}","spanId":"{span}",
              "body":{{"kvlistValue":{{"values":[{{"key":"content","value":{{"stringValue":"Where is my refund?"}}}}]}}}}}},
            {{"timeUnixNano":"1700000000900000000","traceId":"{trace}","spanId":"{span}",
              "attributes":[{{"key":"event.name","value":{{"stringValue":"gen_ai.choice"}}}}],
              "body":{{"kvlistValue":{{"values":[
                {{"key":"index","value":{{"intValue":"0"}}}},
                {{"key":"message","value":{{"kvlistValue":{{"values":[
                  {{"key":"role","value":{{"stringValue":"assistant"}}}},
                  {{"key":"content","value":{{"stringValue":"It was sent today."}}}}]}}}}}}]}}}}}},
            {{"timeUnixNano":"1700000000000000000","severityText":"INFO",
              "body":{{"stringValue":"just a log line"}}}}
        ]}}]}}]}}"#
    )
}

/// Sends a chat span and its GenAI events as OTLP/HTTP logs (JSON, gzip), the span first or
/// last, and checks the span's view shows the events' messages.
async fn check_log_events_join_their_span(app: &App, n: u64, span_first: bool) {
    let id = trace_id(n);
    let base = 1_700_000_000_000_000_000;
    let mut chat = otlp::span(id, 1, None, "chat gpt-4o", base, base + 1_000_000_000);
    chat.attributes.push(otlp::string("gen_ai.operation.name", "chat"));
    chat.attributes.push(otlp::string("gen_ai.request.model", "gpt-4o"));
    let request = otlp::request("svc", vec![chat]);
    if span_first {
        app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    }

    let span_hex = hex(&[0, 0, 0, 0, 0, 0, 0, 1]);
    let body = gzip(logs_json(&hex(&id), &span_hex).as_bytes());
    let headers = [("content-type", "application/json"), ("content-encoding", "gzip")];
    let response = app.post("/v1/logs", &headers, body).await;
    response.assert_status(200);
    let partial = &response.json()["partialSuccess"];
    assert_eq!(partial["rejectedLogRecords"], "1");
    expect!["dropped 1 of 3 log records: 1 not GenAI events (only log records whose event name starts with gen_ai. are kept)"]
        .assert_eq(partial["errorMessage"].as_str().unwrap());
    if !span_first {
        app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    }

    // A 2xx means the events are committed and merged.
    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&id))).await;
    expect![[r#"
        chat gpt-4o
          user: Where is my refund?
          assistant: It was sent today.
    "#]]
    .assert_eq(&render_messages(&tree));
}

#[tokio::test]
async fn genai_log_events_join_their_span_over_http() {
    let app = spawn_app(ZERO_CONFIG).await;
    check_log_events_join_their_span(&app, 700, true).await;
    check_log_events_join_their_span(&app, 702, false).await;

    // An empty request is a success; a wrong body is a 400.
    let response =
        app.post("/v1/logs", &[("content-type", "application/json")], b"{}".to_vec()).await;
    expect![[r#"200 {}"#]].assert_eq(&format!("{} {}", response.status, response.text()));
    let response =
        app.post("/v1/logs", &[("content-type", "application/x-protobuf")], vec![0xff, 0xff]).await;
    assert_eq!(response.status, 400);
    let metrics = app.get("/metrics", &[]).await.text();
    for line in [
        r#"loupe_ingest_log_events_accepted_total{transport="http"} 4"#,
        r#"loupe_ingest_log_records_dropped_total{transport="http",reason="not_genai_event"} 2"#,
        r#"loupe_store_spans_merged_total{backend="sqlite"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_log_events_join_their_span_on_clickhouse() {
    let Ok(url) = std::env::var("CLICKHOUSE_URL") else {
        eprintln!("CLICKHOUSE_URL is not set: skipping (scripts/test starts a server)");
        return;
    };
    let database = format!(
        "loupe_it_logs_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let store_url = format!("{}?database={database}", url.trim_end_matches('/').to_owned() + "/");
    let app = spawn_app(&format!("[store]\nurl = \"{store_url}\"\n")).await;
    check_log_events_join_their_span(&app, 703, true).await;
    check_log_events_join_their_span(&app, 704, false).await;
    let client = reqwest::Client::new();
    let _ = client.post(&url).body(format!("DROP DATABASE IF EXISTS {database}")).send().await;
}

#[tokio::test]
async fn log_events_need_a_key_like_traces() {
    let app = spawn_app("[[auth.keys]]\nproject = \"alpha\"\nkey = \"key-alpha\"\n").await;
    let body = logs_json(&hex(&trace_id(701)), "0000000000000001").into_bytes();
    let response = app.post("/v1/logs", &[("content-type", "application/json")], body).await;
    assert_eq!(response.status, 401);
}

async fn python_export_and_read(app: &App, protocol: &str, endpoint: &str, expect: Expect) {
    let trace_id = crate::run_python("export_genai_events.py", &[protocol, endpoint]);
    // The exporters return after the server's 2xx, so everything is already stored.
    let tree = app.get_json(&format!("/api/v1/traces/{trace_id}")).await;
    expect.assert_eq(&render_messages(&tree));
    let metrics = app.get("/metrics", &[]).await.text();
    let transport = if protocol == "http" { "http" } else { "grpc" };
    let dropped = format!(
        r#"loupe_ingest_log_records_dropped_total{{transport="{transport}",reason="not_genai_event"}} 1"#
    );
    assert!(metrics.contains(&dropped), "{dropped} in\n{metrics}");
}

#[tokio::test]
async fn python_sdk_genai_log_events_over_http() {
    let app = spawn_app(ZERO_CONFIG).await;
    python_export_and_read(
        &app,
        "http",
        &app.http_url,
        expect![[r#"
            chat gpt-4o-mini
              system: Answer in one word.
              user: What is the capital of France?
              assistant: Paris.
        "#]],
    )
    .await;
}

#[tokio::test]
async fn python_sdk_genai_log_events_over_grpc() {
    let app = spawn_app(ZERO_CONFIG).await;
    python_export_and_read(
        &app,
        "grpc",
        &app.grpc_url,
        expect![[r#"
            chat gpt-4o-mini
              system: Answer in one word.
              user: What is the capital of France?
              assistant: Paris.
        "#]],
    )
    .await;
}

/// `loupe_ingest_inflight_bytes` from `/metrics`.
async fn inflight_bytes(app: &App) -> u64 {
    let metrics = app.get("/metrics", &[]).await.text();
    let line = metrics
        .lines()
        .find(|line| line.starts_with("loupe_ingest_inflight_bytes "))
        .unwrap_or_else(|| panic!("no inflight gauge in\n{metrics}"));
    line.rsplit(' ').next().and_then(|n| n.parse().ok()).expect("a number")
}

/// A trace request holding one span with a blob of `n_bytes`.
fn big_request(
    n: u64,
    n_bytes: usize,
) -> opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
    let mut span = otlp::span(
        trace_id(n),
        1,
        None,
        "big",
        1_700_000_000_000_000_000,
        1_700_000_000_000_000_001,
    );
    span.attributes.push(otlp::string("blob", &"x".repeat(n_bytes)));
    otlp::request("svc", vec![span])
}

type FrameSender = futures::channel::mpsc::Sender<Result<http_body::Frame<Bytes>, tonic::Status>>;

/// Starts a raw gRPC export on its own connection whose body is sent as the test says.
async fn raw_export(
    app: &App,
) -> (FrameSender, tokio::task::JoinHandle<http::Response<tonic::body::Body>>) {
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let (tx, rx) = futures::channel::mpsc::channel(4);
    let body = tonic::body::Body::new(http_body_util::StreamBody::new(rx));
    let uri =
        format!("{}/opentelemetry.proto.collector.trace.v1.TraceService/Export", app.grpc_url);
    let request = http::Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .unwrap();
    let task = tokio::spawn(async move {
        tower::ServiceExt::oneshot(channel, request).await.expect("grpc round trip")
    });
    (tx, task)
}

/// Many connections cannot hold more request bytes than `max_inflight_bytes` together, and
/// gRPC shares the budget with HTTP: while one connection holds most of it, every other export
/// is refused at once with a retryable status (`UNAVAILABLE` + `RetryInfo`, 503 +
/// `Retry-After`), and succeeds once the budget is free again.
#[tokio::test]
async fn inflight_budget_is_global_across_grpc_connections_and_http() {
    const BUDGET: u64 = 1024 * 1024;
    let app =
        spawn_app(&format!("[ingest]\nmax_body_bytes = {BUDGET}\nmax_inflight_bytes = {BUDGET}\n"))
            .await;
    assert_eq!(inflight_bytes(&app).await, 0);

    // Connection A sends 700 KB of a 900 KB message and holds the rest back.
    let message = big_request(800, 900_000).encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(&message);
    let (mut held, held_response) = raw_export(&app).await;
    let first = Bytes::copy_from_slice(&framed[..700_000]);
    held.send(Ok(http_body::Frame::data(first))).await.unwrap();
    eventually(std::time::Duration::from_secs(10), "700 KB reserved", || async {
        (inflight_bytes(&app).await == 700_000).then_some(())
    })
    .await;

    // Eight more connections at once: none fits beside A.
    let mut refused = Vec::new();
    for i in 0..8 {
        let url = app.grpc_url.clone();
        refused.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(url).await.unwrap();
            client.export(big_request(801 + i, 500_000)).await.unwrap_err()
        }));
    }
    for status in refused {
        let status = status.await.unwrap();
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert_eq!(::otlp::decode_grpc_retry_delay(status.details()), Some(1), "{status:?}");
        assert_eq!(status.metadata().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
        assert!(inflight_bytes(&app).await <= BUDGET);
    }
    // The refused requests give back what they had reserved.
    eventually(std::time::Duration::from_secs(10), "only A's bytes held", || async {
        (inflight_bytes(&app).await == 700_000).then_some(())
    })
    .await;
    // HTTP shares the budget.
    let body = otlp::encode(&big_request(810, 500_000));
    let response = app.post_otlp_protobuf(body.clone()).await;
    assert_eq!(response.status, 503, "{}", response.text());
    assert_eq!(response.header("retry-after"), Some("1"));

    // A's rest fits; A is stored.
    let rest = Bytes::copy_from_slice(&framed[700_000..]);
    held.send(Ok(http_body::Frame::data(rest))).await.unwrap();
    drop(held);
    let response = held_response.await.unwrap();
    assert_eq!(response.status(), 200);
    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&trace_id(800)))).await;
    assert_eq!(tree["rollup"]["n_spans"], 1);
    eventually(std::time::Duration::from_secs(10), "the budget is free", || async {
        (inflight_bytes(&app).await == 0).then_some(())
    })
    .await;

    // The retries succeed.
    app.post_otlp_protobuf(body).await.assert_status(200);
    let mut client = TraceServiceClient::connect(app.grpc_url.clone()).await.unwrap();
    client.export(big_request(801, 500_000)).await.unwrap();
}
