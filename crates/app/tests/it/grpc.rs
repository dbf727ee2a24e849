//! OTLP/gRPC with the tonic client: export with gzip, partial success, and wrong keys.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use test_support::{otlp, spawn_app};
use tonic::codec::CompressionEncoding;

use crate::{hex, render_tree, trace_id};

async fn client(url: &str) -> TraceServiceClient<tonic::transport::Channel> {
    TraceServiceClient::connect(url.to_owned())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip)
}

#[tokio::test]
async fn grpc_export_with_gzip_is_stored() {
    let app = spawn_app("").await;
    let mut client = client(&app.grpc_url).await;
    let id = trace_id(400);
    let mut spans = otlp::agent_trace(id, 1_700_000_000_000_000_000);
    let mut bad = otlp::span(id, 9, Some(1), "bad", 10, 20);
    bad.span_id = vec![1, 2, 3];
    spans.push(bad);
    let response = client.export(otlp::request("grpc-svc", spans)).await.unwrap().into_inner();
    let partial = response.partial_success.expect("one span was invalid");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("span id"), "{}", partial.error_message);

    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&id))).await;
    assert_eq!(tree["rollup"]["n_spans"], 3);
    assert!(render_tree(&tree).starts_with("agent.run"));

    // Larger than tonic's 4 MiB default message size.
    let mut span = otlp::span(
        trace_id(401),
        1,
        None,
        "big",
        1_700_000_000_000_000_000,
        1_700_000_001_000_000_000,
    );
    span.attributes.push(otlp::string("blob", &"x".repeat(6 * 1024 * 1024)));
    let response = client.export(otlp::request("grpc-svc", vec![span])).await.unwrap().into_inner();
    assert_eq!(response.partial_success, None);
}

#[tokio::test]
async fn grpc_wrong_key_is_unauthenticated_and_stores_nothing() {
    let app = spawn_app("[[auth.keys]]\nproject = \"alpha\"\nkey = \"key-alpha\"\n").await;
    let mut client = client(&app.grpc_url).await;
    let id = trace_id(402);
    let mut request =
        tonic::Request::new(otlp::request("svc", otlp::agent_trace(id, 1_700_000_000_000_000_000)));
    request.metadata_mut().insert("authorization", "Bearer nope".parse().unwrap());
    let status = client.export(request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    let mut request =
        tonic::Request::new(otlp::request("svc", otlp::agent_trace(id, 1_700_000_000_000_000_000)));
    request.metadata_mut().insert("x-loupe-api-key", "key-alpha".parse().unwrap());
    client.export(request).await.unwrap();
    let response = app
        .get(&format!("/api/v1/traces/{}", hex(&id)), &[("authorization", "Bearer key-alpha")])
        .await;
    response.assert_status(200);
    assert_eq!(response.json()["rollup"]["n_spans"], 3);
}

#[tokio::test]
async fn grpc_message_over_the_limit_is_resource_exhausted_not_retried() {
    let app = spawn_app("[ingest]\nmax_body_bytes = 1048576\n").await;
    let mut client = client(&app.grpc_url).await;
    let mut span = otlp::span(trace_id(403), 1, None, "big", 1, 2);
    span.attributes.push(otlp::string("blob", &"x".repeat(2 * 1024 * 1024)));
    let status = client.export(otlp::request("svc", vec![span])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
}
