//! The second chance for protobuf bodies holding invalid UTF-8: prost rejects the whole request
//! on one bad string, so a body that fails to decode is read again with mirror types whose string
//! fields are bytes. Spans whose strings (or whose resource's or scope's) are valid UTF-8 are kept;
//! the others are rejected one by one, naming the field. A body that fails both ways keeps the
//! first error.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pb_common;
use opentelemetry_proto::tonic::common::v1::any_value::Value as PbValue;
use opentelemetry_proto::tonic::resource::v1 as pb_resource;
use opentelemetry_proto::tonic::trace::v1 as pb_trace;
use prost::Message;

use crate::{Decoded, Rejected, from_request};

/// Decodes `body` reading strings as bytes. `None` when the body is undecodable for another
/// reason than UTF-8.
pub(crate) fn decode(body: &[u8]) -> Option<Decoded> {
    let request = Request::decode(body).ok()?;
    let mut rejected = Vec::new();
    let mut res = ExportTraceServiceRequest { resource_spans: Vec::new() };
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default();
        let resource = key_values(resource.attributes, "resource attribute").map(|attributes| {
            pb_resource::Resource {
                attributes,
                dropped_attributes_count: resource.dropped_attributes_count,
                entity_refs: Vec::new(),
            }
        });
        let resource_schema_url = text(resource_spans.schema_url, "resource schema url");
        let mut scope_spans_out = Vec::new();
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.unwrap_or_default();
            let scope = convert_scope(scope);
            let schema_url = text(scope_spans.schema_url, "scope schema url");
            let mut spans = Vec::new();
            for span in scope_spans.spans {
                let group_error = resource
                    .as_ref()
                    .err()
                    .or(resource_schema_url.as_ref().err())
                    .or(scope.as_ref().err())
                    .or(schema_url.as_ref().err());
                let converted = match group_error {
                    Some(reason) => Err(reason.clone()),
                    None => convert_span(&span),
                };
                match converted {
                    Ok(span) => spans.push(span),
                    Err(reason) => rejected.push(Rejected {
                        trace_id: hex::encode(&span.trace_id),
                        span_id: hex::encode(&span.span_id),
                        name: String::from_utf8_lossy(&span.name).into_owned(),
                        reason,
                    }),
                }
            }
            if let (Ok(scope), Ok(schema_url)) = (&scope, &schema_url) {
                scope_spans_out.push(pb_trace::ScopeSpans {
                    scope: Some(scope.clone()),
                    spans,
                    schema_url: schema_url.clone(),
                });
            }
        }
        if let (Ok(resource), Ok(schema_url)) = (resource, resource_schema_url) {
            res.resource_spans.push(pb_trace::ResourceSpans {
                resource: Some(resource),
                scope_spans: scope_spans_out,
                schema_url,
            });
        }
    }
    let mut decoded = from_request(res);
    rejected.append(&mut decoded.rejected);
    decoded.rejected = rejected;
    Some(decoded)
}

fn text(bytes: Vec<u8>, what: &str) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| format!("{what} is not valid UTF-8 ({e})"))
}

fn convert_scope(scope: Scope) -> Result<pb_common::InstrumentationScope, String> {
    Ok(pb_common::InstrumentationScope {
        name: text(scope.name, "scope name")?,
        version: text(scope.version, "scope version")?,
        attributes: key_values(scope.attributes, "scope attribute")?,
        dropped_attributes_count: scope.dropped_attributes_count,
    })
}

fn convert_span(span: &Span) -> Result<pb_trace::Span, String> {
    let events = span
        .events
        .iter()
        .map(|event| {
            Ok(pb_trace::span::Event {
                time_unix_nano: event.time_unix_nano,
                name: text(event.name.clone(), "event name")?,
                attributes: key_values(event.attributes.clone(), "event attribute")?,
                dropped_attributes_count: event.dropped_attributes_count,
            })
        })
        .collect::<Result<_, String>>()?;
    let links = span
        .links
        .iter()
        .map(|link| {
            Ok(pb_trace::span::Link {
                trace_id: link.trace_id.clone(),
                span_id: link.span_id.clone(),
                trace_state: text(link.trace_state.clone(), "link trace state")?,
                attributes: key_values(link.attributes.clone(), "link attribute")?,
                dropped_attributes_count: link.dropped_attributes_count,
                flags: link.flags,
            })
        })
        .collect::<Result<_, String>>()?;
    let status = match &span.status {
        Some(status) => Some(pb_trace::Status {
            message: text(status.message.clone(), "status message")?,
            code: status.code,
        }),
        None => None,
    };
    Ok(pb_trace::Span {
        trace_id: span.trace_id.clone(),
        span_id: span.span_id.clone(),
        trace_state: text(span.trace_state.clone(), "trace state")?,
        parent_span_id: span.parent_span_id.clone(),
        flags: span.flags,
        name: text(span.name.clone(), "span name")?,
        kind: span.kind,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: key_values(span.attributes.clone(), "attribute")?,
        dropped_attributes_count: span.dropped_attributes_count,
        events,
        dropped_events_count: span.dropped_events_count,
        links,
        dropped_links_count: span.dropped_links_count,
        status,
    })
}

fn key_values(values: Vec<KeyValue>, what: &str) -> Result<Vec<pb_common::KeyValue>, String> {
    values
        .into_iter()
        .map(|kv| {
            let key = String::from_utf8(kv.key).map_err(|e| {
                format!(
                    "{what} key {:?} is not valid UTF-8 ({e})",
                    String::from_utf8_lossy(e.as_bytes())
                )
            })?;
            let value = match kv.value {
                Some(value) => Some(
                    any_value(value)
                        .map_err(|e| format!("{what} '{key}' is not valid UTF-8 ({e})"))?,
                ),
                None => None,
            };
            Ok(pb_common::KeyValue { key, value, key_strindex: 0 })
        })
        .collect()
}

fn any_value(value: AnyValue) -> Result<pb_common::AnyValue, std::string::FromUtf8Error> {
    let value = match value.value {
        None => None,
        Some(Value::String(bytes)) => Some(PbValue::StringValue(String::from_utf8(bytes)?)),
        Some(Value::Bool(b)) => Some(PbValue::BoolValue(b)),
        Some(Value::Int(i)) => Some(PbValue::IntValue(i)),
        Some(Value::Double(d)) => Some(PbValue::DoubleValue(d)),
        Some(Value::Bytes(b)) => Some(PbValue::BytesValue(b)),
        Some(Value::Array(array)) => Some(PbValue::ArrayValue(pb_common::ArrayValue {
            values: array.values.into_iter().map(any_value).collect::<Result<_, _>>()?,
        })),
        Some(Value::Kvlist(list)) => {
            let mut values = Vec::with_capacity(list.values.len());
            for kv in list.values {
                values.push(pb_common::KeyValue {
                    key: String::from_utf8(kv.key)?,
                    value: kv.value.map(any_value).transpose()?,
                    key_strindex: 0,
                });
            }
            Some(PbValue::KvlistValue(pb_common::KeyValueList { values }))
        }
    };
    Ok(pb_common::AnyValue { value })
}

// Mirrors of the OTLP trace messages (same field numbers) with every string read as bytes.

#[derive(Clone, PartialEq, Message)]
struct Request {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
    #[prost(bytes = "vec", tag = "3")]
    schema_url: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "2")]
    dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    scope: Option<Scope>,
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Span>,
    #[prost(bytes = "vec", tag = "3")]
    schema_url: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
struct Scope {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    version: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
struct Span {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    trace_state: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    parent_span_id: Vec<u8>,
    #[prost(fixed32, tag = "16")]
    flags: u32,
    #[prost(bytes = "vec", tag = "5")]
    name: Vec<u8>,
    #[prost(int32, tag = "6")]
    kind: i32,
    #[prost(fixed64, tag = "7")]
    start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "10")]
    dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "11")]
    events: Vec<Event>,
    #[prost(uint32, tag = "12")]
    dropped_events_count: u32,
    #[prost(message, repeated, tag = "13")]
    links: Vec<Link>,
    #[prost(uint32, tag = "14")]
    dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    status: Option<Status>,
}

#[derive(Clone, PartialEq, Message)]
struct Event {
    #[prost(fixed64, tag = "1")]
    time_unix_nano: u64,
    #[prost(bytes = "vec", tag = "2")]
    name: Vec<u8>,
    #[prost(message, repeated, tag = "3")]
    attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "4")]
    dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
struct Link {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    trace_state: Vec<u8>,
    #[prost(message, repeated, tag = "4")]
    attributes: Vec<KeyValue>,
    #[prost(uint32, tag = "5")]
    dropped_attributes_count: u32,
    #[prost(fixed32, tag = "6")]
    flags: u32,
}

#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(bytes = "vec", tag = "2")]
    message: Vec<u8>,
    #[prost(int32, tag = "3")]
    code: i32,
}

#[derive(Clone, PartialEq, Message)]
struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Value {
    #[prost(bytes, tag = "1")]
    String(Vec<u8>),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    #[prost(message, tag = "6")]
    Kvlist(KeyValueList),
    #[prost(bytes, tag = "7")]
    Bytes(Vec<u8>),
}

#[derive(Clone, PartialEq, Message)]
struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    values: Vec<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    values: Vec<KeyValue>,
}
