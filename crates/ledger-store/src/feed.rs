//! The change feed's reading side: from a resume [`Token`], the next changes
//! of sessions — each applied change in the change log, and each read-time
//! transition (an active session passing its deadline before the reaper's
//! event) — with the token after each.
//!
//! A token is the position in every partition's change log (the next offset
//! to read) and the read-time watermark: every deadline up to it was
//! announced. Replicas apply the same records at the same offsets, so a
//! token resumes on any of them, and across restarts.
//!
//! **Invariant (no gap, no duplicate):** a reader resuming from the token of
//! the last item it received gets exactly the items after it:
//! - the change log is read in offset order per partition, up to the
//!   applied offsets;
//! - deadlines are scanned only when the reader has read every applied
//!   change and no write ran during the scan (the write epoch), so the store
//!   it scans is the state it was told of;
//! - the reaper's event closing a session at a deadline the watermark has
//!   passed is not announced again (the reader was told at the deadline).
//!
//! Applied changes are shown as of the watermark's time (the reader's now);
//! read-time transitions as of their deadline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use ledger_core::{apply, Session, Status};

use crate::past::Past;
use crate::store::{Store, StoreError};

/// Where a reader of the feed is: see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Next change-log offset to read, by partition (absent: 0).
    pub next: BTreeMap<i32, i64>,
    /// Read-time watermark, Unix ms: every deadline before it was announced.
    pub through: i64,
    /// At `through` itself, the deadlines of sessions up to this id were
    /// announced (`None`: all of them).
    pub through_id: Option<String>,
}

impl Token {
    /// `1.<p>=<next>,….<through>.<hex id or ->`: ASCII, no spaces, fits an
    /// SSE `id` and a `Last-Event-ID` header.
    pub fn encode(&self) -> String {
        let parts: Vec<String> = self.next.iter().map(|(p, o)| format!("{p}={o}")).collect();
        let id = self
            .through_id
            .as_ref()
            .map_or_else(|| "-".to_string(), hex::encode);
        format!("1.{}.{}.{id}", parts.join(","), self.through)
    }

    /// Inverse of [`Token::encode`]; `None` for anything else.
    pub fn decode(s: &str) -> Option<Token> {
        let mut it = s.trim().split('.');
        if it.next()? != "1" {
            return None;
        }
        let parts = it.next()?;
        let through = it.next()?.parse().ok()?;
        let id = it.next()?;
        if it.next().is_some() {
            return None;
        }
        let mut next = BTreeMap::new();
        for kv in parts.split(',').filter(|kv| !kv.is_empty()) {
            let (p, o) = kv.split_once('=')?;
            let (p, o): (i32, i64) = (p.parse().ok()?, o.parse().ok()?);
            if p < 0 || o < 0 {
                return None;
            }
            next.insert(p, o);
        }
        let through_id = match id {
            "-" => None,
            h => Some(String::from_utf8(hex::decode(h).ok()?).ok()?),
        };
        Some(Token {
            next,
            through,
            through_id,
        })
    }

    /// Whether the deadline `(at, id)` is at or before the watermark.
    fn covers(&self, at: i64, id: &str) -> bool {
        at < self.through
            || (at == self.through && self.through_id.as_deref().is_none_or(|w| id <= w))
    }
}

/// What one applied record did to its session, as every reader sees it
/// (cached: readers following the head read the same records).
#[derive(Debug)]
pub(crate) struct Known {
    event_type: &'static str,
    session: Session,
    /// The deadline this change closed the session at (the reaper's close):
    /// not announced to a reader whose watermark passed it.
    closes_at: Option<i64>,
}

/// Recently read changes by (partition, offset), at most [`CACHE_MAX`]:
/// facts that never change, but for sessions removed since (a removal
/// clears the cache).
#[derive(Debug, Default)]
pub(crate) struct FeedCache {
    map: HashMap<(i32, i64), Option<Arc<Known>>>,
    order: VecDeque<(i32, i64)>,
}

/// Changes the feed cache holds.
const CACHE_MAX: usize = 65_536;

impl FeedCache {
    fn get(&self, p: i32, off: i64) -> Option<Option<Arc<Known>>> {
        self.map.get(&(p, off)).cloned()
    }

    fn put(&mut self, p: i32, off: i64, v: Option<Arc<Known>>) {
        if self.map.insert((p, off), v).is_none() {
            self.order.push_back((p, off));
        }
        while self.order.len() > CACHE_MAX {
            if let Some(k) = self.order.pop_front() {
                self.map.remove(&k);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A `created` event made the session visible.
    Created,
    /// Any other event changed it (activity, renewal, or a terminal event).
    Applied,
    /// It passed its deadline (the status it leads to), before any event.
    ReadTime(Status),
}

/// One item of the feed.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // items are moved, not stored
pub enum FeedItem {
    Change {
        /// Where a reader that received this item resumes.
        token: Token,
        kind: ChangeKind,
        /// The event type that made the change (`session.created`, …).
        event_type: &'static str,
        session: Session,
        /// The time to show the session at (read-time status), Unix ms.
        at: i64,
        /// Where the change was applied (`None`: a read-time transition).
        position: Option<(i32, i64)>,
    },
    /// The reader is behind what the change log keeps: changes were missed.
    /// Resume from `token` (the head) after re-reading the lists.
    Reset { token: Token },
}

impl Store {
    /// The head of the feed: a token past every applied change and every
    /// deadline up to `now`.
    pub fn feed_head(&self, topic: &str, now: i64) -> Result<Token, StoreError> {
        Ok(Token {
            next: self.offsets(topic)?,
            through: now,
            through_id: None,
        })
    }

    /// The next items after `token` (advanced past what they cover), at
    /// most about `limit`. Empty when there is nothing new yet.
    pub fn feed_read(
        &self,
        topic: &str,
        token: &mut Token,
        now: i64,
        limit: usize,
    ) -> Result<Vec<FeedItem>, StoreError> {
        self.feed_read_in(topic, token, now, limit, None)
    }

    /// [`Store::feed_read`] of one partition's sessions only (`only`), or of
    /// all: a token of one partition moves in that partition alone.
    pub fn feed_read_in(
        &self,
        topic: &str,
        token: &mut Token,
        now: i64,
        limit: usize,
        only: Option<i32>,
    ) -> Result<Vec<FeedItem>, StoreError> {
        let limit = limit.max(1);
        let epoch = self.epoch();
        let mut applied = self.offsets(topic)?;
        if let Some(p) = only {
            applied.retain(|&q, _| q == p);
        }
        for &p in applied.keys() {
            let pos = token.next.get(&p).copied().unwrap_or(0);
            if self.change_start(p)?.is_some_and(|start| pos < start) {
                let mut head = self.feed_head(topic, now)?;
                if let Some(p) = only {
                    head.next.retain(|&q, _| q == p);
                }
                *token = head.clone();
                return Ok(vec![FeedItem::Reset { token: head }]);
            }
        }
        let mut out = Vec::new();
        let mut caught_up = true;
        for (&p, &next) in &applied {
            let pos = token.next.get(&p).copied().unwrap_or(0);
            if pos >= next {
                continue;
            }
            let room = limit.saturating_sub(out.len());
            if room == 0 {
                caught_up = false;
                break;
            }
            let entries = self.changes(p, pos, room)?;
            let complete = entries.len() < room;
            for (off, id) in entries {
                if off >= next {
                    break;
                }
                token.next.insert(p, off + 1);
                if let Some(item) = self.applied_change(&id, p, off, token)? {
                    out.push(item);
                }
            }
            if complete {
                token.next.insert(p, next);
            } else {
                caught_up = false;
            }
        }
        if !caught_up || epoch % 2 == 1 || self.epoch() != epoch {
            return Ok(out);
        }
        // Caught up with a store no write changed meanwhile: announce the
        // deadlines passed since the watermark.
        let mut scanned = token.clone();
        let mut expiries = Vec::new();
        let due = self.deadlines(token.through, now, limit + 1)?;
        let full = due.len() > limit;
        for (id, at, status, partition) in due.into_iter().take(limit) {
            if scanned.covers(at, &id) || only.is_some_and(|p| p != partition) {
                continue;
            }
            scanned.through = at;
            scanned.through_id = Some(id.clone());
            if let Some(session) = self.get(&id)? {
                expiries.push(FeedItem::Change {
                    token: scanned.clone(),
                    kind: ChangeKind::ReadTime(status),
                    event_type: event_type_of(status),
                    session,
                    at,
                    position: None,
                });
            }
        }
        if !full {
            scanned.through = now.max(token.through);
            scanned.through_id = None;
        }
        if self.epoch() != epoch {
            // A write ran during the scan: scan again next time.
            return Ok(out);
        }
        *token = scanned;
        out.extend(expiries);
        Ok(out)
    }

    /// The item of the change-log entry at `offset` of `partition` (of
    /// session `id`), or `None` when it announces nothing new: the session
    /// is gone (purged or erased), or the change is the reaper's close at a
    /// deadline the reader was told of.
    fn applied_change(
        &self,
        id: &str,
        partition: i32,
        offset: i64,
        token: &Token,
    ) -> Result<Option<FeedItem>, StoreError> {
        let Some(c) = self.change_at(id, partition, offset)? else {
            return Ok(None);
        };
        // The reaper's close at a deadline already announced at read time.
        if c.closes_at.is_some_and(|at| token.covers(at, id)) {
            return Ok(None);
        }
        Ok(Some(FeedItem::Change {
            token: token.clone(),
            kind: if c.event_type == "session.created" {
                ChangeKind::Created
            } else {
                ChangeKind::Applied
            },
            event_type: c.event_type,
            session: c.session.clone(),
            at: token.through,
            position: Some((partition, offset)),
        }))
    }

    /// What the record at `offset` of `partition` did to session `id`, from
    /// the feed cache (every reader reads the same changes) or re-folded.
    fn change_at(
        &self,
        id: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<Arc<Known>>, StoreError> {
        if let Some(hit) = self
            .inner
            .feed_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(partition, offset)
        {
            return Ok(hit);
        }
        let known = self.fold_change(id, partition, offset)?.map(Arc::new);
        self.inner
            .feed_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put(partition, offset, known.clone());
        Ok(known)
    }

    fn fold_change(
        &self,
        id: &str,
        partition: i32,
        offset: i64,
    ) -> Result<Option<Known>, StoreError> {
        let Some(stored) = self.stored(id)? else {
            return Ok(None);
        };
        let mut before: Option<Session> = self.history_base(id)?.map(|b| b.session);
        let mut found = None;
        for e in self.kept_history(id, &stored)? {
            let (after, _) = apply(before.clone(), &e.event, self.defaults());
            if e.partition == partition && e.offset == offset {
                found = Some((e.kind(), after));
                break;
            }
            before = Some(after);
        }
        let Some((kind, after)) = found else {
            // Out of the kept history: shown as it is now (a session with
            // more than `HISTORY_LEN` events since the reader's position).
            let Past::Found(now) = self.as_of(id, i64::MAX)? else {
                return Ok(None);
            };
            return Ok(Some(Known {
                event_type: "session.updated",
                session: now,
                closes_at: None,
            }));
        };
        if after.status == Status::Pending {
            return Ok(None);
        }
        let closes_at = before
            .as_ref()
            .filter(|b| b.status == Status::Active)
            .and_then(|b| b.next_deadline())
            .filter(|&(at, due)| after.status == due && after.ended_at == Some(at))
            .map(|(at, _)| at);
        let event_type = if kind == "session.created" {
            "session.created"
        } else if after.status.is_terminal() {
            event_type_of(after.status)
        } else {
            "session.updated"
        };
        Ok(Some(Known {
            event_type,
            session: after,
            closes_at,
        }))
    }
}

/// The feed's event type for a session reaching `status`.
pub fn event_type_of(status: Status) -> &'static str {
    match status {
        Status::Pending | Status::Active => "session.updated",
        Status::Ended => "session.ended",
        Status::Expired => "session.expired",
        Status::Abandoned => "session.abandoned",
        Status::Revoked => "session.revoked",
        Status::Removed => "session.removed",
        Status::Replaced => "session.replaced",
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn tokens_round_trip_and_refuse_anything_else() {
        let t = Token {
            next: [(0, 12), (3, 0), (7, 99)].into(),
            through: 1_795_000_000_000,
            through_id: Some("sess.1 with/odd".into()),
        };
        let s = t.encode();
        assert!(s.bytes().all(|b| b.is_ascii_graphic()), "{s}");
        assert_eq!(Token::decode(&s), Some(t));
        let none = Token {
            next: Default::default(),
            through: -5,
            through_id: None,
        };
        assert_eq!(Token::decode(&none.encode()), Some(none));
        for bad in [
            "",
            "2.0=1.5.-",
            "1.0=x.5.-",
            "1.0=1.5",
            "1.0=1.5.-.x",
            "1.-1=0.5.-",
            "1.0=1.5.zz",
        ] {
            assert_eq!(Token::decode(bad), None, "{bad}");
        }
    }
}
