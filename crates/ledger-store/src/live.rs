//! The live store: the one every reader and writer of a running ledger uses,
//! switchable to a rebuilt store without a restart, and the directory layout
//! that makes the switch survive one.
//!
//! A store directory holds either a sled store itself, or a `CURRENT` file
//! naming the generation directory (`gen-N`) that holds it; [`Store::open`]
//! follows `CURRENT`. An online rebuild writes generation N+1 beside the
//! live one, then [`commit_generation`] replaces `CURRENT` atomically (write,
//! fsync, rename): a crash before that leaves the old store live and the
//! half-built one is removed at the next open (once the live generation is
//! open and locked: never by a process that could not lock it); after it,
//! the new one is live.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::keys;
use crate::store::{RecordDict, Store, StoreError, DICT_SAMPLES};

/// The file naming the live generation directory.
pub const CURRENT: &str = "CURRENT";
const GENERATION: &str = "gen-";
/// How long a store just dropped may keep its file lock (a thread of sled's
/// still holding the file lets go shortly after) before a reopen fails.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A cheap-to-clone handle on the live [`Store`]. Readers take [`get`] per
/// request (a response is answered from one store); writers hold [`gate`]
/// while storing and check [`generation`] under it, and a switch happens
/// only under the gate, so no write ever lands in a store being replaced.
///
/// [`get`]: LiveStore::get
/// [`gate`]: LiveStore::gate
/// [`generation`]: LiveStore::generation
#[derive(Clone)]
pub struct LiveStore {
    inner: Arc<LiveInner>,
}

struct LiveInner {
    current: RwLock<Store>,
    generation: AtomicU64,
    gate: Mutex<()>,
}

impl From<Store> for LiveStore {
    fn from(store: Store) -> Self {
        Self {
            inner: Arc::new(LiveInner {
                current: RwLock::new(store),
                generation: AtomicU64::new(0),
                gate: Mutex::new(()),
            }),
        }
    }
}

impl LiveStore {
    /// The store live now.
    pub fn get(&self) -> Store {
        self.inner
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many times the store was switched since this handle was made.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Held by a writer while it stores a batch, and by a switch.
    pub fn gate(&self) -> MutexGuard<'_, ()> {
        self.inner.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `new` the live store (the caller holds the gate); returns the
    /// store it replaces.
    pub fn switch(&self, _gate: &MutexGuard<'_, ()>, new: Store) -> Store {
        let mut cur = self
            .inner
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let old = std::mem::replace(&mut *cur, new);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        old
    }
}

/// sled's page cache of a compaction copy while it is written, bytes. sled
/// counts it loosely while pages are being created: a copy of 1M sessions
/// grew the process by 122 MiB with 32 MiB, 32 MiB with 8 and nothing
/// measurable with 4, in the same time (the store bench, 2026-12-07).
const COPY_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Keys a copy reads ahead, and the stride it writes them in. sled's files
/// keep every segment that is more than half live, and a tree written in key
/// order leaves most segments just over half live: its files held 1.90× the
/// keys and values measured on 1M keys, against 1.29× when each window of
/// 8,192 keys is written every 6th key first, then the next, … (the later
/// passes rewrite the sparse leaves of the first, which leaves the first
/// pass's segments under half live, so sled reclaims them).
const COPY_WINDOW: usize = 8192;
const COPY_STRIDE: usize = 6;

impl Store {
    /// Compaction: copies every key of this store into a fresh store at
    /// `dir` and returns it, flushed. The copy holds exactly this store's
    /// state with no old page versions: sled's files at their smallest
    /// (windows of keys written strided, [`COPY_STRIDE`]), its session
    /// records compressed with a dictionary trained on this store's records
    /// (fewer than 1,000 sessions: plain) and its index and history chunks
    /// compressed one by one; the memory indexes are this store's (shared
    /// values, copied keys). Records and chunks written to the copy afterwards are
    /// plain: ingestion does not pay for compression, and the next
    /// compaction packs them. Holds the write lock throughout (batches,
    /// purges and erasures wait; reads go on). Keys are inserted one by one,
    /// not in sled batches: sled's lock is one for the whole process, and a
    /// batch into the copy would stop the live store's readers too (nobody
    /// reads the copy before it is flushed and switched to).
    pub fn copy_to(&self, dir: &Path) -> Result<Store, StoreError> {
        let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        // Only written until it is reopened: a small cache, so that a copy
        // does not hold a second full one beside the live store's.
        let fresh = Store::open_cached(dir, self.inner.defaults, COPY_CACHE_BYTES)?;
        // Session records are written compressed with a dictionary trained
        // on the store's own (records compressed with this store's
        // dictionary are unpacked first).
        let mut samples = Vec::with_capacity(DICT_SAMPLES);
        for kv in self.tree().scan_prefix(keys::SESSION).take(DICT_SAMPLES) {
            let (k, v) = kv?;
            samples.push(self.plain_session(&k, &v)?.into_owned());
        }
        let dict = RecordDict::train(&samples);
        drop(samples);
        let mut packer = dict.as_ref().map(RecordDict::packer).transpose()?;
        if let Some(dict) = &dict {
            fresh.tree().insert(keys::DICT, dict.raw())?;
        }
        let mut window = Vec::with_capacity(COPY_WINDOW);
        let mut source = self.tree().iter();
        loop {
            window.clear();
            for kv in source.by_ref().take(COPY_WINDOW) {
                let (k, v) = kv?;
                let v = if k.starts_with(keys::SESSION) {
                    // Unpacked with this store's dictionary, packed with the
                    // copy's (or plain, with none).
                    let plain = self.plain_session(&k, &v)?.into_owned();
                    match &mut packer {
                        Some(p) => RecordDict::pack(p, plain).into(),
                        None => plain.into(),
                    }
                } else if k.starts_with(keys::INDEX) || k.starts_with(keys::HISTORY) {
                    // Index and history chunks too, each alone (no
                    // dictionary): one packed before is copied as it is.
                    if crate::store::is_packed(&v) {
                        v
                    } else {
                        crate::store::packed(v.to_vec()).into()
                    }
                } else if k.as_ref() == keys::DICT {
                    continue;
                } else {
                    v
                };
                window.push((k, v));
            }
            if window.is_empty() {
                break;
            }
            for first in 0..COPY_STRIDE {
                for (k, v) in window.iter().skip(first).step_by(COPY_STRIDE) {
                    fresh.tree().insert(k, v.clone())?;
                }
            }
        }
        fresh.inner.db.flush()?;
        drop(fresh);
        // Reopened: counters and offsets are read from the copied keys.
        // The memory indexes are the source's: the copy holds its sessions.
        let copy = Store::open_retrying(dir, self.inner.defaults, RELEASE_WAIT, false)?;
        copy.inner.mem.copy_from(&self.inner.mem);
        // The mark is taken on the reopened files: a reopen can leave them
        // a segment (512 KiB) smaller than they were before it, so a size
        // taken before would overstate what the copy left.
        let per_session = copy.size_on_disk() / copy.stats().sessions.max(1);
        copy.tree()
            .insert(keys::COMPACTED, &per_session.to_be_bytes())?;
        copy.flush()?;
        Ok(copy)
    }

    /// Bytes per session sled's files held right after the compaction that
    /// made this store; `None` if it was never compacted.
    pub fn compacted_size(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .tree()
            .get(keys::COMPACTED)?
            .and_then(|v| Some(u64::from_be_bytes(v.as_ref().try_into().ok()?))))
    }

    /// Whether sled's files have outgrown the data enough to compact
    /// ([`outgrown`] of this store's size, sessions and compaction mark).
    pub fn outgrown(&self, factor: f64, floor_bytes: u64) -> Result<bool, StoreError> {
        Ok(outgrown(
            self.size_on_disk(),
            self.stats().sessions,
            self.compacted_size()?,
            factor,
            floor_bytes,
        ))
    }
}

/// Whether a store whose files take `files` bytes for `sessions` sessions
/// is due a compaction: never below `floor_bytes` or with `factor` 0 (off);
/// otherwise once its bytes per session exceed `factor` × `mark`, the bytes
/// per session right after its last compaction, or at once if it was never
/// compacted (`mark` `None`). sled reclaims a segment only once at most half
/// of it is live, and a store written by ingestion holds several times the
/// bytes a compacted copy does.
pub fn outgrown(
    files: u64,
    sessions: u64,
    mark: Option<u64>,
    factor: f64,
    floor_bytes: u64,
) -> bool {
    if factor <= 0.0 || files < floor_bytes {
        return false;
    }
    match mark {
        None => true,
        Some(m) => files as f64 > factor * m as f64 * sessions.max(1) as f64,
    }
}

/// The directory of the live generation under `root` (`root` itself for a
/// store that was never switched).
pub fn current_dir(root: &Path) -> Result<PathBuf, StoreError> {
    match std::fs::read_to_string(root.join(CURRENT)) {
        Ok(name) => Ok(root.join(name.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(root.to_path_buf()),
        Err(e) => Err(StoreError::Io(e.to_string())),
    }
}

/// A fresh directory for the next generation under `root`.
pub fn next_generation_dir(root: &Path) -> Result<PathBuf, StoreError> {
    let n = generation_of(&current_dir(root)?, root).map_or(1, |n| n + 1);
    let dir = root.join(format!("{GENERATION}{n}"));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| StoreError::Io(e.to_string()))?;
    }
    Ok(dir)
}

fn generation_of(dir: &Path, root: &Path) -> Option<u64> {
    if dir == root {
        return None;
    }
    dir.file_name()?
        .to_str()?
        .strip_prefix(GENERATION)?
        .parse()
        .ok()
}

/// Makes `dir` (a generation directory under `root`) the live one on disk:
/// `CURRENT` is replaced atomically and synced.
pub fn commit_generation(root: &Path, dir: &Path) -> Result<(), StoreError> {
    use std::io::Write;
    let io = |e: std::io::Error| StoreError::Io(e.to_string());
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| StoreError::Io(format!("bad generation directory {}", dir.display())))?;
    // The generation's own directory entries first, then CURRENT.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    let tmp = root.join(format!("{CURRENT}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(name.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, root.join(CURRENT)).map_err(io)?;
    std::fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Removes, under `root`, every store but the live one: generation
/// directories other than the current one (a rebuild that did not finish, or
/// a replaced store), and sled's own files in `root` once a generation is
/// live. Directories named `old-*` (stores kept on purpose) stay.
pub fn remove_stale(root: &Path) -> Result<(), StoreError> {
    let current = current_dir(root)?;
    if current == root {
        return Ok(());
    }
    let io = |e: std::io::Error| StoreError::Io(e.to_string());
    for e in std::fs::read_dir(root).map_err(io)? {
        let path = e.map_err(io)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if path == current || name == CURRENT || name.starts_with("old-") {
            continue;
        }
        if name.starts_with(GENERATION) || is_sled_file(&name) {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io)?;
            } else {
                std::fs::remove_file(&path).map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Whether `name` is one of the files sled keeps in a store directory.
fn is_sled_file(name: &str) -> bool {
    name == "conf" || name == "db" || name == "blobs" || name.starts_with("snap.")
}

/// Moves a replaced store's files (a generation directory, or sled's files
/// in `root` itself) into `root/old-<n>`, for an operator who keeps them.
pub fn keep_aside(root: &Path, old_dir: &Path) -> Result<PathBuf, StoreError> {
    let io = |e: std::io::Error| StoreError::Io(e.to_string());
    let n = generation_of(old_dir, root).unwrap_or(0);
    let to = root.join(format!("old-{n}"));
    if old_dir != root {
        std::fs::rename(old_dir, &to).map_err(io)?;
        return Ok(to);
    }
    std::fs::create_dir_all(&to).map_err(io)?;
    for e in std::fs::read_dir(root).map_err(io)? {
        let path = e.map_err(io)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if is_sled_file(&name) {
            std::fs::rename(&path, to.join(&name)).map_err(io)?;
        }
    }
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::{outgrown, COPY_STRIDE, COPY_WINDOW};
    use crate::store::Store;
    use ledger_core::Defaults;

    #[test]
    fn a_copy_holds_every_key_and_value_whatever_order_it_writes_them_in() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("a"), Defaults::default()).unwrap();
        // Two full windows and a part, none a multiple of the stride.
        let n = 2 * COPY_WINDOW + COPY_STRIDE + 1;
        for i in 0..n {
            let k = format!("zraw{i:08}");
            store
                .tree()
                .insert(k.as_bytes(), vec![i as u8; i % 700])
                .unwrap();
        }
        let copy = store.copy_to(&dir.path().join("b")).unwrap();
        let all = |s: &Store| -> Vec<(sled::IVec, sled::IVec)> {
            s.tree()
                .iter()
                .map(Result::unwrap)
                .filter(|(k, _)| k.as_ref() != crate::keys::COMPACTED)
                .collect()
        };
        let (a, b) = (all(&store), all(&copy));
        assert_eq!(a.iter().filter(|(k, _)| k.starts_with(b"zraw")).count(), n);
        assert_eq!(a, b);
    }

    #[test]
    fn a_store_is_due_a_compaction_once_it_outgrows_its_last_one() {
        const MIB: u64 = 1 << 20;
        // Off, or below the floor: never.
        assert!(!outgrown(10_000 * MIB, 1_000, Some(1), 0.0, 0));
        assert!(!outgrown(100 * MIB, 1_000, None, 2.0, 256 * MIB));
        // Never compacted, above the floor: at once.
        assert!(outgrown(300 * MIB, 1_000, None, 2.0, 256 * MIB));
        // 3,500 bytes/session after the last one: due above 7,000.
        assert!(!outgrown(7_000 * 100_000, 100_000, Some(3_500), 2.0, 0));
        assert!(outgrown(7_001 * 100_000, 100_000, Some(3_500), 2.0, 0));
        // Sessions purged (bytes per session up) count as growth; a store
        // with no session left is measured as if it held one.
        assert!(outgrown(7_001, 0, Some(3_500), 2.0, 0));
        assert!(!outgrown(7_000, 0, Some(3_500), 2.0, 0));
    }
}
