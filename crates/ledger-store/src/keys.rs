//! Key encoding for the one-tree layout documented in the crate root.

use ledger_core::{Session, Status};

pub const SESSION: &[u8] = b"s";
/// Common first byte of every index tag.
pub const INDEX: &[u8] = b"i";
pub const BY_USER: &[u8] = b"iu";
pub const BY_CLIENT: &[u8] = b"ic";
pub const BY_AGENT: &[u8] = b"ia";
pub const BY_WORKSPACE: &[u8] = b"iw";
pub const BY_STATUS: &[u8] = b"is";
pub const BY_ORDER: &[u8] = b"io";
pub const BY_DEADLINE: &[u8] = b"ix";
pub const BY_END: &[u8] = b"ie";
pub const HISTORY: &[u8] = b"h";
pub const COUNTER: &[u8] = b"c";
pub const OFFSET: &[u8] = b"o";
pub const MARKER: &[u8] = b"t";
pub const HISTORY_BASE: &[u8] = b"b";
pub const CHANGE: &[u8] = b"f";
pub const CHANGE_START: &[u8] = b"g";
/// A partition being dropped (sharded mode): `mdrop` + partition(4).
pub const DROPPING: &[u8] = b"mdrop";
/// The store format key (u64 BE).
pub const FORMAT: &[u8] = b"mformat";
/// Bytes per session sled's files held right after the compaction that
/// made this store (u64 BE); absent in a store never compacted.
pub const COMPACTED: &[u8] = b"mcompacted";
/// The zstd dictionary the store's compressed session records need (raw
/// bytes); written by the compaction that made the store, absent otherwise.
pub const DICT: &[u8] = b"mdict";

/// `i64` → 8 bytes that sort like the signed value.
pub fn ord_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// Inverse of [`ord_i64`].
pub fn from_ord_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

fn push_str(k: &mut Vec<u8>, s: &str) {
    k.extend_from_slice(&(s.len() as u32).to_be_bytes());
    k.extend_from_slice(s.as_bytes());
}

pub fn session(id: &str) -> Vec<u8> {
    let mut k = SESSION.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Prefix of a string-valued index for one value (e.g. all sessions of a user).
pub fn field_prefix(tag: &[u8], value: &str) -> Vec<u8> {
    let mut k = tag.to_vec();
    push_str(&mut k, value);
    k
}

/// Prefix of the status index for one status.
pub fn status_prefix(status: Status) -> Vec<u8> {
    let mut k = BY_STATUS.to_vec();
    k.push(status.code());
    k
}

/// `prefix + sort + id`: an ordered index entry under `prefix`.
pub fn ordered(prefix: &[u8], sort: i64, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 8 + id.len());
    k.extend_from_slice(prefix);
    k.extend_from_slice(&ord_i64(sort));
    k.extend_from_slice(id.as_bytes());
    k
}

/// Splits an ordered index key (under a prefix of `prefix_len` bytes) into
/// its sort value and session id.
pub fn split_ordered(key: &[u8], prefix_len: usize) -> Option<(i64, String)> {
    let rest = key.get(prefix_len..)?;
    if rest.len() < 8 {
        return None;
    }
    let id = String::from_utf8(rest[8..].to_vec()).ok()?;
    Some((from_ord_i64(rest), id))
}

pub fn history(id: &str, seq: u64) -> Vec<u8> {
    let mut k = history_prefix(id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn history_prefix(id: &str) -> Vec<u8> {
    let mut k = HISTORY.to_vec();
    push_str(&mut k, id);
    k
}

/// The state a session's kept history starts from, once older chunks fell
/// out of it.
pub fn history_base(id: &str) -> Vec<u8> {
    let mut k = HISTORY_BASE.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// The change-log prefix of one partition.
pub fn change_prefix(partition: i32) -> Vec<u8> {
    let mut k = CHANGE.to_vec();
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// A change-log chunk of `partition`: the changes one write part made in
/// it, keyed by the smallest offset it was written with (chunks never share
/// one: each record is one session's, written in one part).
pub fn change(partition: i32, first: i64) -> Vec<u8> {
    let mut k = change_prefix(partition);
    k.extend_from_slice(&first.to_be_bytes());
    k
}

/// Inverse of [`change`]: (partition, first).
pub fn split_change(key: &[u8]) -> Option<(i32, i64)> {
    let rest = key.get(CHANGE.len()..)?;
    let p = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let first = i64::from_be_bytes(rest.get(4..12)?.try_into().ok()?);
    Some((p, first))
}

/// The widest change-log chunk written (last offset − first), i64 BE:
/// every entry at or after an offset is in a chunk keyed at most this much
/// before it.
pub const CHANGE_SPAN: &[u8] = b"mchangespan";

/// The first offset the change log of `partition` still holds.
pub fn change_start(partition: i32) -> Vec<u8> {
    let mut k = CHANGE_START.to_vec();
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// The marker of a purged or erased session: the first 16 bytes of the
/// SHA-256 of its id, so a marker stores no copy of the id.
pub fn marker(id: &str) -> Vec<u8> {
    use sha2::Digest;
    let mut k = MARKER.to_vec();
    k.extend_from_slice(&sha2::Sha256::digest(id.as_bytes())[..16]);
    k
}

pub fn counter(name: &str) -> Vec<u8> {
    let mut k = COUNTER.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

pub fn offset_prefix(topic: &str) -> Vec<u8> {
    let mut k = OFFSET.to_vec();
    push_str(&mut k, topic);
    k
}

/// Inverse of [`offset`]: (topic, partition).
pub fn split_offset(key: &[u8]) -> Option<(String, i32)> {
    let rest = key.get(OFFSET.len()..)?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let topic = std::str::from_utf8(rest.get(4..4 + len)?).ok()?.to_string();
    let p = i32::from_be_bytes(rest.get(4 + len..8 + len)?.try_into().ok()?);
    Some((topic, p))
}

pub fn offset(topic: &str, partition: i32) -> Vec<u8> {
    let mut k = offset_prefix(topic);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// A deadline index entry: `ix + deadline + id + status code + partition`.
/// The status due at the deadline and the session's partition ride in the
/// key, so the reaper and read-time status counts never load the session.
pub fn deadline(at: i64, id: &str, status: Status, partition: i32) -> Vec<u8> {
    let mut k = ordered(BY_DEADLINE, at, id);
    k.push(status.code());
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Inverse of [`deadline`], given the entry after the `ix` tag (as the
/// deadline index chunks hold it): (deadline, session id, status due,
/// partition).
pub fn split_deadline(rest: &[u8]) -> Option<(i64, String, Status, i32)> {
    if rest.len() < 8 + 5 {
        return None;
    }
    let (head, tail) = rest.split_at(rest.len() - 5);
    let id = String::from_utf8(head[8..].to_vec()).ok()?;
    let status = Status::ALL.into_iter().find(|s| s.code() == tail[0])?;
    let partition = i32::from_be_bytes(tail[1..5].try_into().ok()?);
    Some((from_ord_i64(head), id, status, partition))
}

/// Length of the index prefix `P` of a logical index key `P + E` (the part
/// naming the index: tag, plus the field value or status code), or `None`
/// for keys that are not index keys.
pub fn index_prefix_len(key: &[u8]) -> Option<usize> {
    let tag = key.get(..2)?;
    let len = if [BY_USER, BY_CLIENT, BY_AGENT, BY_WORKSPACE].contains(&tag) {
        let n = u32::from_be_bytes(key.get(2..6)?.try_into().ok()?) as usize;
        6 + n
    } else if tag == BY_STATUS {
        3
    } else if tag == BY_ORDER || tag == BY_DEADLINE || tag == BY_END {
        2
    } else {
        return None;
    };
    (key.len() >= len).then_some(len)
}

/// Whether the index an index prefix or logical key belongs to is kept in
/// memory (rebuilt from the session records when the store opens) rather
/// than in sled: the field indexes (`iu`, `ic`, `ia`, `iw`), which every
/// new session adds four scattered entries to, and the deadline index
/// (`ix`), which most events move an entry of. The rest (`is`, `io`, `ie`)
/// stay in sled.
pub fn in_memory(key: &[u8]) -> bool {
    key.get(..2).is_some_and(|t| MEMORY_INDEXES.contains(&t))
}

/// The tags of the indexes kept in memory ([`in_memory`]).
pub const MEMORY_INDEXES: [&[u8]; 5] = [BY_USER, BY_CLIENT, BY_AGENT, BY_WORKSPACE, BY_DEADLINE];

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut e = prefix.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return Some(e);
        }
    }
    None
}

/// Every index entry a session state (stored for `partition`) implies.
/// Diffing the sets of the old and new state gives the index writes of a batch.
pub fn index_keys(s: &Session, partition: i32) -> Vec<Vec<u8>> {
    let sort = s.sort_at();
    let mut keys = Vec::with_capacity(7);
    for (tag, value) in [
        (BY_USER, &s.user_id),
        (BY_CLIENT, &s.client_id),
        (BY_AGENT, &s.agent_id),
        (BY_WORKSPACE, &s.workspace_id),
    ] {
        if let Some(v) = value {
            keys.push(ordered(&field_prefix(tag, v), sort, &s.id));
        }
    }
    keys.push(ordered(&status_prefix(s.status), sort, &s.id));
    keys.push(ordered(BY_ORDER, sort, &s.id));
    if let Some((at, status)) = s.next_deadline() {
        keys.push(deadline(at, &s.id, status, partition));
    }
    if let (Some(_), Some(end)) = (s.status.terminal_kind(), s.ended_at) {
        keys.push(ordered(BY_END, end, &s.id));
    }
    keys
}

/// The mark of `partition` being dropped.
pub fn dropping(partition: i32) -> Vec<u8> {
    let mut k = DROPPING.to_vec();
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_keys_sort_numerically() {
        let vals = [i64::MIN, -5, -1, 0, 1, 1_795_000_000_000, i64::MAX];
        for w in vals.windows(2) {
            assert!(ord_i64(w[0]) < ord_i64(w[1]));
            assert_eq!(from_ord_i64(&ord_i64(w[0])), w[0]);
        }
        let k = ordered(b"io", 42, "sess");
        assert_eq!(split_ordered(&k, 2), Some((42, "sess".to_string())));
        assert_eq!(
            split_offset(&offset("t.x", 3)),
            Some(("t.x".to_string(), 3))
        );
        let d = deadline(-7, "sess_x", Status::Abandoned, 258);
        assert_eq!(
            split_deadline(&d[BY_DEADLINE.len()..]),
            Some((-7, "sess_x".to_string(), Status::Abandoned, 258))
        );
        assert!(deadline(5, "zz", Status::Expired, 0) < deadline(6, "a", Status::Expired, 0));
        // Length prefixes keep "ab" + "c…" apart from "a" + "bc…".
        assert!(!field_prefix(BY_USER, "ab").starts_with(&field_prefix(BY_USER, "a")));
        let u = ordered(&field_prefix(BY_USER, "user_1"), 9, "s");
        assert_eq!(index_prefix_len(&u), Some(2 + 4 + 6));
        assert_eq!(index_prefix_len(&status_prefix(Status::Ended)), Some(3));
        assert_eq!(index_prefix_len(&d), Some(2));
        assert_eq!(index_prefix_len(b"sx"), None);
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
    }
}
