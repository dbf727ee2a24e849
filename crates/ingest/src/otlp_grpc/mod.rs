//! The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export` and
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export` (GenAI events, see
//! `otlp::decode_logs`), gzip accepted, the message size limit raised to the configured body
//! limit (tonic's default is 4 MiB). Statuses: `UNAUTHENTICATED` for a wrong key,
//! `INVALID_ARGUMENT` for an undecodable message (tonic's own decoder), `RESOURCE_EXHAUSTED` over
//! the limit, `UNAVAILABLE` with a `google.rpc.RetryInfo` detail (and `retry-after` metadata)
//! when the write queue or the in-flight byte budget is full (see [`budget`]), and a response
//! with `partial_success` when some spans were rejected or log records dropped.

mod budget;

use std::time::Instant;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::metadata::MetadataMap;

pub use budget::{InflightBudget, InflightBudgetLayer};

use crate::{Error, IngestState, Reservation, rpc_code};

const TRANSPORT: &str = "grpc";

/// The tonic service, ready to add to a `tonic::transport::Server`.
pub fn server(state: IngestState) -> TraceServiceServer<GrpcReceiver> {
    let limit = state.config.max_body_bytes;
    TraceServiceServer::new(GrpcReceiver { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

/// The logs service, ready to add to the same server.
pub fn logs_server(state: IngestState) -> LogsServiceServer<GrpcReceiver> {
    let limit = state.config.max_body_bytes;
    LogsServiceServer::new(GrpcReceiver { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

/// The gRPC status for an error: the code from its error code, and for retryable errors a
/// `google.rpc.RetryInfo` detail and `retry-after` metadata with the delay.
pub(crate) fn status_of(error: &Error) -> tonic::Status {
    let code = rpc_code(error.code());
    let message = error.to_string();
    let mut status = match error.retry_after_secs() {
        Some(secs) => {
            let details = otlp::encode_grpc_status_details(code as i32, &message, Some(secs));
            tonic::Status::with_details(code, message, details.into())
        }
        None => tonic::Status::new(code, message),
    };
    if let Some(secs) = error.retry_after_secs()
        && let Ok(value) = secs.to_string().parse()
    {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// tonic answers a message over the size limit with `OUT_OF_RANGE`, which OTLP exporters retry;
/// the spec asks for `RESOURCE_EXHAUSTED` (not retried without `RetryInfo`). Add this to the
/// server's layers to rewrite that status.
pub fn too_large_is_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let out_of_range = (tonic::Code::OutOfRange as i32).to_string();
    let is_out_of_range = response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes());
    if is_out_of_range {
        let code = (tonic::Code::ResourceExhausted as i32).to_string();
        if let Ok(value) = http::HeaderValue::from_str(&code) {
            response.headers_mut().insert("grpc-status", value);
        }
    }
    response
}

pub struct GrpcReceiver {
    state: IngestState,
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let started = Instant::now();
        let res = self.handle(request).await;
        let seconds = started.elapsed().as_secs_f64();
        match res {
            Ok(rejected) => {
                let outcome = if rejected.is_empty() { "ok" } else { "partial" };
                self.state.metrics.request(TRANSPORT, outcome, seconds);
                let partial_success = (!rejected.is_empty()).then(|| ExportTracePartialSuccess {
                    rejected_spans: rejected.len() as i64,
                    error_message: otlp::partial_success_message(&rejected),
                });
                Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success }))
            }
            Err(error) => {
                self.state.metrics.request(TRANSPORT, error.outcome(), seconds);
                tracing::debug!(error = %error, "otlp grpc export refused");
                Err(status_of(&error))
            }
        }
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let started = Instant::now();
        let res = self.handle_logs(request).await;
        let seconds = started.elapsed().as_secs_f64();
        match res {
            Ok((n_total, dropped)) => {
                let outcome = if dropped.is_empty() { "ok" } else { "partial" };
                self.state.metrics.request(TRANSPORT, outcome, seconds);
                let partial_success = otlp::logs_partial_success(n_total, &dropped);
                Ok(tonic::Response::new(ExportLogsServiceResponse { partial_success }))
            }
            Err(error) => {
                self.state.metrics.request(TRANSPORT, error.outcome(), seconds);
                tracing::debug!(error = %error, "otlp grpc logs export refused");
                Err(status_of(&error))
            }
        }
    }
}

impl GrpcReceiver {
    /// Authenticates the request and takes over the budget its body reserved (see [`budget`]);
    /// a compressed message also reserves its decompressed size.
    async fn accept<T: Message>(
        &self,
        request: tonic::Request<T>,
    ) -> Result<(model::ProjectId, T, budget::HeldBudget, Option<Reservation>), Error> {
        let held = request.extensions().get::<budget::HeldBudget>().cloned().unwrap_or_default();
        let key = key_from_metadata(request.metadata())?;
        let project = self.state.auth.resolve(key.as_deref()).await?;
        let compressed = request.metadata().get("grpc-encoding").is_some_and(|v| v != "identity");
        let message = request.into_inner();
        let inflated = match compressed {
            true => Some(self.state.reserve(message.encoded_len())?),
            false => None,
        };
        Ok((project, message, held, inflated))
    }

    async fn handle_logs(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<(usize, Vec<otlp::DroppedLog>), Error> {
        let (project, message, _held, _inflated) = self.accept(request).await?;
        let n_records: usize = message
            .resource_logs
            .iter()
            .flat_map(|resource_logs| &resource_logs.scope_logs)
            .map(|scope_logs| scope_logs.log_records.len())
            .sum();
        let decoded = if n_records > 256 {
            tokio::task::spawn_blocking(move || otlp::logs_from_request(message))
                .await
                .map_err(|error| Error::Body(format!("decoding task failed: {error}")))?
        } else {
            otlp::logs_from_request(message)
        };
        let n_total = decoded.n_total();
        let dropped = self.state.submit_logs(TRANSPORT, project, decoded).await?;
        Ok((n_total, dropped))
    }

    async fn handle(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<Vec<otlp::Rejected>, Error> {
        let (project, message, _held, _inflated) = self.accept(request).await?;
        let n_spans: usize = message
            .resource_spans
            .iter()
            .flat_map(|resource_spans| &resource_spans.scope_spans)
            .map(|scope_spans| scope_spans.spans.len())
            .sum();
        let decoded = if n_spans > 256 {
            tokio::task::spawn_blocking(move || otlp::from_request(message))
                .await
                .map_err(|error| Error::Body(format!("decoding task failed: {error}")))?
        } else {
            otlp::from_request(message)
        };
        self.state.submit(TRANSPORT, project, decoded).await
    }
}

/// The key in `authorization: Bearer <key>` or `x-loupe-api-key` metadata.
fn key_from_metadata(metadata: &MetadataMap) -> Result<Option<String>, Error> {
    if let Some(value) = metadata.get("authorization") {
        let text = value.to_str().map_err(|_| auth::Error::MalformedHeader("not ascii"))?;
        return Ok(Some(auth::parse_authorization(text)?.to_owned()));
    }
    match metadata.get(auth::API_KEY_HEADER) {
        Some(value) => {
            let text = value.to_str().map_err(|_| auth::Error::MalformedHeader("not ascii"))?;
            Ok(Some(text.trim().to_owned()))
        }
        None => Ok(None),
    }
}
