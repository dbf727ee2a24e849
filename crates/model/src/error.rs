//! The closed set of error codes. Each crate's `Error` maps itself onto one of these; the
//! boundary (HTTP, gRPC, CLI) turns a code into a status in exactly one place.

use serde::{Deserialize, Serialize};

/// What kind of failure an error is, as far as a client deciding whether to retry cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed; retrying it unchanged will fail again.
    BadRequest,
    /// Missing or wrong credentials.
    Unauthorized,
    /// The thing asked for does not exist (in this project).
    NotFound,
    /// The request conflicts with the current state (e.g. an immutable version).
    Conflict,
    /// The request body is over a configured limit.
    PayloadTooLarge,
    /// The content type is not one we decode.
    UnsupportedMediaType,
    /// The server is overloaded; retry after a delay.
    TooManyRequests,
    /// A dependency (the store) is down or its queue is full; retry after a delay.
    Unavailable,
    /// A bug or an unexpected failure.
    Internal,
    /// The feature exists in the protocol but is not implemented by this server.
    NotImplemented,
}

impl ErrorCode {
    /// The HTTP status for this code. The only place that mapping is written.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
            ErrorCode::NotImplemented => 501,
        }
    }

    /// Whether a client may retry (after `Retry-After`).
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::TooManyRequests | ErrorCode::Unavailable)
    }
}

/// An error and each of its sources, joined with `: ` (what a log line or a message to a user
/// should say, where `Display` alone often names only the outermost layer).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut res = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        res.push_str(": ");
        res.push_str(&inner.to_string());
        source = inner.source();
    }
    res
}
