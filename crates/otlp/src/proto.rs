//! The protobuf path: `ExportTraceServiceRequest` (prost types from `opentelemetry-proto`) to raw
//! spans, and raw spans back to a request grouped by resource and scope.

use model::{AnyValue, Event, KeyValue, Link, RawSpan, Resource, Scope, SpanKind, Status};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pb_common;
use opentelemetry_proto::tonic::common::v1::any_value::Value as PbValue;
use opentelemetry_proto::tonic::resource::v1 as pb_resource;
use opentelemetry_proto::tonic::trace::v1 as pb_trace;
use prost::Message;

use crate::span::{check_link, check_span};
use crate::{Decoded, Error, MAX_VALUE_DEPTH, Rejected};

/// Decodes an `application/x-protobuf` body. Spans holding invalid UTF-8 are rejected one by
/// one (see `lossy.rs`).
pub fn decode_protobuf(body: &[u8]) -> Result<Decoded, Error> {
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => Ok(from_request(request)),
        // Invalid UTF-8 in one string fails the whole decode; read it again span by span.
        Err(e) => crate::lossy::decode(body).ok_or(Error::Protobuf(e)),
    }
}

/// Converts a decoded request (the gRPC path) into raw spans, validating each span.
pub fn from_request(request: ExportTraceServiceRequest) -> Decoded {
    let mut res = Decoded::default();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default();
        let resource = convert_attributes(resource.attributes).map(|attributes| Resource {
            attributes,
            dropped_attributes_count: resource.dropped_attributes_count,
        });
        for scope_spans in resource_spans.scope_spans {
            let schema_url = if scope_spans.schema_url.is_empty() {
                resource_spans.schema_url.clone()
            } else {
                scope_spans.schema_url
            };
            let scope = scope_spans.scope.unwrap_or_default();
            let scope = convert_attributes(scope.attributes).map(|attributes| Scope {
                name: scope.name,
                version: scope.version,
                attributes,
                dropped_attributes_count: scope.dropped_attributes_count,
            });
            for span in scope_spans.spans {
                let context = (&resource, &scope);
                match convert_span(span, context, &schema_url) {
                    Ok(raw) => res.spans.push(raw),
                    Err(rejected) => res.rejected.push(rejected),
                }
            }
        }
    }
    res
}

type Context<'a> = (&'a Result<Resource, String>, &'a Result<Scope, String>);

fn convert_span(
    mut span: pb_trace::Span,
    (resource, scope): Context<'_>,
    schema_url: &str,
) -> Result<RawSpan, Rejected> {
    let reject = |span: &pb_trace::Span, reason: String| Rejected {
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        name: span.name.clone(),
        reason,
    };
    let checked = match check_span(
        &span.trace_id,
        &span.span_id,
        &span.parent_span_id,
        span.start_time_unix_nano,
        span.end_time_unix_nano,
    ) {
        Ok(checked) => checked,
        Err(reason) => return Err(reject(&span, reason)),
    };
    let resource = match resource {
        Ok(resource) => resource.clone(),
        Err(reason) => return Err(reject(&span, format!("resource {reason}"))),
    };
    let scope = match scope {
        Ok(scope) => scope.clone(),
        Err(reason) => return Err(reject(&span, format!("scope {reason}"))),
    };
    let status = span.status.take().unwrap_or_default();
    let attributes = match convert_attributes(std::mem::take(&mut span.attributes)) {
        Ok(attributes) => attributes,
        Err(reason) => return Err(reject(&span, reason)),
    };
    let mut events = Vec::with_capacity(span.events.len());
    for event in std::mem::take(&mut span.events) {
        let attributes = match convert_attributes(event.attributes) {
            Ok(attributes) => attributes,
            Err(reason) => return Err(reject(&span, format!("event '{}': {reason}", event.name))),
        };
        events.push(Event {
            time_unix_nano: event.time_unix_nano,
            name: event.name,
            attributes,
            dropped_attributes_count: event.dropped_attributes_count,
        });
    }
    let mut links = Vec::with_capacity(span.links.len());
    let mut dropped_links_count = span.dropped_links_count;
    for link in std::mem::take(&mut span.links) {
        let Some((trace_id, span_id)) = check_link(&link.trace_id, &link.span_id) else {
            dropped_links_count = dropped_links_count.saturating_add(1);
            continue;
        };
        let attributes = match convert_attributes(link.attributes) {
            Ok(attributes) => attributes,
            Err(reason) => return Err(reject(&span, format!("link: {reason}"))),
        };
        links.push(Link {
            trace_id,
            span_id,
            trace_state: link.trace_state,
            attributes,
            dropped_attributes_count: link.dropped_attributes_count,
            flags: link.flags,
        });
    }
    Ok(RawSpan {
        trace_id: checked.trace_id,
        span_id: checked.span_id,
        parent_span_id: checked.parent_span_id,
        trace_state: span.trace_state,
        flags: span.flags,
        name: span.name,
        kind: SpanKind::from_otlp(span.kind),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes,
        dropped_attributes_count: span.dropped_attributes_count,
        events,
        dropped_events_count: span.dropped_events_count,
        links,
        dropped_links_count,
        status: Status { code: model::StatusCode::from_otlp(status.code), message: status.message },
        resource,
        scope,
        schema_url: schema_url.to_owned(),
    })
}

pub(crate) fn convert_attributes(
    attributes: Vec<pb_common::KeyValue>,
) -> Result<Vec<KeyValue>, String> {
    let mut res = Vec::with_capacity(attributes.len());
    for kv in attributes {
        let value = match kv.value {
            Some(value) => convert_value(value, 0)
                .map_err(|reason| format!("attribute '{}': {reason}", kv.key))?,
            None => AnyValue::Empty,
        };
        res.push(KeyValue { key: kv.key, value });
    }
    Ok(res)
}

pub(crate) fn convert_value(value: pb_common::AnyValue, depth: usize) -> Result<AnyValue, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!("value nested deeper than {MAX_VALUE_DEPTH} levels"));
    }
    Ok(match value.value {
        None | Some(PbValue::StringValueStrindex(_)) => AnyValue::Empty,
        Some(PbValue::StringValue(s)) => AnyValue::String(s),
        Some(PbValue::BoolValue(b)) => AnyValue::Bool(b),
        Some(PbValue::IntValue(i)) => AnyValue::Int(i),
        Some(PbValue::DoubleValue(d)) => AnyValue::Double(d),
        Some(PbValue::BytesValue(b)) => AnyValue::Bytes(b),
        Some(PbValue::ArrayValue(array)) => AnyValue::Array(
            array
                .values
                .into_iter()
                .map(|v| convert_value(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Some(PbValue::KvlistValue(list)) => {
            let mut res = Vec::with_capacity(list.values.len());
            for kv in list.values {
                let value = match kv.value {
                    Some(value) => convert_value(value, depth + 1)?,
                    None => AnyValue::Empty,
                };
                res.push(KeyValue { key: kv.key, value });
            }
            AnyValue::KvList(res)
        }
    })
}

/// The spans of one scope and schema url within a resource.
type ScopeGroup<'a> = (&'a Scope, &'a str, Vec<&'a RawSpan>);

/// Builds a request from raw spans, one `ResourceSpans` per distinct resource and one
/// `ScopeSpans` per distinct scope (and schema url) within it, keeping the spans' order.
pub fn to_request(spans: &[RawSpan]) -> ExportTraceServiceRequest {
    // Groups are found by comparing with the most recent group first: spans of one resource and
    // scope usually arrive together, so this is one comparison per span in the common case.
    let mut groups: Vec<(&Resource, Vec<ScopeGroup<'_>>)> = Vec::new();
    for span in spans {
        let resource_group = match groups.iter().rposition(|(r, _)| **r == span.resource) {
            Some(i) => &mut groups[i].1,
            None => {
                groups.push((&span.resource, Vec::new()));
                let last = groups.len() - 1;
                &mut groups[last].1
            }
        };
        let scope_group = resource_group
            .iter()
            .rposition(|(s, url, _)| **s == span.scope && *url == span.schema_url);
        match scope_group {
            Some(i) => resource_group[i].2.push(span),
            None => resource_group.push((&span.scope, &span.schema_url, vec![span])),
        }
    }
    let resource_spans = groups
        .into_iter()
        .map(|(resource, scopes)| pb_trace::ResourceSpans {
            resource: Some(pb_resource::Resource {
                attributes: attributes_to_proto(&resource.attributes),
                dropped_attributes_count: resource.dropped_attributes_count,
                entity_refs: Vec::new(),
            }),
            // The raw span keeps one schema url; it is written on the scope, where it applies.
            schema_url: String::new(),
            scope_spans: scopes
                .into_iter()
                .map(|(scope, schema_url, spans)| pb_trace::ScopeSpans {
                    scope: Some(pb_common::InstrumentationScope {
                        name: scope.name.clone(),
                        version: scope.version.clone(),
                        attributes: attributes_to_proto(&scope.attributes),
                        dropped_attributes_count: scope.dropped_attributes_count,
                    }),
                    spans: spans.into_iter().map(span_to_proto).collect(),
                    schema_url: schema_url.to_owned(),
                })
                .collect(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

fn span_to_proto(span: &RawSpan) -> pb_trace::Span {
    pb_trace::Span {
        trace_id: span.trace_id.as_bytes().to_vec(),
        span_id: span.span_id.as_bytes().to_vec(),
        trace_state: span.trace_state.clone(),
        parent_span_id: span.parent_span_id.map(|id| id.as_bytes().to_vec()).unwrap_or_default(),
        flags: span.flags,
        name: span.name.clone(),
        kind: span.kind.to_otlp(),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: attributes_to_proto(&span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        events: span
            .events
            .iter()
            .map(|event| pb_trace::span::Event {
                time_unix_nano: event.time_unix_nano,
                name: event.name.clone(),
                attributes: attributes_to_proto(&event.attributes),
                dropped_attributes_count: event.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: span.dropped_events_count,
        links: span
            .links
            .iter()
            .map(|link| pb_trace::span::Link {
                trace_id: link.trace_id.as_bytes().to_vec(),
                span_id: link.span_id.as_bytes().to_vec(),
                trace_state: link.trace_state.clone(),
                attributes: attributes_to_proto(&link.attributes),
                dropped_attributes_count: link.dropped_attributes_count,
                flags: link.flags,
            })
            .collect(),
        dropped_links_count: span.dropped_links_count,
        status: Some(pb_trace::Status {
            message: span.status.message.clone(),
            code: span.status.code.to_otlp(),
        }),
    }
}

fn attributes_to_proto(attributes: &[KeyValue]) -> Vec<pb_common::KeyValue> {
    attributes
        .iter()
        .map(|kv| pb_common::KeyValue {
            key: kv.key.clone(),
            value: Some(value_to_proto(&kv.value)),
            key_strindex: 0,
        })
        .collect()
}

fn value_to_proto(value: &AnyValue) -> pb_common::AnyValue {
    let value = match value {
        AnyValue::String(s) => Some(PbValue::StringValue(s.clone())),
        AnyValue::Bool(b) => Some(PbValue::BoolValue(*b)),
        AnyValue::Int(i) => Some(PbValue::IntValue(*i)),
        AnyValue::Double(d) => Some(PbValue::DoubleValue(*d)),
        AnyValue::Bytes(b) => Some(PbValue::BytesValue(b.clone())),
        AnyValue::Array(values) => Some(PbValue::ArrayValue(pb_common::ArrayValue {
            values: values.iter().map(value_to_proto).collect(),
        })),
        AnyValue::KvList(kvs) => {
            Some(PbValue::KvlistValue(pb_common::KeyValueList { values: attributes_to_proto(kvs) }))
        }
        AnyValue::Empty => None,
    };
    pb_common::AnyValue { value }
}
