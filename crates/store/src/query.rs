//! Structured queries: the filter expression tree, time ranges, pages and aggregates. Backends
//! translate these into their own query language; nobody above the store writes SQL.

use std::collections::BTreeMap;

use model::{ProjectId, SpanType, TraceId, UnixNanos};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A filter over spans. The text syntax (see [`crate::syntax`]) parses into this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// `field op value`.
    Cmp {
        field: Field,
        op: CmpOp,
        value: Value,
    },
    /// `has field`: the field is present (non-null, non-empty) on the span.
    Exists(Field),
    /// Full-text match over the span's inputs and outputs (all words must appear).
    Text(String),
}

/// A filterable field. Span-level fields apply to each span; a trace matches a trace query when
/// at least one of its spans matches the whole expression, except for the `Trace*` and `Root*`
/// fields, which are facts about the whole trace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// `type`: the normalized span type (`llm`, `tool`, ...).
    SpanType,
    /// `name`: the span name.
    Name,
    /// `kind`: the OTel span kind (`client`, `server`, ...).
    Kind,
    /// `service`: the resource's `service.name`.
    Service,
    /// `operation`: the application's operation id.
    Operation,
    /// `model`: the response model, else the request model.
    Model,
    Provider,
    /// `status`: `ok`, `error` or `unset`.
    Status,
    /// `duration`: the span's duration (nanoseconds; the syntax takes `2s`, `150ms`).
    Duration,
    InputTokens,
    OutputTokens,
    TotalTokens,
    /// `cost`: USD.
    Cost,
    Session,
    User,
    /// `tag`: one of the span's tags (`tag = refund`).
    Tag,
    Environment,
    TraceId,
    SpanId,
    /// `attr."key"` / `attr.key`: a raw span attribute, compared as text (or number when the
    /// value is a number).
    Attr(String),
    /// `resource."key"`: a resource attribute.
    ResourceAttr(String),
    /// `root_name`: the trace's root span name.
    RootName,
    /// `trace.duration`: the whole trace's duration.
    TraceDuration,
    /// Feedback fields (filled in by the feedback records): `rating`, `score.NAME`,
    /// `feedback.tag`, `correction` (with `has`), `feedback` (with `has`).
    Rating,
    Score(String),
    FeedbackTag,
    Correction,
    Feedback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~`: glob match (`*` any run, `?` one character), case-insensitive.
    Glob,
    /// `!~`
    NotGlob,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A duration in nanoseconds (written `2s`, `150ms`, `3m`, `1h`, `500us`).
    DurationNs(u64),
}

/// A half-open time range `[from, to)` on span start times. `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TimeRange {
    pub from_ns: Option<UnixNanos>,
    pub to_ns: Option<UnixNanos>,
}

/// An opaque pagination cursor produced by a backend. Callers pass back the string as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(pub String);

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpanQuery {
    pub filter: Option<Expr>,
    pub time: TimeRange,
    /// Page size; backends cap it at 1000.
    pub limit: u32,
    pub cursor: Option<Cursor>,
    /// Also compute `Page::total` (the number of matches, ignoring paging).
    pub with_total: bool,
}

pub type TraceQuery = SpanQuery;

/// One page of results, newest first unless the method says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<Cursor>,
    /// Total matches, when asked for.
    pub total: Option<u64>,
}

/// One row of a trace list: facts about the whole trace, rolled up over its spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    pub project: ProjectId,
    pub trace_id: TraceId,
    /// The root span's name; `None` while the root has not arrived.
    pub root_name: Option<String>,
    /// The root span's service (else the first span's).
    pub service: Option<String>,
    pub operation_id: Option<String>,
    pub start_ns: UnixNanos,
    pub end_ns: UnixNanos,
    pub n_spans: u64,
    pub n_llm_spans: u64,
    pub n_errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: Option<Decimal>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
}

impl TraceSummary {
    pub fn duration_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    pub fn status(&self) -> &'static str {
        if self.n_errors > 0 { "error" } else { "ok" }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FacetQuery {
    pub time: TimeRange,
    /// Values per facet, at most.
    pub limit: u32,
}

/// Distinct values with their span counts, most frequent first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Facets {
    pub services: Vec<(String, u64)>,
    pub span_names: Vec<(String, u64)>,
    pub models: Vec<(String, u64)>,
    pub providers: Vec<(String, u64)>,
    pub operations: Vec<(String, u64)>,
    pub span_types: Vec<(String, u64)>,
    pub environments: Vec<(String, u64)>,
    pub tags: Vec<(String, u64)>,
}

/// What to group aggregate rows by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Name,
    SpanType,
    Service,
    Operation,
    Model,
    Provider,
    User,
    Attr(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Count,
    Errors,
    /// Duration percentiles in nanoseconds.
    P50,
    P95,
    P99,
    InputTokens,
    OutputTokens,
    Cost,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AggregateQuery {
    pub filter: Option<Expr>,
    pub time: TimeRange,
    pub group_by: Vec<GroupBy>,
    /// Bucket width for a time series; `None` for one row per group.
    pub bucket_ns: Option<u64>,
    pub metrics: Vec<Metric>,
    /// Groups to return at most (the largest by count).
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateRow {
    /// The group's values, in `group_by` order (`None` where the span has no value).
    pub group: Vec<Option<String>>,
    /// Start of the time bucket, when bucketed.
    pub bucket_start_ns: Option<UnixNanos>,
    /// Values in `metrics` order. Counts and token sums are integral, cost is USD, percentiles
    /// are nanoseconds.
    pub values: Vec<Option<Decimal>>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WriteStats {
    pub n_written: u64,
    /// Spans skipped because they were already stored.
    pub n_duplicates: u64,
}

/// A recorded eval run: the run without its cases (`summary`) and the whole results document
/// (`document`), both JSON the store keeps as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRunRecord {
    pub project: ProjectId,
    /// The run's id, unique per project.
    pub id: String,
    /// When the run was recorded (lists are newest first by this).
    pub recorded_ns: UnixNanos,
    pub summary: String,
    pub document: String,
}

/// A recorded eval run as listed: without its document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRunRow {
    pub id: String,
    pub recorded_ns: UnixNanos,
    pub summary: String,
}

/// An API key as stored: only its SHA-256 hash, never the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// A short public id, e.g. `key_01jd...`, for listing and revoking.
    pub id: String,
    pub project: ProjectId,
    pub name: String,
    /// Lowercase hex SHA-256 of the key.
    pub key_hash: String,
    /// The first characters of the key, for recognizing it (`lp_3f9a…`).
    pub prefix: String,
    pub created_ns: UnixNanos,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl Field {
    /// Span types are compared by their names.
    pub fn parse_span_type(text: &str) -> Option<SpanType> {
        SpanType::parse(text)
    }
}

/// A dataset version that holds items from some span (provenance, the span's side).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetRef {
    pub dataset: String,
    pub version: u32,
    pub item_id: String,
}

/// What a new dataset version changes relative to its base version.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewDatasetVersion {
    /// The version to start from; `None` starts from an empty dataset.
    pub base: Option<u32>,
    /// Items to add; an item whose id is already in the base replaces it (an edit).
    pub add: Vec<model::DatasetItem>,
    /// Item ids to remove from the base.
    pub remove: Vec<String>,
    /// Merge added items into base items with the same input fingerprint: the added item
    /// replaces the base item (the newer record wins).
    pub merge_duplicates: bool,
    /// The query the added items were selected with, recorded on the version.
    pub query: Option<String>,
    pub note: Option<String>,
    pub created_ns: UnixNanos,
}

/// How much of a span's record retention has left. Tiers only go up: a span is rewritten from
/// `Full` to `Structure` to `Fingerprints`, then deleted with its trace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RetentionTier {
    /// Everything as ingested (after the pipeline).
    #[default]
    Full,
    /// Message content removed (prompts, completions, tool arguments, document text); all
    /// structure (attributes, events, timing, tokens, cost) and the content fingerprints kept.
    Structure,
    /// Only the span's skeleton (ids, name, kind, timing, status, service, the view's structural
    /// fields) and the content fingerprints; other attributes, events and links removed.
    Fingerprints,
}

impl RetentionTier {
    /// The tier's number as backends store it (0, 1, 2).
    pub fn as_u8(self) -> u8 {
        match self {
            RetentionTier::Full => 0,
            RetentionTier::Structure => 1,
            RetentionTier::Fingerprints => 2,
        }
    }

    pub fn from_u8(n: u8) -> Option<RetentionTier> {
        match n {
            0 => Some(RetentionTier::Full),
            1 => Some(RetentionTier::Structure),
            2 => Some(RetentionTier::Fingerprints),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RetentionTier::Full => "full",
            RetentionTier::Structure => "structure",
            RetentionTier::Fingerprints => "fingerprints",
        }
    }
}
