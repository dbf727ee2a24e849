//! Token usage from every convention's attributes, with the Anthropic cache-sum rule.

use model::{AnyValue, Usage};
use serde_json::Value;

use crate::attrs::Known;
use crate::messages::structured;

/// A token count: a non-negative integer (also from a numeric string or integral double).
pub(crate) fn count(value: Option<&AnyValue>) -> Option<u64> {
    value.and_then(AnyValue::as_i64).and_then(|n| u64::try_from(n).ok())
}

fn first(values: &[Option<&AnyValue>]) -> Option<u64> {
    values.iter().find_map(|v| count(*v))
}

/// Usage from the span's attributes. `anthropic` says the provider or model is Anthropic's,
/// whose raw `input_tokens` exclude cached tokens.
pub(crate) fn usage(known: &Known<'_>, anthropic: bool, embedding: bool) -> Usage {
    let mut res = Usage {
        input: first(&[
            known.input_tokens,
            known.prompt_tokens,
            known.oi_prompt_tokens,
            known.llm_usage_prompt,
        ]),
        output: first(&[
            known.output_tokens,
            known.completion_tokens,
            known.oi_completion_tokens,
            known.llm_usage_completion,
        ]),
        cache_read_input: first(&[
            known.cache_read,
            known.cache_read_flat,
            known.cache_read_sentry,
            known.oi_cache_read,
        ]),
        cache_write_input: first(&[
            known.cache_write,
            known.cache_creation,
            known.cache_creation_flat,
            known.cache_write_sentry,
            known.oi_cache_write,
        ]),
        reasoning_output: first(&[
            known.reasoning_tokens,
            known.reasoning_tokens_flat,
            known.oi_reasoning,
            known.llm_usage_reasoning,
        ]),
    };
    if res.input.is_none()
        && res.output.is_none()
        && let Some(details) = known.langfuse_usage
    {
        langfuse_usage(&structured(details), &mut res);
    }
    let total = first(&[known.total_tokens, known.oi_total_tokens, known.llm_usage_total]);
    if let Some(total) = total {
        match (res.input, res.output) {
            // Embeddings only consume input.
            (None, None) if embedding => res.input = Some(total),
            (Some(input), None) if !embedding && total >= input => res.output = Some(total - input),
            (None, Some(output)) if total >= output => res.input = Some(total - output),
            _ => {}
        }
    }
    // Anthropic's own input count excludes cached tokens; conformant instrumentations add them
    // back. When the cache counts exceed what the input could contain, the sender passed the raw
    // field through, so add them here.
    let cached =
        res.cache_read_input.unwrap_or(0).saturating_add(res.cache_write_input.unwrap_or(0));
    if anthropic
        && cached > 0
        && let Some(input) = res.input
        && input < cached
    {
        res.input = Some(input.saturating_add(cached));
    }
    res
}

/// `langfuse.observation.usage_details`: `{input, output, total, cache_read_input_tokens, ...}`.
/// Langfuse counts cached tokens apart from `input`, so they are added to the input total.
fn langfuse_usage(details: &Value, res: &mut Usage) {
    let Value::Object(obj) = details else { return };
    let get = |keys: &[&str]| {
        keys.iter().find_map(|key| match obj.get(*key)? {
            Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    };
    let cache_read = get(&["cache_read_input_tokens", "input_cached_tokens", "input_cache_read"]);
    let cache_write =
        get(&["cache_creation_input_tokens", "input_cache_creation", "input_cache_write"]);
    let input = get(&["input", "prompt_tokens", "input_tokens"]);
    res.input = input.map(|n| n + cache_read.unwrap_or(0) + cache_write.unwrap_or(0));
    res.output = get(&["output", "completion_tokens", "output_tokens"]);
    res.cache_read_input = res.cache_read_input.or(cache_read);
    res.cache_write_input = res.cache_write_input.or(cache_write);
    res.reasoning_output =
        res.reasoning_output.or(get(&["output_reasoning_tokens", "reasoning_tokens", "reasoning"]));
}
