//! Bad input: each case gets a clear error or a partial success, the server keeps running, and
//! the valid spans are stored.

use std::io::Write;

use expect_test::{Expect, expect};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use test_support::{App, Response, otlp, spawn_app};

use crate::{hex, trace_id};

const SMALL_LIMIT: &str = "[ingest]\nmax_body_bytes = 1048576\n";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// `STATUS retry-after=… body`, the body decoded as a `google.rpc.Status` when protobuf.
fn outcome(response: &Response) -> String {
    let body = match response.header("content-type") {
        Some("application/x-protobuf") if response.status == 200 => {
            let decoded = ExportTraceServiceResponse::decode(&response.body[..]).unwrap();
            match decoded.partial_success {
                Some(p) => format!("partial rejected={} {}", p.rejected_spans, p.error_message),
                None => "ok".to_owned(),
            }
        }
        Some("application/x-protobuf") => {
            let decoded = RpcStatus::decode(&response.body[..]).unwrap();
            format!("rpc code={} {}", decoded.code, decoded.message)
        }
        _ => response.text(),
    };
    let retry =
        response.header("retry-after").map(|v| format!(" retry-after={v}")).unwrap_or_default();
    format!("{}{retry} {body}", response.status)
}

/// `google.rpc.Status`, as OTLP error bodies carry it.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[track_caller]
fn check(response: &Response, expect: Expect) {
    expect.assert_eq(&outcome(response));
}

async fn assert_alive_and_stored(app: &App, id: [u8; 16], n_spans: u64) {
    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&id))).await;
    assert_eq!(tree["rollup"]["n_spans"], n_spans, "{tree}");
}

#[tokio::test]
async fn undecodable_bodies_get_400_and_the_server_keeps_going() {
    let app = spawn_app(SMALL_LIMIT).await;
    let proto = [("content-type", "application/x-protobuf")];
    let json = [("content-type", "application/json")];

    check(
        &app.post("/v1/traces", &proto, b"\xff\xfe garbage \x00\x01".to_vec()).await,
        expect![
            "400 rpc code=3 body is not a valid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: invalid wire type value: 7"
        ],
    );
    let full = otlp::encode(&otlp::request("svc", otlp::agent_trace(trace_id(1), 1_000)));
    let truncated = full[..full.len() / 2].to_vec();
    check(
        &app.post("/v1/traces", &proto, truncated).await,
        expect![
            "400 rpc code=3 body is not a valid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: ExportTraceServiceRequest.resource_spans: buffer underflow"
        ],
    );
    check(
        &app.post("/v1/traces", &json, b"{\"resourceSpans\": [".to_vec()).await,
        expect![[
            r#"400 {"code":3,"message":"body is not valid json: EOF while parsing a list at line 1 column 19"}"#
        ]],
    );
    check(
        &app.post("/v1/traces", &json, b"[1, 2, 3]".to_vec()).await,
        expect![[
            r#"400 {"code":3,"message":"body is not an otlp json trace request: the top level must be an object"}"#
        ]],
    );
    check(
        &app.post("/v1/traces", &[("content-type", "text/plain")], b"hello".to_vec()).await,
        expect![[
            r#"415 {"code":3,"message":"unsupported content type \"text/plain\": send application/x-protobuf or application/json"}"#
        ]],
    );
    check(
        &app.post(
            "/v1/traces",
            &[("content-type", "application/json"), ("content-encoding", "br")],
            b"{}".to_vec(),
        )
        .await,
        expect![[
            r#"415 {"code":3,"message":"unsupported content encoding \"br\": send gzip or no compression"}"#
        ]],
    );
    check(
        &app.post(
            "/v1/traces",
            &[("content-type", "application/json"), ("content-encoding", "gzip")],
            b"not gzip".to_vec(),
        )
        .await,
        expect![[
            r#"400 {"code":3,"message":"gzip body could not be decompressed: unexpected end of file"}"#
        ]],
    );

    // Still serving, and a valid request after all that is stored.
    let request = otlp::request("svc", otlp::agent_trace(trace_id(2), 1_700_000_000_000_000_000));
    app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    assert_alive_and_stored(&app, trace_id(2), 3).await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_even_when_compressed_small() {
    let app = spawn_app(SMALL_LIMIT).await;
    let big = vec![b' '; 2 * 1024 * 1024];
    check(
        &app.post("/v1/traces", &[("content-type", "application/json")], big).await,
        expect![[
            r#"413 {"code":8,"message":"request body is larger than the limit of 1048576 bytes"}"#
        ]],
    );
    // A gzip bomb: 64 MiB of zeros in about 64 KiB.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 200 * 1024, "bomb is {} bytes", bomb.len());
    check(
        &app.post(
            "/v1/traces",
            &[("content-type", "application/x-protobuf"), ("content-encoding", "gzip")],
            bomb,
        )
        .await,
        expect!["413 rpc code=8 request body is larger than the limit of 1048576 bytes"],
    );
    let request = otlp::request("svc", otlp::agent_trace(trace_id(3), 1_700_000_000_000_000_000));
    app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    assert_alive_and_stored(&app, trace_id(3), 3).await;
}

#[tokio::test]
async fn bad_ids_are_rejected_one_by_one_in_a_partial_success() {
    let app = spawn_app("").await;
    let good = hex(&trace_id(4));
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"svc"}}}}]}},
        "scopeSpans":[{{"spans":[
          {{"traceId":"{good}","spanId":"0000000000000001","name":"ok-root","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000001000000000"}},
          {{"traceId":"00000000000000000000000000000000","spanId":"0000000000000002","name":"zero-trace","startTimeUnixNano":"1","endTimeUnixNano":"2"}},
          {{"traceId":"{good}","spanId":"0000000000000000","name":"zero-span","startTimeUnixNano":"1","endTimeUnixNano":"2"}},
          {{"traceId":"abcd","spanId":"0000000000000003","name":"short-trace","startTimeUnixNano":"1","endTimeUnixNano":"2"}},
          {{"traceId":"{good}","spanId":"00000000000004","name":"short-span","startTimeUnixNano":"1","endTimeUnixNano":"2"}},
          {{"traceId":"{good}","spanId":"0000000000000005","name":"backwards","startTimeUnixNano":"9","endTimeUnixNano":"2"}},
          {{"traceId":"{good}","spanId":"0000000000000006","parentSpanId":"0000000000000001","name":"ok-child","startTimeUnixNano":"1700000000100000000","endTimeUnixNano":"1700000000200000000"}}
        ]}}]}}]}}"#
    );
    let response = app.post_otlp_json(&body).await;
    response.assert_status(200);
    expect![[r#"rejected="5" rejected 5 of 7 spans: span 'zero-trace' (trace 00000000000000000000000000000000, span 0000000000000002): trace id is all zeros, which OTLP and W3C trace context define as invalid; span 'zero-span' (trace 4c6f7570655465730000000000000004, span 0000000000000000): span id is all zeros, which OTLP and W3C trace context define as invalid; span 'short-trace' (trace abcd, span 0000000000000003): trace id must be 16 bytes (32 hex characters), got 2 bytes; span 'short-span' (trace 4c6f7570655465730000000000000004, span 00000000000004): span id must be 8 bytes (16 hex characters), got 7 bytes; span 'backwards' (trace 4c6f7570655465730000000000000004, span 0000000000000005): end time 2 is before start time 9"#]].assert_eq(&crate::partial_success(&response));
    assert_alive_and_stored(&app, trace_id(4), 2).await;
}

#[tokio::test]
async fn invalid_utf8_huge_and_deep_spans() {
    let app = spawn_app("").await;

    // Invalid UTF-8 in a protobuf string field.
    let mut span = otlp::span(trace_id(5), 1, None, "PLACEHOLDER", 1_000, 2_000);
    span.attributes.push(otlp::string("k", "v"));
    let mut bytes = otlp::encode(&otlp::request("svc", vec![span]));
    let at = bytes.windows(11).position(|w| w == b"PLACEHOLDER").unwrap();
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    check(
        &app.post_otlp_protobuf(bytes).await,
        expect![
            "200 partial rejected=1 rejected 1 of 1 span: span '��ACEHOLDER' (trace 4c6f7570655465730000000000000005, span 0000000000000001): span name is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 0)"
        ],
    );

    // 10,000 attributes on one span: stored whole.
    let mut span = otlp::span(
        trace_id(6),
        1,
        None,
        "wide",
        1_700_000_000_000_000_000,
        1_700_000_001_000_000_000,
    );
    for i in 0..10_000 {
        span.attributes.push(otlp::int(&format!("attr.{i}"), i));
    }
    let response = app.post_otlp_protobuf(otlp::encode(&otlp::request("svc", vec![span]))).await;
    response.assert_status(200);
    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&trace_id(6)))).await;
    assert_eq!(tree["spans"][0]["raw"]["attributes"].as_array().unwrap().len(), 10_000);

    // An AnyValue nested 100 levels deep, in JSON and in protobuf.
    let mut value = r#"{"stringValue":"leaf"}"#.to_owned();
    for _ in 0..100 {
        value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
    }
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"0000000000000001","name":"deep","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{{"key":"deep","value":{value}}}]}}]}}]}}]}}"#,
        hex(&trace_id(7))
    );
    check(
        &app.post_otlp_json(&body).await,
        expect![[
            r#"400 {"code":3,"message":"body is not valid json: recursion limit exceeded at line 1 column 1203"}"#
        ]],
    );
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, KeyValue, any_value::Value,
    };
    let mut value = AnyValue { value: Some(Value::StringValue("leaf".to_owned())) };
    for _ in 0..100 {
        value = AnyValue { value: Some(Value::ArrayValue(ArrayValue { values: vec![value] })) };
    }
    let mut span = otlp::span(trace_id(7), 1, None, "deep", 1, 2);
    span.attributes.push(KeyValue {
        key: "deep".to_owned(),
        value: Some(value),
        ..KeyValue::default()
    });
    check(
        &app.post_otlp_protobuf(otlp::encode(&otlp::request("svc", vec![span]))).await,
        expect![
            "400 rpc code=3 body is not a valid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: KeyValue.value: Span.attributes: ScopeSpans.spans: ResourceSpans.scope_spans: ExportTraceServiceRequest.resource_spans: recursion limit reached"
        ],
    );

    let request = otlp::request("svc", otlp::agent_trace(trace_id(8), 1_700_000_000_000_000_000));
    app.post_otlp_protobuf(otlp::encode(&request)).await.assert_status(200);
    assert_alive_and_stored(&app, trace_id(8), 3).await;
}

#[tokio::test]
async fn a_trace_of_50000_spans() {
    let app = spawn_app("").await;
    let id = trace_id(10);
    let base = 1_700_000_000_000_000_000u64;
    let mut spans = vec![otlp::span(id, 1, None, "root", base, base + 60_000_000_000)];
    for i in 2..=50_000u64 {
        spans.push(otlp::span(id, i, Some(1), "step", base + i * 1000, base + i * 1000 + 500));
    }
    let response = app.post_otlp_protobuf(otlp::encode(&otlp::request("svc", spans))).await;
    check(&response, expect!["200 ok"]);
    let tree = app.get_json(&format!("/api/v1/traces/{}", hex(&id))).await;
    assert_eq!(tree["rollup"]["n_spans"], 50_000);
    assert_eq!(tree["spans"][0]["children"].as_array().unwrap().len(), 49_999);
}
