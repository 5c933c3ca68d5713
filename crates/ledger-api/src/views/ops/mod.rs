//! The ledger's own routes: liveness, readiness, metrics, the OpenAPI
//! document, and the 404 of every unknown route, in the `Plain` dialect.

mod dialect;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

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
        .fallback(not_found)
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

/// The Prometheus registry in OpenMetrics text, the store's size read now.
async fn metrics(State(state): State<AppState>) -> Response {
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

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI).into_response()
}

/// Any route the ledger does not serve.
async fn not_found(State(state): State<AppState>) -> ApiError {
    ApiError::of(&Plain, Failure::NotFound, "No such route", state.now())
}
