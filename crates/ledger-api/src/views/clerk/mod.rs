//! Clerk Backend API view: `GET /v1/sessions`, `GET /v1/sessions/{id}`.
//! Snake_case, times in Unix ms, Clerk's error envelope.

mod dialect;
mod json;

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use ledger_core::Status;
use ledger_store::Filter;
use serde_json::{json, Value};

use super::stream::{stream, StreamSpec};
use super::with_next_cursor;
use crate::ctx::Ctx;
use crate::dialect::Dialect;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;

pub use dialect::Clerk;
pub use json::session_json;

/// The paths Clerk's dialect is spoken under.
pub const PREFIXES: &[(&str, &dyn Dialect)] = &[("/v1/sessions", &Clerk)];

/// Clerk's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", get(list))
        .route("/v1/sessions/{id}", get(get_one))
        .route(
            "/v1/sessions/stream",
            get(|ctx: Ctx<Clerk>, h: HeaderMap| stream(ctx, h, &STREAM)),
        )
}

/// `GET /v1/sessions/stream`: the change feed in Clerk's shape, with the
/// list's filters (`views::stream`).
static STREAM: StreamSpec = StreamSpec {
    render: session_json,
    user: "user_id",
    client: "client_id",
    agent: "agent_id",
    workspace: "workspace_id",
    status: "status",
    session_type: None,
};

/// `GET /v1/sessions?client_id&user_id&status&paginated&limit&offset`
/// (+ `agent_id`, `workspace_id`, `cursor`; `x-next-cursor` header).
async fn list(ctx: Ctx<Clerk>) -> Result<Response, ApiError> {
    let p = ctx.params()?;
    let limit = ctx.int_param(&p, "limit", 10, 1, 500)?;
    let offset = ctx.int_param(&p, "offset", 0, 0, usize::MAX >> 1)?;
    let paginated = match p.get("paginated").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => return Err(ctx.invalid(format!("`paginated` must be true or false, got `{v}`"))),
    };
    let status = match p.get("status") {
        None => None,
        Some(v) => Some(Status::parse(v).filter(|s| *s != Status::Pending).ok_or_else(|| {
            ctx.invalid(format!("`status` must be one of abandoned, active, ended, expired, removed, replaced, revoked; got `{v}`"))
        })?),
    };
    let mut f = Filter {
        user_id: p.get("user_id").cloned(),
        client_id: p.get("client_id").cloned(),
        agent_id: p.get("agent_id").cloned(),
        workspace_id: p.get("workspace_id").cloned(),
        status,
        ..Default::default()
    };
    let page = ctx.page(&mut f, &p, offset, limit)?;
    let data: Vec<Value> = page
        .items
        .iter()
        .map(|s| session_json(s, ctx.now))
        .collect();
    let body = if paginated {
        json!({"data": data, "total_count": ctx.count(&f)?})
    } else {
        Value::Array(data)
    };
    Ok(with_next_cursor(body, page.next_cursor.as_deref()))
}

/// `GET /v1/sessions/{id}`
async fn get_one(Path(id): Path<String>, ctx: Ctx<Clerk>) -> Result<Json<Value>, ApiError> {
    Ok(Json(session_json(&ctx.load_visible(&id)?, ctx.now)))
}
