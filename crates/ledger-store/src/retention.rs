//! Retention and erasure: sessions removed from the store for good.
//!
//! A removed session leaves a marker (`t` + a hash of its id, never the id)
//! so that late, duplicate or replayed events for it are dropped (counted in
//! `events.dropped`) instead of creating a pending shell. A purge marker is
//! kept until `ended_at + ended_ms + marker_ms` — a time that depends on the
//! session alone, so a replay at a given clock keeps exactly the markers a
//! live ledger keeps; `marker_ms` must cover the topic's own retention (after
//! it, the topic no longer holds the session's events). An erasure marker is
//! kept forever.
//!
//! Every removal is one sled batch of at most `limit` (purge) or 1,000
//! (erasure) sessions, under the write lock that batches of events take:
//! readers wait for it no longer than for an event batch of that size.

use std::ops::Bound;

use ledger_core::Subject;

use crate::chunks::{IndexChanges, Scan};
use crate::keys;
use crate::store::{corrupt, Stats, Store, StoreError};

/// How long ended sessions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A terminal session is purged once its `ended_at` is more than this
    /// many ms in the past; `0` keeps every session forever.
    pub ended_ms: i64,
    /// How long a purged session's marker outlives its purge time, ms: at
    /// least the topic's retention.
    pub marker_ms: i64,
}

const DAY_MS: i64 = 86_400_000;

/// Most sessions one erasure write removes (a workspace may hold millions).
const ERASE_BATCH: usize = 1_000;

impl Retention {
    /// Keeps ended sessions `ended_days` days (`0` = forever) and markers
    /// `marker_days` days past that.
    pub fn days(ended_days: u32, marker_days: u32) -> Self {
        Self {
            ended_ms: i64::from(ended_days) * DAY_MS,
            marker_ms: i64::from(marker_days) * DAY_MS,
        }
    }

    pub fn enabled(&self) -> bool {
        self.ended_ms > 0
    }
}

/// What one purge step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Sessions removed.
    pub purged: usize,
    /// Expired markers removed.
    pub markers_dropped: usize,
}

/// What applying one erasure event to one partition did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EraseReport {
    /// Sessions removed.
    pub sessions: usize,
}

impl Store {
    /// Removes up to `limit` terminal sessions whose `ended_at` is before
    /// `now_ms - ended_ms` (oldest first) — record, history, index entries —
    /// leaving a marker each, then up to `limit` markers whose time has passed.
    /// Call until it reports fewer than `limit` of both. A no-op when
    /// retention is off.
    pub fn purge(
        &self,
        now_ms: i64,
        r: &Retention,
        limit: usize,
    ) -> Result<PurgeReport, StoreError> {
        if !r.enabled() {
            return Ok(PurgeReport::default());
        }
        let cutoff = now_ms.saturating_sub(r.ended_ms);
        let mut due = vec![];
        for e in Scan::new(self.indexes(), keys::BY_END, Bound::Unbounded, false)? {
            let e = e?;
            let (ended, id) =
                keys::split_ordered(&e, 0).ok_or_else(|| corrupt(&e, "bad end entry"))?;
            if ended >= cutoff || due.len() >= limit {
                break;
            }
            due.push((
                id,
                Some(ended.saturating_add(r.ended_ms).saturating_add(r.marker_ms)),
            ));
        }
        let purged = self.remove(&due, |s, n| s.purged += n, &[])?;
        let markers_dropped = self.drop_markers(now_ms, limit)?;
        Ok(PurgeReport {
            purged,
            markers_dropped,
        })
    }

    /// Applies an erasure read at `offset` of `topic`/`partition`: removes
    /// the subject's sessions stored for that partition (their events are
    /// keyed to it), leaves a permanent marker for each, and stores the
    /// partition's next offset, all in one batch.
    pub fn erase(
        &self,
        topic: &str,
        subject: &Subject,
        partition: i32,
        offset: i64,
    ) -> Result<EraseReport, StoreError> {
        let prefix = match subject {
            Subject::User(u) => keys::field_prefix(keys::BY_USER, u),
            Subject::Workspace(w) => keys::field_prefix(keys::BY_WORKSPACE, w),
        };
        let mut due = vec![];
        for e in Scan::new(self.indexes(), &prefix, Bound::Unbounded, false)? {
            let e = e?;
            let (_, id) = keys::split_ordered(&e, 0).ok_or_else(|| corrupt(&e, "bad entry"))?;
            if self.stored(&id)?.is_some_and(|s| s.partition == partition) {
                due.push((id, Some(i64::MAX)));
            }
        }
        // Bounded writes: the partition's offset moves with the last one
        // only, so a crash in between applies the erasure again (removing
        // what is left; what is gone stays gone).
        let mut sessions = 0;
        for chunk in due.chunks(ERASE_BATCH) {
            sessions += self.remove(chunk, |s, n| s.erased += n, &[])?;
        }
        self.remove(
            &[],
            |s, _| s.erasures += 1,
            &[(topic, partition, offset + 1)],
        )?;
        Ok(EraseReport { sessions })
    }

    /// Whether `id` was purged or erased (its marker is still kept).
    pub fn is_removed(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.tree().contains_key(keys::marker(id))?)
    }

    /// Every marker (its key, kept until Unix ms), in key order: for
    /// comparing stores.
    pub fn markers(&self) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        self.tree()
            .scan_prefix(keys::MARKER)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), until(&k, &v)?))
            })
            .collect()
    }

    /// Copies `from`'s markers and removal counts into this (fresh) store,
    /// before a replay into it: events of purged or erased sessions are then
    /// dropped from the start and never written, so a rebuild's files hold
    /// no byte of them. Returns the markers copied.
    pub fn seed_removals(&self, from: &Store) -> Result<usize, StoreError> {
        // `from`'s markers and counts as of one moment.
        let _source = from.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in from.tree().scan_prefix(keys::MARKER) {
            let (k, v) = kv?;
            batch.insert(k, v);
            n += 1;
        }
        let mut stats = self.stats();
        let old = from.stats();
        stats.purged = old.purged;
        stats.erased = old.erased;
        for (name, v) in stats.named() {
            batch.insert(keys::counter(&name), &v.to_be_bytes()[..]);
        }
        self.tree().apply_batch(batch)?;
        self.set_applied(stats, &[]);
        Ok(n)
    }

    /// Removes `due` sessions (id, marker kept until; `None`: no marker, the
    /// session may come back), counts them with `count`, and stores `offsets`
    /// (topic, partition, next offset), in one batch under the write lock,
    /// flushed (the store has no background flusher).
    pub(crate) fn remove(
        &self,
        due: &[(String, Option<i64>)],
        count: impl FnOnce(&mut Stats, u64),
        offsets: &[(&str, i32, i64)],
    ) -> Result<usize, StoreError> {
        if due.is_empty() && offsets.is_empty() {
            return Ok(0);
        }
        let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        self.bump_epoch();
        let _end = crate::write::EpochEnd(self);
        let mut batch = sled::Batch::default();
        let mut index = IndexChanges::default();
        let mut stats = self.stats();
        let mut removed = 0;
        let mut positions = vec![];
        for (id, until) in due {
            let Some(s) = self.stored(id)? else { continue };
            for k in keys::index_keys(&s.session, s.partition) {
                index.remove(&k);
            }
            // The change log names it no more either.
            for e in self.kept_history(id, &s)? {
                positions.push((e.partition, e.offset));
            }
            for (seq, _) in &s.history_chunks {
                batch.remove(keys::history(id, *seq));
            }
            batch.remove(keys::history_base(id));
            batch.remove(keys::session(id));
            if let Some(until) = until {
                batch.insert(keys::marker(id), &until.to_be_bytes()[..]);
            }
            stats.sessions -= 1;
            *stats.by_status.entry(s.session.status).or_default() -= 1;
            removed += 1;
        }
        self.unlog(&positions, &mut batch)?;
        count(&mut stats, removed as u64);
        for (name, v) in stats.named() {
            batch.insert(keys::counter(&name), &v.to_be_bytes()[..]);
        }
        for &(topic, p, off) in offsets {
            batch.insert(keys::offset(topic, p), &off.to_be_bytes()[..]);
        }
        self.apply_indexed(batch, index)?;
        // The feed shows no removed session again.
        self.inner
            .feed_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.set_applied(stats, offsets);
        self.flush_locked()?;
        Ok(removed)
    }

    /// Removes up to `limit` markers kept until before `now_ms`.
    fn drop_markers(&self, now_ms: i64, limit: usize) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in self.tree().scan_prefix(keys::MARKER) {
            let (k, v) = kv?;
            if until(&k, &v)? < now_ms {
                batch.remove(k);
                n += 1;
                if n >= limit {
                    break;
                }
            }
        }
        if n > 0 {
            let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
            self.tree().apply_batch(batch)?;
            self.flush_locked()?;
        }
        Ok(n)
    }
}

fn until(k: &[u8], v: &[u8]) -> Result<i64, StoreError> {
    v.try_into()
        .map(i64::from_be_bytes)
        .map_err(|e| corrupt(k, e))
}
