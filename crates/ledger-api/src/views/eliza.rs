//! elizaOS messaging-sessions view: `GET /api/messaging/sessions` (live
//! sessions, `{sessions,total,stats}`), `GET /api/messaging/sessions/{id}`
//! (404 unknown, 410 no longer live), `/health`, and the ledger's
//! `/{id}/events` audit trail. CamelCase, ISO-8601, `timeRemaining` in ms
//! computed at request time.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use ledger_core::time::format_iso_ms;
use ledger_core::{Session, Status};
use ledger_store::{Filter, Order, Start};
use serde_json::{json, Value};

use super::{
    apply_scope, authorize, int_param, load_visible, params, store_error, with_next_cursor,
};
use crate::error::{ApiError, View};
use crate::state::AppState;

const V: View = View::Eliza;

/// elizaOS's `SessionInfo`, as of `now` (Unix ms).
pub fn session_json(s: &Session, now: i64) -> Value {
    let remaining = (s.expires_at - now).max(0);
    let warn = s.timeout.warning_threshold_ms();
    json!({
        "sessionId": s.id,
        "channelId": s.channel_id.clone().unwrap_or_default(),
        "agentId": s.agent_id.clone().unwrap_or_default(),
        "userId": s.user_id.clone().unwrap_or_default(),
        "createdAt": format_iso_ms(s.sort_at()),
        "lastActivity": format_iso_ms(s.last_active_at),
        "expiresAt": format_iso_ms(s.expires_at),
        "metadata": s.metadata,
        "timeoutConfig": {
            "timeoutMinutes": s.timeout.timeout_minutes,
            "autoRenew": s.timeout.auto_renew,
            "maxDurationMinutes": s.timeout.max_duration_minutes,
            "warningThresholdMinutes": s.timeout.warning_threshold_minutes,
        },
        "renewalCount": s.renewal_count,
        "timeRemaining": remaining,
        "isNearExpiration": remaining > 0 && remaining <= warn,
    })
}

fn bad(msg: String, now: i64) -> ApiError {
    ApiError::new(V, StatusCode::BAD_REQUEST, "INVALID_PARAMETER", msg, now)
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
    let limit = int_param(&p, "limit", 100, 1, 500).map_err(|m| bad(m, now))?;
    let mut f = Filter {
        user_id: p.get("userId").cloned(),
        agent_id: p.get("agentId").cloned(),
        client_id: p.get("clientId").cloned(),
        workspace_id: p.get("workspaceId").cloned(),
        status: Some(Status::Active),
    };
    apply_scope(&scope, &mut f, V, now)?;
    let start = match p.get("cursor") {
        Some(c) => Start::After(c.clone()),
        None => Start::Offset(0),
    };
    let err = |e| store_error(e, V, now);
    let page = state
        .store
        .list(&f, Order::NewestFirst, &start, limit, now)
        .map_err(err)?;
    let total = state.store.count(&f, now).map_err(err)?;
    let stats = state.store.stats();
    let all = stats.sessions - stats.status(Status::Pending);
    let active = state
        .store
        .count(
            &Filter {
                status: Some(Status::Active),
                ..Default::default()
            },
            now,
        )
        .map_err(err)?;
    let body = json!({
        "sessions": page.items.iter().map(|s| session_json(s, now)).collect::<Vec<_>>(),
        "total": total,
        "stats": {"totalSessions": all, "activeSessions": active, "expiredSessions": all.saturating_sub(active)},
    });
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
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(session_json(&s, now)))
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
    authorize(&state, &headers, V)?;
    let err = |e| store_error(e, V, now);
    let active = state
        .store
        .count(
            &Filter {
                status: Some(Status::Active),
                ..Default::default()
            },
            now,
        )
        .map_err(err)?;
    let warn = state.store.defaults().warning_threshold_ms();
    let soon = state.store.count_deadlines(now, now + warn).map_err(err)?;
    Ok(Json(json!({
        "status": "healthy",
        "activeSessions": active,
        "timestamp": format_iso_ms(now),
        "expiringSoon": soon,
        "uptime": ((now - state.started_ms).max(0)) as f64 / 1000.0,
    })))
}
