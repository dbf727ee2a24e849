//! A tolerant reader of OTLP JSON trace requests.
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

use base64::Engine;
use model::{AnyValue, Event, KeyValue, Link, RawSpan, Resource, Scope, SpanKind, Status};
use serde_json::{Map, Value};

use crate::span::{check_link, check_span};
use crate::{Decoded, Error, MAX_VALUE_DEPTH, Rejected};

type Object = Map<String, Value>;

/// Decodes an `application/json` body.
pub fn decode_json(body: &[u8]) -> Result<Decoded, Error> {
    let root: Value = serde_json::from_slice(body).map_err(Error::Json)?;
    let Value::Object(root) = root else {
        return Err(Error::JsonShape("the top level must be an object".to_owned()));
    };
    let mut res = Decoded::default();
    let resource_spans = array(&root, &["resourceSpans", "resource_spans"], "resourceSpans")?;
    for (i, resource_spans) in resource_spans.iter().enumerate() {
        let Value::Object(resource_spans) = resource_spans else {
            return Err(shape(format!("resourceSpans[{i}] must be an object")));
        };
        let resource = match object(resource_spans, &["resource"]) {
            Some(resource) => read_attributes(resource).map(|attributes| Resource {
                attributes,
                dropped_attributes_count: u32_field(resource, DROPPED_ATTRIBUTES).unwrap_or(0),
            }),
            None => Ok(Resource::default()),
        };
        let resource_schema_url = str_field(resource_spans, &["schemaUrl", "schema_url"]);
        let scope_spans = array(
            resource_spans,
            &[
                "scopeSpans",
                "scope_spans",
                "instrumentationLibrarySpans",
                "instrumentation_library_spans",
            ],
            "scopeSpans",
        )?;
        for (j, scope_spans) in scope_spans.iter().enumerate() {
            let Value::Object(scope_spans) = scope_spans else {
                return Err(shape(format!("resourceSpans[{i}].scopeSpans[{j}] must be an object")));
            };
            let scope_keys =
                ["scope", "instrumentationLibrary", "instrumentation_library"].as_slice();
            let scope = match object(scope_spans, scope_keys) {
                Some(scope) => read_attributes(scope).map(|attributes| Scope {
                    name: str_field(scope, &["name"]).to_owned(),
                    version: str_field(scope, &["version"]).to_owned(),
                    attributes,
                    dropped_attributes_count: u32_field(scope, DROPPED_ATTRIBUTES).unwrap_or(0),
                }),
                None => Ok(Scope::default()),
            };
            let mut schema_url = str_field(scope_spans, &["schemaUrl", "schema_url"]);
            if schema_url.is_empty() {
                schema_url = resource_schema_url;
            }
            let spans = array(scope_spans, &["spans"], "spans")?;
            for span in spans {
                match convert_span(span, &resource, &scope, schema_url) {
                    Ok(raw) => res.spans.push(raw),
                    Err(rejected) => res.rejected.push(rejected),
                }
            }
        }
    }
    Ok(res)
}

const DROPPED_ATTRIBUTES: &[&str] = &["droppedAttributesCount", "dropped_attributes_count"];

fn shape(message: String) -> Error {
    Error::JsonShape(message)
}

fn convert_span(
    span: &Value,
    resource: &Result<Resource, String>,
    scope: &Result<Scope, String>,
    schema_url: &str,
) -> Result<RawSpan, Rejected> {
    let Value::Object(span) = span else {
        return Err(Rejected {
            trace_id: String::new(),
            span_id: String::new(),
            name: String::new(),
            reason: format!("span must be a json object, got {}", type_name(span)),
        });
    };
    let id_text = |keys: &[&str]| match field(span, keys) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let reject = |reason: String| Rejected {
        trace_id: id_text(&["traceId", "trace_id"]),
        span_id: id_text(&["spanId", "span_id"]),
        name: str_field(span, &["name"]).to_owned(),
        reason,
    };
    convert_span_fields(span, resource, scope, schema_url).map_err(reject)
}

fn convert_span_fields(
    span: &Object,
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
    let attributes = read_attributes(span)?;
    let mut events = Vec::new();
    for event in array_lenient(span, &["events"]) {
        let Value::Object(event) = event else {
            return Err(format!("event must be a json object, got {}", type_name(event)));
        };
        let name = str_field(event, &["name"]);
        events.push(Event {
            time_unix_nano: u64_field(event, &["timeUnixNano", "time_unix_nano"])
                .map_err(|reason| format!("event '{name}': {reason}"))?,
            name: name.to_owned(),
            attributes: read_attributes(event)
                .map_err(|reason| format!("event '{name}': {reason}"))?,
            dropped_attributes_count: u32_field(event, DROPPED_ATTRIBUTES)?,
        });
    }
    let mut links = Vec::new();
    let mut dropped_links_count = u32_field(span, &["droppedLinksCount", "dropped_links_count"])?;
    for link in array_lenient(span, &["links"]) {
        let Value::Object(link) = link else {
            return Err(format!("link must be a json object, got {}", type_name(link)));
        };
        let ids = (
            id_field(link, &["traceId", "trace_id"], 16, "link trace id", true),
            id_field(link, &["spanId", "span_id"], 8, "link span id", true),
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
            trace_state: str_field(link, &["traceState", "trace_state"]).to_owned(),
            attributes: read_attributes(link).map_err(|reason| format!("link: {reason}"))?,
            dropped_attributes_count: u32_field(link, DROPPED_ATTRIBUTES)?,
            flags: u32_field(link, &["flags"])?,
        });
    }
    let status = match object(span, &["status"]) {
        Some(status) => Status {
            code: status_code(field(status, &["code"]))?,
            message: str_field(status, &["message"]).to_owned(),
        },
        None => Status::default(),
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

fn field<'a>(obj: &'a Object, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().find_map(|key| obj.get(*key))
}

fn object<'a>(obj: &'a Object, keys: &[&str]) -> Option<&'a Object> {
    match field(obj, keys) {
        Some(Value::Object(it)) => Some(it),
        _ => None,
    }
}

/// A repeated field of the request's structure: missing or `null` is empty, anything but an
/// array is an error.
fn array<'a>(obj: &'a Object, keys: &[&str], what: &str) -> Result<&'a [Value], Error> {
    match field(obj, keys) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(values)) => Ok(values),
        Some(other) => Err(shape(format!("{what} must be an array, got {}", type_name(other)))),
    }
}

/// A repeated field inside a span: anything but an array is read as empty.
fn array_lenient<'a>(obj: &'a Object, keys: &[&str]) -> &'a [Value] {
    match field(obj, keys) {
        Some(Value::Array(values)) => values,
        _ => &[],
    }
}

fn str_field<'a>(obj: &'a Object, keys: &[&str]) -> &'a str {
    match field(obj, keys) {
        Some(Value::String(s)) => s,
        _ => "",
    }
}

fn type_name(value: &Value) -> &'static str {
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
    match field(obj, keys) {
        None | Some(Value::Null) => Ok(0),
        Some(value) => as_u64(value).ok_or_else(|| {
            format!("{} is not an unsigned 64-bit integer: {}", key_name(keys), short(value))
        }),
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
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
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

fn span_kind(value: Option<&Value>) -> Result<SpanKind, String> {
    let Some(value) = value else { return Ok(SpanKind::Unspecified) };
    if let Some(n) = as_i64(value) {
        return Ok(SpanKind::from_otlp(i32::try_from(n).unwrap_or(0)));
    }
    let name = match value {
        Value::Null => return Ok(SpanKind::Unspecified),
        Value::String(s) => s.as_str(),
        other => return Err(format!("kind must be an integer, got {}", type_name(other))),
    };
    let bare = strip_prefix_ignore_case(name, "SPAN_KIND_");
    Ok(match bare.to_ascii_lowercase().as_str() {
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "unspecified" => SpanKind::Unspecified,
        _ => return Err(format!("kind is not a span kind: {}", short(value))),
    })
}

fn status_code(value: Option<&Value>) -> Result<model::StatusCode, String> {
    use model::StatusCode;
    let Some(value) = value else { return Ok(StatusCode::Unset) };
    if let Some(n) = as_i64(value) {
        return Ok(StatusCode::from_otlp(i32::try_from(n).unwrap_or(0)));
    }
    let name = match value {
        Value::Null => return Ok(StatusCode::Unset),
        Value::String(s) => s.as_str(),
        other => return Err(format!("status code must be an integer, got {}", type_name(other))),
    };
    let bare = strip_prefix_ignore_case(name, "STATUS_CODE_");
    Ok(match bare.to_ascii_lowercase().as_str() {
        "unset" => StatusCode::Unset,
        "ok" => StatusCode::Ok,
        "error" => StatusCode::Error,
        _ => return Err(format!("status code is not a status: {}", short(value))),
    })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

/// The `attributes` of a span, resource, scope, event or link.
fn read_attributes(obj: &Object) -> Result<Vec<KeyValue>, String> {
    key_values(array_lenient(obj, &["attributes"]), 0)
}

fn key_values(values: &[Value], depth: usize) -> Result<Vec<KeyValue>, String> {
    let mut res = Vec::with_capacity(values.len());
    for kv in values {
        let Value::Object(kv) = kv else {
            return Err(format!("attribute must be a json object, got {}", type_name(kv)));
        };
        let key = str_field(kv, &["key"]);
        let value = match field(kv, &["value"]) {
            None => AnyValue::Empty,
            Some(value) => {
                any_value(value, depth).map_err(|reason| format!("attribute '{key}': {reason}"))?
            }
        };
        res.push(KeyValue { key: key.to_owned(), value });
    }
    Ok(res)
}

fn any_value(value: &Value, depth: usize) -> Result<AnyValue, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err(format!("value nested deeper than {MAX_VALUE_DEPTH} levels"));
    }
    let obj = match value {
        Value::Object(obj) => obj,
        // Bare scalars and arrays in place of an AnyValue: read them as what they are.
        Value::Null => return Ok(AnyValue::Empty),
        Value::Bool(b) => return Ok(AnyValue::Bool(*b)),
        Value::String(s) => return Ok(AnyValue::String(s.clone())),
        Value::Number(n) => {
            return Ok(match n.as_i64() {
                Some(i) => AnyValue::Int(i),
                None => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
            });
        }
        Value::Array(values) => {
            return values
                .iter()
                .map(|v| any_value(v, depth + 1))
                .collect::<Result<_, _>>()
                .map(AnyValue::Array);
        }
    };
    for (key, inner) in obj {
        let res = match key.as_str() {
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
                other => AnyValue::Int(as_i64(other).ok_or_else(|| {
                    format!("intValue is not a 64-bit integer: {}", short(other))
                })?),
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
            "bytesValue" | "bytes_value" => match inner {
                Value::String(s) => AnyValue::Bytes(
                    decode_base64(s)
                        .ok_or_else(|| format!("bytesValue is not base64: {}", short(inner)))?,
                ),
                Value::Null => AnyValue::Empty,
                other => return Err(format!("bytesValue is not a string: {}", short(other))),
            },
            "arrayValue" | "array_value" => {
                let values = match inner {
                    Value::Object(array) => array_lenient(array, &["values"]),
                    _ => &[],
                };
                AnyValue::Array(
                    values.iter().map(|v| any_value(v, depth + 1)).collect::<Result<_, _>>()?,
                )
            }
            "kvlistValue" | "kvlist_value" => {
                let values = match inner {
                    Value::Object(list) => array_lenient(list, &["values"]),
                    _ => &[],
                };
                AnyValue::KvList(key_values(values, depth + 1)?)
            }
            // Unknown keys (and `stringValueStrindex`, which only profiles use) are ignored.
            _ => continue,
        };
        return Ok(res);
    }
    Ok(AnyValue::Empty)
}
