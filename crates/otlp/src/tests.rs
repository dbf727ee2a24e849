//! Tests: golden files under `test_data/{ok,err}` (OTLP JSON in, rendered spans and rejections
//! out, plus round trips through `to_request`/protobuf and `to_json`), and inline checks of the
//! protobuf path and the response encoders.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use expect_test::{Expect, expect, expect_file};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1 as pb_common;
use opentelemetry_proto::tonic::common::v1::any_value::Value as PbValue;
use opentelemetry_proto::tonic::trace::v1 as pb_trace;
use prost::Message;

use crate::{Decoded, Encoding, Rejected};

fn render(res: &Result<Decoded, crate::Error>) -> String {
    let decoded = match res {
        Ok(decoded) => decoded,
        Err(e) => return format!("error ({:?}): {e}\n", e.code()),
    };
    let mut out = String::new();
    for span in &decoded.spans {
        let _ = writeln!(out, "span {}", serde_json::to_string_pretty(span).unwrap_or_default());
    }
    for Rejected { trace_id, span_id, name, reason } in &decoded.rejected {
        let _ =
            writeln!(out, "rejected trace={trace_id:?} span={span_id:?} name={name:?}: {reason}");
    }
    if !decoded.rejected.is_empty() {
        let message = crate::encode::partial_success_message(&decoded.rejected);
        let _ = writeln!(out, "message: {message}");
    }
    out
}

/// The valid spans survive `to_request` -> protobuf -> decode, and `to_json` -> decode.
#[track_caller]
fn check_round_trips(decoded: &Decoded) {
    let request = crate::to_request(&decoded.spans);
    let again = crate::decode_protobuf(&request.encode_to_vec()).map(|it| it.spans);
    assert_eq!(again.ok().as_ref(), Some(&decoded.spans), "protobuf round trip");
    let json = crate::to_json(&decoded.spans).to_string();
    let again = crate::decode_json(json.as_bytes()).map(|it| it.spans);
    assert_eq!(again.ok().as_ref(), Some(&decoded.spans), "json round trip");
}

fn test_data(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join(dir);
    let mut res: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    res.sort();
    res
}

#[test]
fn golden_ok() {
    let paths = test_data("ok");
    assert!(paths.len() >= 5);
    for path in paths {
        let body = std::fs::read(&path).unwrap();
        let res = crate::decode_json(&body);
        let decoded = res.as_ref().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(decoded.rejected.is_empty(), "{}: {:?}", path.display(), decoded.rejected);
        check_round_trips(decoded);
        expect_file![path.with_extension("txt")].assert_eq(&render(&res));
    }
}

#[test]
fn golden_err() {
    let paths = test_data("err");
    assert!(paths.len() >= 5);
    for path in paths {
        let body = std::fs::read(&path).unwrap();
        let res = crate::decode_json(&body);
        if let Ok(decoded) = &res {
            assert!(!decoded.rejected.is_empty(), "{}: nothing rejected", path.display());
            check_round_trips(decoded);
        }
        expect_file![path.with_extension("txt")].assert_eq(&render(&res));
    }
}

fn pb_span(trace_id: &[u8], span_id: &[u8], name: &str) -> pb_trace::Span {
    pb_trace::Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name: name.to_owned(),
        kind: 3,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_000,
        ..Default::default()
    }
}

fn pb_request(spans: Vec<pb_trace::Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![pb_trace::ResourceSpans {
            resource: None,
            scope_spans: vec![pb_trace::ScopeSpans {
                scope: None,
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

const TRACE: [u8; 16] = [0x48, 0xf9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

fn summary(decoded: &Decoded) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ok, {} rejected", decoded.spans.len(), decoded.rejected.len());
    for it in decoded.rejected.iter().take(5) {
        let _ = writeln!(out, "  {} {} {:?}: {}", it.trace_id, it.span_id, it.name, it.reason);
    }
    out
}

#[track_caller]
fn check_protobuf(body: &[u8], expect: Expect) {
    let res = crate::decode(Encoding::Protobuf, body);
    let actual = match &res {
        Ok(decoded) => summary(decoded),
        Err(e) => format!("error: {e}\n"),
    };
    expect.assert_eq(&actual);
}

#[test]
fn protobuf_per_span_rejections_keep_valid_spans() {
    let mut end_before_start = pb_span(&TRACE, &[1; 8], "end_before_start");
    end_before_start.end_time_unix_nano = 10;
    let mut bad_parent = pb_span(&TRACE, &[2; 8], "bad_parent");
    bad_parent.parent_span_id = vec![1, 2, 3];
    let mut zero_parent = pb_span(&TRACE, &[3; 8], "zero_parent_is_root");
    zero_parent.parent_span_id = vec![0; 8];
    let mut no_start = pb_span(&TRACE, &[4; 8], "no_start");
    no_start.start_time_unix_nano = 0;
    let request = pb_request(vec![
        pb_span(&TRACE, &[9; 8], "ok"),
        pb_span(&[0; 16], &[1; 8], "zero_trace"),
        pb_span(&TRACE[..15], &[1; 8], "short_trace"),
        pb_span(&TRACE, &[0; 8], "zero_span"),
        pb_span(&TRACE, &[1; 9], "long_span"),
        end_before_start,
        bad_parent,
        zero_parent,
        no_start,
    ]);
    let decoded = crate::decode_protobuf(&request.encode_to_vec()).unwrap();
    expect![[r#"
        2 ok, 7 rejected
          00000000000000000000000000000000 0101010101010101 "zero_trace": trace id is all zeros, which OTLP and W3C trace context define as invalid
          48f90102030405060708090a0b0c0d 0101010101010101 "short_trace": trace id must be 16 bytes (32 hex characters), got 15 bytes
          48f90102030405060708090a0b0c0d0e 0000000000000000 "zero_span": span id is all zeros, which OTLP and W3C trace context define as invalid
          48f90102030405060708090a0b0c0d0e 010101010101010101 "long_span": span id must be 8 bytes (16 hex characters), got 9 bytes
          48f90102030405060708090a0b0c0d0e 0101010101010101 "end_before_start": end time 10 is before start time 1000
    "#]]
    .assert_eq(&summary(&decoded));
    assert_eq!(decoded.spans[1].parent_span_id, None);
    let body = crate::encode_response(Encoding::Json, decoded.n_total(), &decoded.rejected);
    expect![[r#"{"partialSuccess":{"rejectedSpans":"7","errorMessage":"rejected 7 of 9 spans: span 'zero_trace' (trace 00000000000000000000000000000000, span 0101010101010101): trace id is all zeros, which OTLP and W3C trace context define as invalid; span 'short_trace' (trace 48f90102030405060708090a0b0c0d, span 0101010101010101): trace id must be 16 bytes (32 hex characters), got 15 bytes; span 'zero_span' (trace 48f90102030405060708090a0b0c0d0e, span 0000000000000000): span id is all zeros, which OTLP and W3C trace context define as invalid; span 'long_span' (trace 48f90102030405060708090a0b0c0d0e, span 010101010101010101): span id must be 8 bytes (16 hex characters), got 9 bytes; span 'end_before_start' (trace 48f90102030405060708090a0b0c0d0e, span 0101010101010101): end time 10 is before start time 1000; span 'bad_parent' (trace 48f90102030405060708090a0b0c0d0e, span 0202020202020202): parent span id must be 8 bytes (16 hex characters), got 3 bytes; span 'no_start' (trace 48f90102030405060708090a0b0c0d0e, span 0404040404040404): start time is missing (0)"}}"#]]
    .assert_eq(std::str::from_utf8(&body).unwrap());
    let body = crate::encode_response(Encoding::Protobuf, decoded.n_total(), &decoded.rejected);
    let response = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    assert_eq!(response.partial_success.map(|it| it.rejected_spans), Some(7));
}

#[test]
fn responses_without_rejections_are_empty() {
    assert_eq!(crate::encode_response(Encoding::Json, 3, &[]), b"{}");
    assert_eq!(crate::encode_response(Encoding::Protobuf, 3, &[]), b"");
    assert_eq!(crate::partial_success_message(&[]), "");
}

#[test]
fn status_bodies() {
    let json = crate::encode_status(Encoding::Json, 3, "body is not valid json");
    expect![[r#"{"code":3,"message":"body is not valid json"}"#]]
        .assert_eq(std::str::from_utf8(&json).unwrap());
    let proto = crate::encode_status(Encoding::Protobuf, 3, "bad");
    assert_eq!(proto, [0x08, 3, 0x12, 3, b'b', b'a', b'd']);
}

#[test]
fn partial_success_message_is_bounded() {
    let rejected: Vec<Rejected> = (0..1000)
        .map(|i| Rejected {
            trace_id: "ab".repeat(500),
            span_id: format!("{i:016x}"),
            name: "n".repeat(10_000),
            reason: "r".repeat(10_000),
        })
        .collect();
    let message = crate::partial_success_message(&rejected);
    assert!(message.len() <= 4096, "{}", message.len());
    assert!(message.starts_with("rejected 1000 spans: span 'nnn"));
    assert!(message.ends_with("; and 994 more"), "{message}");
}

#[test]
fn garbage_and_truncated_protobuf_are_errors() {
    check_protobuf(
        b"\xff\xff\xff\xff garbage",
        expect![[r#"
            error: body is not a valid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: invalid key value: 8858370047
        "#]],
    );
    let body = pb_request(vec![pb_span(&TRACE, &[1; 8], "x")]).encode_to_vec();
    check_protobuf(
        &body[..body.len() - 3],
        expect![[r#"
            error: body is not a valid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: ExportTraceServiceRequest.resource_spans: buffer underflow
        "#]],
    );
    check_protobuf(
        b"",
        expect![[r#"
        0 ok, 0 rejected
    "#]],
    );
}

#[test]
fn invalid_utf8_rejects_only_its_spans() {
    let mut bad_attribute = pb_span(&TRACE, &[2; 8], "bad attribute");
    bad_attribute.attributes.push(pb_common::KeyValue {
        key: "k".into(),
        value: Some(pb_common::AnyValue {
            value: Some(PbValue::ArrayValue(pb_common::ArrayValue {
                values: vec![pb_common::AnyValue {
                    value: Some(PbValue::StringValue("vvv".into())),
                }],
            })),
        }),
        key_strindex: 0,
    });
    let mut request = pb_request(vec![
        pb_span(&TRACE, &[1; 8], "xyz"),
        bad_attribute,
        pb_span(&TRACE, &[3; 8], "fine"),
    ]);
    let mut other_resource = pb_request(vec![pb_span(&TRACE, &[4; 8], "bad resource")]);
    other_resource.resource_spans[0].resource =
        Some(opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![pb_common::KeyValue {
                key: "service.name".into(),
                value: Some(pb_common::AnyValue {
                    value: Some(PbValue::StringValue("sss".into())),
                }),
                key_strindex: 0,
            }],
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        });
    request.resource_spans.extend(other_resource.resource_spans);
    let mut body = request.encode_to_vec();
    for needle in [b"xyz", b"vvv", b"sss"] {
        let at = body.windows(3).position(|w| w == needle).unwrap();
        body[at] = 0xff;
    }
    let decoded = crate::decode_protobuf(&body).unwrap();
    expect![[r#"
        1 ok, 3 rejected
          48f90102030405060708090a0b0c0d0e 0101010101010101 "�yz": span name is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 0)
          48f90102030405060708090a0b0c0d0e 0202020202020202 "bad attribute": attribute 'k' is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 0)
          48f90102030405060708090a0b0c0d0e 0404040404040404 "bad resource": resource attribute 'service.name' is not valid UTF-8 (invalid utf-8 sequence of 1 bytes from index 0)
    "#]]
    .assert_eq(&summary(&decoded));
    assert_eq!(decoded.spans[0].name, "fine");
    let json = b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"\xff\"}]}]}]}";
    expect![[r#"
        error (BadRequest): body is not valid json: invalid unicode code point at line 1 column 53
    "#]]
    .assert_eq(&render(&crate::decode_json(json)));
}

fn nested(depth: usize) -> pb_common::AnyValue {
    let mut value = pb_common::AnyValue { value: Some(PbValue::StringValue("leaf".into())) };
    for _ in 0..depth {
        value = pb_common::AnyValue {
            value: Some(PbValue::ArrayValue(pb_common::ArrayValue { values: vec![value] })),
        };
    }
    value
}

#[test]
fn deep_values_are_bounded() {
    let mut span = pb_span(&TRACE, &[1; 8], "deep");
    span.attributes.push(pb_common::KeyValue {
        key: "deep".into(),
        value: Some(nested(100)),
        key_strindex: 0,
    });
    let request = pb_request(vec![span, pb_span(&TRACE, &[2; 8], "fine")]);
    // Protobuf: prost's recursion limit rejects the body as a whole.
    check_protobuf(
        &request.encode_to_vec(),
        expect![[r#"
            error: body is not a valid protobuf ExportTraceServiceRequest: failed to decode Protobuf message: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: ArrayValue.values: AnyValue.value: KeyValue.value: Span.attributes: ScopeSpans.spans: ResourceSpans.scope_spans: ExportTraceServiceRequest.resource_spans: recursion limit reached
        "#]],
    );
    // In memory (gRPC path): only the deep span is rejected.
    let decoded = crate::from_request(request);
    expect![[r#"
        1 ok, 1 rejected
          48f90102030405060708090a0b0c0d0e 0101010101010101 "deep": attribute 'deep': value nested deeper than 64 levels
    "#]]
    .assert_eq(&summary(&decoded));
    // JSON: a 100-level value is over serde_json's nesting limit.
    let mut value = r#"{"stringValue":"leaf"}"#.to_owned();
    for _ in 0..100 {
        value = format!(r#"{{"arrayValue":{{"values":[{value}]}}}}"#);
    }
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"48f9c3e1b7a64f2c9d2e0a1b3c4d5e6f","spanId":"0000000000000001","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{{"key":"deep","value":{value}}}]}}]}}]}}]}}"#
    );
    expect![[r#"
        error (BadRequest): body is not valid json: recursion limit exceeded at line 1 column 1189
    "#]]
    .assert_eq(&render(&crate::decode_json(body.as_bytes())));
}

#[test]
fn large_requests_decode() {
    let mut wide = pb_span(&TRACE, &[1; 8], "wide");
    wide.attributes = (0..10_000)
        .map(|i| pb_common::KeyValue {
            key: format!("attr.{i}"),
            value: Some(pb_common::AnyValue { value: Some(PbValue::IntValue(i)) }),
            key_strindex: 0,
        })
        .collect();
    let mut spans = vec![wide];
    for i in 2..50_001u64 {
        spans.push(pb_span(&TRACE, &i.to_be_bytes(), "many"));
    }
    let request = pb_request(spans);
    let decoded = crate::decode_protobuf(&request.encode_to_vec()).unwrap();
    assert_eq!(decoded.spans.len(), 50_000);
    assert_eq!(decoded.spans[0].attributes.len(), 10_000);
    let back = crate::from_request(crate::to_request(&decoded.spans));
    assert!(back.spans == decoded.spans, "round trip of a large request changed it");
}

#[test]
fn to_request_groups_by_resource_and_scope() {
    let body = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/ok/multi_resource.json"),
    )
    .unwrap();
    let decoded = crate::decode_json(&body).unwrap();
    let request = crate::to_request(&decoded.spans);
    let shape: Vec<Vec<usize>> = request
        .resource_spans
        .iter()
        .map(|rs| rs.scope_spans.iter().map(|ss| ss.spans.len()).collect())
        .collect();
    expect![[r#"[[2, 1], [1]]"#]].assert_eq(&format!("{shape:?}"));
}

#[test]
fn to_json_is_spec_exact() {
    let mut span = pb_span(&TRACE, &[0xab; 8], "chat gpt-4o");
    span.parent_span_id = vec![0xcd; 8];
    span.attributes = vec![
        pb_common::KeyValue {
            key: "gen_ai.usage.input_tokens".into(),
            value: Some(pb_common::AnyValue { value: Some(PbValue::IntValue(12)) }),
            key_strindex: 0,
        },
        pb_common::KeyValue { key: "empty".into(), value: None, key_strindex: 0 },
    ];
    span.events = vec![pb_trace::span::Event {
        time_unix_nano: 1_500,
        name: "gen_ai.first_token".into(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }];
    span.status = Some(pb_trace::Status { message: "boom".into(), code: 2 });
    let decoded = crate::from_request(pb_request(vec![span]));
    let json = serde_json::to_string_pretty(&crate::to_json(&decoded.spans)).unwrap();
    expect![[r#"
        {
          "resourceSpans": [
            {
              "resource": {
                "attributes": []
              },
              "scopeSpans": [
                {
                  "scope": {},
                  "spans": [
                    {
                      "traceId": "48f90102030405060708090a0b0c0d0e",
                      "spanId": "abababababababab",
                      "parentSpanId": "cdcdcdcdcdcdcdcd",
                      "name": "chat gpt-4o",
                      "kind": 3,
                      "startTimeUnixNano": "1000",
                      "endTimeUnixNano": "2000",
                      "attributes": [
                        {
                          "key": "gen_ai.usage.input_tokens",
                          "value": {
                            "intValue": "12"
                          }
                        },
                        {
                          "key": "empty",
                          "value": {}
                        }
                      ],
                      "events": [
                        {
                          "timeUnixNano": "1500",
                          "name": "gen_ai.first_token",
                          "attributes": []
                        }
                      ],
                      "status": {
                        "message": "boom",
                        "code": 2
                      }
                    }
                  ]
                }
              ]
            }
          ]
        }"#]]
    .assert_eq(&json);
}
