//! Chunked indexes: the entries of one index prefix packed into sorted
//! chunks of at most [`CHUNK_MAX`] entries, one sled key per chunk.
//!
//! An index entry is a *logical key* `P + E` (see [`crate::keys::index_keys`]):
//! `P` names the index (e.g. the sessions of one user), `E` orders the entry
//! within it. Storing each logical key as its own sled key costs one sled
//! write per entry; sled 0.34 pays roughly the same per write whatever its
//! size, and a tree of millions of tiny keys makes every write slower still.
//! Chunks turn the index changes of a batch into one write per chunk touched:
//! sessions created in one batch share their creation-order and status
//! chunks, and deadlines moved by activity land in the few chunks just after
//! the batch's event times.
//!
//! Layout: a chunk is stored under `P + L`, where `L` is empty or an entry,
//! and holds the entries `E` with `L ≤ E < L'` (`P + L'` the next chunk key
//! under `P`), sorted, as `varint(len) + bytes` each. An entry belongs to the
//! chunk with the greatest key `≤ P + E`; when there is none, to a new chunk
//! under `P` itself. Chunks are never empty and never over [`CHUNK_MAX`].

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use crate::keys;
use crate::store::{corrupt, StoreError};

/// Most entries in one chunk; a fuller chunk is split when it is written.
pub const CHUNK_MAX: usize = 64;

/// Index chunks kept in memory (the indexes [`keys::in_memory`] names), in
/// the layout sled holds the others in: chunk key → chunk. Written only
/// under the store's write lock, right after the sled batch of the same
/// changes; values are shared (`IVec`), so a copy of the map costs its keys.
#[derive(Default)]
pub(crate) struct MemChunks {
    map: Arc<RwLock<ChunkMap>>,
}

type ChunkMap = BTreeMap<Vec<u8>, sled::IVec>;

impl MemChunks {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, ChunkMap> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies chunk writes (`None`: delete) planned by [`IndexChanges`].
    pub fn apply(&self, writes: MemWrites) {
        if writes.0.is_empty() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in writes.0 {
            match v {
                Some(v) => map.insert(k, v.into()),
                None => map.remove(&k),
            };
        }
    }

    /// Replaces the chunks with `other`'s (a compaction copy takes its
    /// source's, which are its own: it holds the same sessions).
    pub fn copy_from(&self, other: &MemChunks) {
        let copy = other.read().clone();
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = copy;
    }

    /// Every chunk, in key order.
    pub fn all(&self) -> Vec<(Vec<u8>, sled::IVec)> {
        self.read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Chunks and the bytes of their keys and values.
    pub fn size(&self) -> (u64, u64) {
        let map = self.read();
        let bytes = map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        (map.len() as u64, bytes)
    }
}

/// The chunk writes of [`IndexChanges::write`] to apply to a store's
/// [`MemChunks`] once the sled batch holding the rest is applied.
#[derive(Default)]
#[must_use = "memory chunks must be applied after the sled batch"]
pub(crate) struct MemWrites(Vec<(Vec<u8>, Option<Vec<u8>>)>);

/// Where a store's index chunks are: sled, or memory for the indexes
/// [`keys::in_memory`] names.
#[derive(Clone, Copy)]
pub(crate) struct Indexes<'a> {
    pub tree: &'a sled::Tree,
    pub mem: &'a MemChunks,
}

type Chunk = (sled::IVec, sled::IVec);

impl Indexes<'_> {
    /// The stored chunk covering `entry` under `prefix` (the greatest chunk
    /// key `≤ prefix + entry`), with its value; `None` when every chunk key
    /// is greater.
    fn covering(
        &self,
        prefix: &[u8],
        entry: &[u8],
    ) -> Result<Option<(Vec<u8>, sled::IVec)>, StoreError> {
        let probe = [prefix, entry].concat();
        if keys::in_memory(prefix) {
            let range = (Bound::Included(prefix), Bound::Included(&probe[..]));
            return Ok(self
                .mem
                .read()
                .range::<[u8], _>(range)
                .next_back()
                .map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(self
            .tree
            .range(prefix.to_vec()..=probe)
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.to_vec(), v)))
    }

    /// The key of the first chunk after `key`, below `end`.
    fn next_key(&self, key: &[u8], end: &Option<Vec<u8>>) -> Result<Option<Vec<u8>>, StoreError> {
        let range = (Bound::Excluded(key.to_vec()), bound_end(end));
        if keys::in_memory(key) {
            return Ok(self.mem.read().range(range).next().map(|(k, _)| k.clone()));
        }
        Ok(self
            .tree
            .range::<Vec<u8>, _>(range)
            .next()
            .transpose()?
            .map(|(k, _)| k.to_vec()))
    }

    /// The chunks with keys in `range`, ascending or descending (`rev`).
    fn chunks(
        &self,
        prefix: &[u8],
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        rev: bool,
    ) -> Box<dyn Iterator<Item = sled::Result<Chunk>>> {
        if keys::in_memory(prefix) {
            return Box::new(MemRange {
                map: Arc::clone(&self.mem.map),
                range,
                rev,
                buf: VecDeque::new(),
                done: false,
            });
        }
        let it = self.tree.range::<Vec<u8>, _>(range);
        if rev {
            Box::new(it.rev())
        } else {
            Box::new(it)
        }
    }

    /// Every chunk under `prefix`, in key order.
    #[cfg(test)]
    fn under(&self, prefix: &[u8]) -> Vec<Chunk> {
        let end = bound_end(&keys::prefix_end(prefix));
        self.chunks(prefix, (Bound::Included(prefix.to_vec()), end), false)
            .map(Result::unwrap)
            .collect()
    }
}

/// Chunks of a memory index a scan copies at once under its lock.
const SCAN_AHEAD: usize = 16;

/// The chunks of a memory index in a range: up to [`SCAN_AHEAD`] at a
/// time, copied under the lock (values are shared), then the next ones from
/// after the last copied. A scan so holds the lock only while it copies and
/// sees the writes made between two copies, as a sled range does.
struct MemRange {
    map: Arc<RwLock<ChunkMap>>,
    /// What is left to read.
    range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    rev: bool,
    buf: VecDeque<Chunk>,
    done: bool,
}

impl Iterator for MemRange {
    type Item = sled::Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            let range = map.range::<Vec<u8>, _>(self.range.clone());
            let take =
                |(k, v): (&Vec<u8>, &sled::IVec)| (sled::IVec::from(k.as_slice()), v.clone());
            if self.rev {
                self.buf.extend(range.rev().take(SCAN_AHEAD).map(take));
            } else {
                self.buf.extend(range.take(SCAN_AHEAD).map(take));
            }
            drop(map);
            match self.buf.back() {
                Some((k, _)) if self.buf.len() == SCAN_AHEAD => {
                    let past = Bound::Excluded(k.to_vec());
                    if self.rev {
                        self.range.1 = past;
                    } else {
                        self.range.0 = past;
                    }
                }
                _ => self.done = true,
            }
        }
        self.buf.pop_front().map(Ok)
    }
}

/// Decodes a chunk value into its entries: plain, or zstd-compressed
/// behind a 0 byte as a compaction writes it (a plain chunk starts with its
/// first entry's length, never 0).
pub(crate) fn decode(key: &[u8], v: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let plain = crate::store::unpacked(key, v)?;
    Ok(split(key, &plain)?
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect())
}

/// The entries of a plain chunk, borrowed from it.
fn split<'a>(key: &[u8], plain: &'a [u8]) -> Result<Vec<&'a [u8]>, StoreError> {
    let mut out = Vec::with_capacity(CHUNK_MAX);
    let mut rest = plain;
    while !rest.is_empty() {
        let (len, used) = read_varint(rest).ok_or_else(|| corrupt(key, "bad chunk length"))?;
        rest = &rest[used..];
        let e = rest
            .get(..len)
            .ok_or_else(|| corrupt(key, "truncated chunk entry"))?;
        out.push(e);
        rest = &rest[len..];
    }
    Ok(out)
}

fn encode<E: AsRef<[u8]>>(entries: &[E]) -> Vec<u8> {
    // Each entry's length prefix takes at most 3 bytes (entries are short).
    let mut v = Vec::with_capacity(entries.iter().map(|e| e.as_ref().len() + 3).sum());
    for e in entries {
        let e = e.as_ref();
        let mut n = e.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                v.push(b);
                break;
            }
            v.push(b | 0x80);
        }
        v.extend_from_slice(e);
    }
    v
}

fn read_varint(b: &[u8]) -> Option<(usize, usize)> {
    let mut n: usize = 0;
    for (i, &byte) in b.iter().enumerate().take(4) {
        n |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, i + 1));
        }
    }
    None
}

/// The index changes of one batch, grouped by index prefix: entry → insert
/// (`true`) or remove (`false`).
#[derive(Default)]
pub(crate) struct IndexChanges {
    by_prefix: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, bool>>,
}

impl IndexChanges {
    /// Insertions of `logical` keys, sorted and deduplicated here: a build
    /// of many entries at once, without a tree insertion per entry.
    pub fn inserts(mut logical: Vec<Vec<u8>>) -> Self {
        logical.sort_unstable();
        logical.dedup();
        let mut by_prefix: BTreeMap<Vec<u8>, Changes> = BTreeMap::new();
        let mut run: Vec<(Vec<u8>, bool)> = Vec::new();
        let mut prefix: Option<Vec<u8>> = None;
        for mut k in logical {
            let plen = keys::index_prefix_len(&k).expect("index_keys yields index keys");
            if prefix.as_deref() != Some(&k[..plen]) {
                if let Some(p) = prefix.take() {
                    // Sorted input: the map is built in one pass.
                    by_prefix.insert(p, std::mem::take(&mut run).into_iter().collect());
                }
                prefix = Some(k[..plen].to_vec());
            }
            run.push((k.split_off(plen), true));
        }
        if let Some(p) = prefix {
            by_prefix.insert(p, run.into_iter().collect());
        }
        Self { by_prefix }
    }

    fn change(&mut self, logical: &[u8], insert: bool) {
        let plen = keys::index_prefix_len(logical).expect("index_keys yields index keys");
        let (prefix, entry) = logical.split_at(plen);
        let changes = match self.by_prefix.get_mut(prefix) {
            Some(c) => c,
            None => self.by_prefix.entry(prefix.to_vec()).or_default(),
        };
        changes.insert(entry.to_vec(), insert);
    }

    pub fn insert(&mut self, logical: &[u8]) {
        self.change(logical, true);
    }

    pub fn remove(&mut self, logical: &[u8]) {
        self.change(logical, false);
    }

    /// Applies changes of memory indexes only to `ix`'s memory chunks, one
    /// index prefix at a time: what a build holds beside the indexes is the
    /// changes and one prefix's new chunks, not a second copy of them all.
    pub fn apply_in_memory(self, ix: Indexes<'_>) -> Result<(), StoreError> {
        let mut slice = Vec::new();
        let mut size = 0;
        let mut groups = self.by_prefix.into_iter().peekable();
        while let Some((prefix, changes)) = groups.next() {
            debug_assert!(keys::in_memory(&prefix));
            size += changes.len();
            slice.push((prefix, changes));
            if size >= APPLY_SLICE || groups.peek().is_none() {
                ix.mem
                    .apply(MemWrites(plan_on_two(ix, std::mem::take(&mut slice))?));
                size = 0;
            }
        }
        Ok(())
    }

    /// Adds the chunk writes these changes imply to `batch`, reading the
    /// current chunks from `ix` (indexes split between two threads when
    /// there are many changes). Returns the writes of the memory indexes,
    /// to apply once `batch` is.
    pub fn write(self, ix: Indexes<'_>, batch: &mut sled::Batch) -> Result<MemWrites, StoreError> {
        let writes = plan_on_two(ix, self.by_prefix.into_iter().collect())?;
        let mut mem = MemWrites::default();
        for (k, v) in writes {
            if keys::in_memory(&k) {
                mem.0.push((k, v));
                continue;
            }
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        Ok(mem)
    }
}

type Changes = BTreeMap<Vec<u8>, bool>;

/// Changes of memory indexes an in-memory apply plans at once.
const APPLY_SLICE: usize = 16_384;

/// [`plan`], split between two threads when there are many changes.
#[allow(clippy::type_complexity)]
fn plan_on_two(
    ix: Indexes<'_>,
    groups: Vec<(Vec<u8>, Changes)>,
) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, StoreError> {
    let total: usize = groups.iter().map(|(_, c)| c.len()).sum();
    if total < 1024 {
        return plan(ix, groups);
    }
    // Two halves with about as many changes each.
    let mut seen = 0;
    let cut = groups
        .iter()
        .position(|(_, c)| {
            seen += c.len();
            seen * 2 >= total
        })
        .map_or(groups.len(), |i| i + 1);
    let mut groups = groups;
    let second = groups.split_off(cut);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| plan(ix, second));
        let mut w = plan(ix, groups)?;
        w.extend(other.join().expect("planning chunks does not panic")?);
        Ok(w)
    })
}

/// The chunk writes (`None`: delete) that apply `groups` of changes, each
/// one index prefix's, to the chunks `ix` holds.
#[allow(clippy::type_complexity)]
fn plan(
    ix: Indexes<'_>,
    groups: Vec<(Vec<u8>, Changes)>,
) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, StoreError> {
    let mut out = Vec::new();
    for (prefix, changes) in groups {
        let end = keys::prefix_end(&prefix);
        let mut changes = changes.into_iter().peekable();
        while let Some((first, _)) = changes.peek() {
            // The chunk covering `first`, and where the next one starts.
            let found = ix.covering(&prefix, first)?;
            let existed = found.is_some();
            let (ckey, value) = match found {
                Some((k, v)) => (k, Some(v)),
                None => (prefix.clone(), None),
            };
            let plain = match &value {
                Some(v) => crate::store::unpacked(&ckey, v)?,
                None => std::borrow::Cow::Borrowed(&[][..]),
            };
            let next_key = ix.next_key(&ckey, &end)?;
            // The chunk's changes (sorted, as `changes` is) merged into its
            // sorted entries, which stay borrowed until encoded.
            let mut mine: Vec<(Vec<u8>, bool)> = Vec::new();
            while let Some((e, _)) = changes.peek() {
                if let Some(n) = &next_key {
                    if n[prefix.len()..] <= e[..] {
                        break;
                    }
                }
                mine.push(changes.next().expect("peeked"));
            }
            let stored = split(&ckey, &plain)?;
            let mut all: Vec<&[u8]> = Vec::with_capacity(stored.len() + mine.len());
            let mut stored = stored.into_iter().peekable();
            for (e, insert) in &mine {
                while let Some(s) = stored.next_if(|s| *s < &e[..]) {
                    all.push(s);
                }
                stored.next_if(|s| *s == &e[..]);
                if *insert {
                    all.push(e);
                }
            }
            all.extend(stored);
            if all.is_empty() {
                if existed {
                    out.push((ckey, None));
                }
                continue;
            }
            // A low bound whose entry was removed is moved up to the first
            // entry kept: no key names a removed session (erasure), and the
            // range it gave up holds no entry.
            let low = &ckey[prefix.len()..];
            let rekey = !low.is_empty() && low != all[0];
            if rekey {
                out.push((ckey.clone(), None));
            }
            for (i, part) in all.chunks(CHUNK_MAX).enumerate() {
                let key = if i == 0 && !rekey {
                    ckey.clone()
                } else {
                    [&prefix[..], part[0]].concat()
                };
                out.push((key, Some(encode(part))));
            }
        }
    }
    Ok(out)
}

fn bound_end(end: &Option<Vec<u8>>) -> Bound<Vec<u8>> {
    match end {
        Some(e) => Bound::Excluded(e.clone()),
        None => Bound::Unbounded,
    }
}

/// Entries of the index under `prefix`, ascending from `from` (inclusive or
/// exclusive), or descending when `rev`, below `from`.
pub(crate) struct Scan {
    chunks: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>>,
    buf: VecDeque<Vec<u8>>,
    from: Bound<Vec<u8>>,
    rev: bool,
    done: bool,
}

impl Scan {
    /// Ascending entries `≥`/`>` `from` (`rev = false`), or descending entries
    /// `≤`/`<` `from` (`rev = true`).
    pub fn new(
        ix: Indexes<'_>,
        prefix: &[u8],
        from: Bound<Vec<u8>>,
        rev: bool,
    ) -> Result<Self, StoreError> {
        let end = bound_end(&keys::prefix_end(prefix));
        let all = Bound::Included(prefix.to_vec());
        let range = match (&from, rev) {
            (Bound::Unbounded, _) => (all, end),
            (Bound::Included(e) | Bound::Excluded(e), false) => {
                // Start at the chunk covering `e`.
                let start = ix
                    .covering(prefix, e)?
                    .map_or_else(|| prefix.to_vec(), |(k, _)| k);
                (Bound::Included(start), end)
            }
            (Bound::Included(e) | Bound::Excluded(e), true) => {
                (all, Bound::Included([prefix, e].concat()))
            }
        };
        Ok(Self {
            chunks: ix.chunks(prefix, range, rev),
            buf: VecDeque::new(),
            from,
            rev,
            done: false,
        })
    }

    fn keep(&self, e: &[u8]) -> bool {
        match (&self.from, self.rev) {
            (Bound::Unbounded, _) => true,
            (Bound::Included(f), false) => e >= &f[..],
            (Bound::Excluded(f), false) => e > &f[..],
            (Bound::Included(f), true) => e <= &f[..],
            (Bound::Excluded(f), true) => e < &f[..],
        }
    }
}

impl Iterator for Scan {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let e = if self.rev {
                self.buf.pop_back()
            } else {
                self.buf.pop_front()
            };
            if let Some(e) = e {
                if self.keep(&e) {
                    return Some(Ok(e));
                }
                continue;
            }
            if self.done {
                return None;
            }
            match self.chunks.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
                Some(Ok((k, v))) => match decode(&k, &v) {
                    Ok(entries) => self.buf = entries.into(),
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::{Rng, SeedableRng};

    use super::*;

    /// Random batches of inserts and removals under a few prefixes (one of
    /// them skewed to the right edge, like creation times) against a set:
    /// after every batch, every scan direction and bound agrees with the set
    /// and every chunk keeps its invariants.
    #[test]
    fn chunked_index_matches_a_set() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let mem = MemChunks::default();
        let ix = Indexes {
            tree: &tree,
            mem: &mem,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        // Two indexes kept in sled, two in memory.
        let prefixes: Vec<Vec<u8>> = vec![
            b"io".to_vec(),
            keys::status_prefix(ledger_core::Status::Active),
            keys::field_prefix(keys::BY_USER, "u"),
            keys::BY_DEADLINE.to_vec(),
        ];
        let mut model: BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>> = BTreeMap::new();
        let mut clock: u64 = 0;
        for round in 0..300 {
            let mut changes = IndexChanges::default();
            let mut touched: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
            // Now and then a batch big enough to be planned on two threads.
            let n = if round % 50 == 0 {
                3_000
            } else {
                rng.random_range(1..200)
            };
            for _ in 0..n {
                let p = &prefixes[rng.random_range(0..prefixes.len())];
                let set = model.entry(p.clone()).or_default();
                let existing: Option<Vec<u8>> = if set.is_empty() || rng.random_bool(0.5) {
                    None
                } else {
                    set.iter().nth(rng.random_range(0..set.len())).cloned()
                };
                let logical = |e: &[u8]| [&p[..], e].concat();
                match existing {
                    Some(e) if !touched.contains_key(&logical(&e)) => {
                        touched.insert(logical(&e), false);
                        set.remove(&e);
                        changes.remove(&logical(&e));
                    }
                    _ => {
                        clock += rng.random_range(0..3);
                        let t = if rng.random_bool(0.7) {
                            clock
                        } else {
                            rng.random_range(0..=clock)
                        };
                        let mut e = t.to_be_bytes().to_vec();
                        e.extend_from_slice(format!("s{}", rng.random_range(0..1000)).as_bytes());
                        if touched.contains_key(&logical(&e)) {
                            continue;
                        }
                        touched.insert(logical(&e), true);
                        set.insert(e.clone());
                        changes.insert(&logical(&e));
                    }
                }
            }
            let mut batch = sled::Batch::default();
            let in_mem = changes.write(ix, &mut batch).unwrap();
            tree.apply_batch(batch).unwrap();
            mem.apply(in_mem);
            for p in &prefixes {
                let want: Vec<Vec<u8>> = model
                    .get(p)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                let got: Vec<Vec<u8>> = Scan::new(ix, p, Bound::Unbounded, false)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                assert_eq!(got, want, "round {round}");
                let mut rev: Vec<Vec<u8>> = Scan::new(ix, p, Bound::Unbounded, true)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                rev.reverse();
                assert_eq!(rev, want, "round {round}");
                if let Some(pivot) = want.get(want.len() / 3) {
                    let after: Vec<Vec<u8>> =
                        Scan::new(ix, p, Bound::Excluded(pivot.clone()), false)
                            .unwrap()
                            .map(Result::unwrap)
                            .collect();
                    assert_eq!(after, want[want.len() / 3 + 1..].to_vec());
                    let from: Vec<Vec<u8>> =
                        Scan::new(ix, p, Bound::Included(pivot.clone()), false)
                            .unwrap()
                            .map(Result::unwrap)
                            .collect();
                    assert_eq!(from, want[want.len() / 3..].to_vec());
                    let mut before: Vec<Vec<u8>> =
                        Scan::new(ix, p, Bound::Excluded(pivot.clone()), true)
                            .unwrap()
                            .map(Result::unwrap)
                            .collect();
                    before.reverse();
                    assert_eq!(before, want[..want.len() / 3].to_vec());
                }
                // Chunk invariants: non-empty, bounded, sorted, within range.
                let chunks: Vec<(Vec<u8>, Vec<Vec<u8>>)> = ix
                    .under(p)
                    .into_iter()
                    .map(|(k, v)| (k[p.len()..].to_vec(), decode(&k, &v).unwrap()))
                    .collect();
                // Each index's chunks are where it is kept, and only there.
                let in_tree = tree.scan_prefix(p).count();
                if keys::in_memory(p) {
                    assert_eq!(in_tree, 0);
                } else {
                    assert_eq!(in_tree, chunks.len());
                }
                for (i, (low, entries)) in chunks.iter().enumerate() {
                    assert!(!entries.is_empty() && entries.len() <= CHUNK_MAX);
                    assert!(entries.windows(2).all(|w| w[0] < w[1]));
                    assert!(entries[0] >= *low);
                    if let Some((next, _)) = chunks.get(i + 1) {
                        assert!(entries.last().unwrap() < next);
                    }
                }
            }
        }
        for (p, set) in &model {
            assert!(
                set.len() > 3 * CHUNK_MAX,
                "the test must split chunks ({} entries under {p:?})",
                set.len()
            );
        }
    }

    #[test]
    fn chunk_values_round_trip() {
        // Index entries are never empty (a sort key and a session id at
        // least), so a plain chunk never starts with the packed marker 0.
        let entries = vec![vec![3u8], vec![1u8; 5], vec![7u8; 300]];
        assert_eq!(decode(b"k", &encode(&entries)).unwrap(), entries);
        let packed = crate::store::packed(encode(&entries));
        assert_eq!(packed[0], 0);
        assert_eq!(decode(b"k", &packed).unwrap(), entries);
        assert!(decode(b"k", &packed[..packed.len() / 2]).is_err());
        assert!(decode(b"k", &[0x85, 1]).is_err());
        assert!(decode(b"k", &[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
