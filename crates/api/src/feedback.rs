//! Feedback on the record: `POST /api/v1/feedback` (one entry or a batch), reading it back per
//! entry, trace and span, and the score configs that named scores are checked against.
//!
//! - `POST /api/v1/feedback`: a [`FeedbackIn`], a JSON list of them, or `{"feedback": [...]}`.
//!   The target is a `trace_id`, a `span_id` (the gateway's `x-loupe-span-id`), a provider
//!   `response_id` (`chatcmpl-…`, `msg_…`) or a `session_id`. A batch is checked as a whole
//!   first: one bad entry rejects the request and nothing is written. Feedback on a span that
//!   is not stored yet is accepted (`"status": "pending"`) and joins the span when it lands;
//!   after the grace period ([`FeedbackConfig`], `[feedback] grace_period`) without its span
//!   it is reported as `orphaned`.
//!   Giving an `id` edits that entry; the previous content goes to its history.
//! - `GET /api/v1/feedback/{id}`, `GET /api/v1/traces/{trace_id}/feedback` (the trace's and its
//!   spans' feedback), `GET /api/v1/spans/{span_id}/feedback` (with the datasets the span is in),
//!   `GET /api/v1/feedback/pending`.
//! - `GET /api/v1/score-configs`, `PUT` and `DELETE /api/v1/score-configs/{name}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use model::{
    ErrorCode, Feedback, FeedbackContent, FeedbackSource, FeedbackTarget, Message, ProjectId,
    Rating, ScoreConfig, ScoreKind, ScoreValue, SpanId, TraceId, UnixNanos,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::params::now_ns;
use crate::routes::Project;
use crate::{ApiError, ApiState};

/// How long feedback may wait for its span before it is reported as orphaned, by default.
pub const DEFAULT_GRACE_PERIOD_NS: UnixNanos = 10 * 60 * 1_000_000_000;

/// `[feedback]` in `loupe.toml`, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeedbackConfig {
    /// How long feedback on a span that is not stored yet waits for the span before it is
    /// reported as `orphaned`: a duration with a unit (`30s`, `10m`, `1h`). Default `10m`.
    pub grace_period: Option<RawDuration>,
}

/// A duration as written in the config: text with a unit, or a bare number (refused with a
/// hint, since its unit would be a guess).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    Text(String),
    Number(f64),
}

/// Feedback settings of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedbackConfig {
    /// How long feedback may wait for its span before it is reported as orphaned.
    /// Invariant: at least one second.
    pub grace_period_ns: UnixNanos,
}

impl Default for FeedbackConfig {
    fn default() -> FeedbackConfig {
        FeedbackConfig { grace_period_ns: DEFAULT_GRACE_PERIOD_NS }
    }
}

impl FeedbackConfig {
    /// Validates `[feedback]`; errors name the key and say what to write.
    pub fn from_raw(raw: &RawFeedbackConfig) -> Result<FeedbackConfig, String> {
        let hint = "use a duration with a unit, e.g. \"30s\", \"10m\" or \"1h\"";
        let grace_period_ns = match &raw.grace_period {
            None => DEFAULT_GRACE_PERIOD_NS,
            Some(RawDuration::Number(n)) => {
                return Err(format!("feedback.grace_period: {n} has no unit; {hint}"));
            }
            Some(RawDuration::Text(text)) => crate::time::parse_duration(text)
                .map_err(|error| format!("feedback.grace_period: {error}; {hint}"))?,
        };
        if grace_period_ns < 1_000_000_000 {
            return Err(format!("feedback.grace_period must be at least 1s; {hint}"));
        }
        Ok(FeedbackConfig { grace_period_ns })
    }
}

/// A duration as short text: `10m`, `90s`, `1h`.
fn format_duration(ns: UnixNanos) -> String {
    if !ns.is_multiple_of(1_000_000_000) {
        return format!("{}ms", ns / 1_000_000);
    }
    let secs = ns / 1_000_000_000;
    if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else if secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// Entries in one batch, at most.
pub const MAX_BATCH: usize = 1000;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/feedback", axum::routing::post(post_feedback))
        .route("/api/v1/feedback/pending", get(get_pending))
        .route("/api/v1/feedback/{id}", get(get_feedback).delete(delete_feedback))
        .route("/api/v1/traces/{trace_id}/feedback", get(get_trace_feedback))
        .route("/api/v1/spans/{span_id}/feedback", get(get_span_feedback))
        .route("/api/v1/score-configs", get(list_score_configs))
        .route(
            "/api/v1/score-configs/{name}",
            axum::routing::put(put_score_config).delete(delete_score_config),
        )
}

/// A correction: plain text (one assistant message) or messages in the normalized shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CorrectionIn {
    Text(String),
    Messages(Vec<Message>),
}

/// One feedback entry as clients send it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackIn {
    /// Edit this entry instead of creating one.
    pub id: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub response_id: Option<String>,
    pub session_id: Option<String>,
    pub rating: Option<Rating>,
    #[serde(default)]
    pub scores: BTreeMap<String, ScoreValue>,
    pub correction: Option<CorrectionIn>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub comment: Option<String>,
    pub source: Option<FeedbackSource>,
    pub author: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FeedbackBody {
    Batch { feedback: Vec<FeedbackIn> },
    List(Vec<FeedbackIn>),
    One(Box<FeedbackIn>),
}

/// Whether an entry's target is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackStatus {
    /// The target is stored.
    Attached,
    /// The span has not arrived yet; the entry joins it when it does.
    Pending,
    /// The span has not arrived within the grace period: the id is probably wrong.
    Orphaned,
}

/// One feedback entry as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedbackOut {
    pub status: FeedbackStatus,
    /// Why an orphaned entry is orphaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub feedback: Feedback,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedbackList {
    pub feedback: Vec<FeedbackOut>,
}

/// The feedback on one span and the dataset versions holding it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpanFeedback {
    pub span_id: String,
    pub feedback: Vec<FeedbackOut>,
    pub datasets: Vec<store::DatasetRef>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreConfigList {
    pub score_configs: Vec<ScoreConfig>,
}

fn new_feedback_id() -> String {
    format!("fb_{}", uuid::Uuid::now_v7().simple())
}

fn parse_id<T>(
    what: &str,
    text: &str,
    parse: fn(&str) -> Result<T, model::IdError>,
) -> Result<T, ApiError> {
    parse(text.trim()).map_err(|error| ApiError::bad_request(format!("{what}: {error}")))
}

/// Resolves the target of one entry; `None` in the status means the target is stored.
async fn resolve_target(
    state: &ApiState,
    project: &ProjectId,
    input: &FeedbackIn,
) -> Result<(FeedbackTarget, FeedbackStatus), ApiError> {
    let n_targets = [&input.trace_id, &input.span_id, &input.response_id, &input.session_id]
        .iter()
        .filter(|target| target.is_some())
        .count();
    let trace_id = input
        .trace_id
        .as_deref()
        .map(|t| parse_id("trace_id", t, TraceId::from_hex))
        .transpose()?;
    if let Some(span_id) = &input.span_id {
        let span_id = parse_id("span_id", span_id, SpanId::from_hex)?;
        if n_targets > 2 || (n_targets == 2 && trace_id.is_none()) {
            return Err(ApiError::bad_request(
                "give one target: span_id (optionally with its trace_id), trace_id, response_id or session_id",
            ));
        }
        let stored = span_is_stored(state, project, span_id, trace_id).await?;
        let status = if stored { FeedbackStatus::Attached } else { FeedbackStatus::Pending };
        return Ok((FeedbackTarget::Span { span_id, trace_id }, status));
    }
    if n_targets != 1 {
        return Err(ApiError::bad_request(
            "give one target: trace_id, span_id, response_id or session_id",
        ));
    }
    if let Some(trace_id) = trace_id {
        if state.store.get_trace(project, trace_id).await?.is_empty() {
            return Err(ApiError::not_found(format!(
                "trace {trace_id} not found: feedback on a whole trace needs the trace to be \
                 recorded first (right after a call, target its span_id, which may arrive later)"
            )));
        }
        return Ok((FeedbackTarget::Trace { trace_id }, FeedbackStatus::Attached));
    }
    if let Some(response_id) = &input.response_id {
        let query = store::SpanQuery {
            filter: Some(store::Expr::Cmp {
                field: store::Field::Attr("gen_ai.response.id".to_owned()),
                op: store::CmpOp::Eq,
                value: store::Value::Str(response_id.clone()),
            }),
            limit: 1,
            ..store::SpanQuery::default()
        };
        let page = state.store.search_spans(project, &query).await?;
        let Some(span) = page.items.first() else {
            return Err(ApiError::not_found(format!(
                "no call with response id {response_id:?} is recorded (yet); target the \
                 x-loupe-span-id the gateway returned instead, which may arrive later"
            )));
        };
        return Ok((
            FeedbackTarget::Span { span_id: span.raw.span_id, trace_id: Some(span.raw.trace_id) },
            FeedbackStatus::Attached,
        ));
    }
    let session_id = input.session_id.clone().unwrap_or_default();
    if session_id.trim().is_empty() {
        return Err(ApiError::bad_request("session_id must not be empty"));
    }
    Ok((FeedbackTarget::Session { session_id }, FeedbackStatus::Attached))
}

async fn span_is_stored(
    state: &ApiState,
    project: &ProjectId,
    span_id: SpanId,
    trace_id: Option<TraceId>,
) -> Result<bool, ApiError> {
    if let Some(trace_id) = trace_id {
        let spans = state.store.get_trace(project, trace_id).await?;
        return Ok(spans.iter().any(|span| span.raw.span_id == span_id));
    }
    let query = store::SpanQuery {
        filter: Some(store::Expr::Cmp {
            field: store::Field::SpanId,
            op: store::CmpOp::Eq,
            value: store::Value::Str(span_id.to_hex()),
        }),
        limit: 1,
        ..store::SpanQuery::default()
    };
    Ok(!state.store.search_spans(project, &query).await?.items.is_empty())
}

fn content_of(input: &FeedbackIn) -> FeedbackContent {
    FeedbackContent {
        rating: input.rating,
        scores: input.scores.clone(),
        correction: input.correction.clone().map(|correction| match correction {
            CorrectionIn::Text(text) => ::datasets::correction_from_text(&text),
            CorrectionIn::Messages(messages) => messages,
        }),
        tags: input.tags.clone(),
        comment: input.comment.clone(),
    }
}

fn datasets_error(error: ::datasets::Error) -> ApiError {
    ApiError::new(error.code(), error.to_string())
}

/// Checks and builds every entry of a batch; writes nothing.
async fn prepare(
    state: &ApiState,
    project: &ProjectId,
    inputs: Vec<FeedbackIn>,
) -> Result<Vec<FeedbackOut>, ApiError> {
    if inputs.is_empty() {
        return Err(ApiError::bad_request("no feedback given"));
    }
    if inputs.len() > MAX_BATCH {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("{} entries in one batch; at most {MAX_BATCH}", inputs.len()),
        ));
    }
    let configs = state.store.list_score_configs(project).await?;
    let now = now_ns();
    let n_inputs = inputs.len();
    let mut res = Vec::with_capacity(n_inputs);
    for (index, input) in inputs.into_iter().enumerate() {
        let at = |error: ApiError| {
            if n_inputs == 1 {
                error
            } else {
                ApiError::new(error.code, format!("entry {index}: {}", error.message))
            }
        };
        let content = content_of(&input);
        ::datasets::validate_feedback(&content, &configs).map_err(|e| at(datasets_error(e)))?;
        let source = input.source.unwrap_or_default();
        let feedback = match &input.id {
            Some(id) => {
                let Some(mut existing) = state.store.get_feedback(project, id).await? else {
                    return Err(at(ApiError::not_found(format!("feedback {id} not found"))));
                };
                ::datasets::apply_edit(&mut existing, content, source, input.author.clone(), now);
                existing
            }
            None => {
                let (target, _) = resolve_target(state, project, &input).await.map_err(at)?;
                Feedback {
                    id: new_feedback_id(),
                    project: project.clone(),
                    target,
                    content,
                    source,
                    author: input.author.clone(),
                    created_ns: now,
                    updated_ns: now,
                    history: Vec::new(),
                }
            }
        };
        res.push(feedback);
    }
    let mut out = Vec::with_capacity(res.len());
    for feedback in res {
        out.push(with_status(state, project, feedback, now).await?);
    }
    Ok(out)
}

async fn with_status(
    state: &ApiState,
    project: &ProjectId,
    feedback: Feedback,
    now: UnixNanos,
) -> Result<FeedbackOut, ApiError> {
    let status = match &feedback.target {
        FeedbackTarget::Span { span_id, trace_id } => {
            if span_is_stored(state, project, *span_id, *trace_id).await? {
                FeedbackStatus::Attached
            } else if now.saturating_sub(feedback.created_ns) > state.feedback.grace_period_ns {
                FeedbackStatus::Orphaned
            } else {
                FeedbackStatus::Pending
            }
        }
        _ => FeedbackStatus::Attached,
    };
    let message = (status == FeedbackStatus::Orphaned).then(|| {
        format!(
            "no span with id {} was recorded within {} of this feedback (the grace period); \
             check the id",
            match &feedback.target {
                FeedbackTarget::Span { span_id, .. } => span_id.to_hex(),
                _ => String::new(),
            },
            format_duration(state.feedback.grace_period_ns)
        )
    });
    Ok(FeedbackOut { status, message, feedback })
}

async fn post_feedback(
    State(state): State<ApiState>,
    Project(project): Project,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<FeedbackList>), ApiError> {
    let body: FeedbackBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid feedback: {error}")))?;
    let inputs = match body {
        FeedbackBody::Batch { feedback } => feedback,
        FeedbackBody::List(list) => list,
        FeedbackBody::One(one) => vec![*one],
    };
    let prepared = prepare(&state, &project, inputs).await?;
    // All or nothing: the store writes the batch in one transaction.
    let entries: Vec<Feedback> = prepared.iter().map(|out| out.feedback.clone()).collect();
    state.store.put_feedback_batch(&entries).await?;
    let any_pending = prepared.iter().any(|out| out.status != FeedbackStatus::Attached);
    let status = if any_pending { StatusCode::ACCEPTED } else { StatusCode::CREATED };
    Ok((status, Json(FeedbackList { feedback: prepared })))
}

async fn get_feedback(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> Result<Json<FeedbackOut>, ApiError> {
    let Some(feedback) = state.store.get_feedback(&project, &id).await? else {
        return Err(ApiError::not_found(format!("feedback {id} not found")));
    };
    Ok(Json(with_status(&state, &project, feedback, now_ns()).await?))
}

async fn delete_feedback(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_feedback(&project, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("feedback {id} not found")))
    }
}

async fn get_pending(
    State(state): State<ApiState>,
    Project(project): Project,
) -> Result<Json<FeedbackList>, ApiError> {
    let now = now_ns();
    let pending = state.store.pending_feedback(&project, now, 1000).await?;
    let mut res = Vec::with_capacity(pending.len());
    for feedback in pending {
        res.push(with_status(&state, &project, feedback, now).await?);
    }
    Ok(Json(FeedbackList { feedback: res }))
}

async fn get_trace_feedback(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(trace_id): Path<String>,
) -> Result<Json<FeedbackList>, ApiError> {
    let trace_id = parse_id("trace_id", &trace_id, TraceId::from_hex)?;
    let feedback = state.store.trace_feedback(&project, trace_id).await?;
    let feedback = feedback
        .into_iter()
        .map(|feedback| FeedbackOut { status: FeedbackStatus::Attached, message: None, feedback })
        .collect();
    Ok(Json(FeedbackList { feedback }))
}

async fn get_span_feedback(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(span_id): Path<String>,
) -> Result<Json<SpanFeedback>, ApiError> {
    let span_id = parse_id("span_id", &span_id, SpanId::from_hex)?;
    let target = FeedbackTarget::Span { span_id, trace_id: None };
    let now = now_ns();
    let mut feedback = Vec::new();
    for entry in state.store.list_feedback(&project, &target).await? {
        feedback.push(with_status(&state, &project, entry, now).await?);
    }
    let datasets = state.store.span_datasets(&project, span_id).await?;
    Ok(Json(SpanFeedback { span_id: span_id.to_hex(), feedback, datasets }))
}

async fn list_score_configs(
    State(state): State<ApiState>,
    Project(project): Project,
) -> Result<Json<ScoreConfigList>, ApiError> {
    Ok(Json(ScoreConfigList { score_configs: state.store.list_score_configs(&project).await? }))
}

/// The body of `PUT /api/v1/score-configs/{name}` (the name comes from the path).
#[derive(Debug, Deserialize)]
pub struct ScoreConfigIn {
    #[serde(flatten)]
    pub kind: ScoreKind,
    pub description: Option<String>,
}

async fn put_score_config(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ScoreConfig>, ApiError> {
    let input: ScoreConfigIn = serde_json::from_slice(&body)
        .map_err(|error| ApiError::bad_request(format!("invalid score config: {error}")))?;
    let config = ScoreConfig { name, kind: input.kind, description: input.description };
    ::datasets::validate_score_config(&config).map_err(datasets_error)?;
    state.store.put_score_config(&project, &config).await?;
    Ok(Json(config))
}

async fn delete_score_config(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_score_config(&project, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("score config {name:?} not found")))
    }
}
