//! Wingspan users-service view: `GET /users/session/api` (the caller's API
//! sessions; admin keys pass `?userId=`), `GET /users/session/api/{id}`,
//! `GET /users/session/token/{id}`. CamelCase, ISO-8601. Never a token.

mod dialect;
mod json;

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use ledger_core::event::SessionType;
use ledger_store::Filter;
use serde_json::Value;

use super::stream::{stream, StreamSpec};
use super::with_next_cursor;
use crate::auth::Scope;
use crate::ctx::Ctx;
use crate::dialect::Dialect;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;

pub use dialect::Wingspan;
use json::{api_session_json, session_response_json};

/// The paths Wingspan's dialect is spoken under.
pub const PREFIXES: &[(&str, &dyn Dialect)] = &[("/users/session", &Wingspan)];

/// Wingspan's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users/session/api", get(list))
        .route("/users/session/api/{id}", get(get_api))
        .route("/users/session/token/{id}", get(get_token))
        .route(
            "/users/session/api/stream",
            get(|ctx: Ctx<Wingspan>, h: HeaderMap| stream(ctx, h, &STREAM)),
        )
}

/// `GET /users/session/api/stream`: the change feed of API sessions in
/// Wingspan's `ApiSessionResponse` shape (`views::stream`).
static STREAM: StreamSpec = StreamSpec {
    render: |s, _| api_session_json(s),
    user: "userId",
    client: "",
    agent: "",
    workspace: "",
    status: "status",
    session_type: Some(SessionType::API),
};

/// `GET /users/session/api?userId&limit&cursor` → `ApiSessionResponse[]`.
async fn list(ctx: Ctx<Wingspan>) -> Result<Response, ApiError> {
    let p = ctx.params()?;
    let limit = ctx.int_param(&p, "limit", 100, 1, 500)?;
    let mut f = Filter {
        user_id: p.get("userId").cloned(),
        session_type: Some(SessionType::API),
        ..Default::default()
    };
    if f.user_id.is_none() && matches!(ctx.scope, Scope::Admin) {
        return Err(ctx.invalid("an admin key must name the user: ?userId="));
    }
    let page = ctx.page(&mut f, &p, 0, limit)?;
    Ok(with_next_cursor(
        Value::Array(page.items.iter().map(api_session_json).collect()),
        page.next_cursor.as_deref(),
    ))
}

/// `GET /users/session/api/{id}` → `ApiSessionResponse`; a session of
/// another type is not found.
async fn get_api(Path(id): Path<String>, ctx: Ctx<Wingspan>) -> Result<Json<Value>, ApiError> {
    let s = ctx.load_visible(&id)?;
    if s.session_type != SessionType::API {
        return Err(ctx.not_found(&id));
    }
    Ok(Json(api_session_json(&s)))
}

/// `GET /users/session/token/{id}` → `SessionResponse`.
async fn get_token(Path(id): Path<String>, ctx: Ctx<Wingspan>) -> Result<Json<Value>, ApiError> {
    Ok(Json(session_response_json(&ctx.load_visible(&id)?)))
}
