//! The derivation itself: span type, provider, models, usage, parameters, content, documents,
//! and the application fields (session, user, tags, metadata, environment, operation id).

use std::collections::BTreeMap;

use model::{
    AnyValue, Document, Event, LlmView, Message, Part, RawSpan, RequestParams, SpanKind, SpanType,
    attr_get,
};
use serde_json::{Map, Value};

use crate::attrs::{Attrs, Family, Known, by_index, field};
use crate::messages::{
    arguments, looks_like_messages, message_from_json, messages_from_json, messages_from_value,
    parse_json_text, part_from_json, parts_from_value, structured, value_text,
};
use crate::usage::usage;

pub(crate) fn derive(raw: &RawSpan) -> LlmView {
    let attrs = Attrs::new(&raw.attributes);
    let known = &attrs.known;
    let span_type = span_type(raw, &attrs);
    let provider = provider(known);
    let request_model = text(
        known
            .request_model
            .or(known.oi_request_model)
            .or(known.langfuse_model)
            .or(known.embedding_model)
            .or(known.reranker_model)
            .or(known.oi_model_name),
    );
    let response_model =
        text(known.response_model.or(known.oi_response_model).or(known.oi_model_name));
    let anthropic = provider.as_deref() == Some("anthropic")
        || [&request_model, &response_model]
            .iter()
            .any(|model| model.as_deref().is_some_and(|m| m.starts_with("claude")));
    let mut view = LlmView {
        span_type,
        operation_name: operation_name(known),
        operation_id: text(known.loupe_operation),
        usage: usage(known, anthropic, span_type == SpanType::Embedding),
        provider,
        request_model,
        response_model,
        response_id: text(known.response_id),
        request: request_params(&attrs),
        tool_name: text(known.tool_name.or(known.gen_ai_tool_name)).or_else(|| {
            let is_tool = str_value(known.traceloop_kind).is_some_and(|k| k == "tool");
            if is_tool { text(known.traceloop_entity_name) } else { None }
        }),
        session_id: text(
            known
                .session_id
                .or(known.langfuse_session_id)
                .or(known.conversation_id)
                .or(attr_in(&attrs.families.traceloop_association, "session_id")),
        ),
        user_id: text(
            known
                .user_id
                .or(known.langfuse_user_id)
                .or(attr_in(&attrs.families.traceloop_association, "user_id"))
                .or(known.llm_user)
                .or(known.enduser_id),
        ),
        tags: tags(known),
        metadata: metadata(&attrs),
        environment: environment(raw, known),
        ..LlmView::default()
    };
    content(raw, &attrs, &mut view);
    view.finish_reasons = finish_reasons(known, &view.output_messages);
    view.documents = documents(&attrs, span_type);
    view.time_to_first_token_ns = time_to_first_token(raw, known);
    view
}

/// A non-empty string, or a number or boolean as text.
fn text(value: Option<&AnyValue>) -> Option<String> {
    match value? {
        AnyValue::String(s) if s.is_empty() => None,
        AnyValue::String(s) => Some(s.clone()),
        it @ (AnyValue::Int(_) | AnyValue::Double(_) | AnyValue::Bool(_)) => Some(it.to_text()),
        _ => None,
    }
}

fn str_value(value: Option<&AnyValue>) -> Option<&str> {
    value.and_then(AnyValue::as_str).filter(|s| !s.is_empty())
}

fn attr_in<'a>(family: &Family<'a>, key: &str) -> Option<&'a AnyValue> {
    family.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn span_type(raw: &RawSpan, attrs: &Attrs<'_>) -> SpanType {
    let known = &attrs.known;
    let lower = |value: Option<&AnyValue>| str_value(value).map(str::to_ascii_lowercase);
    let from_langfuse = lower(known.langfuse_type).and_then(|t| {
        Some(match t.as_str() {
            "generation" => SpanType::Llm,
            "embedding" => SpanType::Embedding,
            "agent" => SpanType::Agent,
            "tool" => SpanType::Tool,
            "chain" => SpanType::Chain,
            "retriever" => SpanType::Retrieval,
            "guardrail" => SpanType::Guardrail,
            "evaluator" => SpanType::Evaluator,
            // `span` and `event` are Langfuse's generic types: let other conventions decide.
            _ => return None,
        })
    });
    let from_openinference = || {
        lower(known.openinference_kind).and_then(|k| {
            Some(match k.as_str() {
                "llm" => SpanType::Llm,
                "embedding" => SpanType::Embedding,
                "chain" | "prompt" => SpanType::Chain,
                "retriever" => SpanType::Retrieval,
                "reranker" => SpanType::Reranker,
                "tool" => SpanType::Tool,
                "agent" => SpanType::Agent,
                "guardrail" => SpanType::Guardrail,
                "evaluator" => SpanType::Evaluator,
                _ => return None,
            })
        })
    };
    let from_operation = || {
        lower(known.operation_name).and_then(|op| {
            Some(match op.as_str() {
                "chat" | "text_completion" | "generate_content" | "realtime_inference" => {
                    SpanType::Llm
                }
                "embeddings" => SpanType::Embedding,
                "retrieval" | "search_memory" => SpanType::Retrieval,
                "execute_tool" => SpanType::Tool,
                "create_agent" | "invoke_agent" => SpanType::Agent,
                "invoke_workflow" | "plan" => SpanType::Chain,
                _ => return None,
            })
        })
    };
    let from_traceloop = || {
        lower(known.traceloop_kind).and_then(|k| {
            Some(match k.as_str() {
                "workflow" | "task" => SpanType::Chain,
                "agent" => SpanType::Agent,
                "tool" => SpanType::Tool,
                _ => return None,
            })
        })
    };
    let from_request_type = || {
        lower(known.llm_request_type).and_then(|t| {
            Some(match t.as_str() {
                "chat" | "completion" => SpanType::Llm,
                "embedding" | "embeddings" => SpanType::Embedding,
                "rerank" => SpanType::Reranker,
                _ => return None,
            })
        })
    };
    let from_model = || {
        if known.embedding_model.is_some() {
            Some(SpanType::Embedding)
        } else if known.request_model.is_some() || known.oi_model_name.is_some() {
            Some(SpanType::Llm)
        } else {
            None
        }
    };
    let from_protocol = || {
        if attrs.has_http && matches!(raw.kind, SpanKind::Server | SpanKind::Client) {
            Some(SpanType::Http)
        } else if attrs.has_db {
            Some(SpanType::Db)
        } else {
            None
        }
    };
    from_langfuse
        .or_else(from_openinference)
        .or_else(from_operation)
        .or_else(from_traceloop)
        .or_else(from_request_type)
        .or_else(from_model)
        .or_else(from_protocol)
        .unwrap_or(SpanType::Other)
}

fn operation_name(known: &Known<'_>) -> Option<String> {
    text(known.operation_name).or_else(|| {
        let request_type = str_value(known.llm_request_type)?.to_ascii_lowercase();
        Some(
            match request_type.as_str() {
                "chat" => "chat",
                "completion" => "text_completion",
                "embedding" | "embeddings" => "embeddings",
                "rerank" => "rerank",
                _ => return None,
            }
            .to_owned(),
        )
    })
}

/// The provider in `gen_ai.provider.name` terms; older and vendor-specific spellings are mapped
/// (`gen_ai.system` values, OpenLLMetry's capitalised names, OpenInference's `llm.provider`).
fn provider(known: &Known<'_>) -> Option<String> {
    let value = str_value(known.provider_name)
        .or_else(|| str_value(known.gen_ai_system))
        .or_else(|| str_value(known.llm_provider))
        .or_else(|| str_value(known.llm_system))?;
    let lower = value.to_ascii_lowercase();
    let mapped = match lower.as_str() {
        "az.ai.inference" => "azure.ai.inference",
        "az.ai.openai" | "azure" | "azure_openai" | "azureopenai" => "azure.ai.openai",
        "vertex_ai" | "vertexai" | "vertex" => "gcp.vertex_ai",
        "gemini" => "gcp.gemini",
        "google" | "google_genai" => "gcp.gen_ai",
        "xai" | "x.ai" => "x_ai",
        "mistralai" | "mistral" => "mistral_ai",
        "aws" | "bedrock" | "aws_bedrock" => "aws.bedrock",
        "watsonx" | "ibm" => "ibm.watsonx.ai",
        _ => return Some(lower),
    };
    Some(mapped.to_owned())
}

fn request_params(attrs: &Attrs<'_>) -> RequestParams {
    let known = &attrs.known;
    let f64_of = |value: Option<&AnyValue>| value.and_then(AnyValue::as_f64);
    let mut res = RequestParams {
        temperature: f64_of(known.temperature),
        top_p: f64_of(known.top_p),
        top_k: f64_of(known.top_k.or(known.llm_top_k)),
        max_tokens: known.max_tokens.and_then(AnyValue::as_i64),
        frequency_penalty: f64_of(known.frequency_penalty.or(known.llm_frequency_penalty)),
        presence_penalty: f64_of(known.presence_penalty.or(known.llm_presence_penalty)),
        seed: known.seed.or(known.openai_seed).and_then(AnyValue::as_i64),
        stop_sequences: known
            .stop_sequences
            .or(known.llm_stop_sequences)
            .map(string_list)
            .unwrap_or_default(),
        stream: known
            .stream
            .or(known.is_streaming)
            .or(known.gen_ai_is_streaming)
            .and_then(AnyValue::as_bool),
        tools: tools(attrs),
        other: BTreeMap::new(),
    };
    if let Some(n) = known.choice_count.and_then(AnyValue::as_i64) {
        res.other.insert("choice_count".to_owned(), n.into());
    }
    let extras = [
        ("output_type", known.output_type),
        ("reasoning_level", known.reasoning_level),
        ("encoding_formats", known.encoding_formats),
        ("previous_response_id", known.previous_response_id),
        ("tool_choice", known.tool_choice),
    ];
    for (name, value) in extras {
        if let Some(value) = value.filter(|v| !matches!(v, AnyValue::Empty)) {
            res.other.insert(name.to_owned(), structured(value));
        }
    }
    for params in
        [known.invocation_parameters, known.langfuse_model_parameters].into_iter().flatten()
    {
        if let Value::Object(obj) = structured(params) {
            merge_params(obj, &mut res);
        }
    }
    res
}

/// Parameters from a JSON object (`llm.invocation_parameters`, Langfuse model parameters): known
/// names fill empty fields, the rest go to `other`.
fn merge_params(obj: Map<String, Value>, res: &mut RequestParams) {
    let f64_of = |value: &Value| match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let i64_of = |value: &Value| match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    for (key, value) in obj {
        let used = match key.as_str() {
            "temperature" if res.temperature.is_none() => {
                res.temperature = f64_of(&value);
                res.temperature.is_some()
            }
            "top_p" if res.top_p.is_none() => {
                res.top_p = f64_of(&value);
                res.top_p.is_some()
            }
            "top_k" if res.top_k.is_none() => {
                res.top_k = f64_of(&value);
                res.top_k.is_some()
            }
            "max_tokens" | "max_completion_tokens" | "max_output_tokens"
                if res.max_tokens.is_none() =>
            {
                res.max_tokens = i64_of(&value);
                res.max_tokens.is_some()
            }
            "frequency_penalty" if res.frequency_penalty.is_none() => {
                res.frequency_penalty = f64_of(&value);
                res.frequency_penalty.is_some()
            }
            "presence_penalty" if res.presence_penalty.is_none() => {
                res.presence_penalty = f64_of(&value);
                res.presence_penalty.is_some()
            }
            "seed" if res.seed.is_none() => {
                res.seed = i64_of(&value);
                res.seed.is_some()
            }
            "stream" if res.stream.is_none() => {
                res.stream = value.as_bool();
                res.stream.is_some()
            }
            "stop" | "stop_sequences" if res.stop_sequences.is_empty() => {
                res.stop_sequences = match &value {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => {
                        items.iter().filter_map(|it| it.as_str().map(str::to_owned)).collect()
                    }
                    _ => Vec::new(),
                };
                !res.stop_sequences.is_empty()
            }
            "tools" | "functions" if res.tools.is_empty() => {
                if let Value::Array(items) = &value {
                    res.tools = items.clone();
                }
                !res.tools.is_empty()
            }
            _ => false,
        };
        if !used {
            res.other.entry(key).or_insert(value);
        }
    }
}

/// A string array attribute, a JSON array in a string, or one string.
fn string_list(value: &AnyValue) -> Vec<String> {
    match value {
        AnyValue::Array(items) => items.iter().filter_map(text_item).collect(),
        AnyValue::String(s) => match parse_json_text(s) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|it| match it {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .collect(),
            _ if s.is_empty() => Vec::new(),
            _ => vec![s.clone()],
        },
        other => text(Some(other)).into_iter().collect(),
    }
}

fn text_item(value: &AnyValue) -> Option<String> {
    text(Some(value))
}

fn tools(attrs: &Attrs<'_>) -> Vec<Value> {
    let known = &attrs.known;
    if let Some(definitions) = known.tool_definitions {
        match structured(definitions) {
            Value::Array(items) => return items,
            Value::Null => {}
            other => return vec![other],
        }
    }
    let mut res = Vec::new();
    for fields in by_index(&attrs.families.oi_tools).values() {
        if let Some(schema) = field(fields, "tool.json_schema") {
            res.push(structured(schema));
        }
    }
    for fields in by_index(&attrs.families.traceloop_functions).values() {
        let mut tool = Map::new();
        for key in ["name", "description"] {
            if let Some(value) = text(field(fields, key)) {
                tool.insert(key.to_owned(), value.into());
            }
        }
        if let Some(parameters) = field(fields, "parameters") {
            tool.insert("parameters".to_owned(), structured(parameters));
        }
        if !tool.is_empty() {
            res.push(Value::Object(tool));
        }
    }
    res
}

fn tags(known: &Known<'_>) -> Vec<String> {
    let mut res: Vec<String> = Vec::new();
    for value in [known.tag_tags, known.langfuse_trace_tags].into_iter().flatten() {
        res.extend(string_list(value));
    }
    if let Some(value) = known.loupe_tags {
        match value {
            // `loupe.tags` may be one comma-separated string.
            AnyValue::String(s) if parse_json_text(s).is_none() => {
                res.extend(s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned))
            }
            other => res.extend(string_list(other)),
        }
    }
    let mut seen = std::collections::HashSet::new();
    res.retain(|tag| !tag.is_empty() && seen.insert(tag.clone()));
    res
}

fn metadata(attrs: &Attrs<'_>) -> BTreeMap<String, Value> {
    let known = &attrs.known;
    let mut res = BTreeMap::new();
    let merge_object = |res: &mut BTreeMap<String, Value>, value: Option<&AnyValue>| {
        if let Some(Value::Object(obj)) = value.map(structured) {
            res.extend(obj);
        }
    };
    for (key, value) in &attrs.families.traceloop_association {
        if !matches!(*key, "session_id" | "user_id") {
            res.insert((*key).to_owned(), value.to_json());
        }
    }
    merge_object(&mut res, known.metadata);
    merge_object(&mut res, known.langfuse_trace_metadata);
    for (key, value) in &attrs.families.langfuse_trace_metadata {
        res.insert((*key).to_owned(), structured(value));
    }
    merge_object(&mut res, known.langfuse_metadata);
    for (key, value) in &attrs.families.langfuse_metadata {
        res.insert((*key).to_owned(), structured(value));
    }
    if let Some(variant) = text(known.experiment_variant) {
        res.insert("variant".to_owned(), variant.into());
    }
    merge_object(&mut res, known.loupe_metadata);
    if let Some(variant) = text(known.loupe_variant) {
        res.insert("variant".to_owned(), variant.into());
    }
    res
}

fn environment(raw: &RawSpan, known: &Known<'_>) -> Option<String> {
    text(
        known
            .loupe_environment
            .or(known.langfuse_environment)
            .or(known.deployment_environment_name)
            .or(known.deployment_environment)
            .or_else(|| attr_get(&raw.resource.attributes, "deployment.environment.name"))
            .or_else(|| attr_get(&raw.resource.attributes, "deployment.environment")),
    )
}

/// What the span's events say about content.
#[derive(Default)]
struct EventContent {
    details_input: Vec<Message>,
    details_output: Vec<Message>,
    details_system: Vec<Part>,
    message_events: Vec<Message>,
    choice_events: Vec<Message>,
    content_prompt: Vec<Message>,
    content_completion: Vec<Message>,
}

fn event_content(events: &[Event]) -> EventContent {
    let mut res = EventContent::default();
    for event in events {
        let role = match event.name.as_str() {
            "gen_ai.system.message" => "system",
            "gen_ai.user.message" => "user",
            "gen_ai.assistant.message" => "assistant",
            "gen_ai.tool.message" => "tool",
            "gen_ai.choice" => {
                res.choice_events.push(message_from_json(&event_body(event), "assistant"));
                continue;
            }
            "gen_ai.content.prompt" => {
                if let Some(value) = attr_get(&event.attributes, "gen_ai.prompt") {
                    res.content_prompt.extend(messages_from_value(value, "user"));
                }
                continue;
            }
            "gen_ai.content.completion" => {
                if let Some(value) = attr_get(&event.attributes, "gen_ai.completion") {
                    res.content_completion.extend(messages_from_value(value, "assistant"));
                }
                continue;
            }
            "gen_ai.client.inference.operation.details" => {
                let get = |key| attr_get(&event.attributes, key);
                if let Some(value) = get("gen_ai.input.messages") {
                    res.details_input = messages_from_value(value, "user");
                }
                if let Some(value) = get("gen_ai.output.messages") {
                    res.details_output = messages_from_value(value, "assistant");
                }
                if let Some(value) = get("gen_ai.system_instructions") {
                    res.details_system = parts_from_value(value);
                }
                continue;
            }
            _ => continue,
        };
        res.message_events.push(message_from_json(&event_body(event), role));
    }
    res
}

/// An event's attributes as a message body: `content` stays text unless it holds typed parts,
/// `message` and `tool_calls` are parsed when they are JSON strings.
fn event_body(event: &Event) -> Value {
    let mut res = Map::new();
    for kv in &event.attributes {
        let value = match kv.key.as_str() {
            "content" => content_value(&kv.value),
            "message" | "tool_calls" => structured(&kv.value),
            _ => kv.value.to_json(),
        };
        res.insert(kv.key.clone(), value);
    }
    Value::Object(res)
}

/// Message content: text, unless it is JSON holding typed content parts (multimodal content).
fn content_value(value: &AnyValue) -> Value {
    match value {
        AnyValue::String(s) => match parse_json_text(s) {
            Some(Value::Array(items))
                if !items.is_empty() && items.iter().all(|it| it.get("type").is_some()) =>
            {
                Value::Array(items)
            }
            _ => Value::String(s.clone()),
        },
        other => other.to_json(),
    }
}

/// Messages from an indexed family: `<i>.role`, `<i>.content`, `<i>.tool_calls.<j>.*` (OpenLLMetry)
/// or `<i>.message.role`, `<i>.message.contents.<j>.message_content.*`,
/// `<i>.message.tool_calls.<j>.tool_call.*` (OpenInference).
fn indexed_messages(family: &Family<'_>, default_role: &str, openinference: bool) -> Vec<Message> {
    let mut res = Vec::new();
    for fields in by_index(family).values() {
        let key = |suffix: &str| -> String {
            if openinference { format!("message.{suffix}") } else { suffix.to_owned() }
        };
        let get = |suffix: &str| field(fields, &key(suffix));
        let role = str_value(get("role")).unwrap_or(default_role);
        let mut message = Message {
            role: role.to_owned(),
            parts: Vec::new(),
            name: text(get("name")),
            finish_reason: text(get("finish_reason")),
        };
        let tool_call_id = text(get("tool_call_id"));
        if let Some(content) = get("content") {
            match content_value(content) {
                Value::Array(items) => message.parts.extend(items.iter().map(part_from_json)),
                Value::Null => {}
                Value::String(s) if role == "tool" && tool_call_id.is_some() => {
                    message.parts.push(Part::ToolCallResponse {
                        id: tool_call_id.clone(),
                        response: parse_json_text(&s).unwrap_or(Value::String(s)),
                    });
                }
                other => message.parts.push(Part::Text { content: value_text(&other) }),
            }
        }
        // OpenInference content parts and tool calls are themselves indexed.
        let contents_prefix = key("contents.");
        let tool_calls_prefix = key("tool_calls.");
        let mut contents: Family<'_> = Vec::new();
        let mut tool_calls: Family<'_> = Vec::new();
        for (suffix, value) in fields {
            if let Some(rest) = suffix.strip_prefix(contents_prefix.as_str()) {
                contents.push((rest, value));
            } else if let Some(rest) = suffix.strip_prefix(tool_calls_prefix.as_str()) {
                tool_calls.push((rest, value));
            }
        }
        for part in by_index(&contents).values() {
            let get = |suffix: &str| field(part, suffix);
            let kind = str_value(get("message_content.type")).unwrap_or("text");
            let part = match kind {
                "image" => Part::Media {
                    modality: "image".to_owned(),
                    mime_type: None,
                    uri: text(get("message_content.image.image.url")),
                    file_id: None,
                    content: None,
                },
                "reasoning" => Part::Reasoning {
                    content: text(get("message_content.text")).unwrap_or_default(),
                },
                _ => match text(get("message_content.text")) {
                    Some(content) => Part::Text { content },
                    None => continue,
                },
            };
            message.parts.push(part);
        }
        for call in by_index(&tool_calls).values() {
            let get = |oi: &str, flat: &str| {
                if openinference { field(call, oi) } else { field(call, flat) }
            };
            message.parts.push(Part::ToolCall {
                id: text(get("tool_call.id", "id")),
                name: text(get("tool_call.function.name", "name")).unwrap_or_default(),
                arguments: get("tool_call.function.arguments", "arguments")
                    .map(|value| arguments(&value.to_json()))
                    .unwrap_or(Value::Null),
            });
        }
        res.push(message);
    }
    res
}

/// Plain prompt or completion texts (`llm.prompts.<i>.prompt.text`), joined.
fn indexed_texts(family: &Family<'_>, suffix: &str) -> Option<String> {
    let texts: Vec<String> =
        by_index(family).values().filter_map(|fields| text(field(fields, suffix))).collect();
    (!texts.is_empty()).then(|| texts.join("\n"))
}

/// Free-form content, or messages when the value holds chat messages (Langfuse input/output).
enum Content {
    Messages(Vec<Message>),
    Text(String),
}

fn free_content(value: &AnyValue, default_role: &str) -> Option<Content> {
    let json = match value {
        AnyValue::String(s) => match parse_json_text(s) {
            Some(json) => json,
            None => return text(Some(value)).map(Content::Text),
        },
        AnyValue::Empty => return None,
        other => other.to_json(),
    };
    if looks_like_messages(&json) {
        Some(Content::Messages(messages_from_json(&json, default_role)))
    } else {
        Some(Content::Text(match value {
            AnyValue::String(s) => s.clone(),
            _ => json.to_string(),
        }))
    }
}

fn content(raw: &RawSpan, attrs: &Attrs<'_>, view: &mut LlmView) {
    let known = &attrs.known;
    let families = &attrs.families;
    let events = event_content(&raw.events);
    let langfuse_input = known.langfuse_input.and_then(|value| free_content(value, "user"));
    let langfuse_output = known.langfuse_output.and_then(|value| free_content(value, "assistant"));

    view.system_instructions = match known.system_instructions {
        Some(value) => parts_from_value(value),
        None => events.details_system,
    };

    // The first source that has messages wins; sources are never merged.
    let mut input =
        known.input_messages.map(|v| messages_from_value(v, "user")).unwrap_or_default();
    if input.is_empty() {
        input = events.details_input;
    }
    if input.is_empty() {
        input = indexed_messages(&families.oi_input_messages, "user", true);
    }
    if input.is_empty() {
        input = indexed_messages(&families.gen_ai_prompt, "user", false);
    }
    if input.is_empty() {
        input = events.message_events;
    }
    if input.is_empty() {
        input = events.content_prompt;
    }
    if input.is_empty() {
        input = known.gen_ai_prompt.map(|v| messages_from_value(v, "user")).unwrap_or_default();
    }
    view.input_messages = input;
    let mut output =
        known.output_messages.map(|v| messages_from_value(v, "assistant")).unwrap_or_default();
    if output.is_empty() {
        output = events.details_output;
    }
    if output.is_empty() {
        output = indexed_messages(&families.oi_output_messages, "assistant", true);
    }
    if output.is_empty() {
        output = indexed_messages(&families.gen_ai_completion, "assistant", false);
    }
    if output.is_empty() {
        output = events.choice_events;
    }
    if output.is_empty() {
        output = events.content_completion;
    }
    if output.is_empty() {
        output = known
            .gen_ai_completion
            .map(|v| messages_from_value(v, "assistant"))
            .unwrap_or_default();
    }
    view.output_messages = output;

    let mut input_text = None;
    match langfuse_input {
        Some(Content::Messages(messages)) if view.input_messages.is_empty() => {
            view.input_messages = messages
        }
        Some(Content::Text(text)) => input_text = Some(text),
        _ => {}
    }
    let mut output_text = None;
    match langfuse_output {
        Some(Content::Messages(messages)) if view.output_messages.is_empty() => {
            view.output_messages = messages
        }
        Some(Content::Text(text)) => output_text = Some(text),
        _ => {}
    }
    if view.input_messages.is_empty() {
        view.input_text = text(known.input_value)
            .or_else(|| text(known.traceloop_input))
            .or(input_text)
            .or_else(|| known.tool_call_arguments.map(AnyValue::to_text))
            .or_else(|| text(known.retrieval_query))
            .or_else(|| text(known.reranker_query))
            .or_else(|| indexed_texts(&families.oi_embeddings, "embedding.text"))
            .or_else(|| indexed_texts(&families.oi_prompts, "prompt.text"))
            .or_else(|| known.langfuse_trace_input.map(AnyValue::to_text));
    }
    if view.output_messages.is_empty() {
        view.output_text = text(known.output_value)
            .or_else(|| text(known.traceloop_output))
            .or(output_text)
            .or_else(|| known.tool_call_result.map(AnyValue::to_text))
            .or_else(|| indexed_texts(&families.oi_choices, "completion.text"))
            .or_else(|| known.langfuse_trace_output.map(AnyValue::to_text));
    }
}

fn finish_reasons(known: &Known<'_>, output_messages: &[Message]) -> Vec<String> {
    if let Some(value) = known.finish_reasons {
        let res = string_list(value);
        if !res.is_empty() {
            return res;
        }
    }
    output_messages.iter().filter_map(|m| m.finish_reason.clone()).collect()
}

fn documents(attrs: &Attrs<'_>, span_type: SpanType) -> Vec<Document> {
    let families = &attrs.families;
    let indexed = |family: &Family<'_>| -> Vec<Document> {
        by_index(family)
            .values()
            .map(|fields| Document {
                id: text(field(fields, "document.id")),
                score: field(fields, "document.score").and_then(AnyValue::as_f64),
                content: text(field(fields, "document.content")),
                metadata: field(fields, "document.metadata").map(structured),
            })
            .collect()
    };
    let mut res = if span_type == SpanType::Reranker {
        let output = indexed(&families.reranker_output_documents);
        if output.is_empty() { indexed(&families.reranker_input_documents) } else { output }
    } else {
        Vec::new()
    };
    if res.is_empty() {
        res = indexed(&families.retrieval_documents);
    }
    if res.is_empty()
        && let Some(Value::Array(items)) = attrs.known.retrieval_documents.map(structured)
    {
        res = items.iter().filter_map(document_from_json).collect();
    }
    res
}

fn document_from_json(json: &Value) -> Option<Document> {
    let Value::Object(obj) = json else { return None };
    let text_of = |key: &str| match obj.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    Some(Document {
        id: text_of("id"),
        score: obj.get("score").and_then(Value::as_f64),
        content: text_of("content").or_else(|| text_of("text")),
        metadata: obj.get("metadata").cloned(),
    })
}

fn time_to_first_token(raw: &RawSpan, known: &Known<'_>) -> Option<u64> {
    if let Some(seconds) = known.time_to_first_chunk.and_then(AnyValue::as_f64)
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Some((seconds * 1e9).round() as u64);
    }
    let event = raw.events.iter().find(|event| {
        let name = event.name.as_str();
        name.ends_with("first_token") || name.ends_with("first_chunk")
    });
    if let Some(event) = event {
        return event.time_unix_nano.checked_sub(raw.start_time_unix_nano);
    }
    // Langfuse: the absolute time the first token arrived.
    let first_token_ns = match known.langfuse_completion_start? {
        AnyValue::String(s) => timestamp_ns(s.trim().trim_matches('"'))?,
        other => epoch_to_ns(u64::try_from(other.as_i64()?).ok()?),
    };
    first_token_ns.checked_sub(raw.start_time_unix_nano)
}

/// Nanoseconds from an epoch number in seconds, milliseconds, microseconds or nanoseconds.
fn epoch_to_ns(n: u64) -> u64 {
    match n {
        0..100_000_000_000 => n.saturating_mul(1_000_000_000),
        100_000_000_000..100_000_000_000_000 => n.saturating_mul(1_000_000),
        100_000_000_000_000..100_000_000_000_000_000 => n.saturating_mul(1_000),
        _ => n,
    }
}

/// Nanoseconds since the epoch from an RFC 3339 timestamp (`2024-05-22T09:41:03.861Z`,
/// `2024-05-22 09:41:03.861+02:00`), or a number as text.
fn timestamp_ns(text: &str) -> Option<u64> {
    if let Ok(n) = text.parse::<u64>() {
        return Some(epoch_to_ns(n));
    }
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    if bytes.len() < 19 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: i64 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let n_digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        for (i, b) in fraction.bytes().take(n_digits).enumerate() {
            if i < 9 {
                nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
            }
        }
        rest = &fraction[n_digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    // Days from 1970-01-01 to the civil date (proleptic Gregorian calendar).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let ns = seconds.checked_mul(1_000_000_000)?.checked_add(nanos)?;
    u64::try_from(ns).ok()
}
