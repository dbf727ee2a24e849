//! Derives the normalized LLM view ([`model::LlmView`]) from a raw span. Pure and deterministic:
//! the same raw span always gives the same view, so `loupe reindex` can rebuild every view.
//!
//! Conventions read (names in the shared OTel GenAI reference): OTel GenAI current and older
//! (attributes, indexed `gen_ai.prompt.<i>.*`/`gen_ai.completion.<i>.*`, message and choice
//! events, the oldest `gen_ai.content.*` events), OpenInference, OpenLLMetry/Traceloop, Langfuse,
//! and Loupe's own `loupe.*` attributes. When several conventions say the same thing, the first
//! one found in that order wins; sources of messages are never merged, so a span instrumented
//! twice does not show every message twice.
//!
//! The attributes are read in one pass (`attrs.rs`); JSON is only parsed for the content
//! attributes a span actually has.

mod attrs;
mod messages;
mod usage;
mod view;

#[cfg(test)]
mod tests;

use model::{LlmView, RawSpan};

/// The normalized view of one span.
pub fn derive_view(raw: &RawSpan) -> LlmView {
    view::derive(raw)
}
