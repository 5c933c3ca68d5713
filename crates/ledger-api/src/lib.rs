//! The read API: the store's sessions in the exact wire shapes of four public
//! session APIs (Clerk, orq.ai, Wingspan, elizaOS), plus health, readiness,
//! metrics and the consistency token.
//!
//! **Invariant:** handlers only read; the store is written by ingestion alone.
//! Wall-clock time enters only through [`AppState::clock`], so responses are
//! reproducible in tests. No handler ever returns a session token.

pub mod auth;
mod ctx;
mod dialect;
mod error;
mod middleware;
pub mod shard;
mod state;
mod views;

pub use auth::{hash_key, ApiKey, Auth, Scope};
pub use dialect::{Dialect, Failure};
pub use error::ApiError;
pub use state::{AppState, Eraser, HttpMetrics, IngestHealth, RebuildHooks};
/// A session in Clerk's wire shape at `now` (Unix ms): what Clerk's routes
/// and its change feed send.
pub use views::clerk::session_json as clerk_session_json;

use axum::Router;

/// Largest request body accepted, bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole HTTP surface: each view's routes (one folder each under
/// `views/`), behind the consistency token, and the ledger's own routes.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(views::clerk::routes())
        .merge(views::orq::routes())
        .merge(views::wingspan::routes())
        .merge(views::eliza::routes())
        // Counted as a read only once any consistency wait is over: a
        // request waiting for ingestion must not slow it down.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::count_read,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::consistency,
        ));
    let own = Router::new()
        .route("/internal/shard", axum::routing::post(shard::handle))
        .merge(views::ops::routes())
        .merge(views::console::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::count_read,
        ));
    Router::new()
        .merge(api)
        .merge(own)
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
