//! elizaOS's dialect: `{error: {code, message, timestamp}}`, the request
//! time in ISO-8601, SCREAMING_SNAKE codes.

use axum::http::StatusCode;
use ledger_core::time::format_iso_ms;
use serde_json::{json, Value};

use crate::dialect::{Dialect, Failure};

/// elizaOS messaging API errors.
#[derive(Debug, Default)]
pub struct Eliza;

impl Dialect for Eliza {
    fn envelope(&self, _status: StatusCode, code: &str, message: &str, at_ms: i64) -> Value {
        json!({"error": {"code": code, "message": message, "timestamp": format_iso_ms(at_ms)}})
    }

    fn code(&self, kind: Failure) -> &'static str {
        match kind {
            Failure::NotFound => "SESSION_NOT_FOUND",
            Failure::Forbidden => "FORBIDDEN",
            Failure::BadParameter => "INVALID_PARAMETER",
            other => other.code(),
        }
    }
}
