//! The read API: the store's sessions in the exact wire shapes of four public
//! session APIs (Clerk, orq.ai, Wingspan, elizaOS), plus health, readiness,
//! metrics and the consistency token.
//!
//! **Invariant:** handlers only read; the store is written by ingestion alone.
//! Wall-clock time enters only through [`AppState::clock`], so responses are
//! reproducible in tests. No handler ever returns a session token.

pub mod auth;
mod error;
mod middleware;
mod state;
mod views;

pub use auth::{hash_key, ApiKey, Auth, Scope};
pub use error::{ApiError, View};
pub use state::{AppState, HttpMetrics, IngestHealth};

use axum::routing::get;
use axum::Router;

/// Largest request body accepted, bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/v1/sessions", get(views::clerk::list))
        .route("/v1/sessions/{id}", get(views::clerk::get_one))
        .merge(views::orq::routes())
        .route("/users/session/api", get(views::wingspan::list))
        .route("/users/session/api/{id}", get(views::wingspan::get_api))
        .route("/users/session/token/{id}", get(views::wingspan::get_token))
        .route("/api/messaging/sessions", get(views::eliza::list))
        .route("/api/messaging/sessions/health", get(views::eliza::health))
        .route("/api/messaging/sessions/{id}", get(views::eliza::get_one))
        .route(
            "/api/messaging/sessions/{id}/events",
            get(views::eliza::events),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::consistency,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(views::ops::healthz))
        .route("/readyz", get(views::ops::readyz))
        .route("/metrics", get(views::ops::metrics))
        .route("/openapi.yaml", get(views::ops::openapi))
        .fallback(views::ops::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .with_state(state)
}

/// Serves `router` on a bound listener until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
