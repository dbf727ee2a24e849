//! Per-user erasure: `DELETE /api/v1/projects/{project}/users/{user}` erases every recorded
//! content of a user (their data keys are destroyed, so sealed content is unreadable in the
//! store and in every copy of it), and `GET /api/v1/projects/{project}/erasures` lists the
//! audit log. The project in the path must be the caller's project (from its API key).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::routing::{delete, get};
use axum::{Json, Router};
use model::{ErrorCode, ProjectId};
use serde::{Deserialize, Serialize};

use crate::{ApiError, ApiState};

/// The header `loupe erase` sends (`cli`), so the audit log tells the command line from other
/// API clients.
pub const ORIGIN_HEADER: &str = "x-loupe-origin";

/// What the erasure handlers share.
#[derive(Clone)]
pub struct ErasureState {
    pub api: ApiState,
    pub eraser: Arc<vault::Eraser>,
}

/// The erasure routes.
pub fn router(api: ApiState, eraser: Arc<vault::Eraser>) -> Router {
    Router::new()
        .route("/api/v1/projects/{project}/users/{user}", delete(erase_user))
        .route("/api/v1/projects/{project}/erasures", get(list_erasures))
        .with_state(ErasureState { api, eraser })
}

/// One erasure, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub project: String,
    /// Ids of the user's data keys (keyed hashes, never the user id).
    pub key_ids: Vec<String>,
    /// RFC 3339, UTC.
    pub time: String,
    pub time_unix_nano: u64,
    /// `api` or `cli` (`loupe erase`), with `:<key id>` when an API key was used.
    pub who: String,
    pub keys_destroyed: u64,
    pub traces_purged: u64,
    pub spans_purged: u64,
}

/// The audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErasureList {
    pub erasures: Vec<ErasureRecord>,
}

impl From<vault::Erasure> for ErasureRecord {
    fn from(erasure: vault::Erasure) -> ErasureRecord {
        ErasureRecord {
            project: erasure.project.to_string(),
            key_ids: erasure.key_ids,
            time: crate::time::format_rfc3339(erasure.time_ns),
            time_unix_nano: erasure.time_ns,
            who: erasure.who,
            keys_destroyed: erasure.keys_destroyed,
            traces_purged: erasure.traces_purged,
            spans_purged: erasure.spans_purged,
        }
    }
}

/// The caller, resolved from its API key: its project and how the audit log names it.
struct Caller {
    project: ProjectId,
    who: String,
}

impl FromRequestParts<ErasureState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &ErasureState,
    ) -> Result<Caller, ApiError> {
        let project = state.api.auth.resolve_headers(&parts.headers).await?;
        // `loupe erase` says so; any other client is `api`.
        let origin = match parts.headers.get(ORIGIN_HEADER).and_then(|v| v.to_str().ok()) {
            Some("cli") => "cli",
            _ => "api",
        };
        let who = match auth::key_from_headers(&parts.headers)? {
            // The first characters of the key's hash: enough to tell keys apart, nothing to
            // reuse.
            Some(key) => format!("{origin}:{}", &auth::hash_key(key)[..12]),
            None => origin.to_owned(),
        };
        Ok(Caller { project, who })
    }
}

fn check_project(caller: &Caller, project: &str) -> Result<(), ApiError> {
    if caller.project.as_str() != project {
        return Err(ApiError::not_found(format!(
            "project {project} not found: use an API key of that project"
        )));
    }
    Ok(())
}

fn vault_error(error: vault::Error) -> ApiError {
    match error {
        vault::Error::Store(error) => error.into(),
        other => {
            tracing::error!(error = %other, "erasure failed");
            ApiError::new(
                ErrorCode::Internal,
                "erasure failed; nothing was reported as erased, retry the request (the server log has the cause)",
            )
        }
    }
}

async fn erase_user(
    State(state): State<ErasureState>,
    caller: Caller,
    Path((project, user)): Path<(String, String)>,
) -> Result<Json<ErasureRecord>, ApiError> {
    check_project(&caller, &project)?;
    if user.trim().is_empty() {
        return Err(ApiError::bad_request("the user id is empty"));
    }
    let erasure =
        state.eraser.erase_user(&caller.project, &user, &caller.who).await.map_err(vault_error)?;
    Ok(Json(erasure.into()))
}

async fn list_erasures(
    State(state): State<ErasureState>,
    caller: Caller,
    Path(project): Path<String>,
) -> Result<Json<ErasureList>, ApiError> {
    check_project(&caller, &project)?;
    let eraser = state.eraser.clone();
    let erasures = tokio::task::spawn_blocking(move || eraser.erasures(&caller.project))
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "reading the erasure log failed"))?
        .map_err(vault_error)?;
    Ok(Json(ErasureList { erasures: erasures.into_iter().map(ErasureRecord::from).collect() }))
}
