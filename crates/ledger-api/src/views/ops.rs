//! The ledger's own routes: liveness, readiness, metrics, the OpenAPI document.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::{ApiError, View};
use crate::state::AppState;

/// The OpenAPI document served at `/openapi.yaml` (the file in `schemas/`).
pub const OPENAPI: &str = include_str!("../../../../schemas/openapi.yaml");

/// Liveness: 503 once the consumer has stopped (what is served no longer
/// updates; restart the process).
pub async fn healthz(State(state): State<AppState>) -> Response {
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
pub async fn readyz(State(state): State<AppState>) -> Response {
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

pub async fn metrics(State(state): State<AppState>) -> Response {
    state
        .http
        .store_bytes
        .set(state.store.size_on_disk() as i64);
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

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

pub async fn not_found(State(state): State<AppState>) -> ApiError {
    ApiError::new(
        View::Plain,
        StatusCode::NOT_FOUND,
        "not_found",
        "No such route",
        state.now(),
    )
}
