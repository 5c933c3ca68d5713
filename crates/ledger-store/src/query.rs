//! List queries over the indexes: filters, order, offset and cursor paging,
//! counts. Every query is driven by the most selective index that applies;
//! none scans all sessions when an index can answer it.

use std::cmp::Ordering;
use std::ops::Bound;

use ledger_core::event::SessionType;
use ledger_core::{Session, Status};

use crate::chunks::Scan;
use crate::keys;
use crate::store::{Store, StoreError};

/// Equality filters on the indexed fields; `status` is the read-time status.
/// `session_type` has no index: it narrows what an index yields, and so do
/// `partitions` (sharded mode: the sessions of these partitions only).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub agent_id: Option<String>,
    pub workspace_id: Option<String>,
    pub status: Option<Status>,
    pub session_type: Option<SessionType>,
    /// Sessions whose events came from these partitions only.
    pub partitions: Option<Vec<i32>>,
}

impl Filter {
    /// Whether `s` passes every filter, with read-time status at `now` (Unix ms).
    pub fn matches(&self, s: &Session, now: i64) -> bool {
        fn eq(want: &Option<String>, have: &Option<String>) -> bool {
            want.is_none() || want == have
        }
        eq(&self.user_id, &s.user_id)
            && eq(&self.client_id, &s.client_id)
            && eq(&self.agent_id, &s.agent_id)
            && eq(&self.workspace_id, &s.workspace_id)
            && self.status.is_none_or(|st| s.status_at(now) == st)
            && self.session_type.is_none_or(|t| s.session_type == t)
    }

    fn has_field(&self) -> bool {
        self.user_id.is_some()
            || self.client_id.is_some()
            || self.agent_id.is_some()
            || self.workspace_id.is_some()
    }
}

/// List order by creation time (then session id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Skip this many matching sessions.
    Offset(usize),
    /// Continue after the position an earlier page's `next_cursor` names.
    After(String),
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Session>,
    /// Whether more sessions match after this page.
    pub has_more: bool,
    /// Opaque cursor continuing after the last item (set when `has_more`).
    pub next_cursor: Option<String>,
}

/// A position in list order: (creation time, session id).
type Pos = (i64, String);

/// Encodes a position as an opaque cursor.
pub fn encode_cursor(sort: i64, id: &str) -> String {
    let mut b = keys::ord_i64(sort).to_vec();
    b.extend_from_slice(id.as_bytes());
    hex::encode(b)
}

fn decode_cursor(c: &str) -> Result<Pos, StoreError> {
    let b = hex::decode(c).map_err(|_| StoreError::BadCursor)?;
    if b.len() < 8 {
        return Err(StoreError::BadCursor);
    }
    let id = String::from_utf8(b[8..].to_vec()).map_err(|_| StoreError::BadCursor)?;
    Ok((keys::from_ord_i64(&b), id))
}

type PosIter<'a> = Box<dyn Iterator<Item = Result<Pos, StoreError>> + 'a>;

impl Store {
    /// Positions under one ordered-index prefix, in `order`, strictly after `after`.
    fn positions(
        &self,
        prefix: Vec<u8>,
        order: Order,
        after: Option<&Pos>,
    ) -> Result<PosIter<'_>, StoreError> {
        let from = match after {
            Some((s, id)) => Bound::Excluded(keys::ordered(&[], *s, id)),
            None => Bound::Unbounded,
        };
        let scan = Scan::new(self.indexes(), &prefix, from, order == Order::NewestFirst)?;
        Ok(Box::new(scan.map(|e| {
            let e = e?;
            keys::split_ordered(&e, 0).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&e).into_owned(),
                reason: "bad index entry".into(),
            })
        })))
    }

    /// The index that drives a filter: the most selective one present.
    fn driving_prefix(f: &Filter) -> Vec<u8> {
        if let Some(u) = &f.user_id {
            keys::field_prefix(keys::BY_USER, u)
        } else if let Some(c) = &f.client_id {
            keys::field_prefix(keys::BY_CLIENT, c)
        } else if let Some(a) = &f.agent_id {
            keys::field_prefix(keys::BY_AGENT, a)
        } else if let Some(w) = &f.workspace_id {
            keys::field_prefix(keys::BY_WORKSPACE, w)
        } else if let Some(s) = f.status {
            keys::status_prefix(s)
        } else {
            keys::BY_ORDER.to_vec()
        }
    }

    /// Every session matching `f` at `now`, in `order`, strictly after `after`.
    pub fn matching(
        &self,
        f: &Filter,
        order: Order,
        after: Option<&str>,
        now: i64,
    ) -> Result<impl Iterator<Item = Result<Session, StoreError>> + '_, StoreError> {
        let after = after.map(decode_cursor).transpose()?;
        let primary = self.positions(Self::driving_prefix(f), order, after.as_ref())?;
        // Stored-active sessions past a deadline show as expired/abandoned at
        // read time; the status index alone does not list them, the deadline
        // index does (and there are few: the reaper closes them).
        let mut extra: Vec<Pos> = vec![];
        if let (false, Some(st @ (Status::Expired | Status::Abandoned))) = (f.has_field(), f.status)
        {
            for (id, _, status, _) in self.due(now, usize::MAX)? {
                if status == st {
                    if let Some(s) = self.get(&id)? {
                        extra.push((s.sort_at(), id));
                    }
                }
            }
            extra.retain(|p| match (&after, order) {
                (None, _) => true,
                (Some(a), Order::NewestFirst) => p < a,
                (Some(a), Order::OldestFirst) => p > a,
            });
            extra.sort();
            if order == Order::NewestFirst {
                extra.reverse();
            }
        }
        let merged = Merge {
            a: primary.peekable(),
            b: extra.into_iter().peekable(),
            order,
        };
        let f = f.clone();
        Ok(merged.filter_map(move |pos| {
            let (_, id) = match pos {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            match self.get_in(&id, f.partitions.as_deref()) {
                Ok(Some(s)) if f.matches(&s, now) => Some(Ok(s)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        }))
    }

    /// The session `id` if its events came from one of `partitions` (any,
    /// when `None`).
    pub fn get_in(
        &self,
        id: &str,
        partitions: Option<&[i32]>,
    ) -> Result<Option<Session>, StoreError> {
        match partitions {
            None => self.get(id),
            Some(ps) => Ok(self
                .stored(id)?
                .filter(|s| ps.contains(&s.partition))
                .map(|s| s.session)),
        }
    }

    /// One page of sessions matching `f` at `now` (Unix ms).
    pub fn list(
        &self,
        f: &Filter,
        order: Order,
        start: &Start,
        limit: usize,
        now: i64,
    ) -> Result<Page, StoreError> {
        let (after, skip) = match start {
            Start::Offset(n) => (None, *n),
            Start::After(c) => (Some(c.as_str()), 0),
        };
        let mut items = Vec::with_capacity(limit.min(1000));
        let mut has_more = false;
        for s in self.matching(f, order, after, now)?.skip(skip) {
            let s = s?;
            if items.len() == limit {
                has_more = true;
                break;
            }
            items.push(s);
        }
        let next_cursor = match (has_more, items.last()) {
            (true, Some(last)) => Some(encode_cursor(last.sort_at(), &last.id)),
            _ => None,
        };
        Ok(Page {
            items,
            has_more,
            next_cursor,
        })
    }

    /// Read-time derived closures: (active past expiry, active past abandonment).
    fn derived_closures(&self, now: i64) -> Result<(u64, u64), StoreError> {
        let (mut e, mut a) = (0, 0);
        for (_, _, st, _) in self.due(now, usize::MAX)? {
            match st {
                Status::Expired => e += 1,
                _ => a += 1,
            }
        }
        Ok((e, a))
    }

    /// How many sessions match `f` at `now`. Status-only and unfiltered counts
    /// come from the counters; the rest walk the driving index.
    /// With `partitions`, the counters answer only while the store holds
    /// nothing else (`topic`'s offsets name those partitions only).
    pub fn count(&self, f: &Filter, now: i64) -> Result<u64, StoreError> {
        self.count_in(f, now, "")
    }

    /// [`Store::count`], where `topic` names the offsets that say which
    /// partitions the store holds (for a filter with `partitions`).
    pub fn count_in(&self, f: &Filter, now: i64, topic: &str) -> Result<u64, StoreError> {
        let whole = match &f.partitions {
            None => true,
            Some(ps) => self.holds_only(topic, ps)?,
        };
        if whole && !f.has_field() && f.session_type.is_none() {
            let stats = self.stats();
            let Some(st) = f.status else {
                return Ok(stats.sessions);
            };
            let (e, a) = self.derived_closures(now)?;
            return Ok(match st {
                Status::Active => stats.status(st).saturating_sub(e + a),
                Status::Expired => stats.status(st) + e,
                Status::Abandoned => stats.status(st) + a,
                _ => stats.status(st),
            });
        }
        let mut n = 0;
        for s in self.matching(f, Order::NewestFirst, None, now)? {
            s?;
            n += 1;
        }
        Ok(n)
    }
}

/// Merges two position streams that are each sorted in `order`.
struct Merge<'a, B: Iterator<Item = Pos>> {
    a: std::iter::Peekable<PosIter<'a>>,
    b: std::iter::Peekable<B>,
    order: Order,
}

impl<B: Iterator<Item = Pos>> Iterator for Merge<'_, B> {
    type Item = Result<Pos, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let take_b = match (self.a.peek(), self.b.peek()) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(Err(_)), _) => false,
            (Some(Ok(x)), Some(y)) => {
                let c = y.cmp(x);
                match self.order {
                    Order::NewestFirst => c == Ordering::Greater,
                    Order::OldestFirst => c == Ordering::Less,
                }
            }
        };
        if take_b {
            self.b.next().map(Ok)
        } else {
            self.a.next()
        }
    }
}
