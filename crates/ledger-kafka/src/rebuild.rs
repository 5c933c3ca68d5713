//! Online rebuild: the topic replayed into a fresh store beside the live one
//! while it keeps serving, then an atomic switch of reads and ingestion.
//!
//! 1. The fresh store (the next generation directory) gets the live store's
//!    markers first (`Store::seed_removals`): nothing purged or erased is
//!    ever written to it.
//! 2. A second consumer replays the topic into it until it has reached the
//!    high watermarks seen when it started.
//! 3. Under the live store's gate (live ingestion pauses between batches;
//!    reads go on), the replay continues until the fresh store's offsets are
//!    at or past the live store's on every partition; it is flushed, made
//!    current on disk (`CURRENT`), and switched in. No response after the
//!    switch announces an offset lower than one announced before it.
//! 4. The replaced store is closed once no request holds it, then deleted
//!    (or moved to `old-<n>` when kept).
//!
//! A rebuild from the store instead (compaction without the topic) copies
//! the live store under the gate (`Store::copy_to`) and switches to it the
//! same way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_core::Defaults;
use ledger_store::{live, LiveStore, Store};
use serde::Serialize;

use crate::{DeadLetters, IngestConfig, Ingestor, Metrics};

/// What a rebuild is doing, for `GET /admin/rebuild` and `status`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RebuildStatus {
    /// `idle`, `replaying`, `copying`, `switching`, `done` or `failed`.
    pub state: String,
    /// What the last rebuild read: `topic` (a replay) or `store` (a copy).
    pub source: String,
    /// Rebuilds finished since the server started.
    pub completed: u64,
    /// Records replayed so far, and the records to replay (the high
    /// watermarks when the replay started).
    pub replayed: u64,
    pub target: u64,
    /// Store bytes on disk before and after the last switch.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// How long the last switch paused live ingestion, ms.
    pub pause_ms: u64,
    pub error: Option<String>,
}

/// Starts and reports online rebuilds of one live store. Cheap to clone.
#[derive(Clone)]
pub struct Rebuilder {
    cfg: IngestConfig,
    live: LiveStore,
    /// The store directory (the root `CURRENT` is in).
    root: PathBuf,
    defaults: Defaults,
    /// Keep replaced stores (moved to `old-<n>`) instead of deleting them.
    keep_old: bool,
    status: Arc<Mutex<RebuildStatus>>,
    metrics: Metrics,
}

/// What an online rebuild reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Replays the topic (the state is derived again from the events).
    Topic,
    /// Copies the live store (compaction only; ingestion pauses meanwhile).
    Store,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Topic => "topic",
            Source::Store => "store",
        }
    }
}

/// Longest time the switch waits for the replay to reach the live offsets.
const SWITCH_WAIT: Duration = Duration::from_secs(60);

impl Rebuilder {
    pub fn new(
        cfg: IngestConfig,
        live: LiveStore,
        root: PathBuf,
        defaults: Defaults,
        keep_old: bool,
        metrics: Metrics,
    ) -> Self {
        Self {
            cfg,
            live,
            root,
            defaults,
            keep_old,
            metrics,
            status: Arc::new(Mutex::new(RebuildStatus {
                state: "idle".into(),
                ..Default::default()
            })),
        }
    }

    pub fn status(&self) -> RebuildStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, f: impl FnOnce(&mut RebuildStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Starts a rebuild from `source` on its own thread; refused while one
    /// runs.
    pub fn start(&self, source: Source) -> Result<(), String> {
        self.start_with(source, self.keep_old)
    }

    /// Starts the compaction that follows erasures: a copy of the live store,
    /// and the replaced store (which holds the erased data) deleted whatever
    /// `keep_old` says.
    pub fn start_erasing(&self) -> Result<(), String> {
        self.start_with(Source::Store, false)
    }

    fn start_with(&self, source: Source, keep_old: bool) -> Result<(), String> {
        {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if ["replaying", "copying", "switching"].contains(&s.state.as_str()) {
                return Err("a rebuild is already running".into());
            }
            s.state = match source {
                Source::Topic => "replaying",
                Source::Store => "copying",
            }
            .into();
            s.source = source.as_str().into();
            s.error = None;
            s.replayed = 0;
            s.target = 0;
        }
        let me = self.clone();
        me.metrics.rebuild_running.set(1);
        std::thread::spawn(move || {
            // A rebuild is ingestion's work: readers come first (a copy of
            // 1M sessions takes ~30 s of a core).
            crate::ingest::lower_priority(me.cfg.nice, me.cfg.sched_idle);
            let started = Instant::now();
            let result = match source {
                Source::Topic => me.replay(keep_old),
                Source::Store => me.copy(keep_old),
            };
            me.metrics.rebuild_running.set(0);
            match result {
                Ok(()) => {
                    me.set(|s| {
                        s.state = "done".into();
                        s.completed += 1;
                    });
                    tracing::info!(
                        secs = started.elapsed().as_secs_f64(),
                        "online rebuild done"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "online rebuild failed; the live store keeps serving");
                    me.set(|s| {
                        s.state = "failed".into();
                        s.error = Some(e);
                    });
                }
            }
        });
        Ok(())
    }

    /// Compaction without the topic: the live store copied under the gate
    /// (`Store::copy_to`; ingestion pauses for the copy, reads go on), then
    /// switched in.
    fn copy(&self, keep_old: bool) -> Result<(), String> {
        let dir = live::next_generation_dir(&self.root).map_err(|e| e.to_string())?;
        let gate = self.live.gate();
        let paused = Instant::now();
        let fresh = match self.live.get().copy_to(&dir) {
            Ok(f) => f,
            Err(e) => {
                drop(gate);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.to_string());
            }
        };
        self.set(|s| s.state = "switching".into());
        self.switch(gate, paused, &dir, fresh, keep_old)
    }

    /// The topic replayed into a fresh store (module docs), then switched in.
    fn replay(&self, keep_old: bool) -> Result<(), String> {
        let err = |e: &dyn std::fmt::Display| e.to_string();
        let dir = live::next_generation_dir(&self.root).map_err(|e| err(&e))?;
        let fresh = Store::open(&dir, self.defaults).map_err(|e| err(&e))?;
        let live_now = self.live.get();
        fresh.seed_removals(&live_now).map_err(|e| err(&e))?;
        drop(live_now);
        tracing::info!(dir = %dir.display(), "online rebuild: replaying the topic beside the live store");
        // Records before the live store's position were dead-lettered by
        // live ingestion already; those past it (read before the switch)
        // are this replay's to dead-letter.
        let live = self.live.clone();
        let topic = self.cfg.topic.clone();
        let floor = move |p: i32| {
            live.get()
                .offsets(&topic)
                .ok()
                .and_then(|o| o.get(&p).copied())
                .unwrap_or(0)
        };
        let ingest = Ingestor::new(
            IngestConfig {
                group_id: format!("{}-rebuild", self.cfg.group_id),
                dead_letter: DeadLetters::From(Arc::new(floor)),
                ..self.cfg.clone()
            },
            fresh.clone(),
            Metrics::default(),
        )
        .spawn();
        let abandon = |why: String| {
            let _ = std::fs::remove_dir_all(&dir);
            why
        };
        // 2. Replay up to the high watermarks seen at its start.
        while !ingest.progress.ready() {
            if ingest.finished() {
                let why = ingest
                    .stop()
                    .err()
                    .map_or("stopped".into(), |e| e.to_string());
                drop(fresh);
                return Err(abandon(format!("the replay stopped: {why}")));
            }
            let parts = ingest.progress.partitions();
            self.set(|s| {
                s.target = parts.values().map(|p| p.start_high_watermark as u64).sum();
                s.replayed = parts.values().map(|p| p.next_offset as u64).sum();
            });
            std::thread::sleep(Duration::from_millis(100));
        }
        // 3. Switch under the gate, once at or past the live offsets.
        self.set(|s| s.state = "switching".into());
        let topic = self.cfg.topic.clone();
        let gate = self.live.gate();
        let paused = Instant::now();
        let want = self.live.get().offsets(&topic).map_err(|e| err(&e))?;
        let reached = |have: &BTreeMap<i32, i64>| {
            want.iter()
                .all(|(p, o)| have.get(p).is_some_and(|h| h >= o))
        };
        loop {
            let have = fresh.offsets(&topic).map_err(|e| err(&e))?;
            if reached(&have) {
                break;
            }
            if paused.elapsed() > SWITCH_WAIT || ingest.finished() {
                drop(gate);
                let _ = ingest.stop();
                drop(fresh);
                return Err(abandon(
                    "the replay did not reach the live offsets in time".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        ingest.stop().map_err(|e| err(&e))?;
        fresh.flush().map_err(|e| err(&e))?;
        self.switch(gate, paused, &dir, fresh, keep_old)
    }

    /// Makes `fresh` (flushed, in `dir`) the live store on disk and in
    /// memory while the gate is held, then retires the store it replaces.
    fn switch(
        &self,
        gate: std::sync::MutexGuard<'_, ()>,
        paused: Instant,
        dir: &std::path::Path,
        fresh: Store,
        keep_old: bool,
    ) -> Result<(), String> {
        // Erasures the replay applied past the live store's position count
        // as applied here too (the compaction they call for follows).
        let erased = fresh.stats().erasures;
        let erased_live = self.live.get().stats().erasures;
        self.metrics
            .erasures
            .inc_by(erased.saturating_sub(erased_live));
        live::commit_generation(&self.root, dir).map_err(|e| e.to_string())?;
        let old = self.live.switch(&gate, fresh);
        drop(gate);
        self.metrics.rebuilds.inc();
        self.metrics
            .sessions
            .set(self.live.get().stats().sessions as i64);
        let pause_ms = paused.elapsed().as_millis() as u64;
        let (before, after) = (old.size_on_disk(), self.live.get().size_on_disk());
        self.set(|s| {
            s.replayed = s.target.max(s.replayed);
            s.bytes_before = before;
            s.bytes_after = after;
            s.pause_ms = pause_ms;
        });
        tracing::info!(
            pause_ms,
            bytes_before = before,
            bytes_after = after,
            "online rebuild: switched to the rebuilt store"
        );
        // Retire the replaced store once no request holds it.
        self.retire(old, keep_old);
        Ok(())
    }

    /// Deletes (or keeps aside) a replaced store once no request holds it:
    /// usually at once (a request holds a store for milliseconds); after 5 s
    /// it goes on waiting on its own thread, however long it takes.
    fn retire(&self, old: Store, keep_old: bool) {
        let root = self.root.clone();
        let waited = Instant::now();
        while old.handles() > 1 && waited.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let free = old.handles() == 1;
        let finish = move || {
            if old.handles() > 1 {
                tracing::warn!("a replaced store is still in use; it goes once released");
            }
            while old.handles() > 1 {
                std::thread::sleep(Duration::from_millis(100));
            }
            let dir = old.dir().to_path_buf();
            drop(old);
            let done = if keep_old {
                live::keep_aside(&root, &dir).map(|to| {
                    tracing::info!(to = %to.display(), "replaced store kept");
                })
            } else {
                live::remove_stale(&root)
            };
            if let Err(e) = done {
                tracing::error!(error = %e, dir = %dir.display(), "removing the replaced store failed");
            }
        };
        if free {
            finish();
        } else {
            std::thread::spawn(finish);
        }
    }
}
