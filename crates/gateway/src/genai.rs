//! The provider-neutral description of one call (request side and response side) and how it
//! becomes OTel GenAI span attributes. `openai` and `anthropic` fill these from their wire
//! formats.

use model::{AnyValue, KeyValue};
use serde_json::{Value, json};

/// What the request said, in OTel terms.
#[derive(Debug, Default)]
pub struct RequestInfo {
    /// `gen_ai.operation.name`: `chat`, `embeddings`, ...
    pub operation: &'static str,
    pub model: Option<String>,
    pub stream: bool,
    /// OTel `ChatMessage`s.
    pub input_messages: Vec<Value>,
    /// OTel parts (text).
    pub system_instructions: Vec<Value>,
    /// `gen_ai.request.*` and other request attributes.
    pub attributes: Vec<KeyValue>,
}

/// What the response said, in OTel terms.
#[derive(Debug, Default)]
pub struct ResponseInfo {
    pub id: Option<String>,
    pub model: Option<String>,
    pub finish_reasons: Vec<String>,
    /// OTel `OutputMessage`s.
    pub output_messages: Vec<Value>,
    pub usage: UsageInfo,
    /// Provider-specific response attributes (`openai.response.system_fingerprint`, ...).
    pub attributes: Vec<KeyValue>,
    /// The error the upstream reported in its body: (type, message).
    pub error: Option<(String, String)>,
}

/// Token counts as OTel defines them: `input` includes cached tokens, `output` includes
/// reasoning tokens.
#[derive(Debug, Default, Clone, Copy)]
pub struct UsageInfo {
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub cache_read: Option<i64>,
    pub cache_write: Option<i64>,
    pub reasoning: Option<i64>,
}

impl RequestInfo {
    pub fn push_attributes(&self, res: &mut Vec<KeyValue>) {
        res.push(KeyValue::string("gen_ai.operation.name", self.operation));
        if let Some(model) = &self.model {
            res.push(KeyValue::string("gen_ai.request.model", model));
        }
        res.push(KeyValue::new("gen_ai.request.stream", AnyValue::Bool(self.stream)));
        res.extend(self.attributes.iter().cloned());
        if !self.system_instructions.is_empty() {
            res.push(KeyValue::string(
                "gen_ai.system_instructions",
                Value::Array(self.system_instructions.clone()).to_string(),
            ));
        }
        if !self.input_messages.is_empty() {
            res.push(KeyValue::string(
                "gen_ai.input.messages",
                Value::Array(self.input_messages.clone()).to_string(),
            ));
        }
    }
}

impl ResponseInfo {
    pub fn push_attributes(&self, res: &mut Vec<KeyValue>) {
        if let Some(id) = &self.id {
            res.push(KeyValue::string("gen_ai.response.id", id));
        }
        if let Some(model) = &self.model {
            res.push(KeyValue::string("gen_ai.response.model", model));
        }
        if !self.finish_reasons.is_empty() {
            let reasons = self.finish_reasons.iter().map(|r| AnyValue::String(r.clone())).collect();
            res.push(KeyValue::new("gen_ai.response.finish_reasons", AnyValue::Array(reasons)));
        }
        let usage = self.usage;
        for (key, value) in [
            ("gen_ai.usage.input_tokens", usage.input),
            ("gen_ai.usage.output_tokens", usage.output),
            ("gen_ai.usage.cache_read.input_tokens", usage.cache_read),
            ("gen_ai.usage.cache_write.input_tokens", usage.cache_write),
            ("gen_ai.usage.reasoning.output_tokens", usage.reasoning),
        ] {
            if let Some(value) = value {
                res.push(KeyValue::int(key, value));
            }
        }
        res.extend(self.attributes.iter().cloned());
        if !self.output_messages.is_empty() {
            res.push(KeyValue::string(
                "gen_ai.output.messages",
                Value::Array(self.output_messages.clone()).to_string(),
            ));
        }
    }
}

/// Request parameters shared by the OpenAI and Anthropic shapes.
pub fn push_request_params(body: &Value, res: &mut Vec<KeyValue>) {
    for (field, key) in [
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("frequency_penalty", "gen_ai.request.frequency_penalty"),
        ("presence_penalty", "gen_ai.request.presence_penalty"),
    ] {
        if let Some(value) = body.get(field).and_then(Value::as_f64) {
            res.push(KeyValue::new(key, AnyValue::Double(value)));
        }
    }
    if let Some(value) = body.get("top_k").and_then(Value::as_i64) {
        res.push(KeyValue::int("gen_ai.request.top_k", value));
    }
    let max_tokens = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|field| body.get(*field).and_then(Value::as_i64));
    if let Some(value) = max_tokens {
        res.push(KeyValue::int("gen_ai.request.max_tokens", value));
    }
    if let Some(value) = body.get("seed").and_then(Value::as_i64) {
        res.push(KeyValue::int("gen_ai.request.seed", value));
    }
    if let Some(n) = body.get("n").and_then(Value::as_i64)
        && n != 1
    {
        res.push(KeyValue::int("gen_ai.request.choice.count", n));
    }
    let stop = body.get("stop").or_else(|| body.get("stop_sequences"));
    let stop: Vec<AnyValue> = match stop {
        Some(Value::String(s)) => vec![AnyValue::String(s.clone())],
        Some(Value::Array(items)) => {
            items.iter().filter_map(Value::as_str).map(|s| AnyValue::String(s.to_owned())).collect()
        }
        _ => Vec::new(),
    };
    if !stop.is_empty() {
        res.push(KeyValue::new("gen_ai.request.stop_sequences", AnyValue::Array(stop)));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array)
        && !tools.is_empty()
    {
        res.push(KeyValue::string(
            "gen_ai.tool.definitions",
            Value::Array(tools.clone()).to_string(),
        ));
    }
    if let Some(choice) = body.get("tool_choice") {
        let text = match choice {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        res.push(KeyValue::string("loupe.request.tool_choice", text));
    }
    let output_type = body
        .get("response_format")
        .or_else(|| body.get("text").and_then(|t| t.get("format")))
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str);
    if let Some(kind) = output_type {
        let otel = match kind {
            "json_object" | "json_schema" => "json",
            _ => "text",
        };
        res.push(KeyValue::string("gen_ai.output.type", otel));
    }
}

/// An OTel text part.
pub fn text_part(text: &str) -> Value {
    json!({"type": "text", "content": text})
}

/// An OTel tool call part. `arguments` given as a JSON string is parsed when it is JSON.
pub fn tool_call_part(id: Option<&str>, name: &str, arguments: &Value) -> Value {
    let arguments = match arguments {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        other => other.clone(),
    };
    let mut part = json!({"type": "tool_call", "name": name, "arguments": arguments});
    if let Some(id) = id {
        part["id"] = Value::String(id.to_owned());
    }
    part
}

/// An OTel tool call response part.
pub fn tool_response_part(id: Option<&str>, response: Value) -> Value {
    let mut part = json!({"type": "tool_call_response", "response": response});
    if let Some(id) = id {
        part["id"] = Value::String(id.to_owned());
    }
    part
}

/// An OTel media part from a URL: `data:` URLs become inline blobs, others `uri` parts.
pub fn media_part(modality: &str, url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((mime, data)) = rest.split_once(";base64,")
    {
        return json!({"type": "blob", "modality": modality, "mime_type": mime, "content": data});
    }
    json!({"type": "uri", "modality": modality, "uri": url})
}

/// A message as OTel records it.
pub fn message(role: &str, parts: Vec<Value>) -> Value {
    json!({"role": role, "parts": parts})
}

/// An output message with its finish reason.
pub fn output_message(role: &str, parts: Vec<Value>, finish_reason: Option<&str>) -> Value {
    let mut res = json!({"role": role, "parts": parts});
    if let Some(reason) = finish_reason {
        res["finish_reason"] = Value::String(reason.to_owned());
    }
    res
}

/// The error object of an upstream error body, OpenAI or Anthropic shaped.
pub fn error_from_body(body: &Value) -> Option<(String, String)> {
    let error = body.get("error")?;
    match error {
        Value::String(message) => Some(("error".to_owned(), message.clone())),
        Value::Object(_) => {
            let kind = error
                .get("type")
                .or_else(|| error.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("error")
                .to_owned();
            let message = error.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
            Some((kind, message))
        }
        _ => None,
    }
}

pub fn as_i64(value: Option<&Value>) -> Option<i64> {
    value.and_then(Value::as_i64)
}
