//! OpenAI wire formats (chat completions, embeddings, responses) read into [`RequestInfo`] and
//! [`ResponseInfo`], including the accumulation of streamed chunks.

use std::collections::BTreeMap;

use model::{AnyValue, KeyValue};
use serde_json::Value;

use crate::genai::{
    self, RequestInfo, ResponseInfo, UsageInfo, media_part, message, output_message, text_part,
    tool_call_part, tool_response_part,
};

/// `POST /v1/chat/completions` request.
pub fn chat_request(body: &Value) -> RequestInfo {
    let mut res = RequestInfo {
        operation: "chat",
        model: body.get("model").and_then(Value::as_str).map(str::to_owned),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..RequestInfo::default()
    };
    genai::push_request_params(body, &mut res.attributes);
    if let Some(tier) = body.get("service_tier").and_then(Value::as_str) {
        res.attributes.push(KeyValue::string("openai.request.service_tier", tier));
    }
    if let Some(effort) = body.get("reasoning_effort").and_then(Value::as_str) {
        res.attributes.push(KeyValue::string("gen_ai.request.reasoning.level", effort));
    }
    for msg in body.get("messages").and_then(Value::as_array).into_iter().flatten() {
        res.input_messages.push(chat_message(msg));
    }
    res
}

fn chat_message(msg: &Value) -> Value {
    let role = msg.get("role").and_then(Value::as_str).unwrap_or("user");
    let mut parts = Vec::new();
    if role == "tool" {
        let id = msg.get("tool_call_id").and_then(Value::as_str);
        let response = match msg.get("content") {
            Some(Value::String(s)) => Value::String(s.clone()),
            Some(Value::Array(items)) => Value::String(content_text(items)),
            _ => Value::Null,
        };
        parts.push(tool_response_part(id, response));
    } else {
        content_parts(msg.get("content"), &mut parts);
        if let Some(refusal) = msg.get("refusal").and_then(Value::as_str) {
            parts.push(serde_json::json!({"type": "refusal", "content": refusal}));
        }
        for call in msg.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let function = call.get("function").unwrap_or(&Value::Null);
            parts.push(tool_call_part(
                call.get("id").and_then(Value::as_str),
                function.get("name").and_then(Value::as_str).unwrap_or(""),
                function.get("arguments").unwrap_or(&Value::Null),
            ));
        }
    }
    let mut res = message(role, parts);
    if let Some(name) = msg.get("name").and_then(Value::as_str) {
        res["name"] = Value::String(name.to_owned());
    }
    res
}

fn content_text(items: &[Value]) -> String {
    items.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
}

/// Chat content (a string or an array of typed parts) as OTel parts.
fn content_parts(content: Option<&Value>, res: &mut Vec<Value>) {
    match content {
        Some(Value::String(text)) => res.push(text_part(text)),
        Some(Value::Array(items)) => {
            for item in items {
                let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
                match kind {
                    "text" | "input_text" | "output_text" => {
                        res.push(text_part(item.get("text").and_then(Value::as_str).unwrap_or("")))
                    }
                    "image_url" => {
                        let url = item
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        res.push(media_part("image", url));
                    }
                    "input_image" => {
                        if let Some(url) = item.get("image_url").and_then(Value::as_str) {
                            res.push(media_part("image", url));
                        } else if let Some(file_id) = item.get("file_id").and_then(Value::as_str) {
                            res.push(serde_json::json!({"type": "file", "modality": "image", "file_id": file_id}));
                        }
                    }
                    "input_audio" => {
                        let audio = item.get("input_audio").unwrap_or(&Value::Null);
                        let format = audio.get("format").and_then(Value::as_str).unwrap_or("wav");
                        res.push(serde_json::json!({
                            "type": "blob",
                            "modality": "audio",
                            "mime_type": format!("audio/{format}"),
                            "content": audio.get("data").cloned().unwrap_or(Value::Null),
                        }));
                    }
                    "file" | "input_file" => {
                        let file = item.get("file").unwrap_or(item);
                        if let Some(file_id) = file.get("file_id").and_then(Value::as_str) {
                            res.push(serde_json::json!({"type": "file", "modality": "document", "file_id": file_id}));
                        } else {
                            res.push(item.clone());
                        }
                    }
                    _ => res.push(item.clone()),
                }
            }
        }
        _ => {}
    }
}

/// OpenAI's finish reasons as the OTel output message schema names them.
fn otel_finish_reason(reason: &str) -> &str {
    match reason {
        "tool_calls" | "function_call" => "tool_call",
        other => other,
    }
}

/// Usage of chat completions and embeddings (`prompt_tokens`) or responses (`input_tokens`).
pub fn usage(usage: &Value) -> UsageInfo {
    let input = genai::as_i64(usage.get("prompt_tokens").or_else(|| usage.get("input_tokens")));
    let output =
        genai::as_i64(usage.get("completion_tokens").or_else(|| usage.get("output_tokens")));
    let input_details =
        usage.get("prompt_tokens_details").or_else(|| usage.get("input_tokens_details"));
    let output_details =
        usage.get("completion_tokens_details").or_else(|| usage.get("output_tokens_details"));
    UsageInfo {
        input,
        output,
        cache_read: genai::as_i64(input_details.and_then(|d| d.get("cached_tokens"))),
        cache_write: None,
        reasoning: genai::as_i64(output_details.and_then(|d| d.get("reasoning_tokens"))),
    }
}

fn common_response_attributes(body: &Value, res: &mut ResponseInfo) {
    res.id = body.get("id").and_then(Value::as_str).map(str::to_owned);
    res.model = body.get("model").and_then(Value::as_str).map(str::to_owned);
    if let Some(fp) = body.get("system_fingerprint").and_then(Value::as_str) {
        res.attributes.push(KeyValue::string("openai.response.system_fingerprint", fp));
    }
    if let Some(tier) = body.get("service_tier").and_then(Value::as_str) {
        res.attributes.push(KeyValue::string("openai.response.service_tier", tier));
    }
    if let Some(usage_value) = body.get("usage").filter(|u| u.is_object()) {
        res.usage = usage(usage_value);
    }
    res.error = genai::error_from_body(body);
}

/// A complete (non-streamed) chat completion.
pub fn chat_response(body: &Value) -> ResponseInfo {
    let mut res = ResponseInfo::default();
    common_response_attributes(body, &mut res);
    for choice in body.get("choices").and_then(Value::as_array).into_iter().flatten() {
        let reason = choice.get("finish_reason").and_then(Value::as_str);
        if let Some(reason) = reason {
            res.finish_reasons.push(reason.to_owned());
        }
        let msg = choice.get("message").unwrap_or(&Value::Null);
        let mut converted = chat_message(msg);
        let role = msg.get("role").and_then(Value::as_str).unwrap_or("assistant");
        converted["role"] = Value::String(role.to_owned());
        if let Some(reasoning) = msg.get("reasoning_content").and_then(Value::as_str)
            && let Some(parts) = converted.get_mut("parts").and_then(Value::as_array_mut)
        {
            parts.insert(0, serde_json::json!({"type": "reasoning", "content": reasoning}));
        }
        converted["finish_reason"] =
            Value::String(otel_finish_reason(reason.unwrap_or("error")).to_owned());
        res.output_messages.push(converted);
    }
    res
}

/// `POST /v1/embeddings` request.
pub fn embeddings_request(body: &Value) -> RequestInfo {
    let mut res = RequestInfo {
        operation: "embeddings",
        model: body.get("model").and_then(Value::as_str).map(str::to_owned),
        ..RequestInfo::default()
    };
    if let Some(format) = body.get("encoding_format").and_then(Value::as_str) {
        res.attributes.push(KeyValue::new(
            "gen_ai.request.encoding_formats",
            AnyValue::Array(vec![AnyValue::String(format.to_owned())]),
        ));
    }
    if let Some(dimensions) = body.get("dimensions").and_then(Value::as_i64) {
        res.attributes.push(KeyValue::int("gen_ai.embeddings.dimension.count", dimensions));
    }
    let inputs: Vec<Value> = match body.get("input") {
        Some(Value::String(s)) => vec![text_part(s)],
        Some(Value::Array(items)) => {
            items.iter().filter_map(Value::as_str).map(text_part).collect()
        }
        _ => Vec::new(),
    };
    if !inputs.is_empty() {
        res.input_messages.push(message("user", inputs));
    }
    res
}

/// `POST /v1/embeddings` response: usage and model only; vectors are not recorded.
pub fn embeddings_response(body: &Value) -> ResponseInfo {
    let mut res = ResponseInfo::default();
    common_response_attributes(body, &mut res);
    if let Some(first) = body
        .get("data")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .and_then(|d| d.get("embedding"))
        .and_then(Value::as_array)
    {
        res.attributes.push(KeyValue::int("gen_ai.embeddings.dimension.count", first.len() as i64));
    }
    res
}

/// `POST /v1/responses` request.
pub fn responses_request(body: &Value) -> RequestInfo {
    let mut res = RequestInfo {
        operation: "chat",
        model: body.get("model").and_then(Value::as_str).map(str::to_owned),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ..RequestInfo::default()
    };
    genai::push_request_params(body, &mut res.attributes);
    if let Some(effort) =
        body.get("reasoning").and_then(|r| r.get("effort")).and_then(Value::as_str)
    {
        res.attributes.push(KeyValue::string("gen_ai.request.reasoning.level", effort));
    }
    if let Some(previous) = body.get("previous_response_id").and_then(Value::as_str) {
        res.attributes.push(KeyValue::string("gen_ai.request.previous_response.id", previous));
    }
    if let Some(instructions) = body.get("instructions").and_then(Value::as_str) {
        res.system_instructions.push(text_part(instructions));
    }
    match body.get("input") {
        Some(Value::String(text)) => {
            res.input_messages.push(message("user", vec![text_part(text)]))
        }
        Some(Value::Array(items)) => {
            for item in items {
                res.input_messages.push(responses_item(item));
            }
        }
        _ => {}
    }
    res
}

/// One item of a responses `input` or `output` array as an OTel message.
fn responses_item(item: &Value) -> Value {
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
    match kind {
        "function_call" => message(
            "assistant",
            vec![tool_call_part(
                item.get("call_id").and_then(Value::as_str),
                item.get("name").and_then(Value::as_str).unwrap_or(""),
                item.get("arguments").unwrap_or(&Value::Null),
            )],
        ),
        "function_call_output" => message(
            "tool",
            vec![tool_response_part(
                item.get("call_id").and_then(Value::as_str),
                item.get("output").cloned().unwrap_or(Value::Null),
            )],
        ),
        "reasoning" => {
            let text = item
                .get("summary")
                .and_then(Value::as_array)
                .map(|s| content_text(s))
                .unwrap_or_default();
            message("assistant", vec![serde_json::json!({"type": "reasoning", "content": text})])
        }
        "message" => {
            let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
            let mut parts = Vec::new();
            content_parts(item.get("content"), &mut parts);
            message(role, parts)
        }
        _ => message("assistant", vec![item.clone()]),
    }
}

/// A complete `response` object (non-streamed, or the one `response.completed` carries).
pub fn responses_response(body: &Value) -> ResponseInfo {
    let mut res = ResponseInfo::default();
    common_response_attributes(body, &mut res);
    if let Some(error) = body.get("error").filter(|e| e.is_object()) {
        let kind = error.get("code").and_then(Value::as_str).unwrap_or("error").to_owned();
        let text = error.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
        res.error = Some((kind, text));
    }
    let status = body.get("status").and_then(Value::as_str).unwrap_or("");
    let reason = match status {
        "completed" => "stop".to_owned(),
        "incomplete" => match body
            .get("incomplete_details")
            .and_then(|d| d.get("reason"))
            .and_then(Value::as_str)
        {
            Some("max_output_tokens") => "length".to_owned(),
            Some(other) => other.to_owned(),
            None => "incomplete".to_owned(),
        },
        "" => String::new(),
        other => other.to_owned(),
    };
    let mut parts = Vec::new();
    let mut has_tool_call = false;
    for item in body.get("output").and_then(Value::as_array).into_iter().flatten() {
        let converted = responses_item(item);
        if item.get("type").and_then(Value::as_str) == Some("function_call") {
            has_tool_call = true;
        }
        if let Some(item_parts) = converted.get("parts").and_then(Value::as_array) {
            parts.extend(item_parts.iter().cloned());
        }
    }
    let reason = if has_tool_call && reason == "stop" { "tool_call".to_owned() } else { reason };
    if !reason.is_empty() {
        res.finish_reasons.push(reason.clone());
    }
    if !parts.is_empty() {
        res.output_messages.push(output_message(
            "assistant",
            parts,
            Some(if reason.is_empty() { "error" } else { &reason }),
        ));
    }
    res
}

/// Accumulates streamed chat completion chunks into the response they add up to.
#[derive(Debug, Default)]
pub struct ChatStream {
    id: Option<String>,
    model: Option<String>,
    system_fingerprint: Option<String>,
    service_tier: Option<String>,
    choices: BTreeMap<i64, StreamChoice>,
    usage: Option<Value>,
    error: Option<Value>,
}

#[derive(Debug, Default)]
struct StreamChoice {
    role: Option<String>,
    content: String,
    reasoning: String,
    refusal: String,
    /// By tool call index: (id, name, arguments so far).
    tool_calls: BTreeMap<i64, (Option<String>, String, String)>,
    finish_reason: Option<String>,
}

impl ChatStream {
    /// Feeds one chunk; returns whether it carried generated content (for time to first token).
    pub fn push(&mut self, chunk: &Value) -> bool {
        let text = |key: &str| chunk.get(key).and_then(Value::as_str).map(str::to_owned);
        if self.id.is_none() {
            self.id = text("id");
        }
        if self.model.is_none() {
            self.model = text("model");
        }
        if let Some(fp) = text("system_fingerprint") {
            self.system_fingerprint = Some(fp);
        }
        if let Some(tier) = text("service_tier") {
            self.service_tier = Some(tier);
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        if let Some(error) = chunk.get("error") {
            self.error = Some(serde_json::json!({"error": error}));
        }
        let mut has_content = false;
        for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let index = choice.get("index").and_then(Value::as_i64).unwrap_or(0);
            let state = self.choices.entry(index).or_default();
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            if let Some(role) = delta.get("role").and_then(Value::as_str) {
                state.role = Some(role.to_owned());
            }
            for (field, target) in [
                ("content", &mut state.content),
                ("reasoning_content", &mut state.reasoning),
                ("refusal", &mut state.refusal),
            ] {
                if let Some(piece) = delta.get(field).and_then(Value::as_str)
                    && !piece.is_empty()
                {
                    target.push_str(piece);
                    has_content = true;
                }
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                has_content = true;
                let call_index = call.get("index").and_then(Value::as_i64).unwrap_or(0);
                let entry = state.tool_calls.entry(call_index).or_default();
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    entry.0 = Some(id.to_owned());
                }
                let function = call.get("function").unwrap_or(&Value::Null);
                if let Some(name) = function.get("name").and_then(Value::as_str) {
                    entry.1.push_str(name);
                }
                if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
                    entry.2.push_str(arguments);
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                state.finish_reason = Some(reason.to_owned());
            }
        }
        has_content
    }

    /// What was received so far, as a response.
    pub fn finish(&self) -> ResponseInfo {
        let mut res = ResponseInfo {
            id: self.id.clone(),
            model: self.model.clone(),
            ..ResponseInfo::default()
        };
        if let Some(fp) = &self.system_fingerprint {
            res.attributes.push(KeyValue::string("openai.response.system_fingerprint", fp));
        }
        if let Some(tier) = &self.service_tier {
            res.attributes.push(KeyValue::string("openai.response.service_tier", tier));
        }
        if let Some(usage_value) = &self.usage {
            res.usage = usage(usage_value);
        }
        if let Some(error) = &self.error {
            res.error = genai::error_from_body(error);
        }
        for choice in self.choices.values() {
            if let Some(reason) = &choice.finish_reason {
                res.finish_reasons.push(reason.clone());
            }
            let mut parts = Vec::new();
            if !choice.reasoning.is_empty() {
                parts.push(serde_json::json!({"type": "reasoning", "content": choice.reasoning}));
            }
            if !choice.content.is_empty() {
                parts.push(text_part(&choice.content));
            }
            if !choice.refusal.is_empty() {
                parts.push(serde_json::json!({"type": "refusal", "content": choice.refusal}));
            }
            for (id, name, arguments) in choice.tool_calls.values() {
                parts.push(tool_call_part(id.as_deref(), name, &Value::String(arguments.clone())));
            }
            let reason = otel_finish_reason(choice.finish_reason.as_deref().unwrap_or("error"));
            res.output_messages.push(output_message(
                choice.role.as_deref().unwrap_or("assistant"),
                parts,
                Some(reason),
            ));
        }
        res
    }
}

/// Accumulates a streamed responses API call: the final `response.*` event carries the whole
/// response; deltas before it count for time to first token.
#[derive(Debug, Default)]
pub struct ResponsesStream {
    last_response: Option<Value>,
    text: String,
}

impl ResponsesStream {
    pub fn push(&mut self, event: &Value) -> bool {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        if let Some(response) = event.get("response").filter(|r| r.is_object()) {
            self.last_response = Some(response.clone());
        }
        if kind == "response.output_text.delta"
            && let Some(delta) = event.get("delta").and_then(Value::as_str)
        {
            self.text.push_str(delta);
        }
        kind.ends_with(".delta")
    }

    pub fn finish(&self) -> ResponseInfo {
        match &self.last_response {
            Some(response) => {
                let mut res = responses_response(response);
                if res.output_messages.is_empty() && !self.text.is_empty() {
                    res.output_messages.push(output_message(
                        "assistant",
                        vec![text_part(&self.text)],
                        Some("error"),
                    ));
                }
                res
            }
            None => ResponseInfo::default(),
        }
    }
}
