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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;

use crate::keys;
use crate::store::{corrupt, StoreError};

/// Most entries in one chunk; a fuller chunk is split when it is written.
pub const CHUNK_MAX: usize = 64;

/// The stored chunk covering `entry` under `prefix` (the greatest chunk key
/// `≤ prefix + entry`), with its value; `None` when every chunk key is greater.
fn covering(
    tree: &sled::Tree,
    prefix: &[u8],
    entry: &[u8],
) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
    let probe = [prefix, entry].concat();
    Ok(tree
        .range(prefix.to_vec()..=probe)
        .next_back()
        .transpose()?)
}

/// Decodes a chunk value into its entries: plain, or zstd-compressed
/// behind a 0 byte as a compaction writes it (a plain chunk starts with its
/// first entry's length, never 0).
pub(crate) fn decode(key: &[u8], v: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let plain = crate::store::unpacked(key, v)?;
    let mut out = Vec::new();
    let mut rest = &plain[..];
    while !rest.is_empty() {
        let (len, used) = read_varint(rest).ok_or_else(|| corrupt(key, "bad chunk length"))?;
        rest = &rest[used..];
        let e = rest
            .get(..len)
            .ok_or_else(|| corrupt(key, "truncated chunk entry"))?;
        out.push(e.to_vec());
        rest = &rest[len..];
    }
    Ok(out)
}

fn encode<'a>(entries: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<u8> {
    let mut v = Vec::new();
    for e in entries {
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
    fn change(&mut self, logical: &[u8], insert: bool) {
        let plen = keys::index_prefix_len(logical).expect("index_keys yields index keys");
        self.by_prefix
            .entry(logical[..plen].to_vec())
            .or_default()
            .insert(logical[plen..].to_vec(), insert);
    }

    pub fn insert(&mut self, logical: &[u8]) {
        self.change(logical, true);
    }

    pub fn remove(&mut self, logical: &[u8]) {
        self.change(logical, false);
    }

    /// Adds the chunk writes these changes imply to `batch`, reading the
    /// current chunks from `tree` (indexes split between two threads when
    /// there are many changes).
    pub fn write(self, tree: &sled::Tree, batch: &mut sled::Batch) -> Result<(), StoreError> {
        let groups: Vec<_> = self.by_prefix.into_iter().collect();
        let total: usize = groups.iter().map(|(_, c)| c.len()).sum();
        let writes = if total < 1024 {
            plan(tree, groups)?
        } else {
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
                let other = scope.spawn(|| plan(tree, second));
                let mut w = plan(tree, groups)?;
                w.extend(other.join().expect("planning chunks does not panic")?);
                Ok::<_, StoreError>(w)
            })?
        };
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        Ok(())
    }
}

type Changes = BTreeMap<Vec<u8>, bool>;

/// The chunk writes (`None`: delete) that apply `groups` of changes, each
/// one index prefix's, to the chunks stored in `tree`.
#[allow(clippy::type_complexity)]
fn plan(
    tree: &sled::Tree,
    groups: Vec<(Vec<u8>, Changes)>,
) -> Result<Vec<(Vec<u8>, Option<Vec<u8>>)>, StoreError> {
    let mut out = Vec::new();
    for (prefix, changes) in groups {
        let end = keys::prefix_end(&prefix);
        let mut changes = changes.into_iter().peekable();
        while let Some((first, _)) = changes.peek() {
            // The chunk covering `first`, and where the next one starts.
            let found = covering(tree, &prefix, first)?;
            let existed = found.is_some();
            let (ckey, entries) = match found {
                Some((k, v)) => {
                    let e = decode(&k, &v)?;
                    (k.to_vec(), e)
                }
                None => (prefix.clone(), Vec::new()),
            };
            let after = (Bound::Excluded(ckey.clone()), bound_end(&end));
            let next = tree.range::<Vec<u8>, _>(after).next().transpose()?;
            let next_key = next.map(|(k, _)| k.to_vec());
            let mut set: BTreeSet<Vec<u8>> = entries.into_iter().collect();
            while let Some((e, _)) = changes.peek() {
                if let Some(n) = &next_key {
                    if n[prefix.len()..] <= e[..] {
                        break;
                    }
                }
                let (e, insert) = changes.next().expect("peeked");
                if insert {
                    set.insert(e);
                } else {
                    set.remove(&e);
                }
            }
            if set.is_empty() {
                if existed {
                    out.push((ckey, None));
                }
                continue;
            }
            let all: Vec<Vec<u8>> = set.into_iter().collect();
            // A low bound whose entry was removed is moved up to the first
            // entry kept: no key names a removed session (erasure), and the
            // range it gave up holds no entry.
            let low = &ckey[prefix.len()..];
            let rekey = !low.is_empty() && low != &all[0][..];
            if rekey {
                out.push((ckey.clone(), None));
            }
            for (i, part) in all.chunks(CHUNK_MAX).enumerate() {
                let key = if i == 0 && !rekey {
                    ckey.clone()
                } else {
                    [&prefix[..], &part[0][..]].concat()
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
        tree: &sled::Tree,
        prefix: &[u8],
        from: Bound<Vec<u8>>,
        rev: bool,
    ) -> Result<Self, StoreError> {
        let end = bound_end(&keys::prefix_end(prefix));
        let at = |e: &Vec<u8>| {
            let mut k = prefix.to_vec();
            k.extend_from_slice(e);
            k
        };
        let chunks: Box<dyn Iterator<Item = _>> = match (&from, rev) {
            (Bound::Unbounded, false) => {
                Box::new(tree.range::<Vec<u8>, _>((Bound::Included(prefix.to_vec()), end)))
            }
            (Bound::Unbounded, true) => Box::new(
                tree.range::<Vec<u8>, _>((Bound::Included(prefix.to_vec()), end))
                    .rev(),
            ),
            (Bound::Included(e) | Bound::Excluded(e), false) => {
                // Start at the chunk covering `e`.
                let start = covering(tree, prefix, e)?
                    .map(|(k, _)| k.to_vec())
                    .unwrap_or_else(|| prefix.to_vec());
                Box::new(tree.range::<Vec<u8>, _>((Bound::Included(start), end)))
            }
            (Bound::Included(e) | Bound::Excluded(e), true) => Box::new(
                tree.range::<Vec<u8>, _>((
                    Bound::Included(prefix.to_vec()),
                    Bound::Included(at(e)),
                ))
                .rev(),
            ),
        };
        Ok(Self {
            chunks,
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
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let prefixes: Vec<Vec<u8>> = vec![
            b"io".to_vec(),
            keys::status_prefix(ledger_core::Status::Active),
            keys::field_prefix(keys::BY_USER, "u"),
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
            changes.write(&tree, &mut batch).unwrap();
            tree.apply_batch(batch).unwrap();
            for p in &prefixes {
                let want: Vec<Vec<u8>> = model
                    .get(p)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                let got: Vec<Vec<u8>> = Scan::new(&tree, p, Bound::Unbounded, false)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                assert_eq!(got, want, "round {round}");
                let mut rev: Vec<Vec<u8>> = Scan::new(&tree, p, Bound::Unbounded, true)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                rev.reverse();
                assert_eq!(rev, want, "round {round}");
                if let Some(pivot) = want.get(want.len() / 3) {
                    let after: Vec<Vec<u8>> =
                        Scan::new(&tree, p, Bound::Excluded(pivot.clone()), false)
                            .unwrap()
                            .map(Result::unwrap)
                            .collect();
                    assert_eq!(after, want[want.len() / 3 + 1..].to_vec());
                    let from: Vec<Vec<u8>> =
                        Scan::new(&tree, p, Bound::Included(pivot.clone()), false)
                            .unwrap()
                            .map(Result::unwrap)
                            .collect();
                    assert_eq!(from, want[want.len() / 3..].to_vec());
                    let mut before: Vec<Vec<u8>> =
                        Scan::new(&tree, p, Bound::Excluded(pivot.clone()), true)
                            .unwrap()
                            .map(Result::unwrap)
                            .collect();
                    before.reverse();
                    assert_eq!(before, want[..want.len() / 3].to_vec());
                }
                // Chunk invariants: non-empty, bounded, sorted, within range.
                let chunks: Vec<(Vec<u8>, Vec<Vec<u8>>)> = tree
                    .scan_prefix(p)
                    .map(|kv| {
                        let (k, v) = kv.unwrap();
                        (k[p.len()..].to_vec(), decode(&k, &v).unwrap())
                    })
                    .collect();
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
        let sizes: usize = model.values().map(BTreeSet::len).sum();
        assert!(
            sizes > 3 * CHUNK_MAX,
            "the test must split chunks ({sizes} entries)"
        );
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
