//! Wingspan's `ApiSessionResponse` and `SessionResponse` (never a `token`).

use ledger_core::event::SessionType;
use ledger_core::time::format_iso_ms;
use ledger_core::{Session, UNLIMITED_EXPIRY_MS};
use serde_json::{json, Value};

fn session_type(s: &Session) -> &'static str {
    match s.session_type {
        SessionType::User => "User",
        SessionType::API => "API",
        SessionType::Guest => "Guest",
    }
}

/// ISO-8601; an unlimited session's is Wingspan's far-future sentinel.
fn expiration(s: &Session) -> String {
    format_iso_ms(if s.unlimited {
        UNLIMITED_EXPIRY_MS
    } else {
        s.expires_at
    })
}

/// Wingspan's `ApiSessionResponse` (no `token`).
pub fn api_session_json(s: &Session) -> Value {
    json!({
        "expiration": expiration(s),
        "isUnlimitedExpiration": s.unlimited,
        "sessionId": s.id,
        "sessionType": session_type(s),
        "labels": s.labels,
        "userId": s.user_id,
    })
}

/// Wingspan's `SessionResponse` (no `token`).
pub fn session_response_json(s: &Session) -> Value {
    json!({
        "expiration": expiration(s),
        "labels": s.labels,
        "sessionType": session_type(s),
        "userId": s.user_id,
    })
}
