//! The ledger's own dialect, `Plain`: `{error: {code, message}}` with the
//! ledger's codes ([`Failure::code`](crate::dialect::Failure::code)).

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::dialect::Dialect;

/// Errors of the ledger's own routes (and of paths no view claims).
#[derive(Debug, Default)]
pub struct Plain;

impl Dialect for Plain {
    fn envelope(&self, _status: StatusCode, code: &str, message: &str, _at_ms: i64) -> Value {
        json!({"error": {"code": code, "message": message}})
    }
}
