//! The OTLP/HTTP receiver: `POST /v1/traces` and `POST /v1/logs` with protobuf or JSON bodies,
//! optionally gzipped. Logs carry GenAI events (see `otlp::decode_logs`), which become events of
//! their spans; every other log record is dropped and counted in `partial_success`.
//!
//! Answers, per the OTLP spec (see `docs/api.md`):
//! - 200 + `ExportTraceServiceResponse` (`ExportLogsServiceResponse`) in the request's encoding,
//!   with `partial_success` when some spans were rejected or log records dropped (the valid ones
//!   are stored);
//! - 400 undecodable body, 401 wrong or missing key, 413 over the size limit (compressed or
//!   decompressed), 415 unknown content type or encoding, all with a `google.rpc.Status` body;
//! - 503 + `Retry-After` when the write queue or the in-flight byte budget is full;
//! - 501 for `/v1/metrics`: not retryable, so exporters drop that signal at once instead of
//!   retrying it forever, and the status says plainly that it is not supported.

mod body;

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use otlp::Encoding;

use crate::{Error, IngestState, Reservation, rpc_code};

const TRANSPORT: &str = "http";

/// Decode inline below this many body bytes; above it, on the blocking pool.
const INLINE_DECODE_BYTES: usize = 64 * 1024;

/// The OTLP/HTTP routes: `/v1/traces`, `/v1/logs`, and `/v1/metrics` answering 501.
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/v1/traces", post(export_traces))
        .route("/v1/logs", post(export_logs))
        .route("/v1/metrics", post(export_metrics))
        // The receiver applies its own, configurable limit, to the decompressed size too.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn export_traces(State(state): State<IngestState>, request: http::Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let res = async {
        let (project, encoding, decoded, _reserved) =
            handle(&state, &parts.headers, body, otlp::decode).await?;
        let n_total = decoded.n_total();
        let rejected = state.submit(TRANSPORT, project, decoded).await?;
        Ok::<_, Error>((encoding, n_total, rejected))
    }
    .await;
    let seconds = started.elapsed().as_secs_f64();
    match res {
        Ok((encoding, n_total, rejected)) => {
            let outcome = if rejected.is_empty() { "ok" } else { "partial" };
            state.metrics.request(TRANSPORT, outcome, seconds);
            let bytes = otlp::encode_response(encoding, n_total, &rejected);
            with_content_type(StatusCode::OK, encoding, bytes)
        }
        Err(error) => {
            state.metrics.request(TRANSPORT, error.outcome(), seconds);
            error_response(body::answer_encoding(&parts.headers), &error)
        }
    }
}

/// `POST /v1/logs`: the GenAI events among the log records become events of their spans; the
/// other records are dropped and counted in `partial_success`.
async fn export_logs(State(state): State<IngestState>, request: http::Request<Body>) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let res = async {
        let (project, encoding, decoded, _reserved) =
            handle(&state, &parts.headers, body, otlp::decode_logs).await?;
        let n_total = decoded.n_total();
        let dropped = state.submit_logs(TRANSPORT, project, decoded).await?;
        Ok::<_, Error>((encoding, n_total, dropped))
    }
    .await;
    let seconds = started.elapsed().as_secs_f64();
    match res {
        Ok((encoding, n_total, dropped)) => {
            let outcome = if dropped.is_empty() { "ok" } else { "partial" };
            state.metrics.request(TRANSPORT, outcome, seconds);
            let bytes = otlp::encode_logs_response(encoding, n_total, &dropped);
            with_content_type(StatusCode::OK, encoding, bytes)
        }
        Err(error) => {
            state.metrics.request(TRANSPORT, error.outcome(), seconds);
            error_response(body::answer_encoding(&parts.headers), &error)
        }
    }
}

/// Authenticates, reads the body under the limits and decodes it with `decode`. The returned
/// reservations of the in-flight budget are held until the request is answered.
async fn handle<D: Send + 'static>(
    state: &IngestState,
    headers: &HeaderMap,
    body: Body,
    decode: fn(Encoding, &[u8]) -> Result<D, otlp::Error>,
) -> Result<(model::ProjectId, Encoding, D, Vec<Reservation>), Error> {
    let limit = state.config.max_body_bytes;
    let declared = body::content_length(headers);
    // Authenticate first: a request with a wrong key stores nothing and costs no decoding.
    let checked = async {
        let project = state.auth.resolve_headers(headers).await?;
        let encoding = body::encoding_of(headers)?;
        let gzip = body::is_gzip(headers)?;
        let permit = state.reserve(declared.unwrap_or(limit).min(limit))?;
        Ok::<_, Error>((project, encoding, gzip, permit))
    };
    let (project, encoding, gzip, permit) = match checked.await {
        Ok(checked) => checked,
        Err(error) => {
            // Read (and drop) the body so the client reads this answer rather than a reset
            // connection, which it would retry.
            let _ = body::read_capped(body, limit).await;
            return Err(error);
        }
    };
    let bytes = body::read_capped(body, limit).await?;

    let run = {
        let state = state.clone();
        move || -> Result<(D, Option<Reservation>), Error> {
            if gzip {
                let inflated = body::gunzip_capped(&bytes, limit)?;
                let permit = state.reserve(inflated.len())?;
                Ok((decode(encoding, &inflated)?, Some(permit)))
            } else {
                Ok((decode(encoding, &bytes)?, None))
            }
        }
    };
    let (decoded, inflated_permit) = if gzip || declared.unwrap_or(usize::MAX) > INLINE_DECODE_BYTES
    {
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|error| Error::Body(format!("decoding task failed: {error}")))??
    } else {
        run()?
    };
    Ok((
        project,
        encoding,
        decoded,
        [Some(permit), inflated_permit].into_iter().flatten().collect(),
    ))
}

async fn export_metrics(State(state): State<IngestState>, headers: HeaderMap) -> Response {
    let error = Error::SignalNotSupported { signal: "metrics" };
    state.metrics.request(TRANSPORT, error.outcome(), 0.0);
    error_response(body::answer_encoding(&headers), &error)
}

/// A `google.rpc.Status` body with the status from the error's code, and `Retry-After` when the
/// client may retry.
fn error_response(encoding: Encoding, error: &Error) -> Response {
    let code = error.code();
    if code.http_status() >= 500 && !code.is_retryable() {
        tracing::warn!(error = %error, "otlp export failed");
    } else {
        tracing::debug!(error = %error, "otlp export refused");
    }
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = otlp::encode_status(encoding, rpc_code(code) as i32, &error.to_string());
    let mut response = with_content_type(status, encoding, bytes);
    if let Some(secs) = error.retry_after_secs() {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn with_content_type(status: StatusCode, encoding: Encoding, bytes: Vec<u8>) -> Response {
    let content_type = HeaderValue::from_static(encoding.content_type());
    (status, [(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

#[cfg(test)]
mod tests;
