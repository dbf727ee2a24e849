//! What goes back out: `ExportTraceServiceResponse` and `google.rpc.Status` bodies in either
//! encoding, the partial-success message, and raw spans as spec-exact OTLP JSON.

use std::fmt::Write;

use model::RawSpan;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1 as pb_common;
use opentelemetry_proto::tonic::common::v1::any_value::Value as PbValue;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::{Encoding, Rejected, to_request};

/// At most this many rejected spans are named in a message; the rest are counted.
const MAX_NAMED: usize = 10;
/// A reason, name or id longer than this is cut (in characters).
const MAX_FIELD_CHARS: usize = 200;
/// The whole message stays under this many bytes (well inside the 4 MiB response limit).
const MAX_MESSAGE_BYTES: usize = 4096;

/// A readable summary of rejected spans, bounded in length, e.g.
/// `rejected 2 spans: span 'x' (trace 48f9…, span 0000000000000000): span id is all zeros…`.
/// Empty when nothing was rejected.
pub fn partial_success_message(rejected: &[Rejected]) -> String {
    message(None, rejected)
}

fn message(n_total: Option<usize>, rejected: &[Rejected]) -> String {
    if rejected.is_empty() {
        return String::new();
    }
    let mut res = String::new();
    let n_rejected = rejected.len();
    let plural = if n_total.unwrap_or(n_rejected) == 1 { "" } else { "s" };
    // Writing to a String cannot fail.
    let _ = match n_total {
        Some(n_total) => write!(res, "rejected {n_rejected} of {n_total} span{plural}: "),
        None => write!(res, "rejected {n_rejected} span{plural}: "),
    };
    let mut n_named = 0;
    for it in rejected.iter().take(MAX_NAMED) {
        let entry = format!(
            "span '{}' (trace {}, span {}): {}",
            cut(&it.name),
            cut(&it.trace_id),
            cut(&it.span_id),
            cut(&it.reason)
        );
        if res.len() + entry.len() + 2 > MAX_MESSAGE_BYTES - 32 {
            break;
        }
        if n_named > 0 {
            res.push_str("; ");
        }
        res.push_str(&entry);
        n_named += 1;
    }
    if n_named < n_rejected {
        let _ = write!(res, "; and {} more", n_rejected - n_named);
    }
    res
}

fn cut(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_FIELD_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]).into(),
        None => text.into(),
    }
}

/// The body of a 200 answer: `partial_success` is set only when some spans were rejected.
pub fn encode_response(encoding: Encoding, n_total: usize, rejected: &[Rejected]) -> Vec<u8> {
    let partial_success = (!rejected.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected.len() as i64,
        error_message: message(Some(n_total), rejected),
    });
    match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse { partial_success }.encode_to_vec(),
        Encoding::Json => {
            let body = match partial_success {
                Some(it) => json!({"partialSuccess": {
                    "rejectedSpans": it.rejected_spans.to_string(),
                    "errorMessage": it.error_message,
                }}),
                None => json!({}),
            };
            body.to_string().into_bytes()
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error answers.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// `google.rpc.Status` with details, for gRPC's `grpc-status-details-bin`.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatusWithDetails {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// The type URL of `google.rpc.RetryInfo` in status details.
pub const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The binary `google.rpc.Status` a gRPC answer carries in `grpc-status-details-bin`, with a
/// `google.rpc.RetryInfo` detail when the client should retry after `retry_after_secs`: what the
/// OTLP spec asks of a server that wants a client to back off (`UNAVAILABLE` or
/// `RESOURCE_EXHAUSTED` with `RetryInfo`).
pub fn encode_grpc_status_details(
    code: i32,
    message: &str,
    retry_after_secs: Option<u32>,
) -> Vec<u8> {
    let details = retry_after_secs
        .map(|secs| ProtoAny {
            type_url: RETRY_INFO_TYPE_URL.to_owned(),
            value: RetryInfo {
                retry_delay: Some(ProtoDuration { seconds: i64::from(secs), nanos: 0 }),
            }
            .encode_to_vec(),
        })
        .into_iter()
        .collect();
    RpcStatusWithDetails { code, message: message.to_owned(), details }.encode_to_vec()
}

/// The retry delay of a `google.rpc.Status` carrying a `google.rpc.RetryInfo` detail, in whole
/// seconds (for tests and clients).
pub fn decode_grpc_retry_delay(status_details: &[u8]) -> Option<i64> {
    let status = RpcStatusWithDetails::decode(status_details).ok()?;
    let detail = status.details.iter().find(|it| it.type_url == RETRY_INFO_TYPE_URL)?;
    Some(RetryInfo::decode(detail.value.as_slice()).ok()?.retry_delay?.seconds)
}

/// A `google.rpc.Status` body for a 4xx/5xx answer (`code` is a gRPC code; clients ignore it).
pub fn encode_status(encoding: Encoding, code: i32, message: &str) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => RpcStatus { code, message: message.to_owned() }.encode_to_vec(),
        Encoding::Json => json!({"code": code, "message": message}).to_string().into_bytes(),
    }
}

/// Raw spans as OTLP JSON (hex ids, 64-bit integers as strings, enums as integers, default
/// values left out), grouped by resource and scope like [`to_request`].
pub fn to_json(spans: &[RawSpan]) -> Value {
    request_to_json(&to_request(spans))
}

fn request_to_json(request: &ExportTraceServiceRequest) -> Value {
    let resource_spans: Vec<Value> = request
        .resource_spans
        .iter()
        .map(|rs| {
            let mut obj = Map::new();
            if let Some(resource) = &rs.resource {
                let mut r = Map::new();
                r.insert("attributes".into(), attributes_json(&resource.attributes));
                put_u32(&mut r, "droppedAttributesCount", resource.dropped_attributes_count);
                obj.insert("resource".into(), Value::Object(r));
            }
            let scope_spans: Vec<Value> = rs
                .scope_spans
                .iter()
                .map(|ss| {
                    let mut obj = Map::new();
                    if let Some(scope) = &ss.scope {
                        let mut s = Map::new();
                        put_str(&mut s, "name", &scope.name);
                        put_str(&mut s, "version", &scope.version);
                        if !scope.attributes.is_empty() {
                            s.insert("attributes".into(), attributes_json(&scope.attributes));
                        }
                        put_u32(&mut s, "droppedAttributesCount", scope.dropped_attributes_count);
                        obj.insert("scope".into(), Value::Object(s));
                    }
                    obj.insert("spans".into(), ss.spans.iter().map(span_json).collect());
                    put_str(&mut obj, "schemaUrl", &ss.schema_url);
                    Value::Object(obj)
                })
                .collect();
            obj.insert("scopeSpans".into(), Value::Array(scope_spans));
            put_str(&mut obj, "schemaUrl", &rs.schema_url);
            Value::Object(obj)
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

fn span_json(span: &opentelemetry_proto::tonic::trace::v1::Span) -> Value {
    let mut obj = Map::new();
    obj.insert("traceId".into(), hex::encode(&span.trace_id).into());
    obj.insert("spanId".into(), hex::encode(&span.span_id).into());
    put_str(&mut obj, "traceState", &span.trace_state);
    if !span.parent_span_id.is_empty() {
        obj.insert("parentSpanId".into(), hex::encode(&span.parent_span_id).into());
    }
    put_u32(&mut obj, "flags", span.flags);
    obj.insert("name".into(), span.name.clone().into());
    if span.kind != 0 {
        obj.insert("kind".into(), span.kind.into());
    }
    obj.insert("startTimeUnixNano".into(), span.start_time_unix_nano.to_string().into());
    obj.insert("endTimeUnixNano".into(), span.end_time_unix_nano.to_string().into());
    obj.insert("attributes".into(), attributes_json(&span.attributes));
    put_u32(&mut obj, "droppedAttributesCount", span.dropped_attributes_count);
    if !span.events.is_empty() {
        let events = span
            .events
            .iter()
            .map(|event| {
                let mut e = Map::new();
                e.insert("timeUnixNano".into(), event.time_unix_nano.to_string().into());
                e.insert("name".into(), event.name.clone().into());
                e.insert("attributes".into(), attributes_json(&event.attributes));
                put_u32(&mut e, "droppedAttributesCount", event.dropped_attributes_count);
                Value::Object(e)
            })
            .collect();
        obj.insert("events".into(), events);
    }
    put_u32(&mut obj, "droppedEventsCount", span.dropped_events_count);
    if !span.links.is_empty() {
        let links = span
            .links
            .iter()
            .map(|link| {
                let mut l = Map::new();
                l.insert("traceId".into(), hex::encode(&link.trace_id).into());
                l.insert("spanId".into(), hex::encode(&link.span_id).into());
                put_str(&mut l, "traceState", &link.trace_state);
                l.insert("attributes".into(), attributes_json(&link.attributes));
                put_u32(&mut l, "droppedAttributesCount", link.dropped_attributes_count);
                put_u32(&mut l, "flags", link.flags);
                Value::Object(l)
            })
            .collect();
        obj.insert("links".into(), links);
    }
    put_u32(&mut obj, "droppedLinksCount", span.dropped_links_count);
    if let Some(status) = &span.status {
        let mut s = Map::new();
        put_str(&mut s, "message", &status.message);
        if status.code != 0 {
            s.insert("code".into(), status.code.into());
        }
        obj.insert("status".into(), Value::Object(s));
    }
    Value::Object(obj)
}

fn attributes_json(attributes: &[pb_common::KeyValue]) -> Value {
    attributes
        .iter()
        .map(|kv| {
            let value = kv.value.as_ref().map(value_json).unwrap_or_else(|| json!({}));
            json!({"key": kv.key, "value": value})
        })
        .collect()
}

fn value_json(value: &pb_common::AnyValue) -> Value {
    use base64::Engine;
    match &value.value {
        None | Some(PbValue::StringValueStrindex(_)) => json!({}),
        Some(PbValue::StringValue(s)) => json!({ "stringValue": s }),
        Some(PbValue::BoolValue(b)) => json!({ "boolValue": b }),
        Some(PbValue::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(PbValue::DoubleValue(d)) => {
            // proto3 JSON writes the non-finite doubles as these strings.
            let d = match serde_json::Number::from_f64(*d) {
                Some(n) => Value::Number(n),
                None if d.is_nan() => "NaN".into(),
                None if *d > 0.0 => "Infinity".into(),
                None => "-Infinity".into(),
            };
            json!({ "doubleValue": d })
        }
        Some(PbValue::BytesValue(b)) => {
            json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Some(PbValue::ArrayValue(array)) => {
            let values: Vec<Value> = array.values.iter().map(value_json).collect();
            json!({ "arrayValue": { "values": values } })
        }
        Some(PbValue::KvlistValue(list)) => {
            json!({ "kvlistValue": { "values": attributes_json(&list.values) } })
        }
    }
}

fn put_str(obj: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        obj.insert(key.into(), value.into());
    }
}

fn put_u32(obj: &mut Map<String, Value>, key: &str, value: u32) {
    if value != 0 {
        obj.insert(key.into(), value.into());
    }
}
