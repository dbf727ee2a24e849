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
        }
    }
}

/// The gateway: its routes, HTTP client, recorder and metrics. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl Gateway {
    /// Starts the recorder (a tokio task and a spill thread) on the current runtime. Spans are
    /// submitted to `recorder_sink`; `spill_dir` holds spans waiting for a slow or failed store
    /// (replayed at start and whenever the pipeline accepts them again).
    pub fn new(
        config: GatewayConfig,
        recorder_sink: pipeline::Pipeline,
        spill_dir: PathBuf,
    ) -> Result<Gateway, Error> {
        Gateway::with_sink(config, Arc::new(recorder_sink), spill_dir)
    }

    /// Like [`Gateway::new`], recording into any sink (tests capture spans this way).
    pub fn with_sink(
        config: GatewayConfig,
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
        Ok(Gateway { inner: Arc::new(Inner { config, client, recorder, metrics }) })
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
