//! The raw span: everything OTLP carries for one span, kept losslessly, plus the record Loupe
//! stores (raw span + derived view + the project it belongs to).

use serde::{Deserialize, Serialize};

use crate::{LlmView, ProjectId, SpanId, TraceId, UnixNanos};

/// An OTLP `AnyValue`. `Empty` is the value-less `{}` some senders emit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnyValue {
    String(String),
    Bool(bool),
    Int(i64),
    /// Non-finite values are serialized as the strings `NaN`, `Infinity`, `-Infinity` (JSON has
    /// no number for them), and read back from those strings.
    Double(#[serde(with = "json_double")] f64),
    /// Raw bytes, serialized as base64 in stored JSON.
    Bytes(#[serde(with = "base64_bytes")] Vec<u8>),
    Array(Vec<AnyValue>),
    KvList(Vec<KeyValue>),
    Empty,
}

impl AnyValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AnyValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// An integer, also from a numeric string or an integral double (senders disagree).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            AnyValue::Int(i) => Some(*i),
            AnyValue::Double(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
            AnyValue::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AnyValue::Int(i) => Some(*i as f64),
            AnyValue::Double(d) => Some(*d),
            AnyValue::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            AnyValue::Bool(b) => Some(*b),
            AnyValue::String(s) => match s.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// A plain-text rendering: strings as they are, everything else as JSON.
    pub fn to_text(&self) -> String {
        match self {
            AnyValue::String(s) => s.clone(),
            other => other.to_json().to_string(),
        }
    }

    /// The natural JSON shape of the value (kvlists become objects, bytes base64).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            AnyValue::String(s) => Value::String(s.clone()),
            AnyValue::Bool(b) => Value::Bool(*b),
            AnyValue::Int(i) => Value::from(*i),
            AnyValue::Double(d) => serde_json::Number::from_f64(*d)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(d.to_string())),
            AnyValue::Bytes(b) => Value::String(base64_bytes::encode(b)),
            AnyValue::Array(values) => Value::Array(values.iter().map(AnyValue::to_json).collect()),
            AnyValue::KvList(kvs) => {
                Value::Object(kvs.iter().map(|kv| (kv.key.clone(), kv.value.to_json())).collect())
            }
            AnyValue::Empty => Value::Null,
        }
    }
}

/// One attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: AnyValue,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: AnyValue) -> KeyValue {
        KeyValue { key: key.into(), value }
    }

    pub fn string(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
        KeyValue::new(key, AnyValue::String(value.into()))
    }

    pub fn int(key: impl Into<String>, value: i64) -> KeyValue {
        KeyValue::new(key, AnyValue::Int(value))
    }
}

/// The last value of `key` in `attributes` (OTLP says keys are unique; senders do not always
/// comply, and the last one wins as in most SDK attribute maps).
pub fn attr_get<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attributes.iter().rev().find(|kv| kv.key == key).map(|kv| &kv.value)
}

/// The string value of `key`, if it is a string.
pub fn attr_str<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attr_get(attributes, key).and_then(AnyValue::as_str)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    #[default]
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl SpanKind {
    /// From the OTLP enum number; unknown numbers are unspecified.
    pub fn from_otlp(n: i32) -> SpanKind {
        match n {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    pub fn to_otlp(self) -> i32 {
        match self {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "unspecified",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_otlp(n: i32) -> StatusCode {
        match n {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    pub fn to_otlp(self) -> i32 {
        match self {
            StatusCode::Unset => 0,
            StatusCode::Ok => 1,
            StatusCode::Error => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Status {
    pub code: StatusCode,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resource {
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
}

/// The instrumentation scope that produced the span.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Scope {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time_unix_nano: UnixNanos,
    pub name: String,
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
}

/// A span event that arrived on its own, addressed to its span by trace and span id: an OTLP log
/// record holding a GenAI event (`gen_ai.user.message`, `gen_ai.choice`, ...). It is kept until
/// its span is stored, then becomes one of the span's `events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanEvent {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub event: Event,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_state: String,
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flags: u32,
}

/// One OTel span exactly as received (after id validation), with its resource and scope.
///
/// Invariant: `end_time_unix_nano >= start_time_unix_nano`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_state: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: UnixNanos,
    pub end_time_unix_nano: UnixNanos,
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_attributes_count: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_events_count: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_links_count: u32,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub resource: Resource,
    #[serde(default)]
    pub scope: Scope,
    /// The resource's schema url and the scope's, when sent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schema_url: String,
}

impl RawSpan {
    /// A span with these ids, name and times and nothing else (no parent, kind unspecified, no
    /// attributes, events or links, empty resource and scope): the start of a span built in
    /// code rather than received.
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        name: impl Into<String>,
        start_time_unix_nano: UnixNanos,
        end_time_unix_nano: UnixNanos,
    ) -> RawSpan {
        RawSpan {
            trace_id,
            span_id,
            parent_span_id: None,
            trace_state: String::new(),
            flags: 0,
            name: name.into(),
            kind: SpanKind::Unspecified,
            start_time_unix_nano,
            end_time_unix_nano,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Vec::new(),
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: Status::default(),
            resource: Resource::default(),
            scope: Scope::default(),
            schema_url: String::new(),
        }
    }

    pub fn duration_ns(&self) -> u64 {
        self.end_time_unix_nano.saturating_sub(self.start_time_unix_nano)
    }

    /// `service.name` from the resource, or `unknown_service` as the OTel SDKs default to.
    pub fn service_name(&self) -> &str {
        attr_str(&self.resource.attributes, "service.name").unwrap_or("unknown_service")
    }

    pub fn attr(&self, key: &str) -> Option<&AnyValue> {
        attr_get(&self.attributes, key)
    }
}

/// What a store holds for one span: the raw span, the project it belongs to, and the normalized
/// LLM view derived from the raw span at ingest (rebuildable from `raw` at any time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSpan {
    pub project: ProjectId,
    pub raw: RawSpan,
    pub view: LlmView,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Base64 (standard alphabet, padded) for bytes in stored JSON.
pub(crate) mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// `f64` in stored JSON: finite values as numbers, non-finite ones as proto3 JSON's strings.
pub(crate) mod json_double {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else if value.is_nan() {
            serializer.serialize_str("NaN")
        } else if *value > 0.0 {
            serializer.serialize_str("Infinity")
        } else {
            serializer.serialize_str("-Infinity")
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(n) => Ok(n),
            NumberOrText::Text(text) => match text.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => other.parse().map_err(serde::de::Error::custom),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AnyValue;

    #[test]
    fn non_finite_doubles_survive_json() {
        for value in [f64::INFINITY, f64::NEG_INFINITY, 1.5] {
            let json = serde_json::to_string(&AnyValue::Double(value)).unwrap();
            let back: AnyValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back, AnyValue::Double(value), "{json}");
        }
        let json = serde_json::to_string(&AnyValue::Double(f64::NAN)).unwrap();
        assert_eq!(json, r#"{"double":"NaN"}"#);
        let back: AnyValue = serde_json::from_str(&json).unwrap();
        assert!(matches!(back, AnyValue::Double(d) if d.is_nan()));
    }
}
