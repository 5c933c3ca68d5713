//! elizaOS messaging-sessions view: `GET /api/messaging/sessions` (live
//! sessions, `{sessions,total,stats}`), `GET /api/messaging/sessions/{id}`
//! (404 unknown, 410 no longer live), `/health`, and the ledger's
//! `/{id}/events` audit trail. CamelCase, ISO-8601, `timeRemaining` in ms
//! computed at request time.

mod dialect;
mod json;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ledger_core::time::format_iso_ms;
use ledger_core::Status;
use ledger_store::Filter;
use serde_json::{json, Value};

use super::stream::{stream, StreamSpec};
use super::with_next_cursor;
use crate::auth::Scope;
use crate::ctx::Ctx;
use crate::dialect::Dialect;
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;

pub use dialect::Eliza;
use json::{event_json, session_info, ListBody, ListStats};

/// The paths elizaOS's dialect is spoken under.
pub const PREFIXES: &[(&str, &dyn Dialect)] = &[("/api/messaging/sessions", &Eliza)];

/// Sessions a list without `limit` returns: elizaOS's `listSessions()` sends
/// no parameters and expects every live session (DESIGN.md §7).
pub const LIST_MAX: usize = 1_000;

/// `GET /api/messaging/sessions/stream`: the change feed in elizaOS's
/// `SessionInfo` shape, with the list's filters (`views::stream`).
static STREAM: StreamSpec = StreamSpec {
    render: |s, now| serde_json::to_value(session_info(s, now)).unwrap_or_default(),
    user: "userId",
    client: "clientId",
    agent: "agentId",
    workspace: "workspaceId",
    status: "status",
    session_type: None,
};

/// elizaOS's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/messaging/sessions", get(list))
        .route("/api/messaging/sessions/health", get(health))
        .route(
            "/api/messaging/sessions/stream",
            get(|ctx: Ctx<Eliza>, h: HeaderMap| stream(ctx, h, &STREAM)),
        )
        .route("/api/messaging/sessions/{id}", get(get_one))
        .route("/api/messaging/sessions/{id}/events", get(events))
}

/// The filter of the live sessions within the key's scope.
fn live_in_scope(ctx: &Ctx<Eliza>) -> Filter {
    Filter {
        status: Some(Status::Active),
        ..ctx.scope_filter()
    }
}

/// Created sessions within the key's scope.
fn created_in_scope(ctx: &Ctx<Eliza>) -> Result<u64, ApiError> {
    if ctx.scope == Scope::Admin {
        ctx.created()
    } else {
        // A scope names a user or workspace, which only created sessions carry.
        ctx.count(&ctx.scope_filter())
    }
}

/// `GET /api/messaging/sessions?agentId&userId&channelId…&limit&cursor`
async fn list(ctx: Ctx<Eliza>) -> Result<Response, ApiError> {
    let p = ctx.params()?;
    let limit = ctx.int_param(&p, "limit", LIST_MAX, 1, LIST_MAX)?;
    let mut f = Filter {
        user_id: p.get("userId").cloned(),
        agent_id: p.get("agentId").cloned(),
        client_id: p.get("clientId").cloned(),
        workspace_id: p.get("workspaceId").cloned(),
        status: Some(Status::Active),
        ..Default::default()
    };
    let page = ctx.page(&mut f, &p, 0, limit)?;
    let live = live_in_scope(&ctx);
    let active = ctx.count(&live)?;
    // Without other filters the list's total is the scope's live count.
    let total = if f == live { active } else { ctx.count(&f)? };
    let all = created_in_scope(&ctx)?;
    let body = ListBody {
        sessions: page
            .items
            .iter()
            .map(|s| session_info(s, ctx.now))
            .collect(),
        stats: ListStats {
            active_sessions: active,
            expired_sessions: all.saturating_sub(active),
            total_sessions: all,
        },
        total,
    };
    Ok(with_next_cursor(body, page.next_cursor.as_deref()))
}

/// `GET /api/messaging/sessions/{id}`: 410 once no longer live.
async fn get_one(Path(id): Path<String>, ctx: Ctx<Eliza>) -> Result<Response, ApiError> {
    let s = ctx.load_visible(&id)?;
    if s.status_at(ctx.now) != Status::Active {
        return Err(ctx.error(
            StatusCode::GONE,
            "SESSION_EXPIRED",
            format!("Session {id} has expired"),
        ));
    }
    Ok(Json(session_info(&s, ctx.now)).into_response())
}

/// `GET /api/messaging/sessions/{id}/events` — the bounded audit trail.
async fn events(Path(id): Path<String>, ctx: Ctx<Eliza>) -> Result<Json<Value>, ApiError> {
    ctx.load_visible(&id)?;
    let h = ctx.history(&id)?;
    let events: Vec<Value> = h.iter().map(event_json).collect();
    Ok(Json(json!({"sessionId": id, "events": events})))
}

/// `GET /api/messaging/sessions/health`
async fn health(ctx: Ctx<Eliza>) -> Result<Json<Value>, ApiError> {
    let active = ctx.count(&live_in_scope(&ctx))?;
    let soon = ctx.near_expiration(&ctx.scope_filter())?;
    Ok(Json(json!({
        "status": "healthy",
        "activeSessions": active,
        "timestamp": format_iso_ms(ctx.now),
        "expiringSoon": soon,
        "uptime": ((ctx.now - ctx.state.started_ms).max(0)) as f64 / 1000.0,
    })))
}
