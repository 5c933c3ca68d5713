//! Clerk Backend API view: `GET /v1/sessions`, `GET /v1/sessions/{id}`.
//! Snake_case, times in Unix ms, Clerk's error envelope.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use ledger_core::{Session, Status};
use ledger_store::{Filter, Order};
use serde_json::{json, Map, Value};

use super::{
    apply_scope, authorize, int_param, load_visible, page_start, params, store_error,
    with_next_cursor,
};
use crate::error::{ApiError, View};
use crate::state::AppState;

const V: View = View::Clerk;

/// Clerk's `Session` object.
pub fn session_json(s: &Session, now: i64) -> Value {
    let activity = s.latest_activity.as_ref().map(|a| {
        let mut m = Map::new();
        m.insert("object".into(), "session_activity".into());
        m.insert("id".into(), a.event_id.clone().into());
        m.insert("is_mobile".into(), a.device.is_mobile.into());
        for (k, v) in [
            ("device_type", &a.device.device_type),
            ("browser_name", &a.device.browser_name),
            ("browser_version", &a.device.browser_version),
            ("ip_address", &a.device.ip_address),
            ("city", &a.device.city),
            ("country", &a.device.country),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        }
        Value::Object(m)
    });
    json!({
        "object": "session",
        "id": s.id,
        "user_id": s.user_id.clone().unwrap_or_default(),
        "client_id": s.client_id.clone().unwrap_or_default(),
        "status": s.status_at(now).as_str(),
        "last_active_at": s.last_active_at,
        "expire_at": s.expires_at,
        "abandon_at": s.abandon_at,
        "updated_at": s.updated_at,
        "created_at": s.sort_at(),
        "actor": s.actor,
        "last_active_organization_id": s.last_active_organization_id,
        "latest_activity": activity,
        "tasks": Value::Null,
    })
}

fn invalid(msg: String, now: i64) -> ApiError {
    ApiError::new(
        V,
        StatusCode::UNPROCESSABLE_ENTITY,
        "form_param_value_invalid",
        msg,
        now,
    )
}

/// `GET /v1/sessions?client_id&user_id&status&paginated&limit&offset`
/// (+ `agent_id`, `workspace_id`, `cursor`; `x-next-cursor` header).
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let now = state.now();
    let scope = authorize(&state, &headers, V)?;
    let p = params(q, V, now)?;
    let limit = int_param(&p, "limit", 10, 1, 500).map_err(|m| invalid(m, now))?;
    let offset = int_param(&p, "offset", 0, 0, usize::MAX >> 1).map_err(|m| invalid(m, now))?;
    let paginated = match p.get("paginated").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(invalid(
                format!("`paginated` must be true or false, got `{v}`"),
                now,
            ))
        }
    };
    let status = match p.get("status") {
        None => None,
        Some(v) => Some(Status::parse(v).filter(|s| *s != Status::Pending).ok_or_else(|| {
            invalid(format!("`status` must be one of abandoned, active, ended, expired, removed, replaced, revoked; got `{v}`"), now)
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
    apply_scope(&scope, &mut f, V, now)?;
    let start = page_start(&p, offset);
    let page = state
        .store
        .list(&f, Order::NewestFirst, &start, limit, now)
        .map_err(|e| store_error(e, V, now))?;
    let data: Vec<Value> = page.items.iter().map(|s| session_json(s, now)).collect();
    let body = if paginated {
        let total = state
            .store
            .count(&f, now)
            .map_err(|e| store_error(e, V, now))?;
        json!({"data": data, "total_count": total})
    } else {
        Value::Array(data)
    };
    Ok(with_next_cursor(body, page.next_cursor.as_deref()))
}

/// `GET /v1/sessions/{id}`
pub async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let s = load_visible(&state, &headers, &id, V, "resource_not_found")?;
    Ok(Json(session_json(&s, state.now())))
}
