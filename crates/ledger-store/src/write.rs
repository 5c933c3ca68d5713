//! The write path: a batch is folded in memory, each touched session read
//! and written once, and written in sled batches of at most [`WRITE_PART`]
//! sessions each (up to [`QUIET_PART`] while the writer sees no reads,
//! as many as sled applies in about [`QUIET_PART_TIME`]). sled
//! 0.34 blocks every read while it applies a batch, so the part bounds how
//! long readers wait, whatever the consumed batch size.
//!
//! Each part holds its sessions (records, history, index changes) and the
//! counters as of its end; the last also holds the partitions' next offsets.
//! A crash between parts leaves sessions written ahead of the offsets: each
//! session records the offset of the last record applied to it
//! (`StoredSession::applied`), and applying the batch again passes over
//! every record at or below it. So a crash at any instant loses and repeats
//! nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use ledger_core::{apply, Outcome, Status};

use crate::chunks::IndexChanges;
use crate::keys;
use crate::pace::{self, Pace};
use crate::store::{
    chunk_entries, chunk_of, encode, packed, BatchReport, EventCounts, HistoryEntryRef, Record,
    Store, StoreError, StoredEventRef, StoredSession, HISTORY_LEN, TAIL_MAX,
};

/// One session's share of a batch, folded: what to write for it.
struct Folded {
    counts: EventCounts,
    /// `None` when every event was a duplicate: the session is unchanged.
    write: Option<SessionWrite>,
}

struct SessionWrite {
    key: Vec<u8>,
    /// Index entries to remove (`false`) and insert (`true`).
    index: Vec<(Vec<u8>, bool)>,
    record: Vec<u8>,
    /// A history chunk made of the record's full tail (`TAIL_MAX`).
    history: Option<(Vec<u8>, Vec<u8>)>,
    /// History chunks that fell out of the kept window.
    history_dropped: Vec<Vec<u8>>,
    /// The new history base when chunks were dropped (`keys::history_base`).
    base: Option<Vec<u8>>,
    /// Change-log entries: records of this batch that changed the session
    /// visibly (partition, offset).
    changes: Vec<(i32, i64)>,
    /// Status before the batch (`None`: a new session) and after it.
    status: (Option<Status>, Status),
    /// The session's warning threshold, minutes.
    warning_minutes: u32,
}

/// Ends a write epoch when dropped (on every return, errors included).
pub(crate) struct EpochEnd<'a>(pub(crate) &'a Store);

impl Drop for EpochEnd<'_> {
    fn drop(&mut self) {
        self.0.bump_epoch();
    }
}

/// Whether a session state is one the views show (not a pending shell).
fn next_visible(s: Option<&ledger_core::Session>) -> bool {
    s.is_some_and(|s| s.status != Status::Pending)
}

/// The session id of a session record key.
fn id_of(key: &[u8]) -> &str {
    std::str::from_utf8(&key[keys::SESSION.len()..]).unwrap_or_default()
}

/// Below this many sessions a batch is folded on the calling thread alone.
const PARALLEL_MIN: usize = 512;

/// Most sessions written by one sled batch (readers wait for one at most).
pub const WRITE_PART: usize = 100;

/// Most sessions in one sled batch when the [`Pace`] knows that no read
/// has been served for a while ([`Pace::quiet`]): fewer, larger parts
/// rewrite fewer index chunks. A read arriving then waits for one such part
/// at most, so quiet parts are also sized to hold sled's lock for about
/// [`QUIET_PART_TIME`] ([`quiet_part`]).
pub const QUIET_PART: usize = 1_000;

/// About the longest a quiet part holds sled's lock: the first read after
/// a quiet spell waits this long at most, whatever the store's size and
/// however cold its cache (1,000 sessions took ~45 ms at 100,000 sessions
/// in `benches/reads.rs`, and take longer in a larger store or a cold one).
pub const QUIET_PART_TIME: Duration = Duration::from_millis(20);

/// What sled's batches of the recent write parts took a session, ns: a
/// moving average (the last part a quarter); 0 until a part was written.
#[derive(Default)]
pub(crate) struct PartTime(std::sync::atomic::AtomicU64);

impl PartTime {
    /// Counts a part of `sessions` whose sled batch took `held`.
    fn note(&self, held: Duration, sessions: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let ns = u64::try_from(held.as_nanos() / sessions.max(1) as u128)
            .unwrap_or(u64::MAX)
            .max(1);
        let old = self.0.load(Relaxed);
        let new = if old == 0 { ns } else { (old / 4) * 3 + ns / 4 };
        self.0.store(new, Relaxed);
    }

    /// The average, ns a session (0: nothing measured yet).
    fn ns(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Sessions in the next quiet part: as many as take about
/// [`QUIET_PART_TIME`] at `ns_per_session` ([`PartTime`]; 0 when nothing
/// was measured yet), between `part_max` and [`QUIET_PART`] (never below
/// `part_max`).
fn quiet_part(ns_per_session: u64, part_max: usize) -> usize {
    let most = QUIET_PART.max(part_max);
    if ns_per_session == 0 {
        return part_max;
    }
    let fits = QUIET_PART_TIME.as_nanos() / u128::from(ns_per_session);
    usize::try_from(fits).unwrap_or(most).clamp(part_max, most)
}

impl Store {
    /// Folds a batch and writes it — sessions, index changes, history,
    /// counters and the partitions' next offsets — in sled batches of at most
    /// [`WRITE_PART`] sessions, the offsets with the last (module docs).
    /// Events of one session are folded in memory and written once; sessions
    /// are read and folded on every core, the sled writes are one thread's.
    ///
    /// `next_offsets` are `(partition, offset after the last record consumed)`
    /// for `topic`, covering dead-lettered records too; `dead_lettered` counts
    /// those records.
    pub fn apply_batch(
        &self,
        topic: &str,
        records: &[Record],
        next_offsets: &[(i32, i64)],
        dead_lettered: u64,
    ) -> Result<BatchReport, StoreError> {
        self.apply_batch_paced(topic, records, next_offsets, dead_lettered, &Pace::none())
    }

    /// [`Store::apply_batch`], pausing after the fold and after each write
    /// part as `pace` says (while reads go on, the writes take at most its
    /// share of wall time; [`crate::pace`]).
    pub fn apply_batch_paced(
        &self,
        topic: &str,
        records: &[Record],
        next_offsets: &[(i32, i64)],
        dead_lettered: u64,
        pace: &Pace,
    ) -> Result<BatchReport, StoreError> {
        let _w = self.inner.write.lock().unwrap_or_else(|p| p.into_inner());
        let fold_mark = pace.mark();
        self.bump_epoch();
        let _end = EpochEnd(self);
        // Each session's records, in batch order; sessions in first-seen order.
        let mut slot: HashMap<&str, usize> = HashMap::new();
        let mut groups: Vec<Vec<&Record>> = Vec::new();
        for r in records {
            let i = *slot.entry(r.event.session_id.as_str()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[i].push(r);
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Each session folded is a beat (`pace::Pace::working`).
        let fold_part = |part: &[Vec<&Record>]| {
            part.iter()
                .map(|g| {
                    let folded = self.fold_session(g);
                    pace.working();
                    folded
                })
                .collect::<Result<Vec<_>, _>>()
        };
        // CPU the fold's workers used (the calling thread's is measured by
        // the mark).
        let mut workers_cpu = Duration::ZERO;
        let folded = if threads < 2 || groups.len() < PARALLEL_MIN {
            fold_part(&groups)?
        } else {
            let per = groups.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let parts: Vec<_> = groups
                    .chunks(per)
                    .map(|part| {
                        scope.spawn(move || {
                            let cpu = pace::thread_cpu();
                            (fold_part(part), pace::thread_cpu().saturating_sub(cpu))
                        })
                    })
                    .collect();
                let mut all = Vec::with_capacity(groups.len());
                for p in parts {
                    let (part, cpu) = p.join().expect("folding a session does not panic");
                    all.extend(part?);
                    workers_cpu += cpu;
                }
                Ok::<_, StoreError>(all)
            })?
        };

        pace.after(fold_mark, workers_cpu);
        let mut stats = self.stats();
        let mut report = BatchReport::default();
        report.events.dead_lettered = dead_lettered;
        // Records that change no session (duplicates only, dropped ones)
        // are counted with the offsets, in the last part.
        let mut unwritten = EventCounts {
            dead_lettered,
            ..EventCounts::default()
        };
        let mut writes = Vec::new();
        for f in folded {
            report.events.add(&f.counts);
            match f.write {
                Some(w) => writes.push((f.counts, w)),
                None => unwritten.add(&f.counts),
            }
        }
        let part_max = self
            .inner
            .write_part
            .load(std::sync::atomic::Ordering::Relaxed);
        let mut remaining = writes.len();
        let mut writes = writes.into_iter();
        // A partition first consumed past offset 0 (the topic's retention
        // deleted what came before) has a change log that starts there.
        let known = self.offsets(topic)?;
        let mut first_seen: BTreeMap<i32, i64> = BTreeMap::new();
        for r in records {
            if !known.contains_key(&r.partition) {
                first_seen.entry(r.partition).or_insert(r.offset);
            }
        }
        // Readers look this far back for chunks holding an offset.
        let mut span = self.change_span()?;
        // At least one part: the last writes the offsets. With no reads
        // going on, parts are larger (`QUIET_PART`): nobody waits for them.
        let mut first = true;
        let last_part = loop {
            let size = if pace.quiet() {
                quiet_part(self.inner.part_time.ns(), part_max)
            } else {
                part_max
            };
            let take = size.min(remaining);
            remaining -= take;
            let last = remaining == 0;
            let part_mark = pace.mark();
            let mut batch = sled::Batch::default();
            let mut index = IndexChanges::default();
            let mut log: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
            for (counts, w) in writes.by_ref().take(take) {
                stats.events.add(&counts);
                report.sessions_written += 1;
                match w.status.0 {
                    None => stats.sessions += 1,
                    Some(before) => *stats.by_status.entry(before).or_default() -= 1,
                }
                *stats.by_status.entry(w.status.1).or_default() += 1;
                stats.max_warning_minutes =
                    stats.max_warning_minutes.max(u64::from(w.warning_minutes));
                for k in w.history_dropped {
                    batch.remove(k);
                }
                if let Some(b) = w.base {
                    batch.insert(keys::history_base(id_of(&w.key)), b);
                }
                for &(p, off) in &w.changes {
                    log.entry(p)
                        .or_default()
                        .push((off, id_of(&w.key).to_string()));
                }
                if let Some((k, v)) = w.history {
                    batch.insert(k, v);
                }
                batch.insert(w.key, w.record);
                for (k, insert) in &w.index {
                    if *insert {
                        index.insert(k);
                    } else {
                        index.remove(k);
                    }
                }
            }
            for (p, mut entries) in log {
                entries.sort_unstable_by_key(|e| e.0);
                let (first, last) = (entries[0].0, entries[entries.len() - 1].0);
                if last - first > span {
                    span = last - first;
                    batch.insert(keys::CHANGE_SPAN, &span.to_be_bytes()[..]);
                }
                batch.insert(keys::change(p, first), packed(encode(&entries)));
            }
            if first {
                first = false;
                for (&p, &off) in &first_seen {
                    if off > 0 && self.change_start(p)?.is_none() {
                        batch.insert(keys::change_start(p), &off.to_be_bytes()[..]);
                    }
                }
            }
            if last {
                stats.events.add(&unwritten);
                for &(p, off) in next_offsets {
                    batch.insert(keys::offset(topic, p), &off.to_be_bytes()[..]);
                }
            }
            for (name, v) in stats.named() {
                batch.insert(keys::counter(&name), &v.to_be_bytes()[..]);
            }
            let held = self.apply_indexed(batch, index)?;
            if take > 0 {
                self.inner.part_time.note(held, take);
            }
            if last {
                break part_mark;
            }
            self.set_applied(stats.clone(), &[]);
            pace.after(part_mark, Duration::ZERO);
        };
        let offsets: Vec<_> = next_offsets.iter().map(|&(p, o)| (topic, p, o)).collect();
        self.set_applied(stats, &offsets);
        pace.after(last_part, Duration::ZERO);
        Ok(report)
    }

    /// Reads one session, folds its records of this batch (in order) and
    /// encodes what changes. Pure but for the one read.
    fn fold_session(&self, records: &[&Record]) -> Result<Folded, StoreError> {
        let id = records[0].event.session_id.as_str();
        let key = keys::session(id);
        let stored = self
            .inner
            .tree
            .get(&key)?
            .map(|v| self.decode_session(&key, &v))
            .transpose()?;
        // A purged or erased session stays gone: its events are dropped.
        if stored.is_none() && self.is_removed(id)? {
            return Ok(Folded {
                counts: EventCounts {
                    dropped: records.len() as u64,
                    ..EventCounts::default()
                },
                write: None,
            });
        }
        let (before, mut session, mut history_len, mut chunks, mut tail, mut tail_len, mut applied) =
            match stored {
                Some(s) => (
                    Some((s.session.status, keys::index_keys(&s.session, s.partition))),
                    Some(s.session),
                    s.history_len,
                    s.history_chunks,
                    s.history_tail,
                    s.tail_len,
                    s.applied,
                ),
                None => (None, None, 0, VecDeque::new(), vec![], 0, BTreeMap::new()),
            };
        // Records applied already (the batch is applied again after a crash
        // between its parts) are passed over: counted once, folded once.
        let records: Vec<&Record> = records
            .iter()
            .copied()
            .filter(|r| applied.get(&r.partition).is_none_or(|&o| r.offset > o))
            .collect();
        if records.is_empty() {
            return Ok(Folded {
                counts: EventCounts::default(),
                write: None,
            });
        }
        let mut counts = EventCounts::default();
        // New history entries, encoded straight onto the record's tail.
        let mut added: u32 = 0;
        let mut changes = Vec::new();
        let mut partition = records[0].partition;
        for r in &records {
            let (next, outcome) = apply(session.take(), &r.event, &self.inner.defaults);
            session = Some(next);
            partition = r.partition;
            applied.insert(r.partition, r.offset);
            counts.count(outcome);
            if outcome.changed_state() && next_visible(session.as_ref()) {
                changes.push((r.partition, r.offset));
            }
            if outcome != Outcome::Duplicate {
                // Secret-named keys are never stored; an event is copied only
                // to remove some. The session id is the key's: not stored
                // again per event.
                let cleaned;
                let event = if ledger_core::limits::has_secret_keys(&r.event) {
                    cleaned = ledger_core::limits::redacted(&r.event);
                    &cleaned
                } else {
                    &r.event
                };
                let entry = HistoryEntryRef {
                    seq: history_len + u64::from(added),
                    outcome: outcome.as_str(),
                    partition: r.partition,
                    offset: r.offset,
                    event: StoredEventRef::of(event),
                };
                tail = postcard::to_extend(&entry, tail).expect("history entries always serialize");
                added += 1;
            }
        }
        // Only duplicates: the fold left the session as it was, but what was
        // applied moved (so a repeat of the batch passes them over).
        if added == 0 {
            let Some(mut s) = self.stored(id)? else {
                return Ok(Folded {
                    counts,
                    write: None,
                });
            };
            s.applied = applied;
            let status = s.session.status;
            return Ok(Folded {
                counts,
                write: Some(SessionWrite {
                    key,
                    index: vec![],
                    record: encode(&s),
                    history: None,
                    history_dropped: vec![],
                    base: None,
                    changes: vec![],
                    status: (Some(status), status),
                    warning_minutes: s.session.timeout.warning_threshold_minutes,
                }),
            });
        }
        // The new entries joined the record's tail; a full tail becomes a chunk.
        history_len += u64::from(added);
        tail_len += added;
        let mut history_write = None;
        if tail_len >= TAIL_MAX {
            let first = history_len - u64::from(tail_len);
            chunks.push_back((first, tail_len));
            history_write = Some((keys::history(id, first), chunk_of(tail_len, &tail)));
            tail.clear();
            tail_len = 0;
        }
        // Keep at least HISTORY_LEN entries: drop whole old chunks while the
        // rest still holds that many.
        let mut kept: u64 =
            chunks.iter().map(|c| u64::from(c.1)).sum::<u64>() + u64::from(tail_len);
        let mut history_dropped = vec![];
        while let Some(&(seq, n)) = chunks.front() {
            if kept - u64::from(n) < HISTORY_LEN {
                break;
            }
            history_dropped.push(keys::history(id, seq));
            kept -= u64::from(n);
            chunks.pop_front();
        }
        // What falls out of the history is folded into its base, so the
        // rest still re-folds to every state after it.
        let base = if history_dropped.is_empty() {
            None
        } else {
            let mut base = self.history_base(id)?;
            for k in &history_dropped {
                let Some(v) = self.inner.tree.get(k)? else {
                    continue;
                };
                for e in chunk_entries(k, &v)? {
                    let mut ev = e.event;
                    ev.session_id = id.to_string();
                    let (prev, through) = match base.take() {
                        Some(b) => (Some(b.session), b.through),
                        None => (None, i64::MIN),
                    };
                    let (s, _) = apply(prev, &ev, &self.inner.defaults);
                    base = Some(crate::store::HistoryBase {
                        session: s,
                        through: through.max(ev.time_ms),
                    });
                }
            }
            base.map(|b| encode(&b))
        };
        let now = StoredSession {
            session: session.expect("a session has folded at least one event"),
            partition,
            history_len,
            history_chunks: chunks,
            history_tail: tail,
            tail_len,
            applied,
        };
        let new_keys = keys::index_keys(&now.session, now.partition);
        let (status_before, old_keys) = match before {
            Some((st, k)) => (Some(st), k),
            None => (None, vec![]),
        };
        let mut index: Vec<(Vec<u8>, bool)> = old_keys
            .iter()
            .filter(|k| !new_keys.contains(k))
            .map(|k| (k.clone(), false))
            .collect();
        index.extend(
            new_keys
                .iter()
                .filter(|k| !old_keys.contains(k))
                .map(|k| (k.clone(), true)),
        );
        Ok(Folded {
            counts,
            write: Some(SessionWrite {
                key,
                index,
                record: encode(&now),
                history: history_write,
                history_dropped,
                base,
                changes,
                status: (status_before, now.session.status),
                warning_minutes: now.session.timeout.warning_threshold_minutes,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_part_holds_sleds_lock_for_about_its_time() {
        let target = QUIET_PART_TIME.as_nanos() as u64;
        // Nothing measured yet (a store just opened, its cache cold): the
        // small parts a read may wait for.
        assert_eq!(quiet_part(0, WRITE_PART), WRITE_PART);
        // Fast sessions: the most a quiet part holds.
        assert_eq!(quiet_part(1_000, WRITE_PART), QUIET_PART);
        // As many as fit in the time.
        assert_eq!(quiet_part(target / 400, WRITE_PART), 400);
        // Slow ones: never below the part a read in flight gets.
        assert_eq!(quiet_part(target, WRITE_PART), WRITE_PART);
        assert_eq!(quiet_part(u64::MAX, WRITE_PART), WRITE_PART);
        // A write part set above the quiet one (a bench) stays what it is.
        assert_eq!(quiet_part(1_000, 5_000), 5_000);
        assert_eq!(quiet_part(target / 400, 5_000), 5_000);
    }

    #[test]
    fn the_time_a_session_takes_follows_the_recent_parts() {
        let t = PartTime::default();
        assert_eq!(t.ns(), 0);
        t.note(Duration::from_millis(20), 1_000);
        assert_eq!(t.ns(), 20_000);
        // A slower part moves the average a quarter of the way.
        t.note(Duration::from_millis(10), 100);
        assert_eq!(t.ns(), 40_000);
    }

    #[test]
    fn writing_a_batch_measures_its_parts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), ledger_core::Defaults::default()).unwrap();
        let records: Vec<Record> = ledger_gen::generate(ledger_gen::GenConfig {
            sessions: 50,
            events: 500,
            ..Default::default()
        })
        .into_iter()
        .enumerate()
        .map(|(i, event)| Record {
            event,
            partition: 0,
            offset: i as i64,
        })
        .collect();
        let next = [(0, records.len() as i64)];
        store.apply_batch("t", &records, &next, 0).unwrap();
        assert!(store.inner.part_time.ns() > 0);
    }
}
