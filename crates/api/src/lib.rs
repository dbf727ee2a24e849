//! The query API under `/api/v1`: one trace as a tree with roll-ups, trace and span search,
//! sessions, facets and aggregates, feedback, datasets, settings and recorded eval runs
//! ([`evals`]). JSON only; the wire types live in [`dto`] and are this crate's own (the store's
//! types never reach the wire directly; eval runs travel as `loupe eval run` writes them).
//!
//! **API Boundary:** [`router`] with an [`ApiState`]. Every handler resolves the caller's project
//! from its API key first (see `auth`), and every store call is scoped to that project, so one
//! project can never read another's data.
//!
//! Errors are `{"error":{"code":"bad_request","message":"…"}}` with the HTTP status of the code
//! ([`ApiError`]). Documented with examples in `docs/api.md`.

pub mod console;
pub mod datasets;
pub mod dto;
pub mod erasure;
mod error;
pub mod evals;
pub mod feedback;
mod params;
mod routes;
pub mod settings;
pub mod time;
pub mod tree;

use std::sync::Arc;

use axum::Router;
use store::Store;

pub use error::ApiError;

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub auth: auth::Auth,
    /// The effective pipeline settings, without secrets, for `GET /api/v1/settings` (see
    /// [`settings`]); `Null` when the server has none to show.
    pub settings: Arc<serde_json::Value>,
    /// Feedback settings (the grace period of feedback sent before its span).
    pub feedback: feedback::FeedbackConfig,
}

/// The `/api/v1` routes.
pub fn router(state: ApiState) -> Router {
    routes::router()
        .merge(feedback::router())
        .merge(datasets::router())
        .merge(settings::router())
        .merge(evals::router())
        .with_state(state)
        .merge(console::router())
}
