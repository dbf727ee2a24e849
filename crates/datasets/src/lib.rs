//! Feedback, datasets and their exports: the pure domain logic, with no IO beyond the
//! `std::io::Write` and `BufRead` streams it is handed.
//!
//! - [`feedback`]: checks feedback entries and score configs (the annotation schema), applies
//!   edits while keeping history.
//! - [`item`]: turns a recorded span (and its correction) into a [`model::DatasetItem`], with the
//!   input fingerprint, a stable id, a deterministic train/validation/test split and merging of
//!   duplicate inputs.
//! - [`export`]: streaming writers for OpenAI chat fine-tuning JSONL, preference JSONL,
//!   Anthropic- and Hugging-Face-style chat JSONL, CSV and the eval-suite YAML. Each item is
//!   written as soon as it is given, so a million-item dataset exports in bounded memory.
//! - [`import`]: reads JSONL (any of the chat shapes above, or Loupe's own item JSON) and CSV into
//!   items, one record at a time; a bad record is reported and skipped, not fatal.
//! - [`eval_run`]: eval suites read and turned into prompts, assertions evaluated on outputs,
//!   the results document of a run, comparing two runs case by case, the baseline gate and
//!   JUnit XML (the model calls are `loupe eval run`'s).
//! - [`export_trace`]: one trace's LLM calls as a toad-eye-compatible eval suite
//!   (`trace-<first 8 hex>.eval.yaml`) with baseline assertions.
//!
//! **Architecture Invariant:** no clock, no randomness, no file system: times and ids come in as
//! arguments, so every output here is reproducible from its inputs.

pub mod eval_run;
pub mod export;
pub mod export_trace;
pub mod feedback;
pub mod import;
pub mod item;

mod assertions;
mod chat;
mod time;
mod yaml;

use model::{ErrorCode, TraceId};

pub use export::{ExportContext, ExportFormat, ExportStats, Exporter};
pub use export_trace::{TraceExport, export_trace};
pub use feedback::{
    apply_edit, correction_from_text, parse_rating, parse_score_arg, validate_correction,
    validate_feedback, validate_score_config,
};
pub use import::{ImportFormat, ImportRejected, ImportReport, import};
pub use item::{
    Deduper, SplitConfig, assign_split, dedup, import_item_id, input_fingerprint, item_from_span,
    span_item_id,
};
pub use time::format_rfc3339_millis;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid score config {name:?}: {reason}")]
    InvalidScoreConfig { name: String, reason: String },
    #[error("unknown score {name:?}: define it first with a score config (defined: {defined})")]
    UnknownScore { name: String, defined: String },
    #[error("invalid value {value} for score {name:?}: {reason}")]
    InvalidScore { name: String, value: String, reason: String },
    #[error("invalid rating {0:?}: use up, down or a number from 1 to 5")]
    InvalidRating(String),
    #[error("malformed correction: {0}")]
    MalformedCorrection(String),
    #[error("empty feedback: give a rating, a score, a correction, a tag or a comment")]
    EmptyFeedback,
    #[error("invalid tag {0:?}: use 1 to 64 characters without control characters")]
    InvalidTag(String),
    #[error("comment too long: {n_chars} characters, at most {max} allowed")]
    CommentTooLong { n_chars: usize, max: usize },
    #[error("invalid score argument {0:?}: write NAME=VALUE, e.g. helpfulness=0.8")]
    InvalidScoreArg(String),
    #[error("unknown export format {0:?}: use openai, preference, anthropic, hf, csv or eval")]
    UnknownExportFormat(String),
    #[error("unknown import format {0:?}: use jsonl or csv")]
    UnknownImportFormat(String),
    #[error("trace {0} not found")]
    TraceNotFound(TraceId),
    #[error("no exportable spans in trace {trace_id}: {reason}")]
    NothingToExport { trace_id: TraceId, reason: String },
    #[error("invalid csv: {0}")]
    Csv(String),
    #[error("invalid eval suite: {0}")]
    InvalidSuite(String),
    #[error("unknown assertion type {kind:?}: use {known}")]
    UnknownAssertion { kind: String, known: String },
    #[error("invalid assertion {kind:?}: {reason}")]
    InvalidAssertion { kind: String, reason: String },
    #[error(
        "case {case:?}: the template uses {{{{{name}}}}} but the case has no variable {name:?} (it has: {known})"
    )]
    MissingVariable { case: String, name: String, known: String },
    #[error("case {case:?} has no `input` variable: give a --template that uses its variables")]
    MissingInput { case: String },
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::TraceNotFound(_) => ErrorCode::NotFound,
            Error::Io(_) => ErrorCode::Internal,
            Error::InvalidScoreConfig { .. }
            | Error::UnknownScore { .. }
            | Error::InvalidScore { .. }
            | Error::InvalidRating(_)
            | Error::MalformedCorrection(_)
            | Error::EmptyFeedback
            | Error::InvalidTag(_)
            | Error::CommentTooLong { .. }
            | Error::InvalidScoreArg(_)
            | Error::UnknownExportFormat(_)
            | Error::UnknownImportFormat(_)
            | Error::NothingToExport { .. }
            | Error::Csv(_)
            | Error::InvalidSuite(_)
            | Error::UnknownAssertion { .. }
            | Error::InvalidAssertion { .. }
            | Error::MissingVariable { .. }
            | Error::MissingInput { .. } => ErrorCode::BadRequest,
        }
    }
}
