//! Shared by the view tests and the HTTP bench: load events into a real sled
//! store, and serve the API over real TCP on a free loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;

use ledger_api::{hash_key, ApiKey, AppState, Auth, Scope};
use ledger_core::Event;
use ledger_store::Store;

/// Applies `events` to `store` as partition 0 of `topic`, 5,000 per batch.
pub fn load(store: &Store, topic: &str, events: Vec<Event>) {
    ledger_testkit::load(store, topic, &events, 5_000, 1);
}

/// A server running on its own 2-worker runtime (stops when dropped).
pub struct Served {
    pub addr: SocketAddr,
    /// `http://addr`
    pub base: String,
    _rt: tokio::runtime::Runtime,
}

/// Serves `state` on a free loopback port.
pub fn serve(state: AppState) -> Served {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(ledger_api::serve(listener, state, std::future::pending()));
    Served {
        addr,
        base: format!("http://{addr}"),
        _rt: rt,
    }
}

/// Serves `store` as `topic` with `auth` and a clock frozen at `now_ms`.
pub fn serve_at(store: Store, topic: &str, auth: Auth, now_ms: i64) -> Served {
    serve(AppState::new(
        store,
        topic,
        auth,
        std::sync::Arc::new(move || now_ms),
        Default::default(),
    ))
}

/// A configured key: its name, the SHA-256 of `secret`, its scope.
pub fn key(name: &str, secret: &str, scope: Scope) -> ApiKey {
    ApiKey {
        name: name.into(),
        sha256: hash_key(secret),
        scope,
    }
}
