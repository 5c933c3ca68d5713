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

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    if (state.ready)() {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "catching up"})),
        )
            .into_response()
    }
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
