//! The `content` processor: the content policy. Per project and per service, message content
//! (prompts, completions, tool arguments and results, document text) is recorded or not,
//! recorded for a deterministic share of traces only (content sampling by trace id hash), and
//! cut to a size cap per field with a visible marker. Structure (model, tokens, timing, status)
//! is always kept. The decision applies to the raw span and to the normalized view alike, and is
//! recorded in `view.flags.content_removed` / `content_truncated` and the attribute
//! `loupe.content.removed`.

mod config;
#[allow(clippy::module_inception, reason = "the component folder layout names the file after it")]
mod content;
pub(crate) mod keys;
pub use keys::{is_content_event_key, is_content_key};
#[cfg(test)]
mod tests;

pub use config::{
    ContentConfig, ContentPolicy, DEFAULT_MAX_FIELD_BYTES, RawContentConfig, RawContentOverride,
    RawContentProjectConfig,
};
pub use content::{
    CONTENT_REMOVED_ATTR, ContentCounters, ContentProcessor, remove_content, trace_hash,
    trace_sampled,
};
