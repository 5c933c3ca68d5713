//! The console: `GET /ui`, one self-contained page (its HTML, CSS and
//! script embedded in the binary: no build step, no CDN) that reads the
//! ledger through the API like any client, with the key the user enters;
//! and the two ledger routes only it needs, each scoped like every read:
//! `GET /ledger/summary` (live counters) and
//! `GET /ledger/sessions/{id}/timeline` (a session's kept history with the
//! state each event left).

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ledger_core::Status;
use ledger_store::Filter;
use serde_json::{json, Value};

use super::ops::Plain;
use crate::ctx::Ctx;
use crate::error::ApiError;
use crate::state::AppState;

/// The page, embedded.
const PAGE: &str = include_str!("console.html");

/// Most sessions `ended_last_hour` counts exactly.
const ENDED_MAX: usize = 100_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(page))
        .route("/ledger/summary", get(summary))
        .route("/ledger/sessions/{id}/timeline", get(timeline))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

/// `GET /ledger/summary`: `{now, active, expiring_soon, ended_last_hour}`
/// within the key's scope (`ended_last_hour`: terminal sessions by
/// `ended_at`, and active ones whose deadline passed, in the last hour).
async fn summary(ctx: Ctx<Plain>) -> Result<Json<Value>, ApiError> {
    let scope = ctx.scope_filter();
    let active = ctx.count(&Filter {
        status: Some(Status::Active),
        ..scope.clone()
    })?;
    let soon = ctx.near_expiration(&scope)?;
    let ended = ctx.ended_between(ctx.now - 3_600_000, ctx.now, ENDED_MAX)?;
    let ended = if scope == Filter::default() {
        ended.len()
    } else {
        let mut n = 0;
        for (id, _) in &ended {
            if ctx.session(id)?.is_some_and(|s| ctx.may_see(&s)) {
                n += 1;
            }
        }
        n
    };
    Ok(Json(json!({
        "now": ctx.now,
        "active": active,
        "expiring_soon": soon,
        "ended_last_hour": ended,
    })))
}

/// `GET /ledger/sessions/{id}/timeline`: each kept event (`seq`, `id`,
/// `type`, `time`, `outcome`) with the state it left (`status_after`,
/// `expire_at`, `abandon_at`, `ended_at`, the next `deadline` and the
/// `deadline_status` it leads to); `history_from` is where the kept history
/// starts (`null`: at the session's first event).
async fn timeline(Path(id): Path<String>, ctx: Ctx<Plain>) -> Result<Json<Value>, ApiError> {
    ctx.load_visible(&id)?;
    let Some((base, steps)) = ctx.timeline(&id)? else {
        return Err(ctx.not_found(&id));
    };
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| {
            let deadline = s.after.next_deadline();
            json!({
                "seq": s.entry.seq,
                "id": s.entry.id(),
                "type": s.entry.kind(),
                "time": s.entry.time(),
                "outcome": s.entry.outcome,
                "status_after": s.after.status.as_str(),
                "expire_at": s.after.expires_at,
                "abandon_at": s.after.abandon_at,
                "ended_at": s.after.ended_at,
                "deadline": deadline.map(|d| d.0),
                "deadline_status": deadline.map(|d| d.1.as_str()),
            })
        })
        .collect();
    Ok(Json(json!({
        "id": id,
        "history_from": base.map(|b| b.through),
        "steps": steps,
    })))
}
