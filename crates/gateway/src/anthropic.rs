//! Anthropic's Messages API (`POST /v1/messages`) read into [`RequestInfo`] and
//! [`ResponseInfo`], including the accumulation of streamed events.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::genai::{
    self, RequestInfo, ResponseInfo, UsageInfo, media_part, message, output_message, text_part,
    tool_call_part, tool_response_part,
};

pub fn messages_request(body: &Value) -> RequestInfo {
    let mut res = RequestInfo {
        operation: "chat",
        model: body.get("model").and_then(Value::as_str).map(str::to_owned),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..RequestInfo::default()
    };
    genai::push_request_params(body, &mut res.attributes);
    match body.get("system") {
        Some(Value::String(text)) => res.system_instructions.push(text_part(text)),
        Some(Value::Array(blocks)) => {
            for block in blocks {
                if let Some(text) = block.get("text").and_then(Value::as_str) {
                    res.system_instructions.push(text_part(text));
                }
            }
        }
        _ => {}
    }
    if let Some(budget) =
        body.get("thinking").and_then(|t| t.get("budget_tokens")).and_then(Value::as_i64)
    {
        res.attributes
            .push(model::KeyValue::int("anthropic.request.thinking.budget_tokens", budget));
    }
    for msg in body.get("messages").and_then(Value::as_array).into_iter().flatten() {
        let role = msg.get("role").and_then(Value::as_str).unwrap_or("user");
        let mut parts = Vec::new();
        content_blocks(msg.get("content"), &mut parts);
        // Tool results travel in user messages; OTel gives them the `tool` role.
        let all_results = !parts.is_empty()
            && parts
                .iter()
                .all(|p| p.get("type").and_then(Value::as_str) == Some("tool_call_response"));
        res.input_messages.push(message(if all_results { "tool" } else { role }, parts));
    }
    res
}

fn content_blocks(content: Option<&Value>, res: &mut Vec<Value>) {
    match content {
        Some(Value::String(text)) => res.push(text_part(text)),
        Some(Value::Array(blocks)) => {
            for block in blocks {
                res.push(content_block(block));
            }
        }
        _ => {}
    }
}

fn content_block(block: &Value) -> Value {
    let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
    let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => text_part(text("text")),
        "thinking" => json!({"type": "reasoning", "content": text("thinking")}),
        "tool_use" | "server_tool_use" => tool_call_part(
            block.get("id").and_then(Value::as_str),
            text("name"),
            block.get("input").unwrap_or(&Value::Null),
        ),
        "tool_result" => {
            let response = match block.get("content") {
                Some(Value::Array(items)) => Value::String(
                    items
                        .iter()
                        .filter_map(|i| i.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(""),
                ),
                Some(other) => other.clone(),
                None => Value::Null,
            };
            tool_response_part(block.get("tool_use_id").and_then(Value::as_str), response)
        }
        "image" | "document" => {
            let modality = if kind == "image" { "image" } else { "document" };
            let source = block.get("source").unwrap_or(&Value::Null);
            match source.get("type").and_then(Value::as_str) {
                Some("base64") => json!({
                    "type": "blob",
                    "modality": modality,
                    "mime_type": source.get("media_type").cloned().unwrap_or(Value::Null),
                    "content": source.get("data").cloned().unwrap_or(Value::Null),
                }),
                Some("url") => {
                    media_part(modality, source.get("url").and_then(Value::as_str).unwrap_or(""))
                }
                Some("file") => json!({
                    "type": "file",
                    "modality": modality,
                    "file_id": source.get("file_id").cloned().unwrap_or(Value::Null),
                }),
                _ => block.clone(),
            }
        }
        _ => block.clone(),
    }
}

/// Anthropic's stop reasons as the OTel output message schema names them.
fn otel_finish_reason(reason: &str) -> &str {
    match reason {
        "end_turn" | "stop_sequence" | "pause_turn" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_call",
        "refusal" => "content_filter",
        other => other,
    }
}

/// Anthropic's `input_tokens` excludes cached tokens; OTel's includes them.
fn usage(usage: &Value) -> UsageInfo {
    let raw_input = genai::as_i64(usage.get("input_tokens"));
    let cache_read = genai::as_i64(usage.get("cache_read_input_tokens"));
    let cache_write = genai::as_i64(usage.get("cache_creation_input_tokens"));
    let input = raw_input.map(|input| input + cache_read.unwrap_or(0) + cache_write.unwrap_or(0));
    UsageInfo {
        input,
        output: genai::as_i64(usage.get("output_tokens")),
        cache_read,
        cache_write,
        reasoning: None,
    }
}

pub fn messages_response(body: &Value) -> ResponseInfo {
    let mut res = ResponseInfo {
        id: body.get("id").and_then(Value::as_str).map(str::to_owned),
        model: body.get("model").and_then(Value::as_str).map(str::to_owned),
        error: genai::error_from_body(body),
        ..ResponseInfo::default()
    };
    if let Some(usage_value) = body.get("usage").filter(|u| u.is_object()) {
        res.usage = usage(usage_value);
    }
    let reason = body.get("stop_reason").and_then(Value::as_str);
    if let Some(reason) = reason {
        res.finish_reasons.push(reason.to_owned());
    }
    if body.get("type").and_then(Value::as_str) == Some("message") {
        let mut parts = Vec::new();
        content_blocks(body.get("content"), &mut parts);
        res.output_messages.push(output_message(
            body.get("role").and_then(Value::as_str).unwrap_or("assistant"),
            parts,
            Some(otel_finish_reason(reason.unwrap_or("error"))),
        ));
    }
    res
}

/// Accumulates a streamed message from its events.
#[derive(Debug, Default)]
pub struct MessagesStream {
    message: Option<Value>,
    /// By content block index: the block, with text and partial JSON accumulated.
    blocks: BTreeMap<i64, (Value, String)>,
    stop_reason: Option<String>,
    usage: serde_json::Map<String, Value>,
    error: Option<Value>,
}

impl MessagesStream {
    pub fn push(&mut self, event: &Value) -> bool {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        let index = event.get("index").and_then(Value::as_i64).unwrap_or(0);
        match kind {
            "message_start" => {
                if let Some(msg) = event.get("message") {
                    if let Some(Value::Object(usage)) = msg.get("usage") {
                        self.usage.extend(usage.clone());
                    }
                    self.message = Some(msg.clone());
                }
                false
            }
            "content_block_start" => {
                let block = event.get("content_block").cloned().unwrap_or(Value::Null);
                self.blocks.insert(index, (block, String::new()));
                false
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let entry = self.blocks.entry(index).or_insert_with(|| (json!({}), String::new()));
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => append(&mut entry.0, "text", delta.get("text")),
                    Some("thinking_delta") => {
                        append(&mut entry.0, "thinking", delta.get("thinking"))
                    }
                    Some("input_json_delta") => {
                        if let Some(piece) = delta.get("partial_json").and_then(Value::as_str) {
                            entry.1.push_str(piece);
                        }
                    }
                    _ => {}
                }
                true
            }
            "message_delta" => {
                if let Some(reason) =
                    event.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str)
                {
                    self.stop_reason = Some(reason.to_owned());
                }
                if let Some(Value::Object(usage)) = event.get("usage") {
                    for (key, value) in usage {
                        if !value.is_null() {
                            self.usage.insert(key.clone(), value.clone());
                        }
                    }
                }
                false
            }
            "error" => {
                self.error = Some(event.clone());
                false
            }
            _ => false,
        }
    }

    pub fn finish(&self) -> ResponseInfo {
        let msg = self.message.as_ref();
        let text = |key: &str| msg.and_then(|m| m.get(key)).and_then(Value::as_str);
        let mut res = ResponseInfo {
            id: text("id").map(str::to_owned),
            model: text("model").map(str::to_owned),
            usage: usage(&Value::Object(self.usage.clone())),
            error: self.error.as_ref().and_then(genai::error_from_body),
            ..ResponseInfo::default()
        };
        if let Some(reason) = &self.stop_reason {
            res.finish_reasons.push(reason.clone());
        }
        if msg.is_some() {
            let mut parts = Vec::new();
            for (block, partial_json) in self.blocks.values() {
                let mut block = block.clone();
                if !partial_json.is_empty() {
                    block["input"] = serde_json::from_str(partial_json)
                        .unwrap_or_else(|_| Value::String(partial_json.clone()));
                }
                parts.push(content_block(&block));
            }
            res.output_messages.push(output_message(
                text("role").unwrap_or("assistant"),
                parts,
                Some(otel_finish_reason(self.stop_reason.as_deref().unwrap_or("error"))),
            ));
        }
        res
    }
}

fn append(block: &mut Value, key: &str, piece: Option<&Value>) {
    let Some(piece) = piece.and_then(Value::as_str) else { return };
    let current = block.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
    block[key] = Value::String(current + piece);
}
