//! The normalized LLM view: one shape for what every GenAI convention (OTel GenAI current and
//! legacy, OpenInference, OpenLLMetry, Langfuse, Loupe's gateway) says about a span.
//!
//! The view is derived from the raw span by the `normalize` crate and can always be rebuilt from
//! it; pipeline processors (pricing, redaction, fingerprints) add their results here.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What a span is, from the LLM application's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanType {
    Llm,
    Embedding,
    Retrieval,
    Reranker,
    Tool,
    Agent,
    Chain,
    Evaluator,
    Guardrail,
    Http,
    Db,
    #[default]
    Other,
}

impl SpanType {
    pub const ALL: [SpanType; 12] = [
        SpanType::Llm,
        SpanType::Embedding,
        SpanType::Retrieval,
        SpanType::Reranker,
        SpanType::Tool,
        SpanType::Agent,
        SpanType::Chain,
        SpanType::Evaluator,
        SpanType::Guardrail,
        SpanType::Http,
        SpanType::Db,
        SpanType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SpanType::Llm => "llm",
            SpanType::Embedding => "embedding",
            SpanType::Retrieval => "retrieval",
            SpanType::Reranker => "reranker",
            SpanType::Tool => "tool",
            SpanType::Agent => "agent",
            SpanType::Chain => "chain",
            SpanType::Evaluator => "evaluator",
            SpanType::Guardrail => "guardrail",
            SpanType::Http => "http",
            SpanType::Db => "db",
            SpanType::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<SpanType> {
        SpanType::ALL.into_iter().find(|t| t.as_str().eq_ignore_ascii_case(text))
    }
}

/// Token usage. Totals include their parts: `cache_read_input` and `cache_write_input` are part
/// of `input`; `reasoning_output` is part of `output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write_input: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_output: Option<u64>,
}

impl Usage {
    pub fn total(&self) -> Option<u64> {
        match (self.input, self.output) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0) + o.unwrap_or(0)),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// One part of a message, following the OTel GenAI message schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part {
    Text {
        content: String,
    },
    ToolCall {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        name: String,
        /// Arguments as sent: usually a JSON object, sometimes a JSON string.
        #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
        arguments: serde_json::Value,
    },
    ToolCallResponse {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        response: serde_json::Value,
    },
    Reasoning {
        content: String,
    },
    /// Media: inline (`content`, base64), by reference (`uri`) or by file id.
    Media {
        modality: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uri: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    /// A part type this version does not model, kept as sent.
    Other {
        value: serde_json::Value,
    },
}

/// A chat message in one normalized shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, `tool`, or whatever the sender used.
    pub role: String,
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

impl Message {
    pub fn text(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            parts: vec![Part::Text { content: content.into() }],
            name: None,
            finish_reason: None,
        }
    }

    /// The concatenated text parts.
    pub fn text_content(&self) -> String {
        let mut res = String::new();
        for part in &self.parts {
            if let Part::Text { content } = part {
                if !res.is_empty() {
                    res.push('\n');
                }
                res.push_str(content);
            }
        }
        res
    }
}

/// A retrieved (or reranked) document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// Request parameters of an LLM call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RequestParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Tool definitions offered to the model, as JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// Anything else the convention carried (e.g. OpenInference `llm.invocation_parameters`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl RequestParams {
    pub fn is_empty(&self) -> bool {
        *self == RequestParams::default()
    }
}

/// Facts about how the view was derived or processed, for display and filtering.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ViewFlags {
    /// The span's model had no price in the price table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unknown_price: bool,
    /// Content was removed by policy (content off, or retention).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_removed: bool,
    /// Some content field was cut to the configured size.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_truncated: bool,
    /// Number of redactions made, by kind (e.g. `email` -> 2).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redactions: BTreeMap<String, u32>,
}

/// The normalized view of one span. Every field is optional: a plain HTTP span has almost none.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LlmView {
    pub span_type: SpanType,
    /// `gen_ai.operation.name` or its equivalent (`chat`, `embeddings`, `execute_tool`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_name: Option<String>,
    /// The application's logical operation (`loupe.operation`, else the root span's name).
    /// Filled from the root span when the trace is assembled if the span has none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    #[serde(default, skip_serializing_if = "Usage::is_empty")]
    pub usage: Usage,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finish_reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "RequestParams::is_empty")]
    pub request: RequestParams,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system_instructions: Vec<Part>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_messages: Vec<Message>,
    /// Free-form input/output when the convention has no messages (`input.value`, tool args).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub documents: Vec<Document>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Time to first token in nanoseconds, for streamed calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_first_token_ns: Option<u64>,
    /// Cost in USD from the price table, never a float.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<Decimal>,
    /// SHA-256 hex of the normalized input messages and of the system instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
    #[serde(default)]
    pub flags: ViewFlags,
}

impl LlmView {
    /// Whether the span has any message or free-form content.
    pub fn has_content(&self) -> bool {
        !self.input_messages.is_empty()
            || !self.output_messages.is_empty()
            || !self.system_instructions.is_empty()
            || self.input_text.is_some()
            || self.output_text.is_some()
    }

    /// The model that answered, else the one requested.
    pub fn model(&self) -> Option<&str> {
        self.response_model.as_deref().or(self.request_model.as_deref())
    }

    /// All searchable text of the span (messages, free text, documents), for full-text search.
    pub fn searchable_text(&self) -> String {
        let mut res = String::new();
        let mut push = |text: &str| {
            if !text.is_empty() {
                if !res.is_empty() {
                    res.push('\n');
                }
                res.push_str(text);
            }
        };
        for part in &self.system_instructions {
            if let Part::Text { content } = part {
                push(content);
            }
        }
        for message in self.input_messages.iter().chain(&self.output_messages) {
            push(&message.text_content());
        }
        push(self.input_text.as_deref().unwrap_or(""));
        push(self.output_text.as_deref().unwrap_or(""));
        for document in &self.documents {
            push(document.content.as_deref().unwrap_or(""));
        }
        res
    }
}
