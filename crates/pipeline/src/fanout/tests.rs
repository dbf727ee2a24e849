//! Tests of the fan-out exporters against a local OTLP/HTTP server that records what it
//! receives.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use expect_test::expect;
use model::{AnyValue, ProjectId, attr_get};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::{Fanout, FanoutStats, RawFanoutConfig};
use crate::Batch;

/// What the server received: the arrival time, the auth header and the request.
type Received = Vec<(Instant, Option<String>, ExportTraceServiceRequest)>;

struct Server {
    url: String,
    received: Arc<Mutex<Received>>,
    n_received: tokio::sync::watch::Receiver<usize>,
}

/// The recorded requests and their count (for waiting on it).
type ServerState = (Arc<Mutex<Received>>, Arc<tokio::sync::watch::Sender<usize>>);

/// A local OTLP/HTTP endpoint that answers `503` with `Retry-After: 1` to its first request and
/// `200` afterwards.
async fn serve() -> Server {
    serve_with(axum::routing::post(export)).await
}

async fn serve_with(handler: axum::routing::MethodRouter<ServerState>) -> Server {
    let received: Arc<Mutex<Received>> = Arc::default();
    let (count, n_received) = tokio::sync::watch::channel(0usize);
    let state: ServerState = (received.clone(), Arc::new(count));
    let app = axum::Router::new().route("/v1/traces", handler).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/v1/traces", listener.local_addr().expect("addr"));
    // The server lives as long as the test's runtime.
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    Server { url, received, n_received }
}

async fn export(
    state: axum::extract::State<ServerState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    match record(state, headers, body) {
        1 => (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]).into_response(),
        _ => StatusCode::OK.into_response(),
    }
}

/// Records a request; returns how many were received.
fn record(
    axum::extract::State((received, count)): axum::extract::State<ServerState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> usize {
    let request = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let n = {
        let mut received = received.lock().expect("lock");
        received.push((Instant::now(), auth, request));
        received.len()
    };
    count.send_replace(n);
    n
}

fn fanout_config(toml_text: &str) -> RawFanoutConfig {
    toml::from_str(toml_text).expect("fanout config parses")
}

/// Waits (at most 10 s) until `done` holds for the exporter's stats.
async fn wait_for_stats(fanout: &Fanout, done: impl Fn(&FanoutStats) -> bool) -> FanoutStats {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = fanout.stats().remove(0);
        if done(&stats) || Instant::now() > deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn forwards_processed_spans_and_retries_after_503() {
    let mut server = serve().await;
    let fanout = Arc::new(
        Fanout::from_raw(&[fanout_config(&format!(
            r#"
            name = "collector"
            endpoint = "{}"
            headers = {{ authorization = "Bearer t0ken" }}
            batch_size = 100
            flush_interval_ms = 10
            "#,
            server.url
        ))])
        .expect("fanout starts"),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let pipeline = crate::sqlite_test_pipeline(dir.path()).with_fanout(fanout.clone());

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/trace-48f.otlp.json");
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spans = otlp::decode_json(&body).expect("fixture decodes").spans;
    let project = ProjectId::default_project();
    pipeline.submit(Batch { project, spans }).await.expect("submit");

    // The first answer is a 503; the batch is sent again after the server's Retry-After.
    server.n_received.wait_for(|n| *n >= 2).await.expect("server is up");
    let stats = wait_for_stats(&fanout, |stats| stats.sent_spans > 0).await;
    pipeline.shutdown().await;
    check_stats(
        &stats,
        expect![[r#"
        FanoutStats {
            name: "collector",
            buffered_spans: 0,
            sent_spans: 8,
            dropped_spans: 0,
            failed_spans: 0,
            requests: 2,
            retries: 1,
        }"#]],
    );

    let received = server.received.lock().expect("lock");
    assert!(received[1].0 - received[0].0 >= Duration::from_secs(1), "Retry-After was honoured");
    let mut res = String::new();
    for (_, auth, request) in received.iter() {
        let spans = otlp::from_request(request.clone()).spans;
        let _ = writeln!(res, "request auth={auth:?} spans={}", spans.len());
        for span in spans.iter().filter(|s| {
            s.parent_span_id.is_none() || attr_get(&s.attributes, "loupe.cost.usd").is_some()
        }) {
            let attr =
                |key| attr_get(&span.attributes, key).and_then(AnyValue::as_str).unwrap_or("-");
            let _ = writeln!(
                res,
                "  {} user.id={} loupe.cost.usd={}",
                span.name,
                attr("user.id"),
                attr("loupe.cost.usd"),
            );
        }
    }
    expect![[r#"
        request auth=Some("Bearer t0ken") spans=8
          refund_chat.turn user.id=<user:u_b3a662a7022b> loupe.cost.usd=-
          llm.query_rewrite user.id=- loupe.cost.usd=0.0000258
          vector.embed user.id=- loupe.cost.usd=0.00000026
          llm.generate user.id=- loupe.cost.usd=0.00831
        request auth=Some("Bearer t0ken") spans=8
          refund_chat.turn user.id=<user:u_b3a662a7022b> loupe.cost.usd=-
          llm.query_rewrite user.id=- loupe.cost.usd=0.0000258
          vector.embed user.id=- loupe.cost.usd=0.00000026
          llm.generate user.id=- loupe.cost.usd=0.00831
    "#]]
    .assert_eq(&res);
}

#[track_caller]
fn check_stats(stats: &FanoutStats, expect: expect_test::Expect) {
    expect.assert_eq(&format!("{stats:#?}"));
}

#[tokio::test]
async fn a_full_buffer_drops_new_spans_and_a_down_backend_fails_the_batch() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let fanout = Fanout::from_raw(&[fanout_config(&format!(
        r#"
        name = "down"
        endpoint = "http://{addr}/v1/traces"
        batch_size = 2
        max_buffered_spans = 2
        max_retry_secs = 0
        "#
    ))])
    .expect("fanout starts");
    let span = otlp::decode_json(
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0000000000000000000000000000000a",
            "spanId":"0000000000000001","name":"s","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#,
    )
    .expect("span decodes")
    .spans
    .remove(0);
    fanout.enqueue(vec![span; 5]);
    let stats = wait_for_stats(&fanout, |stats| stats.failed_spans == 2).await;
    fanout.shutdown().await;
    check_stats(
        &stats,
        expect![[r#"
        FanoutStats {
            name: "down",
            buffered_spans: 0,
            sent_spans: 0,
            dropped_spans: 3,
            failed_spans: 2,
            requests: 1,
            retries: 0,
        }"#]],
    );
}

#[test]
fn config_errors() {
    let errors: Vec<String> = [
        r#"endpoint = "not a url""#,
        r#"endpoint = "ftp://x/v1/traces""#,
        "endpoint = \"http://x/v1/traces\"\nbatch_size = 10\nmax_buffered_spans = 5",
        "endpoint = \"http://x/v1/traces\"\nheaders = { \"bad header\" = \"v\" }",
    ]
    .iter()
    .map(|text| {
        super::FanoutConfig::from_raw(&fanout_config(text))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    })
    .collect();
    expect![[r#"
        [
            "invalid pipeline config: fanout (not a url): endpoint: relative URL without a base",
            "invalid pipeline config: fanout (ftp://x/v1/traces): endpoint must be http or https",
            "invalid pipeline config: fanout (http://x/v1/traces): batch_size must be at least 1 and at most max_buffered_spans",
            "invalid pipeline config: fanout (http://x/v1/traces): header \"bad header\": invalid HTTP header name",
        ]
    "#]].assert_debug_eq(&errors);
    assert!(toml::from_str::<RawFanoutConfig>("endpoint = \"http://x\"\nbogus = 1").is_err());
}

/// The fan-out examples in `docs/pipeline.md` (fenced as `toml fanout`, since the processor
/// sections' docs test does not know `[[pipeline.fanout]]`) are valid.
#[test]
fn docs_examples_are_valid_configs() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pipeline.md");
    let text = std::fs::read_to_string(&path).expect("docs/pipeline.md");
    let mut n_exporters = 0;
    for block in text.split("```toml fanout\n").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        let table: toml::Table = toml::from_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let pipeline = table.get("pipeline").cloned().expect("examples are under [pipeline]");
        let pipeline: toml::Table = pipeline.try_into().expect("a table");
        let fanout = pipeline.get("fanout").cloned().expect("examples are [[pipeline.fanout]]");
        let raw: Vec<RawFanoutConfig> =
            fanout.try_into().unwrap_or_else(|e| panic!("{e}\n{block}"));
        for raw in &raw {
            super::FanoutConfig::from_raw(raw).unwrap_or_else(|e| panic!("{e}\n{block}"));
            n_exporters += 1;
        }
    }
    assert!(n_exporters >= 1, "found {n_exporters} examples");
}

/// At shutdown, what is buffered gets one attempt, without waiting for the flush interval.
#[tokio::test]
async fn shutdown_sends_what_is_buffered() {
    let server =
        serve_with(axum::routing::post(
            |state: axum::extract::State<ServerState>,
             headers: HeaderMap,
             body: axum::body::Bytes| async move {
                record(state, headers, body);
                StatusCode::OK
            },
        ))
        .await;
    let fanout = Fanout::from_raw(&[fanout_config(&format!(
        "name = \"idle\"\nendpoint = \"{}\"\nflush_interval_ms = 3600000",
        server.url
    ))])
    .expect("fanout starts");
    let span = otlp::decode_json(
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0000000000000000000000000000000a",
            "spanId":"0000000000000001","name":"s","startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#,
    )
    .expect("span decodes")
    .spans
    .remove(0);
    fanout.enqueue(vec![span; 3]);
    fanout.shutdown().await;
    check_stats(
        &fanout.stats()[0],
        expect![[r#"
        FanoutStats {
            name: "idle",
            buffered_spans: 0,
            sent_spans: 3,
            dropped_spans: 0,
            failed_spans: 0,
            requests: 1,
            retries: 0,
        }"#]],
    );
    assert_eq!(*server.n_received.borrow(), 1);
}
