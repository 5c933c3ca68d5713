//! The ledger's own routes: liveness, readiness, metrics, the OpenAPI
//! document, and the 404 of every unknown route, in the `Plain` dialect.

mod dialect;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::auth::Scope;
use crate::ctx::Ctx;
use crate::dialect::Failure;
use crate::error::ApiError;
use crate::state::AppState;

pub use dialect::Plain;

/// The OpenAPI document served at `/openapi.yaml` (the file in `schemas/`).
pub const OPENAPI: &str = include_str!("../../../../../schemas/openapi.yaml");

/// The ledger's own routes and the fallback for every other path.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.yaml", get(openapi))
        .route("/admin/erasures", post(erasures))
        .route("/admin/rebuild", post(start_rebuild).get(rebuild_status))
        .fallback(not_found)
}

/// Requests the erasure of a user's or a workspace's data (admin keys
/// only): body `{"user_id": …}` or `{"workspace_id": …}`. The erasure is
/// published to every partition of the event topic, so every replica and
/// every replay applies it; 202 once the broker has it, with where.
async fn erasures(ctx: Ctx<Plain>, body: Bytes) -> Result<Response, ApiError> {
    if ctx.scope != Scope::Admin {
        return Err(ctx.fail(Failure::Forbidden, "erasures need an admin key"));
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        user_id: Option<String>,
        workspace_id: Option<String>,
    }
    let b: Body = serde_json::from_slice(&body)
        .map_err(|e| ctx.fail(Failure::BadRequest, format!("body: {e}")))?;
    let subject = match (b.user_id, b.workspace_id) {
        (Some(u), None) if !u.is_empty() => ledger_core::Subject::User(u),
        (None, Some(w)) if !w.is_empty() => ledger_core::Subject::Workspace(w),
        _ => {
            return Err(ctx.fail(
                Failure::BadParameter,
                "name exactly one non-empty user_id or workspace_id",
            ))
        }
    };
    let Some(eraser) = ctx.state.eraser.clone() else {
        return Err(ctx.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "erasure_unavailable",
            "this server does not publish erasures",
        ));
    };
    let e = ledger_core::Erasure {
        id: uuid::Uuid::new_v4().to_string(),
        time_ms: ctx.now,
        subject,
    };
    let copies = eraser(e.clone()).await.map_err(|why| {
        ctx.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "erasure_unavailable",
            format!("publishing the erasure failed: {why}"),
        )
    })?;
    tracing::info!(id = %e.id, subject = %e.subject, partitions = copies.len(), "erasure requested");
    let published: Vec<_> = copies
        .iter()
        .map(|(p, o)| json!({"partition": p, "offset": o}))
        .collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": e.id,
            "subject": e.subject.to_string(),
            "status": "published",
            "published": published,
        })),
    )
        .into_response())
}

/// Starts an online rebuild (admin keys only) — `?from=topic` (default: a
/// replay) or `?from=store` (a copy: compaction) — 202 with its status, 409
/// while one runs.
async fn start_rebuild(ctx: Ctx<Plain>) -> Result<Response, ApiError> {
    let hooks = rebuild_hooks(&ctx)?;
    let from_store = match ctx.params()?.get("from").map(String::as_str) {
        None | Some("topic") => false,
        Some("store") => true,
        Some(other) => {
            return Err(ctx.fail(
                Failure::BadParameter,
                format!("from must be topic or store, not {other}"),
            ))
        }
    };
    match (hooks.start)(from_store) {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json((hooks.status)())).into_response()),
        Err(why) => Err(ctx.error(StatusCode::CONFLICT, "rebuild_running", why)),
    }
}

/// What the online rebuild is doing (admin keys only).
async fn rebuild_status(ctx: Ctx<Plain>) -> Result<Response, ApiError> {
    let hooks = rebuild_hooks(&ctx)?;
    Ok(Json((hooks.status)()).into_response())
}

fn rebuild_hooks(ctx: &Ctx<Plain>) -> Result<crate::state::RebuildHooks, ApiError> {
    if ctx.scope != Scope::Admin {
        return Err(ctx.fail(Failure::Forbidden, "rebuilds need an admin key"));
    }
    ctx.state.rebuild.clone().ok_or_else(|| {
        ctx.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "rebuild_unavailable",
            "this server does not rebuild online",
        )
    })
}

/// Liveness: 503 once the consumer has stopped (what is served no longer
/// updates; restart the process).
async fn healthz(State(state): State<AppState>) -> Response {
    match (state.health)().failure {
        None => Json(json!({"status": "ok"})).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "consumer stopped", "error": why})),
        )
            .into_response(),
    }
}

/// Readiness: 200 once caught up with nothing holding ingestion back.
async fn readyz(State(state): State<AppState>) -> Response {
    let health = (state.health)();
    let (status, body) = if let Some(why) = health.failure {
        ("consumer stopped", json!([why]))
    } else if !health.problems.is_empty() {
        ("degraded", json!(health.problems))
    } else if !(state.ready)() {
        ("catching up", json!([]))
    } else {
        return (StatusCode::OK, Json(json!({"status": "ready"}))).into_response();
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": status, "problems": body})),
    )
        .into_response()
}

/// The Prometheus registry in OpenMetrics text, the store's sizes read now.
async fn metrics(State(state): State<AppState>) -> Response {
    let store = state.store();
    state.http.store_bytes.set(store.size_on_disk() as i64);
    state
        .http
        .index_memory_bytes
        .set(store.memory_index_size().1 as i64);
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &state.registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

/// Any route the ledger does not serve.
async fn not_found(State(state): State<AppState>) -> ApiError {
    ApiError::of(&Plain, Failure::NotFound, "No such route", state.now())
}
