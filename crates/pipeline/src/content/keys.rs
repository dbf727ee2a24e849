//! Which raw attributes and span events carry message content (prompts, completions, tool
//! arguments and results, retrieved document text), across the GenAI conventions Loupe reads.
//! Everything else (model, provider, token counts, ids, timing, status) is structure and is
//! always kept.

/// Attribute keys whose whole value is content.
const CONTENT_KEYS: &[&str] = &[
    // OTel GenAI, current and legacy.
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.documents",
    // OpenInference.
    "input.value",
    "output.value",
    "llm.prompt_template.variables",
    // OpenLLMetry.
    "traceloop.entity.input",
    "traceloop.entity.output",
    "traceloop.prompt.template_variables",
    // Langfuse.
    "langfuse.observation.input",
    "langfuse.observation.output",
    "langfuse.trace.input",
    "langfuse.trace.output",
    // Vercel AI SDK, MLflow.
    "ai.prompt",
    "ai.prompt.messages",
    "ai.response.text",
    "ai.response.object",
    "ai.response.toolCalls",
    "ai.toolCall.args",
    "ai.toolCall.result",
    "mlflow.spanInputs",
    "mlflow.spanOutputs",
    // The recording gateway's raw request and response bodies.
    "loupe.gateway.request.body",
    "loupe.gateway.response.body",
];

/// Prefixes of indexed message keys (`<prefix><i>.<...>`); everything under them is content
/// except the structural leaves in [`MESSAGE_STRUCTURE_LEAVES`].
const MESSAGE_PREFIXES: &[&str] = &[
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.choices.",
];

const MESSAGE_STRUCTURE_LEAVES: &[&str] =
    &["role", "finish_reason", "name", "id", "type", "tool_call_id", "index"];

/// Prefixes of indexed document and embedding keys; only their text leaves are content.
const DOCUMENT_PREFIXES: &[&str] = &[
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "embedding.embeddings.",
];

const DOCUMENT_CONTENT_LEAVES: &[&str] = &["content", "text", "metadata"];

/// Span events that carry a message in their attributes (deprecated GenAI message events and
/// the current operation-details event).
const CONTENT_EVENTS: &[&str] = &[
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
    "gen_ai.client.inference.operation.details",
];

/// Attribute keys that are content inside a [`CONTENT_EVENTS`] event.
const CONTENT_EVENT_KEYS: &[&str] = &["content", "message", "tool_calls", "body"];

/// Whether an attribute with this key holds content.
pub fn is_content_key(key: &str) -> bool {
    if CONTENT_KEYS.contains(&key) || key.starts_with("gen_ai.prompt.variable.") {
        return true;
    }
    let leaf = key.rsplit('.').next().unwrap_or(key);
    for prefix in MESSAGE_PREFIXES {
        if let Some(rest) = key.strip_prefix(prefix)
            && rest.starts_with(|c: char| c.is_ascii_digit())
        {
            return !MESSAGE_STRUCTURE_LEAVES.contains(&leaf);
        }
    }
    for prefix in DOCUMENT_PREFIXES {
        if let Some(rest) = key.strip_prefix(prefix)
            && rest.starts_with(|c: char| c.is_ascii_digit())
        {
            return DOCUMENT_CONTENT_LEAVES.contains(&leaf);
        }
    }
    false
}

/// Whether an attribute with this key holds content, on an event with this name.
pub fn is_content_event_key(event_name: &str, key: &str) -> bool {
    is_content_key(key)
        || (CONTENT_EVENTS.contains(&event_name) && CONTENT_EVENT_KEYS.contains(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_keys_and_structure_keys() {
        let content = [
            "gen_ai.input.messages",
            "input.value",
            "gen_ai.prompt.0.content",
            "gen_ai.completion.1.tool_calls.0.arguments",
            "llm.input_messages.0.message.content",
            "retrieval.documents.2.document.content",
            "gen_ai.prompt.variable.customer_name",
        ];
        let structure = [
            "gen_ai.request.model",
            "gen_ai.usage.input_tokens",
            "gen_ai.prompt.name",
            "gen_ai.prompt.0.role",
            "llm.output_messages.0.message.role",
            "retrieval.documents.0.document.id",
            "retrieval.documents.0.document.score",
            "user.id",
        ];
        for key in content {
            assert!(is_content_key(key), "{key} should be content");
        }
        for key in structure {
            assert!(!is_content_key(key), "{key} should be structure");
        }
        assert!(is_content_event_key("gen_ai.user.message", "content"));
        assert!(!is_content_event_key("exception", "content"));
    }
}
