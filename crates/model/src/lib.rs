//! Loupe's data model: what a recorded span is, what its normalized LLM view is, and the small
//! closed set of error codes every crate maps its errors onto.
//!
//! **Architecture Invariant:** this crate does no IO, has no async, and knows nothing about OTLP,
//! HTTP or SQL. Every other crate depends on it; it depends on none of them.

mod dataset;
mod error;
mod feedback;
mod ids;
mod llm;
mod project;
mod span;
pub mod time;

pub use dataset::{
    Dataset, DatasetItem, DatasetVersion, ExpectedSource, ItemInput, ItemSource, Split,
};
pub use error::{ErrorCode, error_chain};
pub use feedback::{
    Feedback, FeedbackContent, FeedbackRevision, FeedbackSource, FeedbackTarget, Rating,
    ScoreConfig, ScoreKind, ScoreValue,
};
pub use ids::{IdError, SpanId, TraceId};
pub use llm::{Document, LlmView, Message, Part, RequestParams, SpanType, Usage, ViewFlags};
pub use project::ProjectId;
pub use span::{
    AnyValue, Event, KeyValue, Link, RawSpan, Resource, Scope, SpanEvent, SpanKind, Status,
    StatusCode, StoredSpan, attr_get, attr_str,
};

/// Nanoseconds since the Unix epoch, as OTLP carries them.
pub type UnixNanos = u64;
