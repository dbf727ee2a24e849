//! One pass over a span's attributes that files every attribute the view reads into a named
//! slot, and every indexed family (`gen_ai.prompt.<i>.*`, `llm.input_messages.<i>.*`, ...) into
//! a list. The rest of the crate reads slots instead of searching the attributes again, so a span
//! with thousands of attributes costs one pass.

use std::collections::BTreeMap;

use model::{AnyValue, KeyValue};

macro_rules! known_keys {
    ($($field:ident = $key:literal,)*) => {
        /// The last value of each known attribute (last wins, as in SDK attribute maps).
        #[derive(Default)]
        pub(crate) struct Known<'a> {
            $(pub $field: Option<&'a AnyValue>,)*
        }

        impl<'a> Known<'a> {
            /// Stores `value` when `key` is a known attribute; returns whether it was.
            fn set(&mut self, key: &str, value: &'a AnyValue) -> bool {
                match key {
                    $($key => self.$field = Some(value),)*
                    _ => return false,
                }
                true
            }
        }
    };
}

known_keys! {
    // Span type and operation.
    langfuse_type = "langfuse.observation.type",
    openinference_kind = "openinference.span.kind",
    operation_name = "gen_ai.operation.name",
    traceloop_kind = "traceloop.span.kind",
    llm_request_type = "llm.request.type",
    // Provider and models.
    provider_name = "gen_ai.provider.name",
    gen_ai_system = "gen_ai.system",
    llm_provider = "llm.provider",
    llm_system = "llm.system",
    request_model = "gen_ai.request.model",
    response_model = "gen_ai.response.model",
    oi_model_name = "llm.model_name",
    oi_request_model = "llm.request.model_name",
    oi_response_model = "llm.response.model_name",
    embedding_model = "embedding.model_name",
    reranker_model = "reranker.model_name",
    langfuse_model = "langfuse.observation.model.name",
    response_id = "gen_ai.response.id",
    // Usage.
    input_tokens = "gen_ai.usage.input_tokens",
    prompt_tokens = "gen_ai.usage.prompt_tokens",
    output_tokens = "gen_ai.usage.output_tokens",
    completion_tokens = "gen_ai.usage.completion_tokens",
    total_tokens = "gen_ai.usage.total_tokens",
    cache_read = "gen_ai.usage.cache_read.input_tokens",
    cache_read_flat = "gen_ai.usage.cache_read_input_tokens",
    cache_read_sentry = "gen_ai.usage.input_tokens.cached",
    cache_write = "gen_ai.usage.cache_write.input_tokens",
    cache_creation = "gen_ai.usage.cache_creation.input_tokens",
    cache_creation_flat = "gen_ai.usage.cache_creation_input_tokens",
    cache_write_sentry = "gen_ai.usage.input_tokens.cache_write",
    reasoning_tokens = "gen_ai.usage.reasoning.output_tokens",
    reasoning_tokens_flat = "gen_ai.usage.reasoning_tokens",
    oi_prompt_tokens = "llm.token_count.prompt",
    oi_completion_tokens = "llm.token_count.completion",
    oi_total_tokens = "llm.token_count.total",
    oi_cache_read = "llm.token_count.prompt_details.cache_read",
    oi_cache_write = "llm.token_count.prompt_details.cache_write",
    oi_reasoning = "llm.token_count.completion_details.reasoning",
    llm_usage_prompt = "llm.usage.prompt_tokens",
    llm_usage_completion = "llm.usage.completion_tokens",
    llm_usage_total = "llm.usage.total_tokens",
    llm_usage_reasoning = "llm.usage.reasoning_tokens",
    langfuse_usage = "langfuse.observation.usage_details",
    // Finish reasons and request parameters.
    finish_reasons = "gen_ai.response.finish_reasons",
    temperature = "gen_ai.request.temperature",
    top_p = "gen_ai.request.top_p",
    top_k = "gen_ai.request.top_k",
    max_tokens = "gen_ai.request.max_tokens",
    frequency_penalty = "gen_ai.request.frequency_penalty",
    presence_penalty = "gen_ai.request.presence_penalty",
    seed = "gen_ai.request.seed",
    openai_seed = "gen_ai.openai.request.seed",
    stop_sequences = "gen_ai.request.stop_sequences",
    stream = "gen_ai.request.stream",
    is_streaming = "llm.is_streaming",
    gen_ai_is_streaming = "gen_ai.is_streaming",
    llm_top_k = "llm.top_k",
    llm_frequency_penalty = "llm.frequency_penalty",
    llm_presence_penalty = "llm.presence_penalty",
    llm_stop_sequences = "llm.chat.stop_sequences",
    choice_count = "gen_ai.request.choice.count",
    output_type = "gen_ai.output.type",
    reasoning_level = "gen_ai.request.reasoning.level",
    encoding_formats = "gen_ai.request.encoding_formats",
    previous_response_id = "gen_ai.request.previous_response.id",
    tool_choice = "loupe.request.tool_choice",
    invocation_parameters = "llm.invocation_parameters",
    langfuse_model_parameters = "langfuse.observation.model.parameters",
    tool_definitions = "gen_ai.tool.definitions",
    time_to_first_chunk = "gen_ai.response.time_to_first_chunk",
    langfuse_completion_start = "langfuse.observation.completion_start_time",
    // Content.
    input_messages = "gen_ai.input.messages",
    output_messages = "gen_ai.output.messages",
    system_instructions = "gen_ai.system_instructions",
    gen_ai_prompt = "gen_ai.prompt",
    gen_ai_completion = "gen_ai.completion",
    input_value = "input.value",
    output_value = "output.value",
    traceloop_input = "traceloop.entity.input",
    traceloop_output = "traceloop.entity.output",
    traceloop_entity_name = "traceloop.entity.name",
    langfuse_input = "langfuse.observation.input",
    langfuse_output = "langfuse.observation.output",
    langfuse_trace_input = "langfuse.trace.input",
    langfuse_trace_output = "langfuse.trace.output",
    tool_call_arguments = "gen_ai.tool.call.arguments",
    tool_call_result = "gen_ai.tool.call.result",
    retrieval_documents = "gen_ai.retrieval.documents",
    retrieval_query = "gen_ai.retrieval.query.text",
    reranker_query = "reranker.query",
    // Tools.
    tool_name = "tool.name",
    gen_ai_tool_name = "gen_ai.tool.name",
    // Session, user, tags, metadata, environment, operation id.
    session_id = "session.id",
    conversation_id = "gen_ai.conversation.id",
    langfuse_session_id = "langfuse.session.id",
    user_id = "user.id",
    langfuse_user_id = "langfuse.user.id",
    enduser_id = "enduser.id",
    llm_user = "llm.user",
    tag_tags = "tag.tags",
    langfuse_trace_tags = "langfuse.trace.tags",
    loupe_tags = "loupe.tags",
    metadata = "metadata",
    langfuse_metadata = "langfuse.observation.metadata",
    langfuse_trace_metadata = "langfuse.trace.metadata",
    loupe_metadata = "loupe.metadata",
    loupe_variant = "loupe.variant",
    experiment_variant = "experiment.variant",
    loupe_environment = "loupe.environment",
    langfuse_environment = "langfuse.environment",
    deployment_environment_name = "deployment.environment.name",
    deployment_environment = "deployment.environment",
    loupe_operation = "loupe.operation",
}

/// An indexed attribute family: `(rest of the key after the prefix, value)`, in attribute order.
pub(crate) type Family<'a> = Vec<(&'a str, &'a AnyValue)>;

macro_rules! families {
    ($($field:ident = $prefix:literal,)*) => {
        /// Attributes whose keys start with one of the indexed or flattened prefixes.
        #[derive(Default)]
        pub(crate) struct Families<'a> {
            $(pub $field: Family<'a>,)*
        }

        impl<'a> Families<'a> {
            fn push(&mut self, key: &'a str, value: &'a AnyValue) {
                $(
                    if let Some(rest) = key.strip_prefix($prefix) {
                        self.$field.push((rest, value));
                        return;
                    }
                )*
            }
        }
    };
}

families! {
    gen_ai_prompt = "gen_ai.prompt.",
    gen_ai_completion = "gen_ai.completion.",
    oi_input_messages = "llm.input_messages.",
    oi_output_messages = "llm.output_messages.",
    oi_prompts = "llm.prompts.",
    oi_choices = "llm.choices.",
    retrieval_documents = "retrieval.documents.",
    reranker_output_documents = "reranker.output_documents.",
    reranker_input_documents = "reranker.input_documents.",
    oi_tools = "llm.tools.",
    oi_embeddings = "embedding.embeddings.",
    traceloop_functions = "llm.request.functions.",
    langfuse_metadata = "langfuse.observation.metadata.",
    langfuse_trace_metadata = "langfuse.trace.metadata.",
    traceloop_association = "traceloop.association.properties.",
}

/// What the view reads from a span's attributes, gathered in one pass.
pub(crate) struct Attrs<'a> {
    pub known: Known<'a>,
    pub families: Families<'a>,
    /// Some attribute starts with `http.` or `url.`.
    pub has_http: bool,
    /// Some attribute starts with `db.system`.
    pub has_db: bool,
}

impl<'a> Attrs<'a> {
    pub fn new(attributes: &'a [KeyValue]) -> Attrs<'a> {
        let mut res = Attrs {
            known: Known::default(),
            families: Families::default(),
            has_http: false,
            has_db: false,
        };
        for kv in attributes {
            let key = kv.key.as_str();
            if res.known.set(key, &kv.value) {
                continue;
            }
            if key.starts_with("http.") || key.starts_with("url.") {
                res.has_http = true;
            } else if key.starts_with("db.system") {
                res.has_db = true;
            } else {
                res.families.push(key, &kv.value);
            }
        }
        res
    }
}

/// Groups an indexed family (`<i>.<suffix>`) by index: index -> `[(suffix, value)]`. Keys whose
/// first segment is not a number are ignored.
pub(crate) fn by_index<'a>(family: &Family<'a>) -> BTreeMap<u64, Vec<(&'a str, &'a AnyValue)>> {
    let mut res: BTreeMap<u64, Vec<(&'a str, &'a AnyValue)>> = BTreeMap::new();
    for (rest, value) in family {
        let (index, suffix) = rest.split_once('.').unwrap_or((rest, ""));
        if let Ok(index) = index.parse::<u64>() {
            res.entry(index).or_default().push((suffix, value));
        }
    }
    res
}

/// The last value of `suffix` among the fields of one indexed entry.
pub(crate) fn field<'a>(fields: &[(&'a str, &'a AnyValue)], suffix: &str) -> Option<&'a AnyValue> {
    fields.iter().rev().find(|(s, _)| *s == suffix).map(|(_, v)| *v)
}
