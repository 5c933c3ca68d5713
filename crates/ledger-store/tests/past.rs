//! The past from a real sled store: `as_of` re-folds a session's kept
//! history to the fold of its events up to a time; the change log names
//! exactly the records that changed a session visibly, and `state_after`
//! each one is the fold up to that record; a history longer than the kept
//! window answers from its base on and refuses older times.

use std::collections::BTreeMap;

use ledger_core::{apply, replay, Defaults, Event, EventKind, Session, Status};
use ledger_gen::{generate, GenConfig};
use ledger_store::{Past, Store};
use ledger_testkit::partition_of;
use rand::{Rng, SeedableRng};

const TOPIC: &str = "session-events";
const PARTITIONS: u32 = 3;

fn stream() -> Vec<Event> {
    generate(GenConfig {
        seed: 11,
        sessions: 2_000,
        events: 20_000,
        duplicate_rate: 0.03,
        out_of_order_rate: 0.05,
        ..Default::default()
    })
}

/// The fold of `events` (one session's, in order) as the views see it.
fn visible(events: &[&Event]) -> Option<Session> {
    let s = replay(events.iter().copied(), &Defaults::default())
        .into_values()
        .next()?;
    (s.status != Status::Pending).then_some(s)
}

fn past(p: Past) -> Option<Session> {
    match p {
        Past::Found(s) => Some(s),
        Past::Missing => None,
        Past::OutOfHistory { from } => panic!("unexpectedly out of history (from {from})"),
    }
}

#[test]
fn as_of_is_the_fold_up_to_that_time() {
    let events = stream();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    ledger_testkit::load(&store, TOPIC, &events, 700, PARTITIONS);
    let mut by_session: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_session.entry(&e.session_id).or_default().push(e);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut compared = 0;
    for (id, evs) in &by_session {
        let lo = evs.iter().map(|e| e.time_ms).min().unwrap() - 60_000;
        let hi = evs.iter().map(|e| e.time_ms).max().unwrap() + 60_000;
        for _ in 0..3 {
            let at = rng.random_range(lo..=hi);
            let upto: Vec<&Event> = evs.iter().copied().filter(|e| e.time_ms <= at).collect();
            assert_eq!(
                past(store.as_of(id, at).unwrap()),
                visible(&upto),
                "{id} as of {at}"
            );
            compared += 1;
        }
        // After every event: the stored session itself.
        assert_eq!(
            past(store.as_of(id, hi).unwrap()),
            store
                .get(id)
                .unwrap()
                .filter(|s| s.status != Status::Pending),
        );
    }
    assert!(compared >= 6_000, "{compared}");
    assert_eq!(store.as_of("no-such-session", 0).unwrap(), Past::Missing);
}

#[test]
fn the_change_log_names_each_visible_change_and_its_state() {
    let events = stream();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    // Many write parts per batch: their chunks' offset ranges overlap.
    store.set_write_part(37);
    ledger_testkit::load(&store, TOPIC, &events, 700, PARTITIONS);
    // The expected log: replay with offsets assigned as `load` assigns them.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut state: BTreeMap<&str, Session> = BTreeMap::new();
    let mut want: BTreeMap<(i32, i64), (String, Session)> = BTreeMap::new();
    for e in &events {
        let p = partition_of(&e.session_id, PARTITIONS);
        let off = *next.entry(p).and_modify(|o| *o += 1).or_insert(0);
        let (s, outcome) = apply(state.remove(e.session_id.as_str()), e, &Defaults::default());
        if outcome.changed_state() && s.status != Status::Pending {
            want.insert((p, off), (e.session_id.clone(), s.clone()));
        }
        state.insert(&e.session_id, s);
    }
    let mut got = BTreeMap::new();
    for p in 0..PARTITIONS as i32 {
        // Consumed from offset 0: nothing before the log's first entry.
        assert_eq!(store.change_start(p).unwrap(), None);
        for (off, id) in store.changes(p, 0, usize::MAX).unwrap() {
            let s = past(store.state_after(&id, p, off).unwrap()).expect("a visible state");
            got.insert((p, off), (id, s));
        }
    }
    assert_eq!(got.len(), want.len());
    for (k, w) in &want {
        assert_eq!(got.get(k), Some(w), "change at {k:?}");
    }
    // Reading from an offset on: entries at or after it only.
    let (p, mid) = *want.keys().nth(want.len() / 2).unwrap();
    let after = store.changes(p, mid, 5).unwrap();
    assert_eq!(after.len(), 5);
    assert_eq!(after[0].0, mid);
    assert!(after.windows(2).all(|w| w[0].0 < w[1].0));
    // Read in pages from anywhere: exactly the log, in order.
    for from in [0, 1, mid - 3, mid, mid + 17] {
        let mut pos = from;
        let mut paged = vec![];
        loop {
            let page = store.changes(p, pos, 23).unwrap();
            let Some(last) = page.last() else { break };
            pos = last.0 + 1;
            paged.extend(page.into_iter().map(|e| e.0));
        }
        let want_offs: Vec<i64> = want
            .keys()
            .filter(|k| k.0 == p && k.1 >= from)
            .map(|k| k.1)
            .collect();
        assert_eq!(paged, want_offs, "paging partition {p} from {from}");
    }

    // Trimming keeps the last `keep` offsets of each partition and says
    // where the log starts now.
    let removed = store.trim_changes(TOPIC, 100, usize::MAX).unwrap();
    assert!(removed > 0);
    for (p, next) in store.offsets(TOPIC).unwrap() {
        assert_eq!(store.change_start(p).unwrap(), Some(next - 100));
        let left = store.changes(p, 0, usize::MAX).unwrap();
        assert!(left.iter().all(|(off, _)| *off >= next - 100));
        assert_eq!(
            left.len(),
            want.keys()
                .filter(|k| k.0 == p && k.1 >= next - 100)
                .count()
        );
    }
    assert_eq!(store.audit().unwrap(), Vec::<String>::new());
}

#[test]
fn a_long_history_answers_from_its_base_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    let mut events = generate(GenConfig {
        seed: 5,
        sessions: 1,
        events: 1,
        terminal_rate: 0.0,
        ..Default::default()
    });
    let created = events[0].clone();
    assert_eq!(created.kind, EventKind::Created);
    for i in 1..=250 {
        let mut e = created.clone();
        e.id = format!("act-{i}");
        e.kind = EventKind::Activity;
        e.time_ms = created.time_ms + i * 1_000;
        e.data = ledger_core::EventData::Activity(Box::default());
        events.push(e);
    }
    // Batches of 10: whole chunks fall out of the kept window.
    ledger_testkit::load(&store, TOPIC, &events, 10, 1);
    let id = created.session_id.as_str();
    let base = store.history_base(id).unwrap().expect("a base");
    assert!(base.through > created.time_ms);
    let all: Vec<&Event> = events.iter().collect();
    for at in [
        base.through,
        base.through + 500,
        created.time_ms + 200_000,
        created.time_ms + 300_000,
    ] {
        let upto: Vec<&Event> = all.iter().copied().filter(|e| e.time_ms <= at).collect();
        assert_eq!(
            past(store.as_of(id, at).unwrap()),
            visible(&upto),
            "as of {at}"
        );
    }
    assert_eq!(
        store.as_of(id, base.through - 1).unwrap(),
        Past::OutOfHistory { from: base.through }
    );
    // The first record's change is no longer in the kept history.
    assert!(matches!(
        store.state_after(id, 0, 0).unwrap(),
        Past::OutOfHistory { .. }
    ));
    assert_eq!(store.audit().unwrap(), Vec::<String>::new());
}
