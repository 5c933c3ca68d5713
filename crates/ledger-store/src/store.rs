//! The store handle: opening, the atomic batch write, point reads, stats,
//! offsets, history and a full consistency audit.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ledger_core::time::MINUTE_MS;
use ledger_core::{Bucket, Defaults, Event, Outcome, Session, Status};
use serde::{Deserialize, Serialize};

use crate::chunks::{self, IndexChanges, Scan};
use crate::keys;
use crate::query::Filter;

/// The on-disk layout this build reads and writes (the `m` format key).
/// 2: index entries packed into chunks. 7: the newest history entries in
/// the session record. 8: history chunks zstd-compressed. 9: change-log
/// chunks zstd-compressed. 10: session records written by a compaction
/// zstd-compressed with a dictionary of the store's own, and its index
/// chunks zstd-compressed. 11: the field and deadline indexes are kept in
/// memory, no longer in sled ([`keys::in_memory`]).
pub const FORMAT: u64 = 11;

/// A file that exists while a store is being created, until its format
/// key is on disk: a store found with it was never created.
const CREATING: &str = "CREATING";

/// Older formats this build opens, marking them [`FORMAT`] (so older
/// builds refuse them from then on): 7 to 10 differ in history (7) and
/// change-log (7, 8) chunks being plain, which [`unpacked`] still reads, in
/// every session record being plain (7 to 9), which
/// [`Store::decode_session`] still reads, and in holding the field and
/// deadline indexes in sled (7 to 10), whose chunks the upgrade removes.
const UPGRADES: &[u64] = &[7, 8, 9, 10];

/// Sessions whose memory index entries an open merges in at once.
const BUILD_GROUP: usize = 250_000;

/// Sled keys an upgrade removes in one batch.
const DROP_BATCH: usize = 10_000;

/// Removes the chunks of the indexes now kept in memory from a store of an
/// older format (before it is marked [`FORMAT`]: an upgrade cut short is
/// done again).
fn drop_memory_indexes(tree: &sled::Tree) -> Result<(), StoreError> {
    for tag in keys::MEMORY_INDEXES {
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for kv in tree.scan_prefix(tag).take(DROP_BATCH) {
                batch.remove(kv?.0);
                n += 1;
            }
            if n == 0 {
                break;
            }
            tree.apply_batch(batch)?;
        }
    }
    Ok(())
}

/// First byte of a zstd-compressed value: a history, change-log or index
/// chunk, or a session record a compaction wrote (with the store's
/// dictionary, [`RecordDict`]). A plain history or change-log chunk starts
/// with its entry count (postcard varint, at least 1; the one plain history
/// chunk starting with 0 holds nothing and is that byte alone), a plain
/// index chunk with its first entry's length (entries are never empty), a
/// plain session record with its id's length (events without a session id
/// are refused).
const ZSTD_MARK: u8 = 0;

/// zstd level of packed chunks: each is written once (a change-log chunk
/// is rewritten only when trimmed or a session is removed).
const CHUNK_LEVEL: i32 = 3;

/// Largest plain chunk [`unpacked`] accepts, bytes: a damaged frame
/// claiming more is an error, not an allocation.
const UNPACKED_MAX: u64 = 64 << 20;

/// zstd level of dictionary-compressed session records (written once per
/// compaction, read by every request).
const RECORD_LEVEL: i32 = 3;

/// Size of a store's record dictionary, bytes.
const DICT_BYTES: usize = 32 * 1024;

/// Session records a dictionary is trained on; with fewer than
/// [`DICT_MIN_SAMPLES`] sessions a compaction writes plain records.
pub(crate) const DICT_SAMPLES: usize = 20_000;
pub(crate) const DICT_MIN_SAMPLES: usize = 1_000;

/// Serial of each dictionary loaded in this process: tells a thread's
/// cached decompression context which dictionary it holds.
static DICT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The zstd dictionary of a store's compressed session records. Session
/// records are alike (the same fields, ids of the same shapes, the same
/// event types in their history tails), so a dictionary trained on a
/// store's own records compresses each one alone as if it were one of many.
pub(crate) struct RecordDict {
    serial: u64,
    raw: Vec<u8>,
}

impl RecordDict {
    pub(crate) fn new(raw: Vec<u8>) -> Self {
        Self {
            serial: DICT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            raw,
        }
    }

    /// A dictionary trained on `samples` (plain session records); `None`
    /// with too few of them, or when zstd cannot make one.
    pub(crate) fn train(samples: &[Vec<u8>]) -> Option<Self> {
        if samples.len() < DICT_MIN_SAMPLES {
            return None;
        }
        zstd::dict::from_samples(samples, DICT_BYTES)
            .ok()
            .map(Self::new)
    }

    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// A compressor of records with this dictionary (one per compaction).
    pub(crate) fn packer(&self) -> Result<zstd::bulk::Compressor<'static>, StoreError> {
        zstd::bulk::Compressor::with_dictionary(RECORD_LEVEL, &self.raw)
            .map_err(|e| StoreError::Io(e.to_string()))
    }

    /// `plain` as stored: behind [`ZSTD_MARK`], compressed with this
    /// dictionary, or `plain` itself if that is no smaller.
    pub(crate) fn pack(packer: &mut zstd::bulk::Compressor<'static>, plain: Vec<u8>) -> Vec<u8> {
        marked(packer.compress(&plain).ok(), plain)
    }

    /// The plain record behind a zstd frame `z` written with this dictionary.
    fn unpack(&self, k: &[u8], z: &[u8]) -> Result<Vec<u8>, StoreError> {
        let size = frame_size(k, z)?;
        DICT_UNPACKER.with(|d| {
            let mut d = d.borrow_mut();
            if d.as_ref().is_none_or(|(serial, _)| *serial != self.serial) {
                let fresh = zstd::bulk::Decompressor::with_dictionary(&self.raw)
                    .map_err(|e| corrupt(k, e))?;
                *d = Some((self.serial, fresh));
            }
            let (_, d) = d.as_mut().expect("set above");
            d.decompress(z, size).map_err(|e| corrupt(k, e))
        })
    }
}

thread_local! {
    /// A context holding one store's record dictionary, reused while the
    /// thread reads that store (loading a 32 KiB dictionary costs more than
    /// decompressing a record).
    static DICT_UNPACKER: std::cell::RefCell<Option<(u64, zstd::bulk::Decompressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    /// Contexts reused by the thread (making one costs more than packing a
    /// chunk: ~15 µs against ~5).
    static PACKER: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    static UNPACKER: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// How many events of each session the history keeps (oldest dropped first).
pub const HISTORY_LEN: u64 = 100;

/// History entries gathered in a session's record before they move to a
/// chunk of their own (`StoredSession::history_tail`).
pub const TAIL_MAX: u32 = 8;

/// Store failures: sled IO errors and records that fail to decode.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt record under key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("bad cursor")]
    BadCursor,
    #[error("the store is in format {found}; this build reads format {want}: rebuild it from the topic (`session-ledger rebuild`)")]
    Format { found: u64, want: u64 },
    #[error("the store at {path} is damaged ({reason}); refusing to start on it: rebuild it from the topic (`session-ledger rebuild`)")]
    Damaged { path: String, reason: String },
    #[error("the store at {path} is in use: another process (or a handle not yet released) holds sled's file lock on it")]
    Locked { path: String },
    #[error("store directory: {0}")]
    Io(String),
}

/// Whether sled refused to open a store because its file lock is held.
fn lock_refused(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock"))
}

pub(crate) fn corrupt(key: &[u8], e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    }
}

/// A session as stored: the fold's state plus bookkeeping the fold does not own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSession {
    pub session: Session,
    /// Partition of the session's latest event (the reaper reaps by partition).
    pub partition: i32,
    /// Events recorded in the history so far (the next entry's `seq`).
    pub history_len: u64,
    /// The stored history chunks, oldest first: (first `seq` in the chunk,
    /// entries in it). A chunk holds at least [`TAIL_MAX`] entries.
    pub history_chunks: VecDeque<(u64, u32)>,
    /// The newest history entries, not yet in a chunk: each
    /// [`HistoryEntry`] postcard-encoded, one after the other, fewer than
    /// [`TAIL_MAX`]. Kept in the record so that a write touches one key per
    /// session, not two (sled pays about the same for every key).
    #[serde(with = "serde_bytes")]
    pub history_tail: Vec<u8>,
    /// Entries in `history_tail`.
    pub tail_len: u32,
    /// The offset of the last record applied to this session, by partition:
    /// a record at or below it was applied already and is passed over, so a
    /// batch written in several parts can be applied again after a crash
    /// between them.
    pub applied: BTreeMap<i32, i64>,
}

/// One event of a batch, with where it was read from.
#[derive(Debug, Clone)]
pub struct Record {
    pub event: Event,
    pub partition: i32,
    pub offset: i64,
}

/// One entry of a session's bounded event history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub outcome: String,
    pub partition: i32,
    pub offset: i64,
    /// The event as applied (secret-named keys removed): the history
    /// re-folds from these (`as_of`, the change feed). Stored without its
    /// session id (the key's); every reader fills it in.
    pub event: Event,
}

/// A [`HistoryEntry`] as the fold writes it, borrowing its event and
/// leaving its session id out; encodes to the bytes the entry would.
#[derive(Serialize)]
pub(crate) struct HistoryEntryRef<'a> {
    pub seq: u64,
    pub outcome: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub event: StoredEventRef<'a>,
}

/// An [`Event`]'s fields in its order, with an empty session id.
#[derive(Serialize)]
pub(crate) struct StoredEventRef<'a> {
    id: &'a str,
    source: &'a str,
    kind: ledger_core::EventKind,
    session_id: &'static str,
    time_ms: i64,
    created_expires_at_ms: Option<i64>,
    data: &'a ledger_core::EventData,
}

impl<'a> StoredEventRef<'a> {
    /// `e` as a history stores it: without its session id.
    pub(crate) fn of(e: &'a Event) -> Self {
        let Event {
            id,
            source,
            kind,
            session_id: _,
            time_ms,
            created_expires_at_ms,
            data,
        } = e;
        Self {
            id,
            source,
            kind: *kind,
            session_id: "",
            time_ms: *time_ms,
            created_expires_at_ms: *created_expires_at_ms,
            data,
        }
    }
}

impl HistoryEntry {
    /// The event's id.
    pub fn id(&self) -> &str {
        &self.event.id
    }

    /// The event's type (`session.created`, …).
    pub fn kind(&self) -> &'static str {
        self.event.kind.type_name()
    }

    /// The event's time, Unix ms.
    pub fn time(&self) -> i64 {
        self.event.time_ms
    }
}

/// What a session's kept history starts from once older chunks fell out of
/// it: the fold of every dropped event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryBase {
    pub session: Session,
    /// The latest event time folded into `session`, Unix ms: the history
    /// answers for times at or after it.
    pub through: i64,
}

/// Counts of what happened to consumed records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    /// Changed a session (including closes at a deadline).
    pub applied: u64,
    /// Ignored as a recent duplicate id.
    pub duplicate: u64,
    /// Ignored: second `created`, or an event on a terminal session.
    pub ignored: u64,
    /// Renewals rejected past the maximum duration.
    pub rejected: u64,
    /// Events rejected because they would have pushed their session past a
    /// per-session bound (`ledger_core::limits`).
    pub limited: u64,
    /// Records that failed to decode and went to the dead-letter topic.
    pub dead_lettered: u64,
    /// Events for a purged or erased session, dropped (never stored).
    pub dropped: u64,
}

impl EventCounts {
    /// Counts an outcome in the counter core assigns it ([`Outcome::bucket`]).
    pub(crate) fn count(&mut self, o: Outcome) {
        *self.get_mut(o.bucket()) += 1;
    }

    fn get_mut(&mut self, b: Bucket) -> &mut u64 {
        match b {
            Bucket::Applied => &mut self.applied,
            Bucket::Duplicate => &mut self.duplicate,
            Bucket::Ignored => &mut self.ignored,
            Bucket::Rejected => &mut self.rejected,
            Bucket::Limited => &mut self.limited,
        }
    }

    /// The count of a bucket.
    pub fn get(mut self, b: Bucket) -> u64 {
        *self.get_mut(b)
    }

    pub(crate) fn add(&mut self, o: &EventCounts) {
        self.applied += o.applied;
        self.duplicate += o.duplicate;
        self.ignored += o.ignored;
        self.rejected += o.rejected;
        self.limited += o.limited;
        self.dead_lettered += o.dead_lettered;
        self.dropped += o.dropped;
    }
}

/// Incremental counters kept in the store (stored status, not read-time).
/// Equal when every named counter is (a status counted 0 equals one absent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub sessions: u64,
    pub by_status: BTreeMap<Status, u64>,
    pub events: EventCounts,
    /// The largest `warning_threshold_minutes` of any session written: an
    /// upper bound (never lowered) that bounds the near-expiry scan.
    pub max_warning_minutes: u64,
    /// Sessions removed by retention so far.
    pub purged: u64,
    /// Sessions removed by erasures so far, and erasure events applied.
    pub erased: u64,
    pub erasures: u64,
}

impl PartialEq for Stats {
    fn eq(&self, other: &Self) -> bool {
        self.named() == other.named()
    }
}

impl Eq for Stats {}

impl Stats {
    pub fn status(&self, s: Status) -> u64 {
        self.by_status.get(&s).copied().unwrap_or(0)
    }

    pub(crate) fn named(&self) -> Vec<(String, u64)> {
        let mut v = vec![
            ("sessions".to_string(), self.sessions),
            ("events.applied".into(), self.events.applied),
            ("events.duplicate".into(), self.events.duplicate),
            ("events.ignored".into(), self.events.ignored),
            ("events.rejected".into(), self.events.rejected),
            ("events.limited".into(), self.events.limited),
            ("events.dead_lettered".into(), self.events.dead_lettered),
            ("events.dropped".into(), self.events.dropped),
            ("max_warning_minutes".into(), self.max_warning_minutes),
            ("purged".into(), self.purged),
            ("erased".into(), self.erased),
            ("erasures".into(), self.erasures),
        ];
        for s in Status::ALL {
            v.push((format!("status.{}", s.as_str()), self.status(s)));
        }
        v
    }

    fn set_named(&mut self, name: &str, v: u64) {
        match name {
            "sessions" => self.sessions = v,
            "events.applied" => self.events.applied = v,
            "events.duplicate" => self.events.duplicate = v,
            "events.ignored" => self.events.ignored = v,
            "events.rejected" => self.events.rejected = v,
            "events.limited" => self.events.limited = v,
            "events.dead_lettered" => self.events.dead_lettered = v,
            "events.dropped" => self.events.dropped = v,
            "max_warning_minutes" => self.max_warning_minutes = v,
            "purged" => self.purged = v,
            "erased" => self.erased = v,
            "erasures" => self.erasures = v,
            other => {
                if let Some(s) = other.strip_prefix("status.").and_then(Status::parse) {
                    self.by_status.insert(s, v);
                }
            }
        }
    }
}

/// What one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    pub events: EventCounts,
    /// Distinct sessions written.
    pub sessions_written: usize,
}

pub(crate) struct Inner {
    /// The directory sled's files are in.
    dir: std::path::PathBuf,
    pub(crate) db: sled::Db,
    pub(crate) tree: sled::Tree,
    /// Cached counters; the stored ones are written with every batch.
    pub(crate) stats: Mutex<Stats>,
    /// Serializes writers: one batch at a time.
    pub(crate) write: Mutex<()>,
    /// Most sessions one sled batch of `apply_batch` writes.
    pub(crate) write_part: std::sync::atomic::AtomicUsize,
    /// What sled's batches of the recent write parts took a session; sizes
    /// quiet parts.
    pub(crate) part_time: crate::write::PartTime,
    /// The stored next offsets by topic and partition, read at open and kept
    /// equal to the tree by every applied batch (every API response reads
    /// them).
    pub(crate) offsets: Mutex<HashMap<String, BTreeMap<i32, i64>>>,
    /// The offsets known to be on disk: those at open, then the applied ones
    /// as of the start of the last completed flush. Never ahead of `offsets`.
    pub(crate) durable: Mutex<HashMap<String, BTreeMap<i32, i64>>>,
    pub(crate) defaults: Defaults,
    /// Write epoch: odd while a batch or removal is being written, bumped
    /// before and after each; watchers (the change feed) are woken by it.
    pub(crate) epoch: tokio::sync::watch::Sender<u64>,
    /// Changes the feed read recently (shared by every reader).
    pub(crate) feed_cache: Mutex<crate::feed::FeedCache>,
    /// The dictionary of the store's compressed session records, if a
    /// compaction wrote any (read once at open; never changes).
    pub(crate) dict: Option<RecordDict>,
    /// The indexes kept in memory ([`keys::in_memory`]), built from the
    /// session records at open.
    pub(crate) mem: crate::chunks::MemChunks,
}

/// A cheap-to-clone handle on the read models. Reads are concurrent; batches
/// are applied one at a time.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

/// sled's page cache of a store opened with [`Store::open`], bytes, unless
/// [`set_cache_bytes`] says otherwise.
pub const CACHE_BYTES: u64 = 128 * 1024 * 1024;

static CACHE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(CACHE_BYTES);

/// Sets the page cache, bytes, of every store [`Store::open`] opens from now
/// on in this process (the live store, and the generations rebuilds and
/// compactions switch to). sled counts its cache in serialized bytes; the
/// process holds more (decoded pages), and a compaction, which reads every
/// page of the live store, fills it.
pub fn set_cache_bytes(bytes: u64) {
    CACHE.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

impl Store {
    /// Opens (or creates) the store in `dir` with the given timeout defaults;
    /// when `dir` holds a `CURRENT` file, the generation it names (stores no
    /// longer live are removed once that is open and locked).
    ///
    /// A store whose files are damaged — sled's data file missing, emptied or
    /// unreadable, or data without the format key every store writes at
    /// creation — is refused with [`StoreError::Damaged`] (the way out is a
    /// rebuild), never silently re-ingested from offset 0.
    pub fn open(dir: impl AsRef<Path>, defaults: Defaults) -> Result<Self, StoreError> {
        Self::open_cached(
            dir,
            defaults,
            CACHE.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// [`Store::open`] with sled's page cache at `cache_bytes`.
    pub(crate) fn open_cached(
        dir: impl AsRef<Path>,
        defaults: Defaults,
        cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        Self::open_as(dir, defaults, cache_bytes, true)
    }

    /// [`Store::open_cached`]; without `build_index`, the memory indexes are
    /// left empty (a compaction copy takes its source's).
    fn open_as(
        dir: impl AsRef<Path>,
        defaults: Defaults,
        cache_bytes: u64,
        build_index: bool,
    ) -> Result<Self, StoreError> {
        // A switched store lives in the generation `CURRENT` names; stores
        // no longer live (an unfinished rebuild, a replaced store) go.
        let root = dir.as_ref();
        let dir = &crate::live::current_dir(root)?;
        let damaged = |reason: &str| StoreError::Damaged {
            path: dir.display().to_string(),
            reason: reason.to_string(),
        };
        if dir != root && !dir.join("conf").exists() {
            return Err(damaged("the generation CURRENT names holds no store"));
        }
        // A creation that never finished (the process died before the
        // format key was flushed) stored nothing: it starts over.
        let creating = dir.join(CREATING);
        if creating.exists() {
            for f in ["conf", "db", "blobs"] {
                let p = dir.join(f);
                let gone = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                match gone {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StoreError::Io(e.to_string()))
                    }
                    _ => {}
                }
            }
        }
        // sled writes `conf` and `db` when it creates a store.
        let existed = dir.join("conf").exists();
        if !existed {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
            std::fs::write(&creating, b"").map_err(|e| StoreError::Io(e.to_string()))?;
        }
        let data_len = std::fs::metadata(dir.join("db")).map_or(0, |m| m.len());
        if existed && data_len == 0 {
            return Err(damaged("its data file is missing or empty"));
        }
        // sled 0.34 panics on some truncated files: a refusal, not a crash.
        let opened = std::panic::catch_unwind(|| {
            let db = sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .mode(sled::Mode::HighThroughput)
                // No background flusher: it holds sled's global lock
                // shared while it writes and syncs, so a write waiting
                // behind it stops every read (stalls of ~300 ms at 1M
                // sessions). Writers flush, under the write lock.
                .flush_every_ms(None)
                .open()?;
            let tree = db.open_tree("ledger")?;
            let format = tree.get(keys::FORMAT)?;
            Ok::<_, sled::Error>((db, tree, format))
        });
        let (db, tree, format) = match opened {
            Ok(Ok(x)) => x,
            Ok(Err(sled::Error::Corruption { .. })) => {
                return Err(damaged("sled reports corruption"))
            }
            Ok(Err(e)) if lock_refused(&e) => {
                return Err(StoreError::Locked {
                    path: dir.display().to_string(),
                })
            }
            Ok(Err(e)) if existed => return Err(damaged(&format!("sled cannot open it: {e}"))),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(damaged("sled could not read its files")),
        };
        match format {
            Some(v) => {
                let found = decode_u64(keys::FORMAT, &v)?;
                if UPGRADES.contains(&found) {
                    drop_memory_indexes(&tree)?;
                    tree.insert(keys::FORMAT, &FORMAT.to_be_bytes()[..])?;
                    tree.flush()?;
                } else if found != FORMAT {
                    return Err(StoreError::Format {
                        found,
                        want: FORMAT,
                    });
                }
            }
            // Stores written before the format key existed are format 1.
            None if !tree.is_empty() => {
                return Err(StoreError::Format {
                    found: 1,
                    want: FORMAT,
                })
            }
            None if existed => {
                return Err(damaged(
                    "its data holds no format key: emptied or truncated",
                ))
            }
            None => {
                // Flushed at once: from here on, a store without it is damaged.
                tree.insert(keys::FORMAT, &FORMAT.to_be_bytes()[..])?;
                tree.flush()?;
                std::fs::remove_file(&creating).map_err(|e| StoreError::Io(e.to_string()))?;
            }
        }
        let mut stats = Stats::default();
        for kv in tree.scan_prefix(keys::COUNTER) {
            let (k, v) = kv?;
            let name =
                std::str::from_utf8(&k[keys::COUNTER.len()..]).map_err(|e| corrupt(&k, e))?;
            stats.set_named(name, decode_u64(&k, &v)?);
        }
        let mut offsets: HashMap<String, BTreeMap<i32, i64>> = HashMap::new();
        for kv in tree.scan_prefix(keys::OFFSET) {
            let (k, v) = kv?;
            let (topic, p) = keys::split_offset(&k).ok_or_else(|| corrupt(&k, "bad offset key"))?;
            offsets
                .entry(topic)
                .or_default()
                .insert(p, decode_u64(&k, &v)? as i64);
        }
        let dict = tree.get(keys::DICT)?.map(|v| RecordDict::new(v.to_vec()));
        let store = Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                db,
                tree,
                write: Mutex::new(()),
                write_part: std::sync::atomic::AtomicUsize::new(crate::write::WRITE_PART),
                part_time: crate::write::PartTime::default(),
                stats: Mutex::new(stats),
                durable: Mutex::new(offsets.clone()),
                offsets: Mutex::new(offsets),
                defaults,
                epoch: tokio::sync::watch::Sender::new(0),
                feed_cache: Mutex::default(),
                dict,
                mem: crate::chunks::MemChunks::default(),
            }),
        };
        if build_index {
            store.build_memory_indexes()?;
        }
        // Only now, holding sled's lock on the live generation (no other
        // process runs on this store), do the stores no longer live go.
        if dir != root {
            crate::live::remove_stale(root)?;
        }
        Ok(store)
    }

    pub fn defaults(&self) -> &Defaults {
        &self.inner.defaults
    }

    /// [`Store::open`], waiting up to `wait` while the store's file lock is
    /// held: sled lets go of it shortly after the last handle of a store
    /// just dropped, so a reopen right after a drop would fail.
    pub fn open_when_released(
        dir: impl AsRef<Path>,
        defaults: Defaults,
        wait: std::time::Duration,
    ) -> Result<Self, StoreError> {
        Self::open_retrying(dir.as_ref(), defaults, wait, true)
    }

    /// [`Store::open_when_released`], building the memory indexes or not.
    pub(crate) fn open_retrying(
        dir: &Path,
        defaults: Defaults,
        wait: std::time::Duration,
        build_index: bool,
    ) -> Result<Self, StoreError> {
        let cache = CACHE.load(std::sync::atomic::Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        loop {
            match Self::open_as(dir, defaults, cache, build_index) {
                Err(StoreError::Locked { .. }) if t0.elapsed() < wait => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                opened => return opened,
            }
        }
    }

    /// Forces everything written so far to disk; the offsets applied until
    /// then become durable ([`Store::durable_offsets`]).
    pub fn flush(&self) -> Result<(), StoreError> {
        // Under the write lock: sled holds its global lock shared while it
        // writes and syncs, and a sled batch waiting for it exclusively
        // would stop every read for as long (ARCHITECTURE.md).
        let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        self.flush_locked()
    }

    /// [`Store::flush`] for a caller holding the write lock.
    pub(crate) fn flush_locked(&self) -> Result<(), StoreError> {
        let applied = self
            .inner
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.inner.tree.flush()?;
        *self.inner.durable.lock().unwrap_or_else(|p| p.into_inner()) = applied;
        Ok(())
    }

    /// Next offsets of `topic` known to be on disk, by partition: what a
    /// crash cannot roll back. The consistency token announces these.
    pub fn durable_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, StoreError> {
        Ok(self
            .inner
            .durable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned()
            .unwrap_or_default())
    }

    /// The stored record of a session.
    pub fn stored(&self, id: &str) -> Result<Option<StoredSession>, StoreError> {
        let key = keys::session(id);
        match self.inner.tree.get(&key)? {
            None => Ok(None),
            Some(v) => Ok(Some(self.decode_session(&key, &v)?)),
        }
    }

    /// A stored session record, plain or compressed with the store's
    /// dictionary.
    pub(crate) fn decode_session(&self, k: &[u8], v: &[u8]) -> Result<StoredSession, StoreError> {
        decode(k, &self.plain_session(k, v)?)
    }

    /// The plain (postcard) bytes of a stored session record.
    pub(crate) fn plain_session<'v>(
        &self,
        k: &[u8],
        v: &'v [u8],
    ) -> Result<std::borrow::Cow<'v, [u8]>, StoreError> {
        match v.split_first() {
            Some((&ZSTD_MARK, z)) => match &self.inner.dict {
                Some(dict) => Ok(dict.unpack(k, z)?.into()),
                None => Err(corrupt(
                    k,
                    "a compressed record in a store without a dictionary",
                )),
            },
            _ => Ok(v.into()),
        }
    }

    /// Bytes of the store's session-record dictionary (`None`: every
    /// record is plain).
    pub fn record_dictionary_bytes(&self) -> Option<usize> {
        self.inner.dict.as_ref().map(|d| d.raw.len())
    }

    /// A session by id.
    pub fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        Ok(self.stored(id)?.map(|s| s.session))
    }

    /// The counters as of the last applied batch.
    pub fn stats(&self) -> Stats {
        self.inner
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applied next offsets of `topic`, by partition (they may be ahead of
    /// what is on disk until the next flush: see [`Store::durable_offsets`]).
    pub fn offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, StoreError> {
        Ok(self
            .inner
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned()
            .unwrap_or_default())
    }

    /// A session's recorded history, oldest first: its last [`HISTORY_LEN`]
    /// non-duplicate events.
    pub fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let Some(stored) = self.stored(id)? else {
            return Ok(vec![]);
        };
        let mut out = self.kept_history(id, &stored)?;
        let extra = out.len().saturating_sub(HISTORY_LEN as usize);
        out.drain(..extra);
        Ok(out)
    }

    /// Active sessions whose first deadline is at or before `now` (Unix ms),
    /// earliest first, at most `limit`: `(session id, deadline, status it
    /// leads to, partition)`. Reads the deadline index only.
    pub fn due(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64, Status, i32)>, StoreError> {
        self.deadlines(i64::MIN, now, limit)
    }

    /// Deadline index entries with a deadline in `[from, to]` (Unix ms),
    /// earliest first, at most `limit`.
    pub(crate) fn deadlines(
        &self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64, Status, i32)>, StoreError> {
        let mut out = vec![];
        let start = keys::ord_i64(from).to_vec();
        let scan = Scan::new(
            self.indexes(),
            keys::BY_DEADLINE,
            Bound::Included(start),
            false,
        )?;
        for e in scan {
            if out.len() >= limit {
                break;
            }
            let e = e?;
            let (at, id, status, partition) =
                keys::split_deadline(&e).ok_or_else(|| corrupt(&e, "bad deadline entry"))?;
            if at > to {
                break;
            }
            out.push((id, at, status, partition));
        }
        Ok(out)
    }

    /// Sessions `f` matches that are live at `now` (Unix ms) and near their
    /// expiry by their own warning threshold (elizaOS's `isNearExpiration`).
    /// Reads the deadline index up to the largest warning threshold stored
    /// and loads only the sessions found there.
    pub fn count_near_expiration(&self, f: &Filter, now: i64) -> Result<u64, StoreError> {
        let warn = self
            .stats()
            .max_warning_minutes
            .max(u64::from(self.defaults().warning_threshold_minutes));
        let to = now.saturating_add(
            i64::try_from(warn)
                .unwrap_or(i64::MAX)
                .saturating_mul(MINUTE_MS),
        );
        let mut n = 0;
        for (id, ..) in self.deadlines(now.saturating_add(1), to, usize::MAX)? {
            if let Some(s) = self.get_in(&id, f.partitions.as_deref())? {
                if f.matches(&s, now)
                    && s.status_at(now) == Status::Active
                    && s.is_near_expiration(now)
                {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Live key + value bytes by key prefix (`s`, `h`, `iu`, `ic`, … — the
    /// layout table in the crate docs): where the store's space goes, before
    /// sled's own overhead. A full scan: for benches and `inspect`.
    pub fn footprint(&self) -> Result<BTreeMap<String, (u64, u64)>, StoreError> {
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for kv in self.inner.tree.iter() {
            let (k, v) = kv?;
            let n = if k.first() == Some(&b'i') { 2 } else { 1 };
            let name = String::from_utf8_lossy(&k[..n.min(k.len())]).into_owned();
            let e = out.entry(name).or_default();
            e.0 += 1;
            e.1 += (k.len() + v.len()) as u64;
        }
        Ok(out)
    }

    /// Makes a written batch's counters and offsets (topic, partition, next
    /// offset) the applied ones.
    /// The write epoch: odd while a write is under way; changed by each.
    pub fn epoch(&self) -> u64 {
        *self.inner.epoch.borrow()
    }

    /// Wakes on every change of the write epoch (closed with the store).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.epoch.subscribe()
    }

    /// Marks a write as begun or ended (called under the write lock).
    pub(crate) fn bump_epoch(&self) {
        self.inner.epoch.send_modify(|e| *e += 1);
    }

    pub(crate) fn set_applied(&self, stats: Stats, offsets: &[(&str, i32, i64)]) {
        *self.inner.stats.lock().unwrap_or_else(|p| p.into_inner()) = stats;
        let mut applied = self.inner.offsets.lock().unwrap_or_else(|p| p.into_inner());
        for &(topic, p, off) in offsets {
            applied.entry(topic.to_string()).or_default().insert(p, off);
        }
    }

    /// Sets the most sessions one sled batch of `apply_batch` writes
    /// (default [`crate::WRITE_PART`]): smaller parts, shorter waits for
    /// readers; tests use tiny ones to crash between parts.
    pub fn set_write_part(&self, sessions: usize) {
        self.inner
            .write_part
            .store(sessions.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The directory holding this store's files.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Handles on this store alive now (this one included): a replaced store
    /// is closed once it is the last.
    pub fn handles(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.inner.tree
    }

    /// Where the store's index chunks are (sled, or memory).
    pub(crate) fn indexes(&self) -> crate::chunks::Indexes<'_> {
        crate::chunks::Indexes {
            tree: &self.inner.tree,
            mem: &self.inner.mem,
        }
    }

    /// Applies `batch` with the index chunk writes `index` implies: sled's
    /// in the batch, the memory indexes' right after it. For a caller
    /// holding the write lock, before it announces what it wrote. Returns
    /// how long sled's batch took (every read waited that long at most).
    pub(crate) fn apply_indexed(
        &self,
        mut batch: sled::Batch,
        index: IndexChanges,
    ) -> Result<std::time::Duration, StoreError> {
        let in_memory = index.write(self.indexes(), &mut batch)?;
        let t = std::time::Instant::now();
        self.inner.tree.apply_batch(batch)?;
        let held = t.elapsed();
        self.inner.mem.apply(in_memory);
        Ok(held)
    }

    /// Builds the memory indexes from the session records, in groups of
    /// [`BUILD_GROUP`] sessions (what one group's entries take while it is
    /// merged in is all the build holds beside the indexes).
    fn build_memory_indexes(&self) -> Result<(), StoreError> {
        let mut group = Vec::new();
        let mut pending = 0;
        let mut sessions = self.all_sessions().peekable();
        while let Some(s) = sessions.next() {
            let s = s?;
            group.extend(
                keys::index_keys(&s.session, s.partition)
                    .into_iter()
                    .filter(|k| keys::in_memory(k)),
            );
            pending += 1;
            if pending == BUILD_GROUP || sessions.peek().is_none() {
                IndexChanges::inserts(std::mem::take(&mut group))
                    .apply_in_memory(self.indexes())?;
                pending = 0;
            }
        }
        Ok(())
    }

    /// Index chunks and bytes (keys + values) held in memory.
    pub fn memory_index_size(&self) -> (u64, u64) {
        self.inner.mem.size()
    }

    /// Every session, in key order (a full scan: for audits, rebuild checks and
    /// tests, never for list queries).
    pub fn all_sessions(&self) -> impl Iterator<Item = Result<StoredSession, StoreError>> + '_ {
        self.inner.tree.scan_prefix(keys::SESSION).map(|kv| {
            let (k, v) = kv?;
            self.decode_session(&k, &v)
        })
    }

    /// Every index entry's logical key (`P + E`, as [`keys::index_keys`]
    /// yields them), in key order, whatever chunks hold them: for comparing
    /// stores.
    pub fn index_entries(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .index_chunks()?
            .iter()
            .flat_map(Chunk::logical)
            .collect())
    }

    /// Every index chunk, in key order.
    fn index_chunks(&self) -> Result<Vec<Chunk>, StoreError> {
        let mut out = vec![];
        let mut all: Vec<(sled::IVec, sled::IVec)> = self
            .inner
            .tree
            .scan_prefix(keys::INDEX)
            .collect::<Result<_, _>>()?;
        all.extend(
            self.inner
                .mem
                .all()
                .into_iter()
                .map(|(k, v)| (k.as_slice().into(), v)),
        );
        all.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in all {
            let plen = keys::index_prefix_len(&k).ok_or_else(|| corrupt(&k, "bad chunk key"))?;
            out.push(Chunk {
                prefix: k[..plen].to_vec(),
                low: k[plen..].to_vec(),
                entries: chunks::decode(&k, &v)?,
            });
        }
        Ok(out)
    }

    /// Recomputes every index entry and counter from the session records and
    /// compares them with what is stored; checks the chunks' own invariants.
    /// Returns the discrepancies found.
    pub fn audit(&self) -> Result<Vec<String>, StoreError> {
        let mut problems = vec![];
        let mut want: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut stats = Stats::default();
        for s in self.all_sessions() {
            let s = s?;
            want.extend(keys::index_keys(&s.session, s.partition));
            stats.sessions += 1;
            *stats.by_status.entry(s.session.status).or_default() += 1;
            stats.max_warning_minutes = stats
                .max_warning_minutes
                .max(u64::from(s.session.timeout.warning_threshold_minutes));
        }
        for tag in keys::MEMORY_INDEXES {
            for kv in self.inner.tree.scan_prefix(tag) {
                let k = kv?.0;
                problems.push(format!(
                    "chunk {} of a memory index is in sled",
                    hex::encode(&k)
                ));
            }
        }
        let index = self.index_chunks()?;
        for (i, c) in index.iter().enumerate() {
            let next = index.get(i + 1).filter(|n| n.prefix == c.prefix);
            let name = hex::encode([&c.prefix[..], &c.low[..]].concat());
            if c.entries.is_empty() || c.entries.len() > chunks::CHUNK_MAX {
                problems.push(format!("chunk {name} has {} entries", c.entries.len()));
            }
            if !c.entries.windows(2).all(|w| w[0] < w[1]) {
                problems.push(format!("chunk {name} is not strictly sorted"));
            }
            let low_ok = c.entries.first().is_none_or(|e| *e >= c.low);
            let high_ok = match (next, c.entries.last()) {
                (Some(n), Some(e)) => *e < n.low,
                _ => true,
            };
            if !low_ok || !high_ok {
                problems.push(format!("chunk {name} holds entries outside its range"));
            }
            if !c.low.is_empty() && c.entries.first() != Some(&c.low) {
                problems.push(format!("chunk {name}'s low bound names no entry of it"));
            }
        }
        let have: BTreeSet<Vec<u8>> = index.iter().flat_map(|c| c.logical()).collect();
        for k in want.difference(&have) {
            problems.push(format!("missing index entry {}", hex::encode(k)));
        }
        for k in have.difference(&want) {
            problems.push(format!("stray index entry {}", hex::encode(k)));
        }
        let stored = self.stats();
        if stored.max_warning_minutes < stats.max_warning_minutes {
            problems.push(format!(
                "max_warning_minutes {} below a session's {}",
                stored.max_warning_minutes, stats.max_warning_minutes
            ));
        }
        if stored.sessions != stats.sessions {
            problems.push(format!(
                "sessions counter {} != recount {}",
                stored.sessions, stats.sessions
            ));
        }
        for s in Status::ALL {
            if stored.status(s) != stats.status(s) {
                problems.push(format!(
                    "status.{} counter {} != recount {}",
                    s.as_str(),
                    stored.status(s),
                    stats.status(s)
                ));
            }
        }
        Ok(problems)
    }
}

/// One stored index chunk: its index prefix, its low bound and its entries.
struct Chunk {
    prefix: Vec<u8>,
    low: Vec<u8>,
    entries: Vec<Vec<u8>>,
}

impl Chunk {
    fn logical(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.entries
            .iter()
            .map(|e| [&self.prefix[..], &e[..]].concat())
    }
}

/// Records are postcard-encoded: compact, and several times faster than JSON.
pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    thread_local! {
        /// Reused by [`encode`], so a record is written into a buffer
        /// that has grown already and copied out once, instead of growing
        /// a new one by doubling.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    buf.clear();
    let buf = postcard::to_extend(v, buf).expect("store records always serialize");
    let out = buf.clone();
    if buf.capacity() <= 1 << 20 {
        SCRATCH.with(|s| *s.borrow_mut() = buf);
    }
    out
}

/// Bytes after the value are an error: postcard's `from_bytes` ignores
/// them, which would read a value of another encoding (a compressed
/// history chunk, say) as a short one without a word.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    match postcard::take_from_bytes(v) {
        Ok((t, [])) => Ok(t),
        Ok(_) => Err(corrupt(k, "bytes after the value")),
        Err(e) => Err(corrupt(k, e)),
    }
}

/// The entries of a history tail (`StoredSession::history_tail`): `n`
/// postcard-encoded [`HistoryEntry`]s one after the other.
pub(crate) fn tail_entries(
    k: &[u8],
    mut bytes: &[u8],
    n: u32,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (e, rest) = postcard::take_from_bytes(bytes).map_err(|e| corrupt(k, e))?;
        out.push(e);
        bytes = rest;
    }
    if !bytes.is_empty() {
        return Err(corrupt(k, "bytes after the history tail"));
    }
    Ok(out)
}

/// A history chunk made of a tail of `n` encoded entries: postcard's
/// encoding of a `Vec<HistoryEntry>` (the length prefix postcard gives a
/// sequence, its varint `usize`, then the entries), plain: ingestion does
/// not pay for compression, a compaction packs the chunks it copies
/// ([`packed`]; zstd took ~1/9 of the store path's CPU).
pub(crate) fn chunk_of(n: u32, tail: &[u8]) -> Vec<u8> {
    let mut plain = encode(&(n as usize));
    plain.extend_from_slice(tail);
    plain
}

/// The entries of a history chunk, compressed or plain.
pub(crate) fn chunk_entries(k: &[u8], v: &[u8]) -> Result<Vec<HistoryEntry>, StoreError> {
    decode(k, &unpacked(k, v)?)
}

/// A chunk's stored form: `plain` (a postcard sequence, so never starting
/// with 0 unless empty) zstd-compressed behind [`ZSTD_MARK`], or `plain`
/// itself when that is no smaller.
pub(crate) fn packed(plain: Vec<u8>) -> Vec<u8> {
    let z = PACKER.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(CHUNK_LEVEL).ok();
        }
        c.as_mut()?.compress(&plain).ok()
    });
    marked(z, plain)
}

/// The zstd frame `z` behind [`ZSTD_MARK`] if that is smaller than
/// `plain`, else `plain`.
fn marked(z: Option<Vec<u8>>, plain: Vec<u8>) -> Vec<u8> {
    match z {
        Some(z) if z.len() + 1 < plain.len() => {
            let mut out = Vec::with_capacity(z.len() + 1);
            out.push(ZSTD_MARK);
            out.extend_from_slice(&z);
            out
        }
        _ => plain,
    }
}

/// The plain size the zstd frame `z` stored under `k` declares; a damaged
/// frame, or one claiming over [`UNPACKED_MAX`], is an error.
fn frame_size(k: &[u8], z: &[u8]) -> Result<usize, StoreError> {
    zstd::zstd_safe::get_frame_content_size(z)
        .ok()
        .flatten()
        .filter(|&n| n <= UNPACKED_MAX)
        .map(|n| n as usize)
        .ok_or_else(|| corrupt(k, "bad compressed value"))
}

/// Whether `v` is a value [`packed`] compressed (behind [`ZSTD_MARK`]).
pub(crate) fn is_packed(v: &[u8]) -> bool {
    v.len() > 1 && v[0] == ZSTD_MARK
}

/// The plain bytes of a chunk [`packed`] stored under `k`.
pub(crate) fn unpacked<'a>(
    k: &[u8],
    v: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, StoreError> {
    if !is_packed(v) {
        return Ok(std::borrow::Cow::Borrowed(v));
    }
    let z = &v[1..];
    let size = frame_size(k, z)?;
    UNPACKER.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new().map_err(|e| corrupt(k, e))?);
        }
        let d = d.as_mut().expect("set above");
        d.decompress(z, size)
            .map(std::borrow::Cow::Owned)
            .map_err(|e| corrupt(k, e))
    })
}

fn decode_u64(k: &[u8], v: &[u8]) -> Result<u64, StoreError> {
    let a: [u8; 8] = v.try_into().map_err(|_| corrupt(k, "not 8 bytes"))?;
    Ok(u64::from_be_bytes(a))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::{
        chunk_entries, chunk_of, decode, encode, packed, tail_entries, unpacked, HistoryEntry,
        HistoryEntryRef, StoredEventRef,
    };

    #[test]
    fn a_compressed_record_that_cannot_be_read_is_an_error_and_a_format_9_store_opens() {
        let events = ledger_gen::generate(ledger_gen::GenConfig {
            sessions: 1_500,
            events: 3_000,
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let store =
            super::Store::open(dir.path().join("a"), ledger_core::Defaults::default()).unwrap();
        load_one_partition(&store, &events);
        // A format-9 store (every record plain) opens and is marked 10.
        let store = reopened_as(store, &dir.path().join("a"), 9);
        let id = events[0].session_id.clone();
        let want = store.stored(&id).unwrap().unwrap();
        // A plain record never starts with the compressed marker.
        let plain = store
            .tree()
            .get(crate::keys::session(&id))
            .unwrap()
            .unwrap();
        assert_ne!(plain[0], super::ZSTD_MARK);
        let copy = store.copy_to(&dir.path().join("b")).unwrap();
        let key = crate::keys::session(&id);
        let packed = copy.tree().get(&key).unwrap().unwrap();
        assert_eq!(packed[0], super::ZSTD_MARK);
        assert!(
            packed.len() * 2 < plain.len(),
            "{} of {}",
            packed.len(),
            plain.len()
        );
        assert_eq!(copy.stored(&id).unwrap().unwrap(), want);
        // Cut short, it is an error, not a panic.
        copy.tree()
            .insert(&key, &packed[..packed.len() / 2])
            .unwrap();
        assert!(matches!(
            copy.stored(&id),
            Err(super::StoreError::Corrupt { .. })
        ));
        // A compressed record in a store without a dictionary is an error.
        store.tree().insert(&key, packed.to_vec()).unwrap();
        assert!(matches!(
            store.stored(&id),
            Err(super::StoreError::Corrupt { .. })
        ));
    }

    /// `store` (in `dir`) marked as written in `format`, flushed and opened
    /// again: it opens, marked [`super::FORMAT`] from then on.
    fn reopened_as(store: super::Store, dir: &std::path::Path, format: u64) -> super::Store {
        store
            .tree()
            .insert(crate::keys::FORMAT, &format.to_be_bytes()[..])
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let store = super::Store::open_when_released(
            dir,
            ledger_core::Defaults::default(),
            std::time::Duration::from_secs(10),
        )
        .unwrap();
        let marked = store.tree().get(crate::keys::FORMAT).unwrap().unwrap();
        assert_eq!(marked.as_ref(), &super::FORMAT.to_be_bytes()[..]);
        store
    }

    /// A store in a fresh directory holding `events` generated events of
    /// `sessions` sessions, on one partition.
    fn one_partition_store(sessions: usize, events: usize) -> (tempfile::TempDir, super::Store) {
        let events = ledger_gen::generate(ledger_gen::GenConfig {
            sessions,
            events,
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let store = super::Store::open(dir.path(), ledger_core::Defaults::default()).unwrap();
        load_one_partition(&store, &events);
        (dir, store)
    }

    /// Applies `events` to `store` on one partition, in batches of 500.
    fn load_one_partition(store: &super::Store, events: &[ledger_core::Event]) {
        for (i, part) in events.chunks(500).enumerate() {
            let records: Vec<super::Record> = part
                .iter()
                .enumerate()
                .map(|(j, e)| super::Record {
                    event: e.clone(),
                    partition: 0,
                    offset: (i * 500 + j) as i64,
                })
                .collect();
            let next = [(0, (i * 500 + part.len()) as i64)];
            store.apply_batch("t", &records, &next, 0).unwrap();
        }
    }

    #[test]
    fn memory_indexes_are_rebuilt_at_open_and_a_format_10_stores_chunks_of_them_go() {
        let (dir, store) = one_partition_store(400, 3_000);
        let entries = store.index_entries().unwrap();
        let held = store.memory_index_size();
        assert!(entries.iter().any(|k| crate::keys::in_memory(k)));
        assert!(entries.iter().any(|k| !crate::keys::in_memory(k)));
        assert!(held.0 > 0 && held.1 > 0);
        // Format 10 kept these chunks in sled.
        for (k, v) in store.inner.mem.all() {
            store.tree().insert(k, v).unwrap();
        }
        let store = reopened_as(store, dir.path(), 10);
        for tag in crate::keys::MEMORY_INDEXES {
            assert_eq!(store.tree().scan_prefix(tag).count(), 0);
        }
        assert_eq!(store.index_entries().unwrap(), entries);
        assert_eq!(store.audit().unwrap(), Vec::<String>::new());
        // A plain reopen rebuilds the same chunks.
        let store = reopened_as(store, dir.path(), super::FORMAT);
        assert_eq!(store.index_entries().unwrap(), entries);
        assert_eq!(store.audit().unwrap(), Vec::<String>::new());
        // A chunk of a memory index found in sled is reported.
        store
            .tree()
            .insert(
                &entries.iter().find(|k| crate::keys::in_memory(k)).unwrap()[..],
                &[1u8, b'x'][..],
            )
            .unwrap();
        assert!(store
            .audit()
            .unwrap()
            .iter()
            .any(|p| p.contains("memory index is in sled")));
    }

    #[test]
    fn change_log_chunks_are_packed_and_a_plain_one_of_format_8_still_reads() {
        let (dir, store) = one_partition_store(200, 2_000);
        let want = store.changes(0, 0, usize::MAX).unwrap();
        assert!(want.len() > 1_000, "{}", want.len());
        // Each chunk is stored compressed, under half its plain size.
        let chunks: Vec<(sled::IVec, sled::IVec)> = store
            .tree()
            .scan_prefix(crate::keys::CHANGE)
            .map(|kv| kv.unwrap())
            .collect();
        assert!(!chunks.is_empty());
        for (k, v) in &chunks {
            let plain = unpacked(k, v).unwrap();
            assert!(v.len() * 2 < plain.len(), "{} of {}", v.len(), plain.len());
            assert_eq!(packed(plain.to_vec()), v.to_vec());
        }
        // A format-8 store (plain change-log chunks) opens, reads alike and
        // is marked [`super::FORMAT`].
        for (k, v) in &chunks {
            let plain = unpacked(k, v).unwrap().to_vec();
            store.tree().insert(k, plain).unwrap();
        }
        let store = reopened_as(store, dir.path(), 8);
        assert_eq!(store.changes(0, 0, usize::MAX).unwrap(), want);
        // A damaged frame, or one claiming a huge size, is an error.
        let (k, v) = &chunks[0];
        assert!(unpacked(k, &v[..v.len() / 2]).is_err());
        let mut huge = vec![0u8];
        let big = vec![1u8; super::UNPACKED_MAX as usize + 1];
        huge.extend(zstd::bulk::compress(&big, 1).unwrap());
        assert!(huge.len() < 10_000);
        assert!(unpacked(k, &huge).is_err());
        huge = vec![0u8];
        huge.extend(zstd::bulk::compress(&big[..1 << 20], 1).unwrap());
        assert_eq!(unpacked(k, &huge).unwrap().len(), 1 << 20);
    }

    #[test]
    fn a_borrowed_history_entry_encodes_as_the_entry_without_its_session_id() {
        let events = ledger_gen::generate(ledger_gen::GenConfig {
            sessions: 20,
            events: 400,
            ..Default::default()
        });
        let kinds: BTreeSet<&str> = events.iter().map(|e| e.kind.type_name()).collect();
        assert!(kinds.len() >= 5, "{kinds:?}");
        for (i, e) in events.iter().enumerate() {
            let mut owned = e.clone();
            owned.session_id = String::new();
            let entry = HistoryEntry {
                seq: i as u64,
                outcome: "applied".into(),
                partition: 2,
                offset: i as i64,
                event: owned,
            };
            let borrowed = HistoryEntryRef {
                seq: i as u64,
                outcome: "applied",
                partition: 2,
                offset: i as i64,
                event: StoredEventRef::of(e),
            };
            assert_eq!(encode(&borrowed), encode(&entry), "{e:?}");
        }
    }

    #[test]
    fn a_tail_becomes_the_chunk_postcard_makes_of_its_entries() {
        let events = ledger_gen::generate(ledger_gen::GenConfig {
            sessions: 3,
            events: 300,
            ..Default::default()
        });
        for n in [0, 1, 7, 127, 128, 300] {
            let entries: Vec<HistoryEntry> = events[..n]
                .iter()
                .enumerate()
                .map(|(i, e)| HistoryEntry {
                    seq: i as u64,
                    outcome: "applied".into(),
                    partition: (i % 3) as i32,
                    offset: i as i64 * 1_000,
                    event: e.clone(),
                })
                .collect();
            let mut tail = vec![];
            for e in &entries {
                postcard::to_io(e, &mut tail).unwrap();
            }
            assert_eq!(tail_entries(b"k", &tail, n as u32).unwrap(), entries);
            let plain = postcard::to_stdvec(&entries).unwrap();
            let chunk = chunk_of(n as u32, &tail);
            // Written plain: exactly postcard's encoding of the entries.
            assert_eq!(chunk, plain, "{n}");
            // Packed as a compaction packs it when that is smaller (a long
            // chunk of generated entries to under half); read back alike
            // either way.
            let packed = packed(chunk.clone());
            assert!(packed.len() <= plain.len(), "{n}");
            if n >= 127 {
                assert!(
                    packed.len() * 2 < plain.len(),
                    "{n}: {} of {}",
                    packed.len(),
                    plain.len()
                );
            }
            assert_eq!(chunk_entries(b"k", &packed).unwrap(), entries);
            assert_eq!(chunk_entries(b"k", &plain).unwrap(), entries);
            assert_eq!(decode::<Vec<HistoryEntry>>(b"k", &plain).unwrap(), entries);
        }
        // A damaged compressed chunk is an error, not a panic.
        let chunk = chunk_of(300, &{
            let mut t = vec![];
            for (i, e) in events.iter().enumerate() {
                t.extend(encode(&HistoryEntry {
                    seq: i as u64,
                    outcome: "applied".into(),
                    partition: 0,
                    offset: 0,
                    event: e.clone(),
                }));
            }
            t
        });
        assert!(chunk_entries(b"k", &chunk[..chunk.len() / 2]).is_err());
        // Read as a plain chunk, a compressed one is an error, not an empty
        // history.
        assert!(decode::<Vec<HistoryEntry>>(b"k", &chunk).is_err());
        // A tail shorter or longer than its count is an error, not a panic.
        let one = postcard::to_stdvec(&HistoryEntry {
            seq: 0,
            outcome: "applied".into(),
            partition: 0,
            offset: 0,
            event: events[0].clone(),
        })
        .unwrap();
        assert!(tail_entries(b"k", &one, 2).is_err());
        assert!(tail_entries(b"k", &one, 0).is_err());
    }
}
