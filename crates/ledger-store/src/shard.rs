//! Sharded mode's side of the store: which partitions it holds, and
//! dropping a partition handed to another instance.
//!
//! A drop first forgets the partition's offset and marks it dropping (one
//! batch), then removes its sessions in bounded batches and finally the
//! mark. A crash in between resumes the drop; a partition that comes back
//! mid-drop cancels it and is replayed from its first offset, which the
//! sessions still stored pass over (each records the offsets it applied).

use std::collections::BTreeSet;

use crate::keys;
use crate::store::{Store, StoreError};

impl Store {
    /// Partitions marked dropping.
    pub fn dropping(&self) -> Result<BTreeSet<i32>, StoreError> {
        let mut out = BTreeSet::new();
        for kv in self.tree().scan_prefix(keys::DROPPING) {
            let (k, _) = kv?;
            if let Some(b) = k
                .get(keys::DROPPING.len()..)
                .and_then(|b| b.try_into().ok())
            {
                out.insert(i32::from_be_bytes(b));
            }
        }
        Ok(out)
    }

    /// Whether every session stored came from one of `partitions` of
    /// `topic`: then the counters count exactly those partitions.
    pub fn holds_only(&self, topic: &str, partitions: &[i32]) -> Result<bool, StoreError> {
        Ok(self.offsets(topic)?.keys().all(|p| partitions.contains(p))
            && self.dropping()?.is_empty())
    }

    /// Starts dropping `partition` of `topic`: forgets its offset and marks
    /// it, in one batch. The sessions go with [`Store::drop_step`].
    pub fn begin_drop(&self, topic: &str, partition: i32) -> Result<(), StoreError> {
        let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        batch.remove(keys::offset(topic, partition));
        batch.insert(keys::dropping(partition), &[][..]);
        self.tree().apply_batch(batch)?;
        for map in [&self.inner.offsets, &self.inner.durable] {
            if let Some(m) = map.lock().unwrap_or_else(|p| p.into_inner()).get_mut(topic) {
                m.remove(&partition);
            }
        }
        self.flush_locked()
    }

    /// Stops dropping `partition` (it was assigned here again).
    pub fn cancel_drop(&self, partition: i32) -> Result<(), StoreError> {
        let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        self.tree().remove(keys::dropping(partition))?;
        self.flush_locked()
    }

    /// Removes up to `limit` sessions of the partitions being dropped (no
    /// marker: they may come back), scanning from the session id `from`;
    /// returns how many went and where the next step scans from (`None`:
    /// the scan is done and the marks are gone). Call under the live
    /// store's gate, which [`Store::cancel_drop`] is called under too.
    pub fn drop_step(
        &self,
        from: Option<&str>,
        limit: usize,
    ) -> Result<(usize, Option<String>), StoreError> {
        let dropping = self.dropping()?;
        if dropping.is_empty() {
            return Ok((0, None));
        }
        let start = keys::session(from.unwrap_or(""));
        let mut due = vec![];
        let mut next = None;
        for kv in self.tree().range(start..) {
            let (k, v) = kv?;
            if !k.starts_with(keys::SESSION) {
                break;
            }
            let s = self.decode_session(&k, &v)?;
            if due.len() >= limit {
                next = Some(s.session.id);
                break;
            }
            if dropping.contains(&s.partition) {
                due.push((s.session.id, None));
            }
        }
        let removed = self.remove(&due, |_, _| {}, &[])?;
        if next.is_none() {
            let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
            let mut batch = sled::Batch::default();
            for p in dropping {
                batch.remove(keys::dropping(p));
            }
            self.tree().apply_batch(batch)?;
            self.flush_locked()?;
        }
        Ok((removed, next))
    }
}
