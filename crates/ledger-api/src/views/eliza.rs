//! elizaOS messaging-sessions view: `GET /api/messaging/sessions` (live
//! sessions, `{sessions,total,stats}`), `GET /api/messaging/sessions/{id}`
//! (404 unknown, 410 no longer live), `/health`, and the ledger's
//! `/{id}/events` audit trail. CamelCase, ISO-8601, `timeRemaining` in ms
//! computed at request time.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger_core::time::format_iso_ms;
use ledger_core::{Session, Status};
use ledger_store::{Filter, Order};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{
    apply_scope, authorize, int_param, load_visible, page_start, params, store_error,
    with_next_cursor,
};
use crate::auth::Scope;
use crate::error::{ApiError, View};
use crate::state::AppState;

const V: View = View::Eliza;

/// elizaOS's `SessionInfo`, serialized straight from the session (no
/// intermediate JSON tree; lists carry up to 500). Fields in sorted order,
/// as every other view's JSON objects.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo<'a> {
    agent_id: &'a str,
    channel_id: &'a str,
    created_at: String,
    expires_at: String,
    is_near_expiration: bool,
    last_activity: String,
    metadata: &'a Map<String, Value>,
    renewal_count: u64,
    session_id: &'a str,
    /// ms until expiry at `now`, 0 once past.
    time_remaining: i64,
    timeout_config: TimeoutConfigInfo,
    user_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TimeoutConfigInfo {
    auto_renew: bool,
    max_duration_minutes: u32,
    timeout_minutes: u32,
    warning_threshold_minutes: u32,
}

/// elizaOS's `SessionInfo`, as of `now` (Unix ms).
pub fn session_info(s: &Session, now: i64) -> SessionInfo<'_> {
    SessionInfo {
        agent_id: s.agent_id.as_deref().unwrap_or_default(),
        channel_id: s.channel_id.as_deref().unwrap_or_default(),
        created_at: format_iso_ms(s.sort_at()),
        expires_at: format_iso_ms(s.expires_at),
        is_near_expiration: s.is_near_expiration(now),
        last_activity: format_iso_ms(s.last_active_at),
        metadata: &s.metadata,
        renewal_count: s.renewal_count,
        session_id: &s.id,
        time_remaining: s.time_remaining(now),
        timeout_config: TimeoutConfigInfo {
            auto_renew: s.timeout.auto_renew,
            max_duration_minutes: s.timeout.max_duration_minutes,
            timeout_minutes: s.timeout.timeout_minutes,
            warning_threshold_minutes: s.timeout.warning_threshold_minutes,
        },
        user_id: s.user_id.as_deref().unwrap_or_default(),
    }
}

/// The list body: `{sessions, stats, total}`.
#[derive(Serialize)]
struct ListBody<'a> {
    sessions: Vec<SessionInfo<'a>>,
    stats: ListStats,
    total: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListStats {
    active_sessions: u64,
    expired_sessions: u64,
    total_sessions: u64,
}

fn bad(msg: String, now: i64) -> ApiError {
    ApiError::new(V, StatusCode::BAD_REQUEST, "INVALID_PARAMETER", msg, now)
}

/// Sessions a list without `limit` returns: elizaOS's `listSessions()` sends
/// no parameters and expects every live session (DESIGN.md §7).
pub const LIST_MAX: usize = 1_000;

/// The scope's own filter: admin sees every session, a scoped key only its
/// user's or workspace's (aggregates included).
fn scope_filter(scope: &Scope) -> Filter {
    match scope {
        Scope::Admin => Filter::default(),
        Scope::User(u) => Filter {
            user_id: Some(u.clone()),
            ..Default::default()
        },
        Scope::Workspace(w) => Filter {
            workspace_id: Some(w.clone()),
            ..Default::default()
        },
    }
}

/// Created sessions and the live ones among them, within the scope.
fn scoped_counts(state: &AppState, scope: &Scope, now: i64) -> Result<(u64, u64), ApiError> {
    let err = |e| store_error(e, V, now);
    let mut f = scope_filter(scope);
    let all = if *scope == Scope::Admin {
        let stats = state.store.stats();
        stats.sessions - stats.status(Status::Pending)
    } else {
        // A scope names a user or workspace, which only created sessions carry.
        state.store.count(&f, now).map_err(err)?
    };
    f.status = Some(Status::Active);
    let active = state.store.count(&f, now).map_err(err)?;
    Ok((all, active))
}

/// `GET /api/messaging/sessions?agentId&userId&channelId…&limit&cursor`
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let p = params(q, V, now)?;
    let limit = int_param(&p, "limit", LIST_MAX, 1, LIST_MAX).map_err(|m| bad(m, now))?;
    let mut f = Filter {
        user_id: p.get("userId").cloned(),
        agent_id: p.get("agentId").cloned(),
        client_id: p.get("clientId").cloned(),
        workspace_id: p.get("workspaceId").cloned(),
        status: Some(Status::Active),
        ..Default::default()
    };
    apply_scope(&scope, &mut f, V, now)?;
    let start = page_start(&p, 0);
    let err = |e| store_error(e, V, now);
    let page = state
        .store
        .list(&f, Order::NewestFirst, &start, limit, now)
        .map_err(err)?;
    let total = state.store.count(&f, now).map_err(err)?;
    let (all, active) = scoped_counts(&state, &scope, now)?;
    let body = ListBody {
        sessions: page.items.iter().map(|s| session_info(s, now)).collect(),
        stats: ListStats {
            active_sessions: active,
            expired_sessions: all.saturating_sub(active),
            total_sessions: all,
        },
        total,
    };
    Ok(with_next_cursor(body, page.next_cursor.as_deref()))
}

fn load(state: &AppState, headers: &HeaderMap, id: &str) -> Result<Session, ApiError> {
    load_visible(state, headers, id, V, "SESSION_NOT_FOUND")
}

/// `GET /api/messaging/sessions/{id}`
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now = state.now();
    let s = load(&state, &headers, &id)?;
    if s.status_at(now) != Status::Active {
        return Err(ApiError::new(
            V,
            StatusCode::GONE,
            "SESSION_EXPIRED",
            format!("Session {id} has expired"),
            now,
        ));
    }
    Ok(Json(session_info(&s, now)).into_response())
}

/// `GET /api/messaging/sessions/{id}/events` — the bounded audit trail.
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = state.now();
    load(&state, &headers, &id)?;
    let h = state
        .store
        .history(&id)
        .map_err(|e| store_error(e, V, now))?;
    let events: Vec<Value> = h
        .iter()
        .map(|e| json!({"seq": e.seq, "id": e.id, "type": e.kind, "time": format_iso_ms(e.time), "outcome": e.outcome, "partition": e.partition, "offset": e.offset}))
        .collect();
    Ok(Json(json!({"sessionId": id, "events": events})))
}

/// `GET /api/messaging/sessions/health`
pub async fn health(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let (_, active) = scoped_counts(&state, &scope, now)?;
    let soon = state
        .store
        .count_near_expiration(&scope_filter(&scope), now)
        .map_err(|e| store_error(e, V, now))?;
    Ok(Json(json!({
        "status": "healthy",
        "activeSessions": active,
        "timestamp": format_iso_ms(now),
        "expiringSoon": soon,
        "uptime": ((now - state.started_ms).max(0)) as f64 / 1000.0,
    })))
}
