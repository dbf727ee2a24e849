//! OTLP receivers: [`otlp_http`] (axum, `POST /v1/traces` and `/v1/logs`) and [`otlp_grpc`]
//! (tonic, `TraceService/Export` and `LogsService/Export`). Each one authenticates the request,
//! reads the body under a size cap (compressed and decompressed) and a global in-flight byte
//! budget shared by both transports, decodes it with `otlp`, hands the valid spans (or the GenAI
//! events of log records) to the pipeline and answers as the OTLP spec asks: a partial success
//! when some spans were rejected or log records dropped, a retryable status with `Retry-After`
//! (gRPC: `RetryInfo`) when the write queue or the byte budget is full.
//!
//! **API Boundary:** [`IngestState`] is all a receiver needs; `app` builds it once and mounts
//! [`otlp_http::router`] and [`otlp_grpc::server`].

pub mod metrics;
pub mod otlp_grpc;
pub mod otlp_http;

use std::sync::Arc;

use model::ErrorCode;
use pipeline::Pipeline;

pub use metrics::IngestMetrics;

/// The OTLP default request size limit (after decompression).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Validated receiver settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The largest request accepted, compressed and decompressed (HTTP 413 / gRPC
    /// `RESOURCE_EXHAUSTED` past it).
    pub max_body_bytes: usize,
    /// The most request bytes being read, decompressed or decoded at once, over all requests.
    /// Past it, new requests get a retryable 503 / `UNAVAILABLE`, so memory stays bounded.
    pub max_inflight_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inflight_bytes: 4 * DEFAULT_MAX_BODY_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unsupported content type {0:?}: send application/x-protobuf or application/json")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: send gzip or no compression")]
    UnsupportedContentEncoding(String),
    #[error("gzip body could not be decompressed: {0}")]
    Gzip(#[source] std::io::Error),
    #[error("request body could not be read: {0}")]
    Body(String),
    #[error(transparent)]
    Decode(#[from] otlp::Error),
    #[error(transparent)]
    Auth(#[from] auth::Error),
    #[error(transparent)]
    Pipeline(#[from] pipeline::Error),
    #[error("too many request bytes in flight; retry after {retry_after_secs}s")]
    Busy { retry_after_secs: u32 },
    #[error(
        "the {signal} signal is not supported: loupe accepts traces (POST /v1/traces, TraceService/Export) and GenAI events as logs (POST /v1/logs, LogsService/Export)"
    )]
    SignalNotSupported { signal: &'static str },
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            Error::UnsupportedContentType(_) | Error::UnsupportedContentEncoding(_) => {
                ErrorCode::UnsupportedMediaType
            }
            Error::Gzip(_) | Error::Body(_) => ErrorCode::BadRequest,
            Error::Decode(error) => error.code(),
            Error::Auth(error) => error.code(),
            Error::Pipeline(error) => error.code(),
            Error::Busy { .. } => ErrorCode::Unavailable,
            Error::SignalNotSupported { .. } => ErrorCode::NotImplemented,
        }
    }

    /// Seconds a client should wait before retrying, for retryable errors.
    pub fn retry_after_secs(&self) -> Option<u32> {
        match self {
            Error::Pipeline(error) => error.retry_after_secs(),
            Error::Busy { retry_after_secs } => Some(*retry_after_secs),
            Error::Auth(error) if error.code().is_retryable() => Some(5),
            _ => None,
        }
    }

    /// A short, stable name for `/metrics` labels.
    pub fn outcome(&self) -> &'static str {
        match self.code() {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::PayloadTooLarge => "too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::TooManyRequests | ErrorCode::Unavailable => "overloaded",
            ErrorCode::NotImplemented => "not_implemented",
            ErrorCode::NotFound | ErrorCode::Conflict | ErrorCode::Internal => "error",
        }
    }
}

/// The `google.rpc.Code` for an error code: the one place that mapping is written for OTLP
/// (the gRPC status, and the `code` field of HTTP error bodies).
pub fn rpc_code(code: ErrorCode) -> tonic::Code {
    match code {
        ErrorCode::BadRequest => tonic::Code::InvalidArgument,
        ErrorCode::Unauthorized => tonic::Code::Unauthenticated,
        ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::Conflict => tonic::Code::AlreadyExists,
        // Not retryable without RetryInfo, which is what the spec asks for an over-limit request.
        ErrorCode::PayloadTooLarge => tonic::Code::ResourceExhausted,
        ErrorCode::UnsupportedMediaType => tonic::Code::InvalidArgument,
        ErrorCode::TooManyRequests | ErrorCode::Unavailable => tonic::Code::Unavailable,
        ErrorCode::Internal => tonic::Code::Internal,
        ErrorCode::NotImplemented => tonic::Code::Unimplemented,
    }
}

/// Bytes of the in-flight budget held by one request; given back on drop.
pub(crate) struct Reservation {
    _permit: tokio::sync::OwnedSemaphorePermit,
    n_bytes: u32,
    metrics: Arc<IngestMetrics>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.metrics.inflight_bytes_add(-i64::from(self.n_bytes));
    }
}

/// Everything a receiver needs. Cheap to clone.
#[derive(Clone)]
pub struct IngestState {
    pub pipeline: Pipeline,
    pub auth: auth::Auth,
    pub config: Arc<IngestConfig>,
    pub metrics: Arc<IngestMetrics>,
    /// Bytes of request bodies being processed, bounded by `max_inflight_bytes`: one budget for
    /// both transports and all connections.
    inflight: Arc<tokio::sync::Semaphore>,
}

impl IngestState {
    pub fn new(
        pipeline: Pipeline,
        auth: auth::Auth,
        config: IngestConfig,
        metrics: Arc<IngestMetrics>,
    ) -> IngestState {
        let inflight = tokio::sync::Semaphore::new(config.max_inflight_bytes);
        IngestState {
            pipeline,
            auth,
            config: Arc::new(config),
            metrics,
            inflight: Arc::new(inflight),
        }
    }

    /// Reserves `n_bytes` of the in-flight budget, or fails at once with [`Error::Busy`]. The
    /// budget is one for all requests of both transports; the bytes go back when the returned
    /// reservation is dropped.
    fn reserve(&self, n_bytes: usize) -> Result<Reservation, Error> {
        let n_bytes = n_bytes.clamp(1, self.config.max_inflight_bytes);
        let n_permits = u32::try_from(n_bytes).unwrap_or(u32::MAX);
        match self.inflight.clone().try_acquire_many_owned(n_permits) {
            Ok(permit) => {
                self.metrics.inflight_bytes_add(i64::from(n_permits));
                Ok(Reservation {
                    _permit: permit,
                    n_bytes: n_permits,
                    metrics: self.metrics.clone(),
                })
            }
            Err(_) => {
                self.metrics.busy();
                Err(Error::Busy { retry_after_secs: 1 })
            }
        }
    }

    /// Bytes of the in-flight budget in use now.
    pub fn inflight_bytes(&self) -> usize {
        self.config.max_inflight_bytes - self.inflight.available_permits()
    }

    /// Hands the decoded spans to the pipeline and waits until they are durable.
    async fn submit(
        &self,
        transport: &'static str,
        project: model::ProjectId,
        decoded: otlp::Decoded,
    ) -> Result<Vec<otlp::Rejected>, Error> {
        let otlp::Decoded { spans, rejected } = decoded;
        let n_spans = spans.len();
        if !rejected.is_empty() {
            tracing::debug!(n_rejected = rejected.len(), reason = %rejected[0].reason, "rejected malformed spans");
        }
        self.metrics.spans_rejected(transport, "invalid_span", rejected.len());
        if n_spans > 0 {
            let batch = pipeline::Batch { project, spans };
            if let Err(error) = self.pipeline.submit(batch).await {
                let reason = match error.code() {
                    ErrorCode::Unavailable | ErrorCode::TooManyRequests => "overloaded",
                    ErrorCode::PayloadTooLarge => "too_large",
                    _ => "store_error",
                };
                self.metrics.spans_rejected(transport, reason, n_spans);
                return Err(error.into());
            }
        }
        self.metrics.spans_accepted(transport, n_spans);
        Ok(rejected)
    }

    /// Hands the GenAI events of a logs request to the pipeline and waits until they are
    /// durable; returns the records dropped (counted in `/metrics` by reason).
    async fn submit_logs(
        &self,
        transport: &'static str,
        project: model::ProjectId,
        decoded: otlp::DecodedLogs,
    ) -> Result<Vec<otlp::DroppedLog>, Error> {
        let otlp::DecodedLogs { events, dropped } = decoded;
        for it in &dropped {
            self.metrics.logs_dropped(transport, it.reason.as_str(), 1);
        }
        if let Some(first) = dropped.first() {
            tracing::debug!(
                n_dropped = dropped.len(),
                reason = first.reason.as_str(),
                "dropped log records"
            );
        }
        let n_events = events.len();
        if n_events > 0 {
            let batch = pipeline::EventBatch { project, events };
            if let Err(error) = self.pipeline.submit_events(batch).await {
                let reason = match error.code() {
                    ErrorCode::Unavailable | ErrorCode::TooManyRequests => "overloaded",
                    ErrorCode::PayloadTooLarge => "too_large",
                    _ => "store_error",
                };
                self.metrics.logs_dropped(transport, reason, n_events);
                return Err(error.into());
            }
        }
        self.metrics.events_accepted(transport, n_events);
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests;
