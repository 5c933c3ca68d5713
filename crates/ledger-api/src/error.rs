//! The one error type of every handler, answered in the dialect it carries.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::dialect::{Dialect, Failure};

/// An error response: status, machine code and message, in `dialect`'s
/// envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Whose envelope the body takes.
    pub dialect: &'static dyn Dialect,
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Request time, Unix ms (elizaOS puts it in the envelope).
    pub at_ms: i64,
}

impl ApiError {
    /// An error with its own status and code (one API's, not a shared kind).
    pub fn new(
        dialect: &'static dyn Dialect,
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        at_ms: i64,
    ) -> Self {
        Self {
            dialect,
            status,
            code,
            message: message.into(),
            at_ms,
        }
    }

    /// A shared failure `kind`, with `dialect`'s status and code.
    pub fn of(
        dialect: &'static dyn Dialect,
        kind: Failure,
        message: impl Into<String>,
        at_ms: i64,
    ) -> Self {
        Self::new(
            dialect,
            dialect.status(kind),
            dialect.code(kind),
            message,
            at_ms,
        )
    }

    /// A shared failure `kind` with `dialect`'s fixed message for it.
    pub fn fixed(dialect: &'static dyn Dialect, kind: Failure, at_ms: i64) -> Self {
        Self::of(dialect, kind, dialect.message(kind), at_ms)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self
            .dialect
            .envelope(self.status, self.code, &self.message, self.at_ms);
        (self.status, Json(body)).into_response()
    }
}
