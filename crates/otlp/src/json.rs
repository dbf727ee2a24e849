//! A tolerant, streaming reader of OTLP JSON trace requests (and of logs requests, for the GenAI
//! events they carry: see `logs.rs`).
//!
//! Beyond the spec's own rules (hex ids, 64-bit integers as strings, enums as integers, unknown
//! fields ignored) it accepts what real senders emit:
//! - ids in any letter case, and base64 ids of the right decoded length (the original JSON OTEP);
//! - 64-bit integers as strings or numbers;
//! - enums as integers or as their names (`SPAN_KIND_SERVER`, `SERVER`, `server`);
//! - lowerCamelCase and snake_case keys, and the pre-1.0 `instrumentationLibrarySpans` names;
//! - the empty `AnyValue` `{}`, bare JSON scalars in place of an `AnyValue`;
//! - missing, empty and `null` repeated fields and messages.
//!
//! A body that is not JSON, or whose top-level structure is not a trace request, is an
//! [`Error`]; everything wrong inside one span rejects only that span.
//!
//! Memory: the body is parsed in one streaming pass. The request's envelope (resources, scopes,
//! spans, events, links) becomes a light [`Node`] tree, and every `attributes` list is read
//! straight into [`model::KeyValue`]s, so no generic JSON tree of the attributes is ever built
//! (that tree costs about twelve times the body size).

use std::fmt;

use base64::Engine;
use model::{AnyValue, Event, KeyValue, Link, RawSpan, Resource, Scope, SpanKind, Status};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::logs::{DecodedLogs, DropReason, DroppedLog, LogFields};
use crate::span::{check_link, check_span};
use crate::{Decoded, Error, MAX_VALUE_DEPTH, Rejected};

/// Decodes an `application/json` body.
pub fn decode_json(body: &[u8]) -> Result<Decoded, Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let root = NodeSeed.deserialize(&mut deserializer).map_err(Error::Json)?;
    deserializer.end().map_err(Error::Json)?;
    let Node::Object(mut root) = root else {
        return Err(shape("the top level must be an object".to_owned()));
    };
    let mut res = Decoded::default();
    let resource_spans = array(&mut root, &["resourceSpans", "resource_spans"], "resourceSpans")?;
    for (i, resource_spans) in resource_spans.into_iter().enumerate() {
        let Node::Object(mut resource_spans) = resource_spans else {
            return Err(shape(format!("resourceSpans[{i}] must be an object")));
        };
        let resource = match take(&mut resource_spans, &["resource"]) {
            Some(Node::Object(mut resource)) => {
                take_attributes(&mut resource).map(|attributes| Resource {
                    attributes,
                    dropped_attributes_count: u32_field(&resource, DROPPED_ATTRIBUTES).unwrap_or(0),
                })
            }
            _ => Ok(Resource::default()),
        };
        let resource_schema_url =
            str_field(&resource_spans, &["schemaUrl", "schema_url"]).to_owned();
        let scope_spans = array(
            &mut resource_spans,
            &[
                "scopeSpans",
                "scope_spans",
                "instrumentationLibrarySpans",
                "instrumentation_library_spans",
            ],
            "scopeSpans",
        )?;
        for (j, scope_spans) in scope_spans.into_iter().enumerate() {
            let Node::Object(mut scope_spans) = scope_spans else {
                return Err(shape(format!("resourceSpans[{i}].scopeSpans[{j}] must be an object")));
            };
            let scope_keys =
                ["scope", "instrumentationLibrary", "instrumentation_library"].as_slice();
            let scope = match take(&mut scope_spans, scope_keys) {
                Some(Node::Object(mut scope)) => {
                    take_attributes(&mut scope).map(|attributes| Scope {
                        name: str_field(&scope, &["name"]).to_owned(),
                        version: str_field(&scope, &["version"]).to_owned(),
                        attributes,
                        dropped_attributes_count: u32_field(&scope, DROPPED_ATTRIBUTES)
                            .unwrap_or(0),
                    })
                }
                _ => Ok(Scope::default()),
            };
            let mut schema_url = str_field(&scope_spans, &["schemaUrl", "schema_url"]);
            if schema_url.is_empty() {
                schema_url = &resource_schema_url;
            }
            let schema_url = schema_url.to_owned();
            let spans = array(&mut scope_spans, &["spans"], "spans")?;
            for span in spans {
                match convert_span(span, &resource, &scope, &schema_url) {
                    Ok(raw) => res.spans.push(raw),
                    Err(rejected) => res.rejected.push(rejected),
                }
            }
        }
    }
    Ok(res)
}

/// Decodes an `application/json` logs request (same tolerance as for traces: either key case,
/// hex or base64 ids, 64-bit integers as strings or numbers, missing repeated fields).
pub(crate) fn decode_logs_json(body: &[u8]) -> Result<DecodedLogs, Error> {
    let shape = Error::LogsJsonShape;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let root = NodeSeed.deserialize(&mut deserializer).map_err(Error::Json)?;
    deserializer.end().map_err(Error::Json)?;
    let Node::Object(mut root) = root else {
        return Err(shape("the top level must be an object".to_owned()));
    };
    let mut res = DecodedLogs::default();
    let array = |obj: &mut Object, keys: &[&str], what: &str| match take(obj, keys) {
        None | Some(Node::Scalar(Value::Null)) => Ok(Vec::new()),
        Some(Node::Array(values)) => Ok(values),
        Some(other) => Err(shape(format!("{what} must be an array, got {}", type_name(&other)))),
    };
    let resource_logs = array(&mut root, &["resourceLogs", "resource_logs"], "resourceLogs")?;
    for (i, resource_logs) in resource_logs.into_iter().enumerate() {
        let Node::Object(mut resource_logs) = resource_logs else {
            return Err(shape(format!("resourceLogs[{i}] must be an object")));
        };
        let scope_logs = array(&mut resource_logs, &["scopeLogs", "scope_logs"], "scopeLogs")?;
        for (j, scope_logs) in scope_logs.into_iter().enumerate() {
            let Node::Object(mut scope_logs) = scope_logs else {
                return Err(shape(format!("resourceLogs[{i}].scopeLogs[{j}] must be an object")));
            };
            for record in array(&mut scope_logs, &["logRecords", "log_records"], "logRecords")? {
                let outcome = match record {
                    Node::Object(mut record) => log_record(&mut record),
                    other => Err(DroppedLog {
                        reason: DropReason::Invalid,
                        name: String::new(),
                        detail: format!(
                            "log record must be a json object, got {}",
                            type_name(&other)
                        ),
                    }),
                };
                crate::logs::push(&mut res, outcome);
            }
        }
    }
    Ok(res)
}

fn log_record(record: &mut Object) -> Result<model::SpanEvent, DroppedLog> {
    // Ids that cannot be read are the same as no ids: the record names no span.
    let trace_id = id_field(record, &["traceId", "trace_id"], 16, "trace id", false);
    let span_id = id_field(record, &["spanId", "span_id"], 8, "span id", false);
    let body = match take(record, &["body"]) {
        Some(Node::Body(body)) => body,
        _ => Ok(AnyValue::Empty),
    };
    let times = (
        u64_field(record, &["timeUnixNano", "time_unix_nano"]),
        u64_field(record, &["observedTimeUnixNano", "observed_time_unix_nano"]),
        u32_field(record, DROPPED_ATTRIBUTES),
    );
    let mut attributes = take_attributes(record);
    let (time_unix_nano, observed_time_unix_nano, dropped_attributes_count) = match times {
        (Ok(time), Ok(observed), Ok(dropped)) => (time, observed, dropped),
        (Err(reason), _, _) | (_, Err(reason), _) | (_, _, Err(reason)) => {
            // Reported only if the record is a GenAI event with a span.
            attributes = Err(reason);
            (0, 0, 0)
        }
    };
    crate::logs::to_span_event(LogFields {
        event_name: str_field(record, &["eventName", "event_name"]).to_owned(),
        time_unix_nano,
        observed_time_unix_nano,
        trace_id: trace_id.unwrap_or_default(),
        span_id: span_id.unwrap_or_default(),
        attributes,
        body,
        dropped_attributes_count,
    })
}

const DROPPED_ATTRIBUTES: &[&str] = &["droppedAttributesCount", "dropped_attributes_count"];

fn shape(message: String) -> Error {
    Error::JsonShape(message)
}

/// The request's envelope: JSON with every `attributes` list already read into key-values.
enum Node {
    Scalar(Value),
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    Attributes(Result<Vec<KeyValue>, String>),
    Body(Result<AnyValue, String>),
}

type Object = Vec<(String, Node)>;

fn convert_span(
    span: Node,
    resource: &Result<Resource, String>,
    scope: &Result<Scope, String>,
    schema_url: &str,
) -> Result<RawSpan, Rejected> {
    let Node::Object(mut span) = span else {
        return Err(Rejected {
            trace_id: String::new(),
            span_id: String::new(),
            name: String::new(),
            reason: format!("span must be a json object, got {}", type_name(&span)),
        });
    };
    convert_span_fields(&mut span, resource, scope, schema_url).map_err(|reason| {
        let id_text = |keys: &[&str]| match field(&span, keys) {
            None | Some(Node::Scalar(Value::Null)) => String::new(),
            Some(Node::Scalar(Value::String(s))) => s.clone(),
            Some(Node::Scalar(other)) => other.to_string(),
            Some(other) => type_name(other).to_owned(),
        };
        Rejected {
            trace_id: id_text(&["traceId", "trace_id"]),
            span_id: id_text(&["spanId", "span_id"]),
            name: str_field(&span, &["name"]).to_owned(),
            reason,
        }
    })
}

fn convert_span_fields(
    span: &mut Object,
    resource: &Result<Resource, String>,
    scope: &Result<Scope, String>,
    schema_url: &str,
) -> Result<RawSpan, String> {
    let trace_id = id_field(span, &["traceId", "trace_id"], 16, "trace id", true)?;
    let span_id = id_field(span, &["spanId", "span_id"], 8, "span id", true)?;
    let parent_span_id =
        id_field(span, &["parentSpanId", "parent_span_id"], 8, "parent span id", false)?;
    let start_time_unix_nano = u64_field(span, &["startTimeUnixNano", "start_time_unix_nano"])?;
    let end_time_unix_nano = u64_field(span, &["endTimeUnixNano", "end_time_unix_nano"])?;
    let checked =
        check_span(&trace_id, &span_id, &parent_span_id, start_time_unix_nano, end_time_unix_nano)?;
    let resource = resource.as_ref().map_err(|reason| format!("resource {reason}"))?.clone();
    let scope = scope.as_ref().map_err(|reason| format!("scope {reason}"))?.clone();
    let attributes = take_attributes(span)?;
    let mut events = Vec::new();
    for event in take_array(span, &["events"]) {
        let Node::Object(mut event) = event else {
            return Err(format!("event must be a json object, got {}", type_name(&event)));
        };
        let name = str_field(&event, &["name"]).to_owned();
        events.push(Event {
            time_unix_nano: u64_field(&event, &["timeUnixNano", "time_unix_nano"])
                .map_err(|reason| format!("event '{name}': {reason}"))?,
            attributes: take_attributes(&mut event)
                .map_err(|reason| format!("event '{name}': {reason}"))?,
            dropped_attributes_count: u32_field(&event, DROPPED_ATTRIBUTES)?,
            name,
        });
    }
    let mut links = Vec::new();
    let mut dropped_links_count = u32_field(span, &["droppedLinksCount", "dropped_links_count"])?;
    for link in take_array(span, &["links"]) {
        let Node::Object(mut link) = link else {
            return Err(format!("link must be a json object, got {}", type_name(&link)));
        };
        let ids = (
            id_field(&link, &["traceId", "trace_id"], 16, "link trace id", true),
            id_field(&link, &["spanId", "span_id"], 8, "link span id", true),
        );
        let (Ok(trace_id), Ok(span_id)) = ids else {
            dropped_links_count = dropped_links_count.saturating_add(1);
            continue;
        };
        let Some((trace_id, span_id)) = check_link(&trace_id, &span_id) else {
            dropped_links_count = dropped_links_count.saturating_add(1);
            continue;
        };
        links.push(Link {
            trace_id,
            span_id,
            trace_state: str_field(&link, &["traceState", "trace_state"]).to_owned(),
            attributes: take_attributes(&mut link).map_err(|reason| format!("link: {reason}"))?,
            dropped_attributes_count: u32_field(&link, DROPPED_ATTRIBUTES)?,
            flags: u32_field(&link, &["flags"])?,
        });
    }
    let status = match field(span, &["status"]) {
        Some(Node::Object(status)) => Status {
            code: status_code(field(status, &["code"]))?,
            message: str_field(status, &["message"]).to_owned(),
        },
        _ => Status::default(),
    };
    Ok(RawSpan {
        trace_id: checked.trace_id,
        span_id: checked.span_id,
        parent_span_id: checked.parent_span_id,
        trace_state: str_field(span, &["traceState", "trace_state"]).to_owned(),
        flags: u32_field(span, &["flags"])?,
        name: str_field(span, &["name"]).to_owned(),
        kind: span_kind(field(span, &["kind"]))?,
        start_time_unix_nano,
        end_time_unix_nano,
        attributes,
        dropped_attributes_count: u32_field(span, DROPPED_ATTRIBUTES)?,
        events,
        dropped_events_count: u32_field(span, &["droppedEventsCount", "dropped_events_count"])?,
        links,
        dropped_links_count,
        status,
        resource,
        scope,
        schema_url: schema_url.to_owned(),
    })
}

/// The value of the first of `keys` present (the last occurrence of a repeated key wins, as in
/// JSON object parsers).
fn field<'a>(obj: &'a Object, keys: &[&str]) -> Option<&'a Node> {
    keys.iter().find_map(|key| obj.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v))
}

fn take(obj: &mut Object, keys: &[&str]) -> Option<Node> {
    let i = keys.iter().find_map(|key| obj.iter().rposition(|(k, _)| k == key))?;
    Some(std::mem::replace(&mut obj[i].1, Node::Scalar(Value::Null)))
}

/// A repeated field of the request's structure: missing or `null` is empty, anything but an
/// array is an error.
fn array(obj: &mut Object, keys: &[&str], what: &str) -> Result<Vec<Node>, Error> {
    match take(obj, keys) {
        None | Some(Node::Scalar(Value::Null)) => Ok(Vec::new()),
        Some(Node::Array(values)) => Ok(values),
        Some(other) => Err(shape(format!("{what} must be an array, got {}", type_name(&other)))),
    }
}

/// A repeated field inside a span: anything but an array is read as empty.
fn take_array(obj: &mut Object, keys: &[&str]) -> Vec<Node> {
    match take(obj, keys) {
        Some(Node::Array(values)) => values,
        _ => Vec::new(),
    }
}

/// The `attributes` of a span, resource, scope, event or link (already read while parsing).
fn take_attributes(obj: &mut Object) -> Result<Vec<KeyValue>, String> {
    match take(obj, &["attributes"]) {
        Some(Node::Attributes(res)) => res,
        _ => Ok(Vec::new()),
    }
}

fn str_field<'a>(obj: &'a Object, keys: &[&str]) -> &'a str {
    match field(obj, keys) {
        Some(Node::Scalar(Value::String(s))) => s,
        _ => "",
    }
}

fn type_name(node: &Node) -> &'static str {
    match node {
        Node::Scalar(value) => value_type_name(value),
        Node::Array(_) | Node::Attributes(_) => "an array",
        Node::Body(_) => "a value",
        Node::Object(_) => "an object",
    }
}

fn value_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first key of `keys` in camelCase, for messages.
fn key_name<'a>(keys: &[&'a str]) -> &'a str {
    keys.first().copied().unwrap_or("")
}

fn u64_field(obj: &Object, keys: &[&str]) -> Result<u64, String> {
    let what = || key_name(keys);
    match field(obj, keys) {
        None | Some(Node::Scalar(Value::Null)) => Ok(0),
        Some(Node::Scalar(value)) => as_u64(value).ok_or_else(|| {
            format!("{} is not an unsigned 64-bit integer: {}", what(), short(value))
        }),
        Some(other) => {
            Err(format!("{} is not an unsigned 64-bit integer: {}", what(), type_name(other)))
        }
    }
}

fn u32_field(obj: &Object, keys: &[&str]) -> Result<u32, String> {
    let n = u64_field(obj, keys)?;
    u32::try_from(n).map_err(|_| format!("{} is over 32 bits: {n}", key_name(keys)))
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            let f = n.as_f64()?;
            (f >= 0.0 && f.fract() == 0.0 && f < u64::MAX as f64).then_some(f as u64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A value for a message, cut to a readable length.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// Reads an id: hex in any case, or base64 decoding to exactly `n_bytes`. Missing, `null` and
/// `""` are the empty id (an error for required ids).
fn id_field(
    obj: &Object,
    keys: &[&str],
    n_bytes: usize,
    what: &str,
    required: bool,
) -> Result<Vec<u8>, String> {
    let text = match field(obj, keys) {
        None | Some(Node::Scalar(Value::Null)) => "",
        Some(Node::Scalar(Value::String(s))) => s.as_str(),
        Some(other) => return Err(format!("{what} must be a string, got {}", type_name(other))),
    };
    if text.is_empty() {
        return if required { Err(format!("{what} is missing")) } else { Ok(Vec::new()) };
    }
    let is_hex = text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex && text.len() == n_bytes * 2 {
        return hex::decode(text).map_err(|e| format!("{what} is not valid hex: {e}"));
    }
    if let Some(bytes) = decode_base64(text).filter(|bytes| bytes.len() == n_bytes) {
        return Ok(bytes);
    }
    if is_hex {
        // Hex of the wrong length: the length check names the problem.
        return hex::decode(text).map_err(|e| format!("{what} is not valid hex: {e}"));
    }
    Err(format!(
        "{what} must be {n_bytes} bytes as {} hex characters, got {}",
        n_bytes * 2,
        short(&Value::String(text.to_owned()))
    ))
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// The value of an enum field: an integer, or a name with or without its prefix.
enum EnumValue<'a> {
    Number(i32),
    Name(&'a str),
    Unset,
}

fn enum_value<'a>(node: Option<&'a Node>, what: &str) -> Result<EnumValue<'a>, String> {
    let value = match node {
        None | Some(Node::Scalar(Value::Null)) => return Ok(EnumValue::Unset),
        Some(Node::Scalar(value)) => value,
        Some(other) => return Err(format!("{what} must be an integer, got {}", type_name(other))),
    };
    if let Some(n) = as_i64(value) {
        return Ok(EnumValue::Number(i32::try_from(n).unwrap_or(0)));
    }
    match value {
        Value::String(s) => Ok(EnumValue::Name(s)),
        other => Err(format!("{what} must be an integer, got {}", value_type_name(other))),
    }
}

fn span_kind(node: Option<&Node>) -> Result<SpanKind, String> {
    let name = match enum_value(node, "kind")? {
        EnumValue::Unset => return Ok(SpanKind::Unspecified),
        EnumValue::Number(n) => return Ok(SpanKind::from_otlp(n)),
        EnumValue::Name(name) => name,
    };
    let bare = strip_prefix_ignore_case(name, "SPAN_KIND_");
    Ok(match bare.to_ascii_lowercase().as_str() {
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "unspecified" => SpanKind::Unspecified,
        _ => return Err(format!("kind is not a span kind: {}", short(&name.into()))),
    })
}

fn status_code(node: Option<&Node>) -> Result<model::StatusCode, String> {
    use model::StatusCode;
    let name = match enum_value(node, "status code")? {
        EnumValue::Unset => return Ok(StatusCode::Unset),
        EnumValue::Number(n) => return Ok(StatusCode::from_otlp(n)),
        EnumValue::Name(name) => name,
    };
    let bare = strip_prefix_ignore_case(name, "STATUS_CODE_");
    Ok(match bare.to_ascii_lowercase().as_str() {
        "unset" => StatusCode::Unset,
        "ok" => StatusCode::Ok,
        "error" => StatusCode::Error,
        _ => return Err(format!("status code is not a status: {}", short(&name.into()))),
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

// Streaming parsers. Each one consumes its whole JSON value, whatever its shape, so a malformed
// part of one span never stops the parse; only invalid JSON does.

/// Reads the envelope into a [`Node`], and any `attributes` value with [`KeyValuesSeed`].
struct NodeSeed;

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeSeed)
    }
}

impl<'de> Visitor<'de> for NodeSeed {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(Value::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut res = Vec::new();
        while let Some(node) = seq.next_element_seed(NodeSeed)? {
            res.push(node);
        }
        Ok(Node::Array(res))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut res = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let node = if key == "attributes" {
                // Anything but an array reads as no attributes.
                let attributes = map.next_value_seed(ArrayOr(KeyValuesSeed { depth: 0 }))?;
                Node::Attributes(attributes.unwrap_or(Ok(Vec::new())))
            } else if key == "body" {
                // A log record's body is one `AnyValue`.
                Node::Body(map.next_value_seed(AnyValueSeed { depth: 0 })?)
            } else {
                map.next_value_seed(NodeSeed)?
            };
            res.push((key, node));
        }
        Ok(Node::Object(res))
    }
}

/// A seed that reads an array's elements one by one.
trait SeqSeed<'de> {
    type Out;
    fn seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Out, A::Error>;
}

/// A seed that reads an object's entries one by one.
trait MapSeed<'de> {
    type Out;
    fn map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error>;
}

/// Reads an array with `S`, or skips any other value and gives its type name.
struct ArrayOr<S>(S);

/// Reads an object with `S`, or skips any other value and gives its type name.
struct ObjectOr<S>(S);

macro_rules! skip_other_values {
    ($result:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Err("a boolean"))
        }

        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Err("a number"))
        }

        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Err("a number"))
        }

        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Err("a number"))
        }

        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Err("a string"))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Err("null"))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Err("null"))
        }

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str($result)
        }
    };
}

impl<'de, S: SeqSeed<'de>> DeserializeSeed<'de> for ArrayOr<S> {
    type Value = Result<S::Out, &'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: SeqSeed<'de>> Visitor<'de> for ArrayOr<S> {
    type Value = Result<S::Out, &'static str>;

    skip_other_values!("an array");

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(Ok(self.0.seq(seq)?))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err("an object"))
    }
}

impl<'de, S: MapSeed<'de>> DeserializeSeed<'de> for ObjectOr<S> {
    type Value = Result<S::Out, &'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: MapSeed<'de>> Visitor<'de> for ObjectOr<S> {
    type Value = Result<S::Out, &'static str>;

    skip_other_values!("an object");

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(Ok(self.0.map(map)?))
    }
}

/// A list of key-values; the first bad entry is the list's error (the rest is still consumed).
struct KeyValuesSeed {
    depth: usize,
}

impl<'de> SeqSeed<'de> for KeyValuesSeed {
    type Out = Result<Vec<KeyValue>, String>;

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut res = Ok(Vec::new());
        while let Some(kv) = seq.next_element_seed(ObjectOr(KeyValueSeed { depth: self.depth }))? {
            let kv =
                kv.unwrap_or_else(|got| Err(format!("attribute must be a json object, got {got}")));
            match (&mut res, kv) {
                (Ok(list), Ok(kv)) => list.push(kv),
                (Ok(_), Err(reason)) => res = Err(reason),
                (Err(_), _) => {}
            }
        }
        Ok(res)
    }
}

/// `{"key": ..., "value": AnyValue}`.
struct KeyValueSeed {
    depth: usize,
}

impl<'de> MapSeed<'de> for KeyValueSeed {
    type Out = Result<KeyValue, String>;

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut key = String::new();
        let mut value = Ok(AnyValue::Empty);
        while let Some(name) = map.next_key::<String>()? {
            match name.as_str() {
                "key" => {
                    if let Value::String(s) = map.next_value::<Value>()? {
                        key = s;
                    }
                }
                "value" => value = map.next_value_seed(AnyValueSeed { depth: self.depth })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match value {
            Ok(value) => Ok(KeyValue { key, value }),
            Err(reason) => Err(format!("attribute '{key}': {reason}")),
        })
    }
}

/// An `AnyValue` object, or a bare JSON value read as what it is.
struct AnyValueSeed {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for AnyValueSeed {
    type Value = Result<AnyValue, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        if self.depth > MAX_VALUE_DEPTH {
            <IgnoredAny as de::Deserialize>::deserialize(deserializer)?;
            return Ok(Err(format!("value nested deeper than {MAX_VALUE_DEPTH} levels")));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValueSeed {
    type Value = Result<AnyValue, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an otlp AnyValue")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Ok(AnyValue::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Ok(AnyValue::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Ok(match i64::try_from(v) {
            Ok(i) => AnyValue::Int(i),
            Err(_) => AnyValue::Double(v as f64),
        }))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Ok(AnyValue::Double(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Ok(AnyValue::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Ok(AnyValue::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(AnyValue::Empty))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Ok(AnyValue::Empty))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(AnyValuesSeed { depth: self.depth + 1 }.seq(seq)?.map(AnyValue::Array))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // The first recognized key decides; unknown keys (and `stringValueStrindex`, which only
        // profiles use) are skipped.
        let mut res: Option<Result<AnyValue, String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            if res.is_some() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            res = match key.as_str() {
                "arrayValue" | "array_value" => Some(
                    map.next_value_seed(ObjectOr(ValuesSeed { depth: self.depth, kvlist: false }))?
                        .unwrap_or(Ok(AnyValue::Array(Vec::new()))),
                ),
                "kvlistValue" | "kvlist_value" => Some(
                    map.next_value_seed(ObjectOr(ValuesSeed { depth: self.depth, kvlist: true }))?
                        .unwrap_or(Ok(AnyValue::KvList(Vec::new()))),
                ),
                "stringValue" | "string_value" | "boolValue" | "bool_value" | "intValue"
                | "int_value" | "doubleValue" | "double_value" | "bytesValue" | "bytes_value" => {
                    Some(scalar_value(&key, &map.next_value::<Value>()?))
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
        }
        Ok(res.unwrap_or(Ok(AnyValue::Empty)))
    }
}

/// `{"values": [...]}` of an `arrayValue` (AnyValues) or a `kvlistValue` (key-values).
struct ValuesSeed {
    depth: usize,
    kvlist: bool,
}

impl<'de> MapSeed<'de> for ValuesSeed {
    type Out = Result<AnyValue, String>;

    fn map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let depth = self.depth + 1;
        let mut res = Ok(if self.kvlist {
            AnyValue::KvList(Vec::new())
        } else {
            AnyValue::Array(Vec::new())
        });
        while let Some(key) = map.next_key::<String>()? {
            if key != "values" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            // Anything but an array reads as empty.
            res = if self.kvlist {
                map.next_value_seed(ArrayOr(KeyValuesSeed { depth }))?
                    .unwrap_or(Ok(Vec::new()))
                    .map(AnyValue::KvList)
            } else {
                map.next_value_seed(ArrayOr(AnyValuesSeed { depth }))?
                    .unwrap_or(Ok(Vec::new()))
                    .map(AnyValue::Array)
            };
        }
        Ok(res)
    }
}

/// The elements of an array of AnyValues; the first bad one is the array's error.
struct AnyValuesSeed {
    depth: usize,
}

impl<'de> SeqSeed<'de> for AnyValuesSeed {
    type Out = Result<Vec<AnyValue>, String>;

    fn seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Out, A::Error> {
        let mut res = Ok(Vec::new());
        while let Some(value) = seq.next_element_seed(AnyValueSeed { depth: self.depth })? {
            match (&mut res, value) {
                (Ok(list), Ok(value)) => list.push(value),
                (Ok(_), Err(reason)) => res = Err(reason),
                (Err(_), _) => {}
            }
        }
        Ok(res)
    }
}

/// The scalar `AnyValue` kinds, from the JSON value under their key.
fn scalar_value(key: &str, inner: &Value) -> Result<AnyValue, String> {
    Ok(match key {
        "stringValue" | "string_value" => match inner {
            Value::String(s) => AnyValue::String(s.clone()),
            Value::Null => AnyValue::Empty,
            other => AnyValue::String(other.to_string()),
        },
        "boolValue" | "bool_value" => match inner {
            Value::Bool(b) => AnyValue::Bool(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => AnyValue::Bool(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => AnyValue::Bool(false),
            Value::Null => AnyValue::Empty,
            other => return Err(format!("boolValue is not a boolean: {}", short(other))),
        },
        "intValue" | "int_value" => match inner {
            Value::Null => AnyValue::Empty,
            other => AnyValue::Int(
                as_i64(other)
                    .ok_or_else(|| format!("intValue is not a 64-bit integer: {}", short(other)))?,
            ),
        },
        "doubleValue" | "double_value" => match inner {
            Value::Number(n) => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => AnyValue::Double(match s.trim() {
                "NaN" => f64::NAN,
                "Infinity" => f64::INFINITY,
                "-Infinity" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .map_err(|_| format!("doubleValue is not a number: {}", short(inner)))?,
            }),
            Value::Null => AnyValue::Empty,
            other => return Err(format!("doubleValue is not a number: {}", short(other))),
        },
        _ => match inner {
            // bytesValue
            Value::String(s) => AnyValue::Bytes(
                decode_base64(s)
                    .ok_or_else(|| format!("bytesValue is not base64: {}", short(inner)))?,
            ),
            Value::Null => AnyValue::Empty,
            other => return Err(format!("bytesValue is not a string: {}", short(other))),
        },
    })
}
