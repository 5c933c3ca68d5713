//! The sled read models of the session ledger.
//!
//! One sled tree holds everything, split by key prefix, so that a single
//! `apply_batch` covers sessions, indexes, stats, history and offsets
//! atomically. Numeric key parts are big-endian so byte order = numeric order;
//! strings that are followed by more key parts are length-prefixed (u32 BE).
//!
//! | prefix | key after the prefix | value |
//! |---|---|---|
//! | `s` | session id | [`StoredSession`], postcard |
//! | `iu` | len+user id, sort(8), session id | empty |
//! | `ic` | len+client id, sort(8), session id | empty |
//! | `ia` | len+agent id, sort(8), session id | empty |
//! | `iw` | len+workspace id, sort(8), session id | empty |
//! | `is` | status code(1), sort(8), session id | empty |
//! | `io` | sort(8), session id (every session, creation order) | empty |
//! | `ix` | deadline(8), session id, status due(1), partition(4) (active sessions only) | empty |
//! | `h` | len+session id, first seq(8) | one batch's [`HistoryEntry`]s of the session, postcard |
//! | `c` | counter name | u64 BE |
//! | `o` | len+topic, partition(4) | next offset, i64 BE |
//!
//! `sort` is the session's creation time (first-seen time while pending) in
//! Unix ms, an `i64` with its sign bit flipped so it orders as unsigned.
//!
//! **Invariant:** every index entry exists iff the session record it names
//! exists and its fields produce that entry; counters equal a recount; the
//! stored offsets are exactly the positions after the last applied events.

mod keys;
mod query;
mod store;

pub use keys::index_keys;
pub use query::{encode_cursor, Filter, Order, Page, Start};
pub use store::{
    BatchReport, EventCounts, HistoryEntry, Record, Stats, Store, StoreError, StoredSession,
    HISTORY_LEN,
};
