//! Messages and parts from every shape senders use: the OTel GenAI schema (`{role, parts}`),
//! OpenAI chat messages (`{role, content, tool_calls}`, content parts `text`/`image_url`), the
//! OpenAI Responses API items, Anthropic content blocks (`text`, `tool_use`, `tool_result`,
//! `thinking`, `image`), and plain strings. Content that is not valid JSON becomes a text part;
//! nothing here panics on odd input.

use model::{AnyValue, Message, Part};
use serde_json::{Map, Value};

/// The JSON shape of an attribute value: a string holding a JSON object or array is parsed;
/// any other string stays a string.
pub(crate) fn structured(value: &AnyValue) -> Value {
    match value {
        AnyValue::String(s) => parse_json_text(s).unwrap_or_else(|| Value::String(s.clone())),
        other => other.to_json(),
    }
}

/// Parses `text` when it looks like a JSON object or array.
pub(crate) fn parse_json_text(text: &str) -> Option<Value> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::from_str(text).ok()
    } else {
        None
    }
}

/// A value as text: strings as they are, anything else as JSON.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Messages from an attribute (`gen_ai.input.messages` and friends): a JSON string or a
/// structured value. Text that is not JSON becomes one message with `default_role`.
pub(crate) fn messages_from_value(value: &AnyValue, default_role: &str) -> Vec<Message> {
    match value {
        AnyValue::String(s) => match parse_json_text(s) {
            Some(json) => messages_from_json(&json, default_role),
            None if s.is_empty() => Vec::new(),
            None => vec![Message::text(default_role, s.as_str())],
        },
        AnyValue::Empty => Vec::new(),
        other => messages_from_json(&other.to_json(), default_role),
    }
}

/// Messages from JSON: an array of messages, one message object, `{"messages": [...]}`, or text.
pub(crate) fn messages_from_json(json: &Value, default_role: &str) -> Vec<Message> {
    match json {
        Value::Array(items) => items.iter().map(|it| message_from_json(it, default_role)).collect(),
        Value::Object(obj) => match obj.get("messages") {
            Some(Value::Array(items)) if !obj.contains_key("role") => {
                items.iter().map(|it| message_from_json(it, default_role)).collect()
            }
            _ => vec![message_from_json(json, default_role)],
        },
        Value::Null => Vec::new(),
        other => vec![message_from_json(other, default_role)],
    }
}

/// Whether JSON looks like chat messages (so free-form input is not mistaken for them).
pub(crate) fn looks_like_messages(json: &Value) -> bool {
    let is_message = |it: &Value| it.get("role").is_some_and(Value::is_string);
    match json {
        Value::Array(items) => !items.is_empty() && items.iter().all(is_message),
        Value::Object(obj) => match obj.get("messages") {
            Some(Value::Array(items)) => !items.is_empty() && items.iter().all(is_message),
            _ => is_message(json),
        },
        _ => false,
    }
}

/// One message in any of the supported shapes.
pub(crate) fn message_from_json(json: &Value, default_role: &str) -> Message {
    let obj = match json {
        Value::Object(obj) => obj,
        Value::String(s) => return Message::text(default_role, s.as_str()),
        Value::Null => return Message { role: default_role.to_owned(), ..empty_message() },
        other => {
            return Message {
                role: default_role.to_owned(),
                parts: vec![Part::Other { value: other.clone() }],
                ..empty_message()
            };
        }
    };
    let role = str_of(obj, "role").unwrap_or(default_role).to_owned();
    let mut parts = Vec::new();
    if let Some(Value::Array(items)) = obj.get("parts") {
        parts.extend(items.iter().map(part_from_json));
    }
    match obj.get("content") {
        Some(Value::String(s)) if role == "tool" && tool_call_id(obj).is_some() => {
            parts.push(Part::ToolCallResponse {
                id: tool_call_id(obj).map(str::to_owned),
                response: parse_json_text(s).unwrap_or_else(|| Value::String(s.clone())),
            });
        }
        Some(Value::String(s)) => parts.push(text_part(s)),
        Some(Value::Array(items)) => parts.extend(items.iter().map(part_from_json)),
        Some(Value::Null) | None => {}
        Some(other) if role == "tool" => parts.push(Part::ToolCallResponse {
            id: tool_call_id(obj).map(str::to_owned),
            response: other.clone(),
        }),
        Some(other) => parts.push(part_from_json(other)),
    }
    if let Some(Value::Array(calls)) = obj.get("tool_calls") {
        parts.extend(calls.iter().map(tool_call_from_json));
    }
    // The gen_ai.choice event nests the message: {index, finish_reason, message: {...}}.
    if let Some(message @ Value::Object(_)) = obj.get("message") {
        let inner = message_from_json(message, &role);
        parts.extend(inner.parts);
        let role = if obj.contains_key("role") { role } else { inner.role };
        return Message {
            role,
            parts,
            name: str_of(obj, "name").map(str::to_owned).or(inner.name),
            finish_reason: finish_reason_of(obj).or(inner.finish_reason),
        };
    }
    Message {
        role,
        parts,
        name: str_of(obj, "name").map(str::to_owned),
        finish_reason: finish_reason_of(obj),
    }
}

fn empty_message() -> Message {
    Message { role: String::new(), parts: Vec::new(), name: None, finish_reason: None }
}

fn tool_call_id(obj: &Map<String, Value>) -> Option<&str> {
    str_of(obj, "tool_call_id").or_else(|| str_of(obj, "id"))
}

fn finish_reason_of(obj: &Map<String, Value>) -> Option<String> {
    str_of(obj, "finish_reason").or_else(|| str_of(obj, "stop_reason")).map(str::to_owned)
}

fn str_of<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn text_part(text: &str) -> Part {
    Part::Text { content: text.to_owned() }
}

/// Tool-call arguments: a JSON string holding an object or array is parsed, anything else is
/// kept as sent.
pub(crate) fn arguments(value: &Value) -> Value {
    match value {
        Value::String(s) => parse_json_text(s).unwrap_or_else(|| value.clone()),
        other => other.clone(),
    }
}

/// An OpenAI-style tool call (`{id, type, function: {name, arguments}}`) or a flat
/// `{id, name, arguments}`.
pub(crate) fn tool_call_from_json(json: &Value) -> Part {
    let Value::Object(obj) = json else { return Part::Other { value: json.clone() } };
    let function = match obj.get("function") {
        Some(Value::Object(function)) => function,
        _ => obj,
    };
    Part::ToolCall {
        id: str_of(obj, "id").or_else(|| str_of(obj, "call_id")).map(str::to_owned),
        name: str_of(function, "name").unwrap_or_default().to_owned(),
        arguments: function.get("arguments").map(arguments).unwrap_or(Value::Null),
    }
}

/// One content part in any supported shape.
pub(crate) fn part_from_json(json: &Value) -> Part {
    let obj = match json {
        Value::Object(obj) => obj,
        Value::String(s) => return text_part(s),
        other => return Part::Other { value: other.clone() },
    };
    let text = || str_of(obj, "content").or_else(|| str_of(obj, "text")).map(str::to_owned);
    let media = |modality: &str| Part::Media {
        modality: str_of(obj, "modality").unwrap_or(modality).to_owned(),
        mime_type: str_of(obj, "mime_type")
            .or_else(|| str_of(obj, "media_type"))
            .map(str::to_owned),
        uri: str_of(obj, "uri").or_else(|| str_of(obj, "url")).map(str::to_owned),
        file_id: str_of(obj, "file_id").map(str::to_owned),
        content: str_of(obj, "content").or_else(|| str_of(obj, "data")).map(str::to_owned),
    };
    let kind = str_of(obj, "type").unwrap_or("");
    match kind {
        "text" | "input_text" | "output_text" => match text() {
            Some(content) => Part::Text { content },
            None => Part::Other { value: json.clone() },
        },
        "reasoning" | "thinking" => {
            match text().or_else(|| str_of(obj, "thinking").map(str::to_owned)) {
                Some(content) => Part::Reasoning { content },
                None => Part::Other { value: json.clone() },
            }
        }
        "tool_call" | "function_call" | "tool_use" => Part::ToolCall {
            id: str_of(obj, "id").or_else(|| str_of(obj, "call_id")).map(str::to_owned),
            name: str_of(obj, "name").unwrap_or_default().to_owned(),
            arguments: obj
                .get("arguments")
                .or_else(|| obj.get("input"))
                .map(arguments)
                .unwrap_or(Value::Null),
        },
        "tool_call_response" | "function_call_output" | "tool_result" => Part::ToolCallResponse {
            id: str_of(obj, "id")
                .or_else(|| str_of(obj, "call_id"))
                .or_else(|| str_of(obj, "tool_use_id"))
                .map(str::to_owned),
            response: obj
                .get("response")
                .or_else(|| obj.get("result"))
                .or_else(|| obj.get("output"))
                .or_else(|| obj.get("content"))
                .cloned()
                .unwrap_or(Value::Null),
        },
        "blob" => media("unknown"),
        "file" => media("file"),
        "uri" => media("unknown"),
        "image_url" => {
            let url = match obj.get("image_url") {
                Some(Value::Object(image)) => str_of(image, "url"),
                Some(Value::String(url)) => Some(url.as_str()),
                _ => None,
            };
            Part::Media {
                modality: "image".to_owned(),
                mime_type: None,
                uri: url.map(str::to_owned),
                file_id: None,
                content: None,
            }
        }
        "image" | "document" | "audio" | "input_audio" | "video" => {
            let modality = if kind == "input_audio" { "audio" } else { kind };
            // Anthropic nests the data in `source`, OpenAI audio in `input_audio`.
            match obj.get("source").or_else(|| obj.get("input_audio")) {
                Some(Value::Object(source)) => Part::Media {
                    modality: modality.to_owned(),
                    mime_type: str_of(source, "media_type")
                        .or_else(|| str_of(source, "format"))
                        .map(str::to_owned),
                    uri: str_of(source, "url").map(str::to_owned),
                    file_id: str_of(source, "file_id").map(str::to_owned),
                    content: str_of(source, "data").map(str::to_owned),
                },
                _ => media(modality),
            }
        }
        _ => Part::Other { value: json.clone() },
    }
}

/// System instructions: an array of parts, one part, or plain text.
pub(crate) fn parts_from_value(value: &AnyValue) -> Vec<Part> {
    match value {
        AnyValue::String(s) => match parse_json_text(s) {
            Some(json) => parts_from_json(&json),
            None if s.is_empty() => Vec::new(),
            None => vec![text_part(s)],
        },
        AnyValue::Empty => Vec::new(),
        other => parts_from_json(&other.to_json()),
    }
}

fn parts_from_json(json: &Value) -> Vec<Part> {
    match json {
        Value::Array(items) => items.iter().map(part_from_json).collect(),
        Value::Null => Vec::new(),
        // A whole message given as instructions: take its parts.
        Value::Object(obj) if obj.contains_key("role") => message_from_json(json, "system").parts,
        other => vec![part_from_json(other)],
    }
}
