//! orq.ai's two dialects: 3.x's `{code, message}` with the ledger's string
//! codes, and 4.x's `{code, message, details}` with a gRPC status code.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::dialect::Dialect;

/// orq-ai-sdk 3.x (`/v2/traces/sessions`): `{code, message}`, the ledger's
/// own codes.
#[derive(Debug, Default)]
pub struct Orq;

impl Dialect for Orq {
    fn envelope(&self, _status: StatusCode, code: &str, message: &str, _at_ms: i64) -> Value {
        json!({"code": code, "message": message})
    }
}

/// orq-ai-sdk 4.x (`/v2/sessions`, "threads"): `{code, message, details}`
/// with the gRPC status code the SDK's `ErrorResponseData` reads, derived
/// from the HTTP status (the string code is not sent).
#[derive(Debug, Default)]
pub struct Threads;

impl Dialect for Threads {
    fn envelope(&self, status: StatusCode, _code: &str, message: &str, _at_ms: i64) -> Value {
        let code = match status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => 3, // INVALID_ARGUMENT
            StatusCode::UNAUTHORIZED => 16,                               // UNAUTHENTICATED
            StatusCode::FORBIDDEN => 7,                                   // PERMISSION_DENIED
            StatusCode::NOT_FOUND => 5,                                   // NOT_FOUND
            StatusCode::METHOD_NOT_ALLOWED => 12,                         // UNIMPLEMENTED
            StatusCode::SERVICE_UNAVAILABLE => 14,                        // UNAVAILABLE
            _ => 13,                                                      // INTERNAL
        };
        json!({"code": code, "message": message, "details": []})
    }
}
