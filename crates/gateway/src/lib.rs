//! The recording gateway: OpenAI- and Anthropic-compatible endpoints that forward each call to a
//! configured route (an upstream provider) and record it as an OTel GenAI span.
//!
//! A client changes its base URL to Loupe's and keeps working: requests go upstream with the
//! caller's or the route's key, responses come back unchanged (streams chunk by chunk as they
//! arrive), and every call becomes a span with its messages, parameters, usage and timing.
//!
//! **Architecture Invariant:** recording is off the request path. A call hands its spans to a
//! bounded queue and never waits for the store; when the queue is full, spans spill to a local
//! file and are replayed later; when both are full they are dropped, counted and logged.
//!
//! **Architecture Invariant:** credentials are never recorded. Request headers are not part of
//! the span; only bodies and `x-loupe-*` metadata are.

mod anthropic;
mod config;
mod context;
mod genai;
mod metrics;
mod openai;
mod proxy;
mod recorder;
mod sse;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use model::ErrorCode;

pub use config::{
    GatewayConfig, RawGatewayConfig, RawRecordingConfig, RawRouteConfig, RecordingConfig,
    RouteConfig, RouteKind,
};
pub use metrics::{GatewayMetrics, RouteLabels};
pub use recorder::{Record, RecordSink};

use proxy::{Endpoint, Inner};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid gateway config: {0}")]
    Config(String),
    #[error("unknown route {name:?}; configured routes: {routes}")]
    UnknownRoute { name: String, routes: String },
    #[error("route {route:?} is of kind {kind}; this endpoint needs a route of kind {needed}")]
    WrongRouteKind { route: String, kind: &'static str, needed: &'static str },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("upstream unavailable: {0}")]
    Upstream(String),
    #[error("upstream timed out on route {0:?}")]
    Timeout(String),
    #[error("cannot start the gateway")]
    Start(#[source] std::io::Error),
    #[error("{0}")]
    Auth(#[from] auth::Error),
    #[error(
        "a Loupe api key is required: send it in `x-loupe-api-key` (the provider key stays in \
         `Authorization` / `x-api-key`), or as the client's api key on a route with a provider \
         key of its own"
    )]
    MissingLoupeKey,
    #[error(
        "the api key belongs to project {key_project:?} but x-loupe-project names {requested:?}; \
         use a key of project {requested:?} or drop the x-loupe-project header"
    )]
    WrongProject { key_project: String, requested: String },
    #[error(
        "route {route:?} has no provider key of its own, so the provider key must be sent in \
         `{header}`; send the Loupe key (lp_...) in `x-loupe-api-key` instead"
    )]
    LoupeKeyInProviderHeader { route: String, header: &'static str },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Config(_)
            | Error::UnknownRoute { .. }
            | Error::WrongRouteKind { .. }
            | Error::InvalidRequest(_) => ErrorCode::BadRequest,
            Error::Upstream(_) | Error::Timeout(_) => ErrorCode::Unavailable,
            Error::Start(_) => ErrorCode::Internal,
            Error::Auth(error) => error.code(),
            Error::WrongProject { .. }
            | Error::LoupeKeyInProviderHeader { .. }
            | Error::MissingLoupeKey => ErrorCode::Unauthorized,
        }
    }

    /// The HTTP status the client receives: the code's status, except 403 for a key used for
    /// another project (`ErrorCode` has no code of its own for "forbidden").
    pub fn http_status(&self) -> u16 {
        match self {
            Error::WrongProject { .. } => 403,
            _ => self.code().http_status(),
        }
    }

    /// The `type` of the provider-shaped error body the client receives.
    fn error_type(&self) -> &'static str {
        match self {
            Error::Config(_)
            | Error::UnknownRoute { .. }
            | Error::WrongRouteKind { .. }
            | Error::InvalidRequest(_) => "invalid_request_error",
            Error::Upstream(_) => "upstream_error",
            Error::Timeout(_) => "timeout_error",
            Error::Start(_) => "api_error",
            Error::Auth(error) if error.code() == ErrorCode::Unauthorized => "authentication_error",
            Error::Auth(_) => "api_error",
            Error::WrongProject { .. } => "permission_error",
            Error::LoupeKeyInProviderHeader { .. } | Error::MissingLoupeKey => {
                "authentication_error"
            }
        }
    }
}

/// The gateway: its routes, HTTP client, recorder and metrics. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Starts the recorder (a recording thread and a spill thread). Spans are submitted to
    /// `recorder_sink`; `spill_dir` holds spans waiting for a slow or failed store (replayed at
    /// start and whenever the pipeline accepts them again). `auth` resolves each call's project
    /// from the caller's Loupe key (see `docs/gateway.md`, "Projects and Loupe keys").
    pub fn new(
        config: GatewayConfig,
        auth: auth::Auth,
        recorder_sink: pipeline::Pipeline,
        spill_dir: PathBuf,
    ) -> Result<Gateway, Error> {
        Gateway::with_sink(config, auth, Arc::new(recorder_sink), spill_dir)
    }

    /// Like [`Gateway::new`], recording into any sink (tests capture spans this way).
    pub fn with_sink(
        config: GatewayConfig,
        auth: auth::Auth,
        sink: Arc<dyn RecordSink>,
        spill_dir: PathBuf,
    ) -> Result<Gateway, Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let metrics = GatewayMetrics::default();
        let recorder =
            recorder::Recorder::start(&config.recording, sink, spill_dir, metrics.clone())
                .map_err(Error::Start)?;
        let routes = config
            .routes
            .iter()
            .map(|(name, route)| (name.clone(), Arc::new(route.clone())))
            .collect();
        Ok(Gateway { inner: Arc::new(Inner { config, routes, auth, client, recorder, metrics }) })
    }

    /// The gateway endpoints, to merge into the server's router. Empty when disabled.
    pub fn router(&self) -> Router {
        if !self.inner.config.enabled {
            return Router::new();
        }
        let endpoint = |endpoint: Endpoint| {
            post(
                move |State(inner): State<Arc<Inner>>,
                      headers: http::HeaderMap,
                      body: bytes::Bytes| {
                    proxy::handle(inner, endpoint, headers, body)
                },
            )
        };
        Router::new()
            .route("/v1/chat/completions", endpoint(Endpoint::ChatCompletions))
            .route("/v1/embeddings", endpoint(Endpoint::Embeddings))
            .route("/v1/responses", endpoint(Endpoint::Responses))
            .route("/v1/messages", endpoint(Endpoint::Messages))
            .route(
                "/v1/models",
                get(|State(inner): State<Arc<Inner>>, headers: http::HeaderMap| {
                    proxy::models(inner, headers)
                }),
            )
            .layer(DefaultBodyLimit::max(self.inner.config.max_request_bytes))
            .with_state(self.inner.clone())
    }

    /// Handles to the gateway's metrics (register them with [`GatewayMetrics::register`]).
    pub fn metrics(&self) -> GatewayMetrics {
        self.inner.metrics.clone()
    }

    /// Writes the recordings still queued (spilling what the pipeline refuses) and stops the
    /// recorder. Call after the HTTP server has stopped and before the pipeline shuts down.
    pub async fn shutdown(&self) {
        self.inner.recorder.shutdown().await;
    }
}
