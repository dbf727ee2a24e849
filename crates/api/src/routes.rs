//! The `/api/v1` handlers. Each one resolves the caller's [`Project`] first and passes it to
//! every store call.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use model::{ProjectId, TraceId};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde_json::Value;

use crate::dto;
use crate::params::{self, AggregateParams, RangeParams, SearchParams};
use crate::{ApiError, ApiState};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/traces", get(search_traces))
        .route("/api/v1/traces/{trace_id}", get(get_trace))
        .route("/api/v1/spans", get(search_spans))
        .route("/api/v1/sessions/{session_id}", get(get_session))
        .route("/api/v1/facets", get(facets))
        .route("/api/v1/aggregate", get(aggregate))
}

/// The caller's project, from its API key.
pub(crate) struct Project(pub ProjectId);

impl FromRequestParts<ApiState> for Project {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &ApiState,
    ) -> Result<Project, ApiError> {
        Ok(Project(state.auth.resolve_headers(&parts.headers).await?))
    }
}

/// Query strings that do not parse are answered in our error shape, not axum's plain text.
pub(crate) struct Params<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send> FromRequestParts<ApiState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &ApiState,
    ) -> Result<Params<T>, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

async fn get_trace(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(trace_id): Path<String>,
) -> Result<Json<dto::TraceTree>, ApiError> {
    let trace_id = TraceId::from_hex(trace_id.trim())
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let spans = state.store.get_trace(&project, trace_id).await?;
    if spans.is_empty() {
        return Err(ApiError::not_found(format!("trace {trace_id} not found")));
    }
    // Assembling a large trace is CPU work; keep it off the async workers.
    let mut tree = tokio::task::spawn_blocking(move || crate::tree::build(spans))
        .await
        .map_err(|_| ApiError::new(model::ErrorCode::Internal, "building the trace failed"))?;
    // Backends that keep no feedback answer with an error; the trace is still shown.
    tree.feedback = state.store.trace_feedback(&project, trace_id).await.unwrap_or_default();
    Ok(Json(tree))
}

async fn search_traces(
    State(state): State<ApiState>,
    Project(project): Project,
    Params(params): Params<SearchParams>,
) -> Result<Json<dto::TraceList>, ApiError> {
    let query = params.to_query()?;
    let page = state.store.search_traces(&project, &query).await?;
    Ok(Json(dto::TraceList {
        traces: page.items.into_iter().map(dto::TraceRow::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.0),
        total: page.total,
    }))
}

async fn search_spans(
    State(state): State<ApiState>,
    Project(project): Project,
    Params(params): Params<SearchParams>,
) -> Result<Json<dto::SpanList>, ApiError> {
    let query = params.to_query()?;
    let page = state.store.search_spans(&project, &query).await?;
    Ok(Json(dto::SpanList {
        spans: page.items.into_iter().map(dto::SpanRow::from).collect(),
        next_cursor: page.next_cursor.map(|c| c.0),
        total: page.total,
    }))
}

async fn get_session(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(session_id): Path<String>,
    Params(params): Params<RangeParams>,
) -> Result<Json<dto::Session>, ApiError> {
    let limit = params::limit(params.limit.or(Some(params::MAX_LIMIT)))?;
    let traces = state.store.session_traces(&project, &session_id, limit).await?;
    if traces.is_empty() {
        return Err(ApiError::not_found(format!("session {session_id:?} not found")));
    }
    let mut cost: Option<Decimal> = None;
    for trace in &traces {
        if let Some(c) = trace.cost {
            cost = Some(cost.unwrap_or(Decimal::ZERO) + c);
        }
    }
    Ok(Json(dto::Session {
        user_id: traces.iter().find_map(|t| t.user_id.clone()),
        n_traces: traces.len() as u64,
        start_ns: traces.iter().map(|t| t.start_ns).min().unwrap_or(0),
        end_ns: traces.iter().map(|t| t.end_ns).max().unwrap_or(0),
        rollup_input_tokens: traces.iter().map(|t| t.input_tokens).sum(),
        rollup_output_tokens: traces.iter().map(|t| t.output_tokens).sum(),
        cost,
        traces: traces.into_iter().map(dto::TraceRow::from).collect(),
        session_id,
    }))
}

async fn facets(
    State(state): State<ApiState>,
    Project(project): Project,
    Params(params): Params<RangeParams>,
) -> Result<Json<dto::Facets>, ApiError> {
    let query = store::FacetQuery {
        time: params::time_range(params.from.as_deref(), params.to.as_deref())?,
        limit: params::limit(params.limit.or(Some(100)))?,
    };
    Ok(Json(state.store.facets(&project, &query).await?.into()))
}

async fn aggregate(
    State(state): State<ApiState>,
    Project(project): Project,
    Params(params): Params<AggregateParams>,
) -> Result<Json<dto::Aggregate>, ApiError> {
    let group_by = params::group_by(params.group_by.as_deref())?;
    let metrics = params::metrics(params.metrics.as_deref())?;
    let query = store::AggregateQuery {
        filter: params::filter(params.q.as_deref())?,
        time: params::time_range(params.from.as_deref(), params.to.as_deref())?,
        group_by: group_by.iter().map(|(_, g)| g.clone()).collect(),
        bucket_ns: params::bucket(params.bucket.as_deref())?,
        metrics: metrics.iter().map(|(_, m)| *m).collect(),
        limit: params::limit(params.limit.or(Some(100)))?,
    };
    let rows = state.store.aggregate(&project, &query).await?;
    let rows = rows
        .into_iter()
        .map(|row| dto::AggregateRow {
            group: group_by
                .iter()
                .zip(row.group)
                .map(|((name, _), value)| (name.clone(), value.map_or(Value::Null, Value::String)))
                .collect(),
            bucket_start_ns: row.bucket_start_ns,
            values: metrics
                .iter()
                .zip(row.values)
                .map(|((name, metric), value)| (name.clone(), metric_value(*metric, value)))
                .collect(),
        })
        .collect();
    Ok(Json(dto::Aggregate {
        group_by: group_by.into_iter().map(|(name, _)| name).collect(),
        metrics: metrics.into_iter().map(|(name, _)| name).collect(),
        bucket_ns: query.bucket_ns,
        rows,
    }))
}

/// Counts, tokens and percentiles as JSON integers; cost as a decimal string.
fn metric_value(metric: store::Metric, value: Option<Decimal>) -> Value {
    let Some(value) = value else { return Value::Null };
    match metric {
        store::Metric::Cost => Value::String(value.normalize().to_string()),
        _ => value.round().to_u64().map_or(Value::Null, Value::from),
    }
}
