//! Errors in each view's own envelope.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger_core::time::format_iso_ms;
use serde_json::json;

/// Which API's conventions a response follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Clerk,
    Orq,
    Wingspan,
    Eliza,
    /// Health, metrics and other ledger-own routes.
    Plain,
}

/// An error response: status, machine code and message, shaped per view.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub view: View,
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Request time, Unix ms (elizaOS puts it in the envelope).
    pub at_ms: i64,
}

impl ApiError {
    pub fn new(
        view: View,
        status: StatusCode,
        code: &str,
        message: impl Into<String>,
        at_ms: i64,
    ) -> Self {
        Self {
            view,
            status,
            code: code.to_string(),
            message: message.into(),
            at_ms,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.view {
            View::Clerk => {
                let short = match self.status {
                    StatusCode::UNAUTHORIZED => "Unauthorized",
                    StatusCode::FORBIDDEN => "Forbidden",
                    StatusCode::NOT_FOUND => "Resource not found",
                    StatusCode::UNPROCESSABLE_ENTITY => "Invalid request parameter",
                    StatusCode::PAYLOAD_TOO_LARGE => "Request too large",
                    _ => "Bad request",
                };
                json!({
                    "errors": [{"message": short, "long_message": self.message, "code": self.code, "meta": {}}],
                    "clerk_trace_id": format!("ledger-{:016x}", ledger_core::session::id_hash(&format!("{}{}", self.code, self.message))),
                })
            }
            View::Orq => json!({"code": self.code, "message": self.message}),
            View::Wingspan | View::Plain => {
                json!({"error": {"code": self.code, "message": self.message}})
            }
            View::Eliza => {
                json!({"error": {"code": self.code, "message": self.message, "timestamp": format_iso_ms(self.at_ms)}})
            }
        };
        (self.status, Json(body)).into_response()
    }
}
