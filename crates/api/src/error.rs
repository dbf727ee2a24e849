//! [`ApiError`]: the one error type handlers return. It picks the HTTP status from the error code
//! and sends the client a safe message; internal details are logged, not sent.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use model::ErrorCode;

use crate::dto::{ErrorBody, ErrorDetail};

/// An error answered as `{"error":{"code":…,"message":…}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }
}

impl From<store::Error> for ApiError {
    fn from(error: store::Error) -> ApiError {
        let code = error.code();
        let message = match code {
            // The store's own words can carry internals (paths, SQL); the log keeps them.
            ErrorCode::Internal => {
                tracing::error!(error = %error, "store query failed");
                "internal error while reading the store".to_owned()
            }
            _ => error.to_string(),
        };
        ApiError { code, message }
    }
}

impl From<auth::Error> for ApiError {
    fn from(error: auth::Error) -> ApiError {
        let code = error.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %error, "api key lookup failed");
        }
        ApiError { code, message: error.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        (status, Json(body)).into_response()
    }
}
