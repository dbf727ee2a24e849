//! OTLP trace requests to raw spans and back: bytes in, [`model::RawSpan`]s out; and OTLP log
//! requests to the GenAI events they carry ([`decode_logs`], see `logs.rs`).
//!
//! - [`decode_protobuf`] reads `application/x-protobuf` bodies with the `opentelemetry-proto` prost
//!   types; [`from_request`] does the same for a request tonic already decoded (gRPC).
//! - [`decode_json`] is a tolerant reader of the OTLP JSON mapping (see `json.rs` for what it
//!   accepts beyond the spec).
//! - Every span is validated on its own: a bad span becomes a [`Rejected`] entry naming what was
//!   wrong and the valid spans of the same request are still returned. Only a body that cannot be
//!   read at all is an [`Error`].
//! - [`encode_response`], [`encode_status`] and [`partial_success_message`] write the answers the
//!   OTLP spec asks for; [`to_request`] and [`to_json`] turn raw spans back into OTLP.
//!
//! **Limits and bad bytes** (each gives a clear [`Error`] or per-span rejections, never a panic
//! or a stack overflow):
//! - Nesting: prost stops decoding at 100 nested messages, and an `AnyValue` costs two or three
//!   of them per level (value, array or kvlist, key-value), so a protobuf body whose values nest
//!   more than about 30 levels is rejected as a whole with a "recursion limit reached" error.
//!   JSON bodies are read with `serde_json`'s limit of 128 nested JSON values, which is hit at
//!   roughly 30 `AnyValue` levels too. Requests built in memory and handed to [`from_request`]
//!   are checked against [`MAX_VALUE_DEPTH`], and only the deeper spans are rejected.
//! - Invalid UTF-8 in a protobuf string rejects only the spans that hold it (or whose resource or
//!   scope holds it): see `lossy.rs`. In a JSON body it makes the body undecodable.
//! - Size: decoding is linear in the body; the receiver caps the body size before calling here.

mod encode;
mod json;
mod logs;
#[cfg(test)]
mod logs_tests;
mod lossy;
mod proto;
mod span;
#[cfg(test)]
mod tests;

use model::ErrorCode;

pub use encode::{
    RETRY_INFO_TYPE_URL, decode_grpc_retry_delay, encode_grpc_status_details, encode_response,
    encode_status, partial_success_message, to_json,
};
pub use json::decode_json;
pub use logs::{
    DecodedLogs, DropReason, DroppedLog, GENAI_EVENT_PREFIX, decode_logs, encode_logs_response,
    logs_from_request, logs_partial_success, logs_partial_success_message,
};
pub use proto::{decode_protobuf, from_request, to_request};

/// The deepest `AnyValue` nesting accepted in a span built in memory (see the crate docs).
pub const MAX_VALUE_DEPTH: usize = 64;

/// The two OTLP/HTTP body encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The `Content-Type` a response in this encoding carries.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// The spans of one request: the valid ones, and the ones rejected with a reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    pub spans: Vec<model::RawSpan>,
    pub rejected: Vec<Rejected>,
}

impl Decoded {
    /// Spans in the request, valid or not.
    pub fn n_total(&self) -> usize {
        self.spans.len() + self.rejected.len()
    }
}

/// A span that failed validation. The ids are as sent (hex for protobuf, the JSON text for
/// JSON), so a user can find the span in their own logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub trace_id: String,
    pub span_id: String,
    pub name: String,
    pub reason: String,
}

/// A body that could not be read as an OTLP trace request at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("body is not a valid protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(#[source] prost::DecodeError),
    #[error("body is not valid json: {0}")]
    Json(#[source] serde_json::Error),
    #[error("body is not an otlp json trace request: {0}")]
    JsonShape(String),
    #[error("body is not a valid protobuf ExportLogsServiceRequest: {0}")]
    LogsProtobuf(#[source] prost::DecodeError),
    #[error("body is not an otlp json logs request: {0}")]
    LogsJsonShape(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Protobuf(_)
            | Error::Json(_)
            | Error::JsonShape(_)
            | Error::LogsProtobuf(_)
            | Error::LogsJsonShape(_) => ErrorCode::BadRequest,
        }
    }
}

/// Decodes a request body in the given encoding.
pub fn decode(encoding: Encoding, body: &[u8]) -> Result<Decoded, Error> {
    match encoding {
        Encoding::Protobuf => decode_protobuf(body),
        Encoding::Json => decode_json(body),
    }
}
