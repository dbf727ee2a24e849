//! The JSON wire types of `/api/v1`. Field names are the documented API (`docs/api.md`); change
//! them only with a new API version. Times are Unix nanoseconds (`*_ns`) plus an RFC 3339 copy
//! of the start time; money is a decimal string in USD.

use model::{ErrorCode, LlmView, RawSpan};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// Tokens and cost summed over a set of spans (LLM and embedding spans count for tokens).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rollup {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    /// USD; `null` when no span in the set has a cost.
    pub cost: Option<Decimal>,
    pub n_spans: u64,
    pub n_llm_spans: u64,
    pub n_errors: u64,
    /// `error` when any span in the set errored, else `ok`.
    pub status: String,
}

/// `GET /api/v1/traces/{trace_id}`: the whole trace as a tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceTree {
    pub trace_id: String,
    pub root_name: Option<String>,
    pub service: Option<String>,
    pub operation_id: Option<String>,
    pub session_id: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub start_time: String,
    pub duration_ns: u64,
    /// Roll-ups over every span of the trace.
    pub rollup: Rollup,
    /// Spans whose parent is not in the trace (it never arrived).
    pub n_orphans: u64,
    /// Top level: root spans, then orphans, each sorted by start time; children nested.
    pub spans: Vec<SpanNode>,
    /// Feedback on the trace and on its spans, oldest first (see `docs/feedback.md`); left out
    /// when there is none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feedback: Vec<model::Feedback>,
}

/// One span in a trace tree.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpanNode {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub span_type: String,
    /// Whether the span is an LLM call (its normalized type is `llm`).
    pub is_llm: bool,
    /// The parent named by `parent_span_id` is not in the trace.
    pub orphan: bool,
    pub start_ns: u64,
    pub end_ns: u64,
    pub start_time: String,
    pub duration_ns: u64,
    /// Duration minus the time covered by its children.
    pub self_time_ns: u64,
    /// `ok`, `error` or `unset`, and the status message.
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status_message: String,
    pub model: Option<String>,
    /// Roll-ups over this span and everything under it.
    pub rollup: Rollup,
    /// The normalized LLM view.
    pub view: LlmView,
    /// The span exactly as received.
    pub raw: RawSpan,
    /// Set when the tree was too deep to nest further: the descendants are listed flat here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flattened: bool,
    pub children: Vec<SpanNode>,
}

/// A row of `GET /api/v1/traces`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceRow {
    pub trace_id: String,
    pub root_name: Option<String>,
    pub service: Option<String>,
    pub operation_id: Option<String>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub start_time: String,
    pub duration_ns: u64,
    pub n_spans: u64,
    pub n_llm_spans: u64,
    pub n_errors: u64,
    pub status: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: Option<Decimal>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
}

impl From<store::TraceSummary> for TraceRow {
    fn from(summary: store::TraceSummary) -> TraceRow {
        TraceRow {
            trace_id: summary.trace_id.to_hex(),
            start_time: crate::time::format_rfc3339(summary.start_ns),
            duration_ns: summary.duration_ns(),
            status: summary.status().to_owned(),
            root_name: summary.root_name,
            service: summary.service,
            operation_id: summary.operation_id,
            start_ns: summary.start_ns,
            end_ns: summary.end_ns,
            n_spans: summary.n_spans,
            n_llm_spans: summary.n_llm_spans,
            n_errors: summary.n_errors,
            input_tokens: summary.input_tokens,
            output_tokens: summary.output_tokens,
            cost: summary.cost,
            session_id: summary.session_id,
            user_id: summary.user_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceList {
    pub traces: Vec<TraceRow>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Total matches, when asked for with `total=true`.
    pub total: Option<u64>,
}

/// A row of `GET /api/v1/spans`: the span's facts and its normalized view (not the raw span).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub service: String,
    pub span_type: String,
    pub is_llm: bool,
    pub start_ns: u64,
    pub end_ns: u64,
    pub start_time: String,
    pub duration_ns: u64,
    pub status: String,
    pub model: Option<String>,
    pub view: LlmView,
}

impl From<model::StoredSpan> for SpanRow {
    fn from(span: model::StoredSpan) -> SpanRow {
        let raw = &span.raw;
        SpanRow {
            trace_id: raw.trace_id.to_hex(),
            span_id: raw.span_id.to_hex(),
            parent_span_id: raw.parent_span_id.map(|id| id.to_hex()),
            name: raw.name.clone(),
            service: raw.service_name().to_owned(),
            span_type: span.view.span_type.as_str().to_owned(),
            is_llm: span.view.span_type == model::SpanType::Llm,
            start_ns: raw.start_time_unix_nano,
            end_ns: raw.end_time_unix_nano,
            start_time: crate::time::format_rfc3339(raw.start_time_unix_nano),
            duration_ns: raw.duration_ns(),
            status: raw.status.code.as_str().to_owned(),
            model: span.view.model().map(str::to_owned),
            view: span.view,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpanList {
    pub spans: Vec<SpanRow>,
    pub next_cursor: Option<String>,
    pub total: Option<u64>,
}

/// `GET /api/v1/sessions/{id}`: a conversation's traces, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub session_id: String,
    pub user_id: Option<String>,
    pub n_traces: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub rollup_input_tokens: u64,
    pub rollup_output_tokens: u64,
    pub cost: Option<Decimal>,
    pub traces: Vec<TraceRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

/// `GET /api/v1/facets`: distinct values seen in the time range, most frequent first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facets {
    pub services: Vec<FacetValue>,
    pub span_names: Vec<FacetValue>,
    pub models: Vec<FacetValue>,
    pub providers: Vec<FacetValue>,
    pub operations: Vec<FacetValue>,
    pub span_types: Vec<FacetValue>,
    pub environments: Vec<FacetValue>,
    pub tags: Vec<FacetValue>,
}

impl From<store::Facets> for Facets {
    fn from(facets: store::Facets) -> Facets {
        let convert = |values: Vec<(String, u64)>| {
            values.into_iter().map(|(value, count)| FacetValue { value, count }).collect()
        };
        Facets {
            services: convert(facets.services),
            span_names: convert(facets.span_names),
            models: convert(facets.models),
            providers: convert(facets.providers),
            operations: convert(facets.operations),
            span_types: convert(facets.span_types),
            environments: convert(facets.environments),
            tags: convert(facets.tags),
        }
    }
}

/// `GET /api/v1/aggregate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Aggregate {
    /// The grouping keys, in order (`model`, `name`, `attr.key`, ...).
    pub group_by: Vec<String>,
    /// The metric names, in order (`count`, `p95`, ...).
    pub metrics: Vec<String>,
    pub bucket_ns: Option<u64>,
    pub rows: Vec<AggregateRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AggregateRow {
    /// Group key -> value (`null` where spans have none).
    pub group: serde_json::Map<String, serde_json::Value>,
    pub bucket_start_ns: Option<u64>,
    /// Metric -> value: counts and tokens as integers, percentiles in nanoseconds, cost as a
    /// decimal string (USD).
    pub values: serde_json::Map<String, serde_json::Value>,
}
