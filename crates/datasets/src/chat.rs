//! Conversions between the normalized message shape ([`model::Message`]) and the chat shapes of
//! the export formats: OpenAI Chat Completions, Anthropic Messages and Hugging Face chat
//! templates, both ways.

use std::collections::VecDeque;

use model::{Message, Part};
use serde_json::{Map, Value, json};

use crate::item::parts_text;

/// Tool call ids handed out to calls recorded without one, so tool results can still point at
/// their call (OpenAI and Anthropic both require the link).
#[derive(Default)]
struct CallIds {
    n_generated: u32,
    /// Ids of calls not yet answered, oldest first.
    pending: VecDeque<String>,
}

impl CallIds {
    fn for_call(&mut self, id: &Option<String>) -> String {
        let id = match id {
            Some(id) => id.clone(),
            None => {
                self.n_generated += 1;
                format!("call_{}", self.n_generated)
            }
        };
        self.pending.push_back(id.clone());
        id
    }

    fn for_response(&mut self, id: &Option<String>) -> String {
        match id {
            Some(id) => {
                self.pending.retain(|pending| pending != id);
                id.clone()
            }
            None => self.pending.pop_front().unwrap_or_else(|| "call_unknown".to_owned()),
        }
    }
}

/// Tool-call arguments as the JSON string OpenAI expects.
fn arguments_string(arguments: &Value) -> String {
    match arguments {
        Value::String(s) => s.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    }
}

/// Tool-call arguments as the JSON object Anthropic and chat templates expect.
fn arguments_object(arguments: &Value) -> Value {
    match arguments {
        Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone())),
        Value::Null => Value::Object(Map::new()),
        other => other.clone(),
    }
}

/// A tool result as text.
fn response_text(response: &Value) -> String {
    match response {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn media_url(
    mime_type: &Option<String>,
    uri: &Option<String>,
    content: &Option<String>,
) -> Option<String> {
    if let Some(uri) = uri {
        return Some(uri.clone());
    }
    content.as_ref().map(|data| {
        format!("data:{};base64,{data}", mime_type.as_deref().unwrap_or("application/octet-stream"))
    })
}

/// Converts messages to OpenAI Chat Completions messages. `system` (instructions given apart
/// from the messages) becomes a leading system message.
pub(crate) fn to_openai(system: &[Part], messages: &[&[Message]]) -> Vec<Value> {
    let mut res = Vec::new();
    let mut ids = CallIds::default();
    let system_text = parts_text(system);
    if !system_text.is_empty() {
        res.push(json!({"role": "system", "content": system_text}));
    }
    for message in messages.iter().flat_map(|list| list.iter()) {
        let mut tool_results = Vec::new();
        let mut content = Vec::new();
        let mut tool_calls = Vec::new();
        let mut only_text = true;
        for part in &message.parts {
            match part {
                Part::Text { content: text } => {
                    content.push(json!({"type": "text", "text": text}));
                }
                Part::ToolCall { id, name, arguments } => {
                    tool_calls.push(json!({
                        "id": ids.for_call(id),
                        "type": "function",
                        "function": {"name": name, "arguments": arguments_string(arguments)},
                    }));
                }
                Part::ToolCallResponse { id, response } => {
                    tool_results.push(json!({
                        "role": "tool",
                        "tool_call_id": ids.for_response(id),
                        "content": response_text(response),
                    }));
                }
                Part::Media { modality, mime_type, uri, file_id, content: data } => {
                    only_text = false;
                    if let Some(file_id) = file_id {
                        content.push(json!({"type": "file", "file": {"file_id": file_id}}));
                    } else if let Some(url) = media_url(mime_type, uri, data) {
                        if modality == "image" {
                            content.push(json!({"type": "image_url", "image_url": {"url": url}}));
                        } else {
                            content.push(json!({"type": "file", "file": {"file_data": url}}));
                        }
                    }
                }
                Part::Reasoning { .. } | Part::Other { .. } => {}
            }
        }
        res.extend(tool_results);
        if content.is_empty() && tool_calls.is_empty() {
            continue;
        }
        let role = if message.role == "tool" { "user" } else { message.role.as_str() };
        let mut object = Map::new();
        object.insert("role".to_owned(), Value::from(role));
        let content = if only_text {
            let text = content
                .iter()
                .filter_map(|part| part["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n");
            if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::from(text) }
        } else {
            Value::Array(content)
        };
        object.insert("content".to_owned(), content);
        if let Some(name) = &message.name {
            object.insert("name".to_owned(), Value::from(name.clone()));
        }
        if !tool_calls.is_empty() {
            object.insert("tool_calls".to_owned(), Value::Array(tool_calls));
        }
        res.push(Value::Object(object));
    }
    res
}

/// Tool definitions in the OpenAI shape `{type: function, function: {name, description,
/// parameters}}`, from any of the recorded shapes (OpenAI, flat OTel, Anthropic).
pub(crate) fn openai_tools(tools: &[Value]) -> Vec<Value> {
    tools.iter().map(openai_tool).collect()
}

fn openai_tool(tool: &Value) -> Value {
    if tool.get("function").is_some() {
        return tool.clone();
    }
    let Some(object) = tool.as_object() else {
        return tool.clone();
    };
    let mut function = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "type" => {}
            "input_schema" => {
                function.insert("parameters".to_owned(), value.clone());
            }
            _ => {
                function.insert(key.clone(), value.clone());
            }
        }
    }
    json!({"type": "function", "function": function})
}

/// Tool definitions in the Anthropic shape `{name, description, input_schema}`.
pub(crate) fn anthropic_tools(tools: &[Value]) -> Vec<Value> {
    tools
        .iter()
        .map(|tool| {
            let function = tool.get("function").unwrap_or(tool);
            let Some(object) = function.as_object() else {
                return tool.clone();
            };
            let mut res = Map::new();
            for (key, value) in object {
                match key.as_str() {
                    "type" | "strict" => {}
                    "parameters" => {
                        res.insert("input_schema".to_owned(), value.clone());
                    }
                    _ => {
                        res.insert(key.clone(), value.clone());
                    }
                }
            }
            if !res.contains_key("input_schema") {
                res.insert("input_schema".to_owned(), json!({"type": "object"}));
            }
            Value::Object(res)
        })
        .collect()
}

/// Converts messages to an Anthropic Messages request: a top-level system text (from `system` and
/// any system or developer messages) and alternating user/assistant turns with content blocks.
pub(crate) fn to_anthropic(system: &[Part], messages: &[&[Message]]) -> (String, Vec<Value>) {
    let mut system_text = parts_text(system);
    let mut res: Vec<(String, Vec<Value>)> = Vec::new();
    let mut ids = CallIds::default();
    for message in messages.iter().flat_map(|list| list.iter()) {
        if message.role == "system" || message.role == "developer" {
            let text = message.text_content();
            if !text.is_empty() {
                if !system_text.is_empty() {
                    system_text.push('\n');
                }
                system_text.push_str(&text);
            }
            continue;
        }
        let role = if message.role == "assistant" { "assistant" } else { "user" };
        let mut blocks = Vec::new();
        for part in &message.parts {
            match part {
                Part::Text { content } if !content.is_empty() => {
                    blocks.push(json!({"type": "text", "text": content}));
                }
                Part::ToolCall { id, name, arguments } => blocks.push(json!({
                    "type": "tool_use",
                    "id": ids.for_call(id),
                    "name": name,
                    "input": arguments_object(arguments),
                })),
                Part::ToolCallResponse { id, response } => blocks.push(json!({
                    "type": "tool_result",
                    "tool_use_id": ids.for_response(id),
                    "content": response_text(response),
                })),
                Part::Media { mime_type, uri, content, .. } => {
                    if let Some(data) = content {
                        blocks.push(json!({"type": "image", "source": {
                            "type": "base64",
                            "media_type": mime_type.as_deref().unwrap_or("image/png"),
                            "data": data,
                        }}));
                    } else if let Some(uri) = uri {
                        blocks
                            .push(json!({"type": "image", "source": {"type": "url", "url": uri}}));
                    }
                }
                _ => {}
            }
        }
        if blocks.is_empty() {
            continue;
        }
        match res.last_mut() {
            Some((last_role, last_blocks)) if last_role == role => last_blocks.extend(blocks),
            _ => res.push((role.to_owned(), blocks)),
        }
    }
    let messages =
        res.into_iter().map(|(role, blocks)| json!({"role": role, "content": blocks})).collect();
    (system_text, messages)
}

/// Converts messages to the Hugging Face chat-template shape: string contents, assistant
/// `tool_calls` with object arguments, `tool` messages for results.
pub(crate) fn to_hf(system: &[Part], messages: &[&[Message]]) -> Vec<Value> {
    let mut res = Vec::new();
    let system_text = parts_text(system);
    if !system_text.is_empty() {
        res.push(json!({"role": "system", "content": system_text}));
    }
    for message in messages.iter().flat_map(|list| list.iter()) {
        let mut tool_calls = Vec::new();
        for part in &message.parts {
            match part {
                Part::ToolCall { name, arguments, .. } => tool_calls.push(json!({
                    "type": "function",
                    "function": {"name": name, "arguments": arguments_object(arguments)},
                })),
                Part::ToolCallResponse { response, .. } => {
                    res.push(json!({"role": "tool", "content": response_text(response)}));
                }
                _ => {}
            }
        }
        let text = message.text_content();
        if text.is_empty() && tool_calls.is_empty() {
            continue;
        }
        let mut object = Map::new();
        object.insert("role".to_owned(), Value::from(message.role.clone()));
        object.insert("content".to_owned(), Value::from(text));
        if !tool_calls.is_empty() {
            object.insert("tool_calls".to_owned(), Value::Array(tool_calls));
        }
        res.push(Value::Object(object));
    }
    res
}

/// Reads chat messages in any of the shapes above (OpenAI, Anthropic, Hugging Face, or Loupe's
/// own normalized `parts`) into normalized messages. Anthropic `tool_result` blocks become `tool`
/// messages, as in the OTel GenAI message schema.
pub(crate) fn from_chat(messages: &[Value]) -> Result<Vec<Message>, String> {
    let mut res = Vec::new();
    for (i, value) in messages.iter().enumerate() {
        let Some(object) = value.as_object() else {
            return Err(format!("message {i} is not an object"));
        };
        let Some(role) = object.get("role").and_then(Value::as_str) else {
            return Err(format!("message {i} has no role"));
        };
        if object.contains_key("parts") {
            let message: Message =
                serde_json::from_value(value.clone()).map_err(|e| format!("message {i}: {e}"))?;
            res.push(message);
            continue;
        }
        let name = object.get("name").and_then(Value::as_str).map(str::to_owned);
        let mut parts = Vec::new();
        let mut tool_results = Vec::new();
        match object.get("content") {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => {
                if role == "tool" || role == "function" {
                    let id = object.get("tool_call_id").and_then(Value::as_str).map(str::to_owned);
                    parts
                        .push(Part::ToolCallResponse { id, response: Value::String(text.clone()) });
                } else {
                    parts.push(Part::Text { content: text.clone() });
                }
            }
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    match content_block(block) {
                        Some(Part::ToolCallResponse { id, response }) => {
                            tool_results.push(Part::ToolCallResponse { id, response });
                        }
                        Some(part) => parts.push(part),
                        None => return Err(format!("message {i} has a malformed content block")),
                    }
                }
            }
            Some(_) => return Err(format!("message {i}: content must be a string or a list")),
        }
        if let Some(Value::Array(calls)) = object.get("tool_calls") {
            for call in calls {
                let function = call.get("function").unwrap_or(call);
                let Some(name) = function.get("name").and_then(Value::as_str) else {
                    return Err(format!("message {i} has a tool call without a name"));
                };
                let arguments = match function.get("arguments") {
                    Some(Value::String(s)) => {
                        serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                    }
                    Some(other) => other.clone(),
                    None => Value::Null,
                };
                let id = call.get("id").and_then(Value::as_str).map(str::to_owned);
                parts.push(Part::ToolCall { id, name: name.to_owned(), arguments });
            }
        }
        if !tool_results.is_empty() {
            res.push(Message {
                role: "tool".to_owned(),
                parts: tool_results,
                name: None,
                finish_reason: None,
            });
        }
        if !parts.is_empty() {
            let role = if role == "function" { "tool" } else { role };
            res.push(Message { role: role.to_owned(), parts, name, finish_reason: None });
        }
    }
    Ok(res)
}

fn content_block(block: &Value) -> Option<Part> {
    if let Value::String(text) = block {
        return Some(Part::Text { content: text.clone() });
    }
    let kind = block.get("type")?.as_str()?;
    let text = |key: &str| block.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(match kind {
        "text" | "input_text" | "output_text" => Part::Text { content: text("text")? },
        "thinking" => Part::Reasoning { content: text("thinking")? },
        "image_url" => Part::Media {
            modality: "image".to_owned(),
            mime_type: None,
            uri: block.get("image_url")?.get("url")?.as_str().map(str::to_owned),
            file_id: None,
            content: None,
        },
        "image" => {
            let source = block.get("source")?;
            let data = source.get("data").and_then(Value::as_str).map(str::to_owned);
            Part::Media {
                modality: "image".to_owned(),
                mime_type: source.get("media_type").and_then(Value::as_str).map(str::to_owned),
                uri: source.get("url").and_then(Value::as_str).map(str::to_owned),
                file_id: None,
                content: data,
            }
        }
        "tool_use" => Part::ToolCall {
            id: text("id"),
            name: text("name")?,
            arguments: block.get("input").cloned().unwrap_or(Value::Null),
        },
        "tool_result" => {
            let response = match block.get("content") {
                Some(Value::Array(parts)) => Value::String(
                    parts
                        .iter()
                        .filter_map(|p| p.get("text")?.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                Some(other) => other.clone(),
                None => Value::Null,
            };
            Part::ToolCallResponse { id: text("tool_use_id"), response }
        }
        _ => Part::Other { value: block.clone() },
    })
}
