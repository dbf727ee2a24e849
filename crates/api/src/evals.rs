//! Recorded eval runs over the API, per project:
//!
//! - `POST /api/v1/evals/runs`: records a results document as `loupe eval run` writes it
//!   (`datasets::eval_run::RunResults`); checked first (a clear 400 on a malformed or
//!   inconsistent document, 413 over [`MAX_RUN_BYTES`], 409 when the id is taken), answered
//!   with 201 and the id.
//! - `GET /api/v1/evals/runs?limit=`: the runs, newest recorded first, without their cases.
//! - `GET /api/v1/evals/runs/{id}`: one run's whole document.
//! - `GET /api/v1/evals/compare?base=ID&head=ID`: two runs joined by case id
//!   (`datasets::eval_run::compare`): counts of regressed, improved, unchanged, added and
//!   removed cases, then the cases, regressions first.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use datasets::eval_run::{self, Comparison, RunResults, RunSummary};
use model::{ErrorCode, ProjectId};
use serde::{Deserialize, Serialize};
use store::EvalRunRecord;

use crate::params::now_ns;
use crate::routes::{Params, Project};
use crate::{ApiError, ApiState};

/// The largest results document accepted.
pub const MAX_RUN_BYTES: usize = 32 * 1024 * 1024;
/// Runs listed when no limit is given, and the most one list returns.
const DEFAULT_LIST: u32 = 50;
const MAX_LIST: u32 = 500;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/evals/runs", get(list_runs).post(record_run))
        .route("/api/v1/evals/runs/{id}", get(get_run))
        .route("/api/v1/evals/compare", get(compare_runs))
}

/// The answer to a recorded run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedRun {
    pub id: String,
    /// The run's page in the console.
    pub url: String,
}

/// A listed run: its summary and when it was recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub recorded_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunRow>,
}

#[derive(Debug, Default, Deserialize)]
struct ListParams {
    limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
struct CompareParams {
    base: Option<String>,
    head: Option<String>,
}

async fn record_run(
    State(state): State<ApiState>,
    Project(project): Project,
    body: Body,
) -> Result<(StatusCode, Json<RecordedRun>), ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_RUN_BYTES).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the run is larger than {} MiB", MAX_RUN_BYTES / (1024 * 1024)),
        )
    })?;
    let run: RunResults = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::bad_request(format!(
            "expected the results JSON of `loupe eval run --output` ({{id, name, suite, model, \
             base_url, started_at, duration_ms, metadata, stats, cases}}): {error}"
        ))
    })?;
    run.validate().map_err(|reason| ApiError::bad_request(format!("invalid run: {reason}")))?;
    if state.store.get_eval_run(&project, &run.id).await?.is_some() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("a run with id {:?} is already recorded in this project", run.id),
        ));
    }
    let record = EvalRunRecord {
        project,
        id: run.id.clone(),
        recorded_ns: now_ns(),
        summary: to_json(&run.summary())?,
        document: to_json(&run)?,
    };
    state.store.put_eval_run(&record).await?;
    let url = format!("/evals/runs/{}", run.id);
    Ok((StatusCode::CREATED, Json(RecordedRun { id: run.id, url })))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, ApiError> {
    serde_json::to_string(value)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "encoding the run failed"))
}

async fn list_runs(
    State(state): State<ApiState>,
    Project(project): Project,
    Params(params): Params<ListParams>,
) -> Result<Json<RunList>, ApiError> {
    let limit = match params.limit {
        None => DEFAULT_LIST,
        Some(n) if (1..=MAX_LIST).contains(&n) => n,
        Some(_) => return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_LIST}"))),
    };
    let rows = state.store.list_eval_runs(&project, limit).await?;
    let mut runs = Vec::with_capacity(rows.len());
    for row in rows {
        let summary: RunSummary = serde_json::from_str(&row.summary).map_err(|error| {
            tracing::error!(id = %row.id, %error, "stored eval run summary does not parse");
            ApiError::new(ErrorCode::Internal, "a stored eval run could not be read")
        })?;
        runs.push(RunRow {
            summary,
            recorded_at: model::time::format_rfc3339_millis(row.recorded_ns),
        });
    }
    Ok(Json(RunList { runs }))
}

async fn load(state: &ApiState, project: &ProjectId, id: &str) -> Result<RunResults, ApiError> {
    let id = id.trim();
    if !eval_run::valid_id(id) {
        return Err(ApiError::bad_request(format!("invalid run id {id:?}")));
    }
    let record = state.store.get_eval_run(project, id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "eval run {id:?} not found in this project; list runs with GET /api/v1/evals/runs"
        ))
    })?;
    serde_json::from_str(&record.document).map_err(|error| {
        tracing::error!(%id, %error, "stored eval run does not parse");
        ApiError::new(ErrorCode::Internal, "the stored eval run could not be read")
    })
}

async fn get_run(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> Result<Json<RunResults>, ApiError> {
    Ok(Json(load(&state, &project, &id).await?))
}

async fn compare_runs(
    State(state): State<ApiState>,
    Project(project): Project,
    Params(params): Params<CompareParams>,
) -> Result<Json<Comparison>, ApiError> {
    let (Some(base), Some(head)) = (params.base, params.head) else {
        return Err(ApiError::bad_request(
            "give two run ids: /api/v1/evals/compare?base=ID&head=ID",
        ));
    };
    let base = load(&state, &project, &base).await?;
    let head = load(&state, &project, &head).await?;
    // Joining large runs is CPU work; keep it off the async workers.
    let comparison = tokio::task::spawn_blocking(move || eval_run::compare(&base, &head))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "comparing the runs failed"))?;
    Ok(Json(comparison))
}
