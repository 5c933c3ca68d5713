//! The past of a session and of the store: states re-folded from a
//! session's kept history (`as_of`, the change feed's states), and the change
//! log (`f`: which session each record changed visibly, by partition and
//! offset, in one chunk per partition and write part).
//!
//! A session's history keeps its last [`crate::HISTORY_LEN`] events or more,
//! each with the event itself; what fell out of it is folded into its base
//! (`b`), so every state from the base's latest event time on re-folds
//! exactly. The change log is written with the sessions it names and trimmed
//! from the front ([`Store::trim_changes`]); `g` holds where each partition's
//! log starts.

use ledger_core::{apply, Event, Session, Status};

use crate::keys;
use crate::store::{
    chunk_entries, decode, packed, tail_entries, unpacked, HistoryBase, HistoryEntry, Store,
    StoreError, StoredSession,
};

/// A change-log chunk: (offset, session id), by offset.
type Chunk = Vec<(i64, String)>;

/// A session at a past point.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[allow(clippy::large_enum_variant)] // returned, not stored
pub enum Past {
    /// No such session, or not yet visible then (unknown, or a pending shell).
    Missing,
    /// The session as it was.
    Found(Session),
    /// Older than the kept history: states are known from `from` on (event
    /// time, Unix ms).
    OutOfHistory { from: i64 },
}

impl Store {
    /// The base the kept history of `id` starts from (`None`: it starts
    /// from the session's first event).
    pub fn history_base(&self, id: &str) -> Result<Option<HistoryBase>, StoreError> {
        let k = keys::history_base(id);
        self.tree()
            .get(&k)?
            .map(|v| decode::<HistoryBase>(&k, &v))
            .transpose()
    }

    /// Every kept history entry of a stored session, oldest first.
    pub(crate) fn kept_history(
        &self,
        id: &str,
        s: &StoredSession,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut out = vec![];
        for &(seq, _) in &s.history_chunks {
            let k = keys::history(id, seq);
            if let Some(v) = self.tree().get(&k)? {
                out.extend(chunk_entries(&k, &v)?);
            }
        }
        out.extend(tail_entries(
            &keys::session(id),
            &s.history_tail,
            s.tail_len,
        )?);
        // Stored without it: the key names the session.
        for e in &mut out {
            e.event.session_id = id.to_string();
        }
        Ok(out)
    }

    /// Re-folds `id`'s kept history over its base, folding the entries
    /// `take` accepts and stopping at the first it answers `None` for.
    fn refold(
        &self,
        id: &str,
        from_ok: impl FnOnce(i64) -> bool,
        mut take: impl FnMut(&HistoryEntry, &Event) -> Option<bool>,
    ) -> Result<Past, StoreError> {
        let Some(stored) = self.stored(id)? else {
            return Ok(Past::Missing);
        };
        let base = self.history_base(id)?;
        if let Some(b) = &base {
            if !from_ok(b.through) {
                return Ok(Past::OutOfHistory { from: b.through });
            }
        }
        let mut state = base.map(|b| b.session);
        for e in self.kept_history(id, &stored)? {
            match take(&e, &e.event) {
                None => break,
                Some(false) => {}
                Some(true) => state = Some(apply(state.take(), &e.event, self.defaults()).0),
            }
        }
        Ok(match state {
            Some(s) if s.status != Status::Pending => Past::Found(s),
            _ => Past::Missing,
        })
    }

    /// Session `id` as it was at `at` (Unix ms): the fold, in the order they
    /// were applied, of its events whose event time is at or before `at`.
    /// Read-time statuses are the caller's (render the state at `at`).
    pub fn as_of(&self, id: &str, at: i64) -> Result<Past, StoreError> {
        self.refold(id, |through| through <= at, |_, ev| Some(ev.time_ms <= at))
    }

    /// Session `id` right after the record at `offset` of `partition` was
    /// applied (what the change-log entry of that record announces).
    /// `OutOfHistory` when that record is no longer in the kept history.
    pub fn state_after(&self, id: &str, partition: i32, offset: i64) -> Result<Past, StoreError> {
        let mut reached = false;
        let mut in_base = true;
        let past = self.refold(
            id,
            |_| true,
            |e, _| {
                in_base = false;
                if reached {
                    return None;
                }
                reached = e.partition == partition && e.offset == offset;
                Some(true)
            },
        )?;
        if !reached {
            // The record fell out of the kept history (or never was in it).
            let from = if in_base {
                i64::MAX
            } else {
                self.history_base(id)?.map_or(i64::MIN, |b| b.through)
            };
            return Ok(Past::OutOfHistory { from });
        }
        Ok(past)
    }

    /// Where the change log of `partition` starts (`None`: nothing logged
    /// yet).
    pub fn change_start(&self, partition: i32) -> Result<Option<i64>, StoreError> {
        let k = keys::change_start(partition);
        Ok(self.tree().get(&k)?.and_then(|v| {
            let b: [u8; 8] = v.as_ref().try_into().ok()?;
            Some(i64::from_be_bytes(b))
        }))
    }

    /// The widest change-log chunk written (last − first offset).
    pub(crate) fn change_span(&self) -> Result<i64, StoreError> {
        Ok(self
            .tree()
            .get(keys::CHANGE_SPAN)?
            .and_then(|v| Some(i64::from_be_bytes(v.as_ref().try_into().ok()?)))
            .unwrap_or(0))
    }

    /// Change-log entries of `partition` at or after offset `from`, oldest
    /// first, at most `limit`: (offset, session id).
    pub fn changes(
        &self,
        partition: i32,
        from: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let from = from.max(0);
        let limit = limit.max(1);
        let end = keys::prefix_end(&keys::change_prefix(partition)).unwrap_or_default();
        // A chunk holding an entry at or after `from` starts at most one
        // span before it; chunks may overlap (the parts of one batch, or a
        // batch applied again after a crash), so they are merged by offset.
        let lo = from.saturating_sub(self.change_span()?).max(0);
        let mut got: Vec<(i64, String)> = Vec::new();
        let mut bound = i64::MAX;
        for kv in self.tree().range(keys::change(partition, lo)..end) {
            let (k, v) = kv?;
            let Some((_, first)) = keys::split_change(&k) else {
                continue;
            };
            if first > bound {
                break;
            }
            got.extend(
                decode::<Chunk>(&k, &unpacked(&k, &v)?)?
                    .into_iter()
                    .filter(|e| e.0 >= from),
            );
            if got.len() >= limit {
                // Later chunks matter only if they start at or before the
                // `limit`-th offset held now.
                got.sort_unstable_by_key(|e| e.0);
                got.dedup_by_key(|e| e.0);
                got.truncate(limit);
                bound = got.last().map_or(i64::MAX, |e| e.0);
            }
        }
        got.sort_unstable_by_key(|e| e.0);
        got.dedup_by_key(|e| e.0);
        got.truncate(limit);
        Ok(got)
    }

    /// Removes the change-log entries of each partition more than `keep`
    /// offsets behind its next offset (for `topic`), chunk by chunk, at most
    /// about `limit` in all; moves each partition's start. Returns how many
    /// entries were removed.
    pub fn trim_changes(&self, topic: &str, keep: i64, limit: usize) -> Result<usize, StoreError> {
        let mut removed = 0;
        for (p, next) in self.offsets(topic)? {
            let cut = next.saturating_sub(keep);
            if self.change_start(p)?.unwrap_or(0) >= cut {
                continue;
            }
            let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
            let mut batch = sled::Batch::default();
            let mut start = cut;
            for kv in self
                .tree()
                .range(keys::change_prefix(p)..keys::change(p, cut))
            {
                let (k, v) = kv?;
                if removed >= limit {
                    // Stopped early: the log starts where this chunk does.
                    start = keys::split_change(&k).map_or(cut, |(_, f)| f.min(cut));
                    break;
                }
                let entries = decode::<Chunk>(&k, &unpacked(&k, &v)?)?;
                let kept: Vec<(i64, String)> =
                    entries.iter().filter(|e| e.0 >= cut).cloned().collect();
                removed += entries.len() - kept.len();
                if kept.is_empty() {
                    batch.remove(k);
                } else if kept.len() < entries.len() {
                    // Reaches past the cut: keeps its entries from the cut on.
                    batch.insert(k, packed(crate::store::encode(&kept)));
                }
            }
            batch.insert(keys::change_start(p), &start.to_be_bytes()[..]);
            self.tree().apply_batch(batch)?;
            self.flush_locked()?;
            if removed >= limit {
                break;
            }
        }
        Ok(removed)
    }

    /// Takes the records at `positions` (partition, offset) out of the
    /// change log, in `batch` (a removed session's changes).
    pub(crate) fn unlog(
        &self,
        positions: &[(i32, i64)],
        batch: &mut sled::Batch,
    ) -> Result<(), StoreError> {
        let span = self.change_span()?;
        // Chunk → (its entries, whether an entry left it).
        let mut chunks: std::collections::BTreeMap<Vec<u8>, (Chunk, bool)> =
            std::collections::BTreeMap::new();
        for &(p, off) in positions {
            let range = keys::change(p, off.saturating_sub(span).max(0))..=keys::change(p, off);
            for kv in self.tree().range(range) {
                let (k, v) = kv?;
                let (entries, changed) = match chunks.entry(k.to_vec()) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert((decode::<Chunk>(&k, &unpacked(&k, &v)?)?, false))
                    }
                };
                let before = entries.len();
                entries.retain(|e| e.0 != off);
                *changed |= entries.len() < before;
            }
        }
        // Only the chunks an entry left are written again.
        for (k, (entries, _)) in chunks.into_iter().filter(|(_, (_, changed))| *changed) {
            if entries.is_empty() {
                batch.remove(k);
            } else {
                batch.insert(k, packed(crate::store::encode(&entries)));
            }
        }
        Ok(())
    }
}

/// One step of a session's timeline: an event of its kept history and the
/// state it left.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    pub entry: HistoryEntry,
    pub after: Session,
}

/// A session's kept history: where it starts, and each step.
pub type Timeline = (Option<HistoryBase>, Vec<Step>);

impl Store {
    /// The kept history of `id`, each event with the state after it (the
    /// base's state is where it starts: `HistoryBase::through`). `None`: no
    /// such session.
    pub fn timeline(&self, id: &str) -> Result<Option<Timeline>, StoreError> {
        let Some(stored) = self.stored(id)? else {
            return Ok(None);
        };
        let base = self.history_base(id)?;
        let mut state = base.as_ref().map(|b| b.session.clone());
        let mut steps = vec![];
        for entry in self.kept_history(id, &stored)? {
            let after = apply(state.take(), &entry.event, self.defaults()).0;
            state = Some(after.clone());
            steps.push(Step { entry, after });
        }
        Ok(Some((base, steps)))
    }

    /// Sessions that ended in `(from, to]` (Unix ms): terminal ones by their
    /// `ended_at`, and active ones whose deadline passed then (read-time);
    /// `(id, when)`, at most `limit`.
    pub fn ended_between(
        &self,
        from: i64,
        to: i64,
        limit: usize,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = vec![];
        let start = keys::ord_i64(from.saturating_add(1)).to_vec();
        for e in crate::chunks::Scan::new(
            self.indexes(),
            keys::BY_END,
            std::ops::Bound::Included(start),
            false,
        )? {
            let e = e?;
            let (ended, id) = keys::split_ordered(&e, 0)
                .ok_or_else(|| crate::store::corrupt(&e, "bad end entry"))?;
            if ended > to || out.len() >= limit {
                break;
            }
            out.push((id, ended));
        }
        for (id, at, _, _) in self.deadlines(from.saturating_add(1), to, limit)? {
            if out.len() >= limit {
                break;
            }
            out.push((id, at));
        }
        Ok(out)
    }
}
