//! Clerk's dialect: `{errors: [{message, long_message, code, meta}],
//! clerk_trace_id}`, snake_case codes, 422 for an invalid parameter.

use axum::http::StatusCode;
use ledger_core::session::id_hash;
use serde_json::{json, Value};

use crate::dialect::{Dialect, Failure};

/// Clerk Backend API errors.
#[derive(Debug, Default)]
pub struct Clerk;

impl Dialect for Clerk {
    /// `message` is Clerk's short phrase for the status; the trace id is a
    /// stable hash of code and message.
    fn envelope(&self, status: StatusCode, code: &str, message: &str, _at_ms: i64) -> Value {
        let short = match status {
            StatusCode::UNAUTHORIZED => "Unauthorized",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "Resource not found",
            StatusCode::UNPROCESSABLE_ENTITY => "Invalid request parameter",
            StatusCode::PAYLOAD_TOO_LARGE => "Request too large",
            StatusCode::SERVICE_UNAVAILABLE => "Service unavailable",
            _ => "Bad request",
        };
        json!({
            "errors": [{"message": short, "long_message": message, "code": code, "meta": {}}],
            "clerk_trace_id": format!("ledger-{:016x}", id_hash(&format!("{code}{message}"))),
        })
    }

    fn code(&self, kind: Failure) -> &'static str {
        match kind {
            Failure::MissingKey => "authorization_header_missing",
            Failure::InvalidKey | Failure::Forbidden => "authorization_invalid",
            Failure::NotFound => "resource_not_found",
            Failure::BadParameter => "form_param_value_invalid",
            other => other.code(),
        }
    }

    fn status(&self, kind: Failure) -> StatusCode {
        match kind {
            Failure::BadParameter => StatusCode::UNPROCESSABLE_ENTITY,
            other => other.status(),
        }
    }

    fn message(&self, kind: Failure) -> &'static str {
        match kind {
            Failure::MissingKey => "Authorization header is missing",
            Failure::InvalidKey => "The provided API key is invalid",
            other => other.message(),
        }
    }
}
