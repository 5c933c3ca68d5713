//! Retention and erasure on a real sled store: 90 simulated days under a
//! frozen clock, late and duplicate events for purged sessions, and a replay
//! of the same records at the same clock compared with the live store.

use std::collections::BTreeMap;

use ledger_core::{Defaults, Event, EventData, EventKind, Session, Subject};
use ledger_gen::{generate, GenConfig};
use ledger_store::{Record, Retention, Store};
use ledger_testkit::partition_of;

const DAY: i64 = 86_400_000;
const T0: i64 = 1_790_000_000_000;
const PARTITIONS: u32 = 3;

/// Applies events in batches with offsets that continue across calls, as
/// one consumer reading the topic does.
struct Loader {
    next: BTreeMap<i32, i64>,
}

impl Loader {
    fn new() -> Self {
        Self {
            next: BTreeMap::new(),
        }
    }

    fn load(&mut self, store: &Store, events: &[Event], batch: usize) {
        for chunk in events.chunks(batch) {
            let records: Vec<Record> = chunk
                .iter()
                .map(|e| {
                    let partition = partition_of(&e.session_id, PARTITIONS);
                    let offset = self.next.entry(partition).or_insert(0);
                    *offset += 1;
                    Record {
                        event: e.clone(),
                        partition,
                        offset: *offset - 1,
                    }
                })
                .collect();
            let offsets: Vec<(i32, i64)> = self.next.iter().map(|(p, o)| (*p, *o)).collect();
            store.apply_batch("t", &records, &offsets, 0).unwrap();
        }
        store.flush().unwrap();
    }
}

fn purge_all(store: &Store, now: i64, r: &Retention) {
    loop {
        let rep = store.purge(now, r, 100).unwrap();
        if rep.purged < 100 && rep.markers_dropped < 100 {
            break;
        }
    }
}

fn day(d: u64) -> Vec<Event> {
    generate(GenConfig {
        seed: 1000 + d,
        sessions: 60,
        events: 500,
        users: 15,
        workspaces: 4,
        start_ms: T0 + d as i64 * DAY,
        duplicate_rate: 0.02,
        out_of_order_rate: 0.05,
        terminal_rate: 0.6,
        block: 30,
        ..Default::default()
    })
}

fn sessions(store: &Store) -> BTreeMap<String, Session> {
    store
        .all_sessions()
        .map(|s| {
            let s = s.unwrap();
            (s.session.id.clone(), s.session)
        })
        .collect()
}

/// Every counter but the event outcome counts (which say what this replica
/// did with each record: a late event is `dropped` by a ledger that had
/// purged its session, and `ignored` by one that had not yet).
fn state_counters(store: &Store) -> (u64, Vec<(ledger_core::Status, u64)>, u64, u64) {
    let s = store.stats();
    (
        s.sessions,
        s.by_status.into_iter().filter(|(_, n)| *n > 0).collect(),
        s.max_warning_minutes,
        s.purged,
    )
}

/// A late activity (new id) and an exact duplicate of each event given.
fn late_and_duplicate(of: &[&Event], at: i64) -> Vec<Event> {
    let mut out = vec![];
    for (i, e) in of.iter().enumerate() {
        out.push((*e).clone());
        let mut late = (*e).clone();
        late.id = format!("late-{i}");
        late.kind = EventKind::Activity;
        late.time_ms = at;
        late.data = EventData::Activity(Default::default());
        late.created_expires_at_ms = None;
        out.push(late);
    }
    out
}

#[test]
fn ninety_days_with_thirty_days_retention_then_a_replay_at_the_same_clock() {
    let r = Retention::days(30, 7);
    let days: Vec<Vec<Event>> = (0..90).map(day).collect();
    let end = T0 + 90 * DAY;
    let live_dir = tempfile::tempdir().unwrap();
    let live = Store::open(live_dir.path(), Defaults::default()).unwrap();
    let mut feed = Loader::new();
    let mut all: Vec<Event> = vec![];
    for (d, events) in days.iter().enumerate() {
        feed.load(&live, events, 97);
        all.extend(events.iter().cloned());
        // The frozen clock stands at the end of the simulated day.
        purge_all(&live, T0 + (d as i64 + 1) * DAY, &r);
    }
    let purged_before_late = live.stats().purged;
    assert!(purged_before_late > 1_000, "purged {purged_before_late}");

    // Late and duplicate events for sessions purged long ago.
    let reference = ledger_testkit::fold(&all);
    let gone: Vec<&Session> = reference
        .values()
        .filter(|s| {
            s.status.terminal_kind().is_some() && s.ended_at.is_some_and(|e| e < end - r.ended_ms)
        })
        .collect();
    assert!(gone.len() as u64 >= purged_before_late);
    // Late events within the markers' window (`marker_ms` covers the
    // topic's retention: older events are no longer in the topic).
    let victims: Vec<&Event> = gone
        .iter()
        .filter(|s| {
            s.ended_at
                .is_some_and(|e| e >= end - r.ended_ms - r.marker_ms)
        })
        .take(40)
        .map(|s| all.iter().find(|e| e.session_id == s.id).unwrap())
        .collect();
    let late = late_and_duplicate(&victims, end - DAY);
    feed.load(&live, &late, 13);
    all.extend(late.iter().cloned());
    purge_all(&live, end, &r);
    assert_eq!(
        live.stats().events.dropped,
        late.len() as u64,
        "every late event dropped"
    );

    // Every session ended more than 30 days ago is gone, and nothing else.
    let reference = ledger_testkit::fold(&all);
    let kept: BTreeMap<String, Session> = reference
        .into_iter()
        .filter(|(_, s)| {
            !(s.status.terminal_kind().is_some()
                && s.ended_at.is_some_and(|e| e < end - r.ended_ms))
        })
        .collect();
    let have = sessions(&live);
    assert_eq!(have.len(), kept.len());
    assert!(
        have == kept,
        "the live store holds exactly the sessions kept"
    );
    for s in &gone {
        assert!(live.get(&s.id).unwrap().is_none());
        assert!(live.history(&s.id).unwrap().is_empty());
        let marked = s
            .ended_at
            .is_some_and(|e| e >= end - r.ended_ms - r.marker_ms);
        assert_eq!(live.is_removed(&s.id).unwrap(), marked, "{}'s marker", s.id);
    }
    let entries = live.index_entries().unwrap();
    for s in &gone {
        assert!(
            !entries
                .iter()
                .any(|e| e.windows(s.id.len()).any(|w| w == s.id.as_bytes())),
            "no index entry names a purged session"
        );
    }
    assert_eq!(live.audit().unwrap(), Vec::<String>::new());
    assert_eq!(live.stats().sessions, kept.len() as u64);
    assert_eq!(live.stats().purged, gone.len() as u64);

    // A fresh replay of the same records at the same clock.
    let replay_dir = tempfile::tempdir().unwrap();
    let replayed = Store::open(replay_dir.path(), Defaults::default()).unwrap();
    Loader::new().load(&replayed, &all, 5_000);
    purge_all(&replayed, end, &r);
    assert!(sessions(&replayed) == have, "same sessions");
    assert_eq!(
        replayed.index_entries().unwrap(),
        entries,
        "same index keys"
    );
    assert_eq!(
        state_counters(&replayed),
        state_counters(&live),
        "same counters"
    );
    assert_eq!(
        replayed.markers().unwrap(),
        live.markers().unwrap(),
        "same markers"
    );
    assert_eq!(replayed.offsets("t").unwrap(), live.offsets("t").unwrap());
    assert_eq!(replayed.audit().unwrap(), Vec::<String>::new());
}

#[test]
fn retention_zero_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    let events = day(0);
    Loader::new().load(&store, &events, 100);
    let before = sessions(&store);
    let rep = store
        .purge(T0 + 3650 * DAY, &Retention::days(0, 7), 100)
        .unwrap();
    assert_eq!(rep.purged, 0);
    assert!(sessions(&store) == before);
}

#[test]
fn an_erasure_removes_a_users_sessions_on_its_partition_and_drops_their_later_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    let events = day(0);
    let mut feed = Loader::new();
    feed.load(&store, &events, 100);
    let reference = ledger_testkit::fold(&events);
    let user = reference.values().find_map(|s| s.user_id.clone()).unwrap();
    let theirs: Vec<&Session> = reference
        .values()
        .filter(|s| s.user_id.as_deref() == Some(user.as_str()))
        .collect();
    assert!(theirs.len() >= 2);
    let subject = Subject::User(user.clone());
    // The erasure arrives on every partition, each at its own next offset.
    for p in 0..PARTITIONS as i32 {
        let at = *feed.next.entry(p).or_insert(0);
        store.erase("t", &subject, p, at).unwrap();
        *feed.next.get_mut(&p).unwrap() += 1;
    }
    for s in &theirs {
        assert!(store.get(&s.id).unwrap().is_none());
    }
    assert_eq!(store.stats().erased, theirs.len() as u64);
    assert_eq!(store.stats().erasures, PARTITIONS as u64);
    assert_eq!(
        store.offsets("t").unwrap(),
        feed.next.clone().into_iter().collect()
    );
    assert_eq!(store.audit().unwrap(), Vec::<String>::new());
    let firsts: Vec<&Event> = theirs
        .iter()
        .map(|s| events.iter().find(|e| e.session_id == s.id).unwrap())
        .collect();
    let later = late_and_duplicate(&firsts, T0 + DAY);
    feed.load(&store, &later, 7);
    assert_eq!(store.stats().events.dropped, later.len() as u64);
    for s in &theirs {
        assert!(store.get(&s.id).unwrap().is_none(), "no shell comes back");
    }
    let entries = store.index_entries().unwrap();
    assert!(!entries
        .iter()
        .any(|e| e.windows(user.len()).any(|w| w == user.as_bytes())));
    // Erasure markers never expire.
    store
        .purge(i64::MAX - 1, &Retention::days(1, 1), 1_000)
        .unwrap();
    assert!(theirs.iter().all(|s| store.is_removed(&s.id).unwrap()));
}
