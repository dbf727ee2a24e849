//! The project's settings over the API: the effective pipeline configuration (read-only) and
//! the project's API keys.
//!
//! - `GET /api/v1/settings`: the price table, content policy, redaction rules, sampling policies
//!   and retention tiers the server runs with, as the caller's project sees them. The server
//!   hands them over at start ([`ApiState::settings`]) already stripped of secrets: no redaction
//!   or hash keys, no custom regexes' text, exact-value lists only as counts. A section with
//!   per-project overrides lists them under `projects`; this endpoint replaces that map with the
//!   caller's own entry, `project_overrides`, so no project sees another's settings.
//! - `GET /api/v1/keys`: the project's stored keys (id, name, prefix, created; never the key).
//! - `POST /api/v1/keys` `{name}`: a new key for the caller's project; the key is in this answer
//!   only, and only its hash is stored.
//! - `DELETE /api/v1/keys/{id}`: revokes a key (servers stop accepting it within 10 seconds).
//!
//! Keys configured in `loupe.toml` are not listed: they live in the config file and are changed
//! there.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use model::{ErrorCode, UnixNanos};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::params::now_ns;
use crate::routes::Project;
use crate::{ApiError, ApiState};

/// Longest key name accepted, in characters.
const MAX_KEY_NAME: usize = 100;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/settings", get(get_settings))
        .route("/api/v1/keys", get(list_keys).post(create_key))
        .route("/api/v1/keys/{id}", delete(revoke_key))
}

/// One stored API key as listed: never the key or its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyOut {
    pub id: String,
    pub name: String,
    /// The first characters of the key (`lp_3f9…`), to recognize it.
    pub prefix: String,
    pub created_ns: UnixNanos,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<KeyOut>,
}

/// A key just created: the only time the key itself is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedKey {
    pub key: String,
    #[serde(flatten)]
    pub record: KeyOut,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKeyIn {
    name: String,
}

async fn get_settings(
    State(state): State<ApiState>,
    Project(project): Project,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(for_project(&state.settings, project.as_str())))
}

/// The settings document as `project` sees them: every section's `projects` map becomes that
/// project's entry (`project_overrides`, absent when it has none).
pub fn for_project(settings: &Value, project: &str) -> Value {
    let mut res = Map::new();
    res.insert("project".to_owned(), Value::String(project.to_owned()));
    if let Value::Object(sections) = settings {
        for (name, section) in sections {
            let mut section = section.clone();
            if let Value::Object(fields) = &mut section
                && let Some(Value::Object(mut projects)) = fields.remove("projects")
                && let Some(own) = projects.remove(project)
            {
                fields.insert("project_overrides".to_owned(), own);
            }
            res.insert(name.clone(), section);
        }
    }
    Value::Object(res)
}

async fn list_keys(
    State(state): State<ApiState>,
    Project(project): Project,
) -> Result<Json<KeyList>, ApiError> {
    let mut keys: Vec<KeyOut> = state
        .store
        .list_api_keys(&project)
        .await?
        .into_iter()
        .map(|record| KeyOut {
            id: record.id,
            name: record.name,
            prefix: record.prefix,
            created_ns: record.created_ns,
        })
        .collect();
    keys.sort_by(|a, b| b.created_ns.cmp(&a.created_ns).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(KeyList { keys }))
}

async fn create_key(
    State(state): State<ApiState>,
    Project(project): Project,
    body: Bytes,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let input: CreateKeyIn = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(format!("expected a JSON body like {{\"name\": \"ci\"}}: {error}"))
    })?;
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME {
        return Err(ApiError::bad_request(format!(
            "give the key a name of 1 to {MAX_KEY_NAME} characters, to recognize it by"
        )));
    }
    let (key, record) = auth::new_key(project, name, now_ns())
        .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
    state.store.put_api_key(&record).await?;
    let record = KeyOut {
        id: record.id,
        name: record.name,
        prefix: record.prefix,
        created_ns: record.created_ns,
    };
    Ok((StatusCode::CREATED, Json(CreatedKey { key, record })))
}

async fn revoke_key(
    State(state): State<ApiState>,
    Project(project): Project,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_api_key(&project, id.trim()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "key {id:?} not found in this project; list the keys with GET /api/v1/keys"
        )))
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use serde_json::json;

    use super::for_project;

    #[test]
    fn each_project_sees_only_its_own_overrides() {
        let settings = json!({
            "content": {"record": true, "projects": {"billing": {"record": false}, "other": {"record": true}}},
            "price": {"models": []},
        });
        let billing = for_project(&settings, "billing");
        expect![[r#"{"project":"billing","content":{"record":true,"project_overrides":{"record":false}},"price":{"models":[]}}"#]]
            .assert_eq(&billing.to_string());
        let plain = for_project(&settings, "default");
        expect![[r#"{"project":"default","content":{"record":true},"price":{"models":[]}}"#]]
            .assert_eq(&plain.to_string());
        assert_eq!(for_project(&serde_json::Value::Null, "p").to_string(), r#"{"project":"p"}"#);
    }
}
