//! The sled read models of the session ledger.
//!
//! One sled tree holds everything, split by key prefix, but five indexes
//! kept in memory in the same layout (below). `apply_batch`
//! writes sessions, indexes, stats and history in parts of bounded size and
//! the offsets with the last part; each session records what it applied, so
//! a batch applied again after a crash between parts repeats nothing. Numeric key parts are big-endian so byte order = numeric order;
//! strings that are followed by more key parts are length-prefixed (u32 BE).
//!
//! | prefix | key after the prefix | value |
//! |---|---|---|
//! | `s` | session id | [`StoredSession`], postcard; as a compaction writes it (since format 10), zstd-compressed with the store's dictionary (`mdict`) behind a 0 byte |
//! | `iu` | len+user id, chunk low bound | index chunk: entries sort(8), session id (in memory since format 11) |
//! | `ic` | len+client id, chunk low bound | index chunk: entries sort(8), session id (in memory since format 11) |
//! | `ia` | len+agent id, chunk low bound | index chunk: entries sort(8), session id (in memory since format 11) |
//! | `iw` | len+workspace id, chunk low bound | index chunk: entries sort(8), session id (in memory since format 11) |
//! | `is` | status code(1), chunk low bound | index chunk: entries sort(8), session id |
//! | `io` | chunk low bound | index chunk: entries sort(8), session id (every session, creation order) |
//! | `ix` | chunk low bound | index chunk: entries deadline(8), session id, status due(1), partition(4) (active sessions only; in memory since format 11) |
//! | `ie` | chunk low bound | index chunk: entries ended_at(8), session id (terminal sessions only: what retention purges, oldest first) |
//! | `h` | len+session id, first seq(8) | a chunk of at least [`TAIL_MAX`] [`HistoryEntry`]s of the session (each with its event), postcard; plain as ingestion writes it, zstd-compressed behind a 0 byte as a compaction (and formats 8 to 10's ingestion) writes it; the newer ones are in the session record |
//! | `b` | session id | [`HistoryBase`]: the state the kept history starts from, once older chunks were dropped |
//! | `f` | partition(4), chunk's first offset(8) | change log: (offset, session id) of each record one write part changed visibly (not a pending shell), by offset, postcard, zstd-compressed behind a 0 byte (since format 9; plain chunks read too) |
//! | `mchangespan` | — | widest change-log chunk (last − first offset), i64 BE |
//! | `g` | partition(4) | first offset the partition's change log holds, i64 BE |
//! | `c` | counter name | u64 BE |
//! | `o` | len+topic, partition(4) | next offset, i64 BE |
//! | `t` | SHA-256(session id)[..16] | marker of a purged or erased session: kept until, Unix ms, i64 BE ([`i64::MAX`]: erased, forever) |
//! | `mformat` | — | [`FORMAT`], u64 BE |
//! | `mcompacted` | — | bytes per session sled's files held right after the compaction that made this store, u64 BE (absent: never compacted) |
//! | `mdict` | — | the zstd dictionary of the store's compressed session records, trained by the compaction that made the store on up to 20,000 of its records (absent: every record is plain) |
//! | `mdrop` | partition(4) | a partition handed to another instance (sharded mode) whose sessions are being removed; empty |
//!
//! `sort` is the session's creation time (first-seen time while pending) in
//! Unix ms, an `i64` with its sign bit flipped so it orders as unsigned.
//!
//! Index chunks are stored plain, or zstd-compressed behind a 0 byte as a
//! compaction writes them (since format 10; a plain chunk starts with its
//! first entry's length, never 0).
//!
//! Index entries are packed into sorted chunks of at most
//! [`CHUNK_MAX`] entries, one sled key per chunk (the `chunks` module): a batch
//! writes each chunk it changes once, instead of one key per entry. The
//! field indexes (`iu`, `ic`, `ia`, `iw`) and the deadline index (`ix`)
//! keep the same chunks in memory instead of sled (since format 11): every
//! new session adds four scattered field entries and most events move a
//! deadline, and those chunk writes were most of sled's work. A store
//! rebuilds them from its session records when it opens; its memory
//! chunks change right after the sled batch of the same write, under the
//! write lock. The
//! *logical* index key of an entry is the index prefix followed by the entry
//! ([`index_keys`] yields them); a chunk's key is the index prefix followed by
//! its low bound (empty, or an entry).
//!
//! **Invariant:** every index entry exists iff the session record it names
//! exists and its fields produce that entry; chunks are non-empty, sorted,
//! hold at most [`CHUNK_MAX`] entries, and hold exactly the entries between
//! their low bound and the next chunk's, and a non-empty low bound is one of
//! the chunk's entries (so no removed session's id survives in a key); counters equal a recount; the
//! stored offsets are the positions after the last events applied to every session.

mod chunks;
mod feed;
mod keys;
pub mod live;
pub mod pace;
mod past;
mod query;
mod retention;
mod shard;
mod store;
mod write;

pub use chunks::CHUNK_MAX;
pub use feed::{event_type_of, ChangeKind, FeedItem, Token};
pub use keys::index_keys;
pub use live::LiveStore;
pub use pace::{Pace, ReadLoad};
pub use past::{Past, Step};
pub use query::{encode_cursor, Filter, Order, Page, Start};
pub use retention::{EraseReport, PurgeReport, Retention};
pub use store::{
    set_cache_bytes, BatchReport, EventCounts, HistoryBase, HistoryEntry, Record, Stats, Store,
    StoreError, StoredSession, CACHE_BYTES, FORMAT, HISTORY_LEN, TAIL_MAX,
};
pub use write::{QUIET_PART, QUIET_PART_TIME, WRITE_PART};
