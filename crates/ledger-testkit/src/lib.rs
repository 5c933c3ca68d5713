//! Test support shared by the ledger's tests and benches (a dev-dependency
//! only): the reference fold of an event sequence, and loading events into a
//! real sled store the way ingestion does (batches, offsets, a flush), the
//! figures of a `wrk` run ([`wrk`]) and the samples of `/metrics`
//! ([`metrics`]).

use std::collections::BTreeMap;

pub mod metrics;
pub mod wrk;

use ledger_core::{replay, Defaults, Event, Session};
use ledger_store::{Pace, Record, Store};

/// The reference: each session folded from its events, in the order given,
/// with the default timeouts (`ledger_core::replay`).
pub fn fold(events: &[Event]) -> BTreeMap<String, Session> {
    replay(events, &Defaults::default())
}

/// The partition of a session among `partitions` (a stable hash of its id;
/// always 0 for one partition).
pub fn partition_of(session_id: &str, partitions: u32) -> i32 {
    let sum: u32 = session_id.bytes().map(u32::from).sum();
    (sum % partitions.max(1)) as i32
}

/// Applies `events` to `store` as `topic`'s `partitions` partitions, in
/// batches of `batch` records (offsets going on from the store's), each
/// batch with every partition's next offset;
/// flushes at the end (so the offsets are durable, as after ingestion).
pub fn load(store: &Store, topic: &str, events: &[Event], batch: usize, partitions: u32) {
    load_paced(store, topic, events, batch, partitions, &Pace::none());
}

/// [`load`], each batch written as ingestion paced by `pace` writes it.
pub fn load_paced(
    store: &Store,
    topic: &str,
    events: &[Event],
    batch: usize,
    partitions: u32,
    pace: &Pace,
) {
    // Offsets go on from what the store applied, as a consumer's do.
    let mut next: BTreeMap<i32, i64> = store.offsets(topic).unwrap_or_default();
    for chunk in events.chunks(batch.max(1)) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|e| {
                let partition = partition_of(&e.session_id, partitions);
                let offset = next.entry(partition).or_insert(0);
                *offset += 1;
                Record {
                    event: e.clone(),
                    partition,
                    offset: *offset - 1,
                }
            })
            .collect();
        let offsets: Vec<(i32, i64)> = next.iter().map(|(p, o)| (*p, *o)).collect();
        store
            .apply_batch_paced(topic, &records, &offsets, 0, pace)
            .expect("applying a batch to the test store");
    }
    store.flush().expect("flushing the test store");
}
