//! Wingspan users-service view: `GET /users/session/api` (the caller's API
//! sessions; admin keys pass `?userId=`), `GET /users/session/api/{id}`,
//! `GET /users/session/token/{id}`. CamelCase, ISO-8601. Never a token.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use ledger_core::event::SessionType;
use ledger_core::time::format_iso_ms;
use ledger_core::{Session, UNLIMITED_EXPIRY_MS};
use ledger_store::{Filter, Order};
use serde_json::{json, Value};

use super::{
    apply_scope, authorize, int_param, load_visible, page_start, params, store_error,
    with_next_cursor,
};
use crate::auth::Scope;
use crate::error::{ApiError, View};
use crate::state::AppState;

const V: View = View::Wingspan;

fn session_type(s: &Session) -> &'static str {
    match s.session_type {
        SessionType::User => "User",
        SessionType::API => "API",
        SessionType::Guest => "Guest",
    }
}

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

fn not_found(id: &str, now: i64) -> ApiError {
    ApiError::new(
        V,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("Session {id} not found"),
        now,
    )
}

/// `GET /users/session/api?userId&limit&cursor` → `ApiSessionResponse[]`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let p = params(q, V, now)?;
    let limit = int_param(&p, "limit", 100, 1, 500)
        .map_err(|m| ApiError::new(V, StatusCode::BAD_REQUEST, "INVALID_PARAMETER", m, now))?;
    let mut f = Filter {
        user_id: p.get("userId").cloned(),
        session_type: Some(SessionType::API),
        ..Default::default()
    };
    if f.user_id.is_none() && matches!(scope, Scope::Admin) {
        return Err(ApiError::new(
            V,
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER",
            "an admin key must name the user: ?userId=",
            now,
        ));
    }
    apply_scope(&scope, &mut f, V, now)?;
    let start = page_start(&p, 0);
    let page = state
        .store
        .list(&f, Order::NewestFirst, &start, limit, now)
        .map_err(|e| store_error(e, V, now))?;
    Ok(with_next_cursor(
        Value::Array(page.items.iter().map(api_session_json).collect()),
        page.next_cursor.as_deref(),
    ))
}

fn load(state: &AppState, headers: &HeaderMap, id: &str) -> Result<Session, ApiError> {
    load_visible(state, headers, id, V, "NOT_FOUND")
}

/// `GET /users/session/api/{id}` → `ApiSessionResponse`.
pub async fn get_api(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = load(&state, &headers, &id)?;
    if s.session_type != SessionType::API {
        return Err(not_found(&id, state.now()));
    }
    Ok(Json(api_session_json(&s)))
}

/// `GET /users/session/token/{id}` → `SessionResponse`.
pub async fn get_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(session_response_json(&load(&state, &headers, &id)?)))
}
