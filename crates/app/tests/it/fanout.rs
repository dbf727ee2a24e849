//! Fan-out through the real binary: spans acknowledged by `loupe serve` reach a configured
//! `[[pipeline.fanout]]` OTLP endpoint, processed (the user id hashed, the cost attached).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use test_support::spawn_app;

#[tokio::test]
async fn processed_spans_are_forwarded_to_the_fanout_endpoint() {
    let received: Arc<Mutex<Vec<ExportTraceServiceRequest>>> = Arc::default();
    let sink = received.clone();
    let router = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("protobuf export");
                sink.lock().unwrap().push(request);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let app = spawn_app(&format!(
        "[[pipeline.fanout]]\nendpoint = \"http://{addr}/v1/traces\"\nflush_interval_ms = 50\n"
    ))
    .await;
    app.post_otlp_json(&test_support::fixture("trace-48f.otlp.json")).await.assert_status(200);

    let spans = test_support::eventually(Duration::from_secs(20), "spans forwarded", || {
        let received = received.clone();
        async move {
            let spans: Vec<_> = received
                .lock()
                .unwrap()
                .iter()
                .flat_map(|r| &r.resource_spans)
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| ss.spans.clone())
                .collect();
            (spans.len() >= 8).then_some(spans)
        }
    })
    .await;
    assert_eq!(spans.len(), 8, "each span forwarded once");

    let attr = |name: &str, key: &str| {
        let span = spans.iter().find(|s| s.name == name).expect("span forwarded");
        span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.clone())
    };
    let user = format!("{:?}", attr("refund_chat.turn", "user.id"));
    assert!(!user.contains("h_38d2"), "raw user id forwarded: {user}");
    assert!(user.contains("<user:u_"), "user id hashed: {user}");
    assert!(attr("llm.generate", "loupe.cost.usd").is_some(), "cost attached");

    // The exporter's counters and buffer depth are on /metrics, labelled by its name.
    let label = format!("{{exporter=\"http://{addr}/v1/traces\"}}");
    let metrics = test_support::eventually(Duration::from_secs(10), "fan-out metrics", || async {
        let text = app.get("/metrics", &[]).await.text();
        text.contains(&format!("loupe_processor_fanout_sent_spans_total{label} 8")).then_some(text)
    })
    .await;
    for series in [
        format!("loupe_processor_fanout_dropped_spans_total{label} 0"),
        format!("loupe_processor_fanout_failed_spans_total{label} 0"),
        format!("loupe_processor_fanout_retries_total{label} 0"),
        format!("loupe_processor_fanout_buffered_spans{label} 0"),
        "# TYPE loupe_processor_fanout_buffered_spans gauge".to_owned(),
    ] {
        assert!(metrics.lines().any(|line| line == series), "{series} in:\n{metrics}");
    }
    server.abort();
}
