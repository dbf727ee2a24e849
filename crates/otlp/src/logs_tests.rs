//! Tests of the logs path: golden files under `test_data/logs` (OTLP JSON logs requests in, the
//! span events kept and the records dropped out), the protobuf path agreeing with the JSON one,
//! and the answers' encodings.

use std::fmt::Write;
use std::path::Path;

use expect_test::{expect, expect_file};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1 as pb_common;
use opentelemetry_proto::tonic::common::v1::any_value::Value as PbValue;
use opentelemetry_proto::tonic::logs::v1 as pb_logs;
use prost::Message;

use crate::{DecodedLogs, Encoding};

fn render(res: &Result<DecodedLogs, crate::Error>) -> String {
    let decoded = match res {
        Ok(decoded) => decoded,
        Err(e) => return format!("error ({:?}): {e}\n", e.code()),
    };
    let mut out = String::new();
    for event in &decoded.events {
        let _ = writeln!(out, "event {}", serde_json::to_string_pretty(event).unwrap_or_default());
    }
    for dropped in &decoded.dropped {
        let _ = writeln!(
            out,
            "dropped {} name={:?} {}",
            dropped.reason.as_str(),
            dropped.name,
            dropped.detail
        );
    }
    if !decoded.dropped.is_empty() {
        let message = crate::logs_partial_success_message(decoded.n_total(), &decoded.dropped);
        let _ = writeln!(out, "message: {message}");
    }
    out
}

#[test]
fn golden_logs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data").join("logs");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3);
    for path in paths {
        let body = std::fs::read(&path).unwrap();
        let res = crate::decode_logs(Encoding::Json, &body);
        expect_file![path.with_extension("txt")].assert_eq(&render(&res));
    }
}

fn string(key: &str, value: &str) -> pb_common::KeyValue {
    pb_common::KeyValue {
        key: key.to_owned(),
        value: Some(pb_common::AnyValue { value: Some(PbValue::StringValue(value.to_owned())) }),
        ..Default::default()
    }
}

/// What the Python SDK sends: `event_name` set (or only the `event.name` attribute), a map body.
#[test]
fn protobuf_records_become_span_events() {
    let body = pb_common::AnyValue {
        value: Some(PbValue::KvlistValue(pb_common::KeyValueList {
            values: vec![string("content", "hello")],
        })),
    };
    let record = |event_name: &str, attributes: Vec<pb_common::KeyValue>| pb_logs::LogRecord {
        time_unix_nano: 0,
        observed_time_unix_nano: 7,
        event_name: event_name.to_owned(),
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        attributes,
        body: Some(body.clone()),
        ..Default::default()
    };
    let request = ExportLogsServiceRequest {
        resource_logs: vec![pb_logs::ResourceLogs {
            scope_logs: vec![pb_logs::ScopeLogs {
                log_records: vec![
                    record("gen_ai.user.message", vec![string("gen_ai.system", "openai")]),
                    record("", vec![string("event.name", "gen_ai.user.message")]),
                    record("", vec![string("event.name", "http.request")]),
                    pb_logs::LogRecord {
                        event_name: "gen_ai.choice".to_owned(),
                        span_id: vec![2; 8],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let decoded = crate::decode_logs(Encoding::Protobuf, &request.encode_to_vec());
    expect![[r#"
        event {
          "trace_id": "01010101010101010101010101010101",
          "span_id": "0202020202020202",
          "event": {
            "time_unix_nano": 7,
            "name": "gen_ai.user.message",
            "attributes": [
              {
                "key": "gen_ai.system",
                "value": {
                  "string": "openai"
                }
              },
              {
                "key": "content",
                "value": {
                  "string": "hello"
                }
              }
            ]
          }
        }
        event {
          "trace_id": "01010101010101010101010101010101",
          "span_id": "0202020202020202",
          "event": {
            "time_unix_nano": 7,
            "name": "gen_ai.user.message",
            "attributes": [
              {
                "key": "content",
                "value": {
                  "string": "hello"
                }
              }
            ]
          }
        }
        dropped not_genai_event name="http.request" 
        dropped no_span_context name="gen_ai.choice" 
        message: dropped 2 of 4 log records: 1 not GenAI events (only log records whose event name starts with gen_ai. are kept); 1 GenAI events without a trace id and span id (they are kept as events of their span)
    "#]]
    .assert_eq(&render(&decoded));
    let error = crate::decode_logs(Encoding::Protobuf, b"\xff\xff").unwrap_err();
    expect!["body is not a valid protobuf ExportLogsServiceRequest: failed to decode Protobuf message: invalid varint"]
        .assert_eq(&error.to_string());
}

#[test]
fn logs_answers_in_both_encodings() {
    let dropped = vec![crate::DroppedLog {
        reason: crate::DropReason::NotGenAi,
        name: "app.log".to_owned(),
        detail: String::new(),
    }];
    let json = crate::encode_logs_response(Encoding::Json, 3, &dropped);
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"partialSuccess": {
            "rejectedLogRecords": "1",
            "errorMessage": "dropped 1 of 3 log records: 1 not GenAI events (only log records \
                             whose event name starts with gen_ai. are kept)",
        }})
    );
    assert_eq!(crate::encode_logs_response(Encoding::Json, 3, &[]), b"{}");
    let proto = crate::encode_logs_response(Encoding::Protobuf, 3, &dropped);
    let response = ExportLogsServiceResponse::decode(proto.as_slice()).unwrap();
    assert_eq!(response.partial_success.map(|it| it.rejected_log_records), Some(1));
}
