//! Shared by the view tests and the HTTP bench: load events into a real sled
//! store, and serve the API over real TCP on a free loopback port.
#![allow(dead_code)]

use std::net::SocketAddr;

use ledger_api::AppState;
use ledger_core::Event;
use ledger_store::{Record, Store};

/// Applies `events` to `store` as partition 0 of `topic`, 5,000 per batch.
pub fn load(store: &Store, topic: &str, events: Vec<Event>) {
    let records: Vec<Record> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record {
            event,
            partition: 0,
            offset: i as i64,
        })
        .collect();
    for chunk in records.chunks(5_000) {
        let next = chunk.last().expect("non-empty chunk").offset + 1;
        store.apply_batch(topic, chunk, &[(0, next)], 0).unwrap();
    }
    store.flush().unwrap();
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
