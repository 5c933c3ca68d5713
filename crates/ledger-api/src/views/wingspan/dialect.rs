//! Wingspan's dialect: `{error: {code, message}}`, SCREAMING_SNAKE codes.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::dialect::{Dialect, Failure};

/// Wingspan users-service errors.
#[derive(Debug, Default)]
pub struct Wingspan;

impl Dialect for Wingspan {
    fn envelope(&self, _status: StatusCode, code: &str, message: &str, _at_ms: i64) -> Value {
        json!({"error": {"code": code, "message": message}})
    }

    fn code(&self, kind: Failure) -> &'static str {
        match kind {
            Failure::Forbidden => "FORBIDDEN",
            Failure::NotFound => "NOT_FOUND",
            Failure::BadParameter => "INVALID_PARAMETER",
            other => other.code(),
        }
    }
}
