//! The change feed read from a real sled store while batches are applied:
//! a reader that reconnects at random from the token of the last item it
//! received gets every applied change once, in order per session, each the
//! fold's state after its record; every deadline passed before the reaper's
//! event is announced once, and the reaper's close is not announced again;
//! a reader behind the trimmed change log gets a reset.

use std::collections::{BTreeMap, BTreeSet};

use ledger_core::{apply, reap_event, Defaults, Event, Session, Status};
use ledger_gen::{generate, GenConfig};
use ledger_store::{ChangeKind, FeedItem, Record, Store, Token};
use ledger_testkit::partition_of;
use rand::{Rng, SeedableRng};

const TOPIC: &str = "session-events";
const PARTITIONS: u32 = 3;

/// Applies `events` as one batch with offsets going on from `next`.
fn apply_batch(store: &Store, next: &mut BTreeMap<i32, i64>, events: &[Event]) -> Vec<Record> {
    let records: Vec<Record> = events
        .iter()
        .map(|e| {
            let partition = partition_of(&e.session_id, PARTITIONS);
            let o = next.entry(partition).or_insert(0);
            *o += 1;
            Record {
                event: e.clone(),
                partition,
                offset: *o - 1,
            }
        })
        .collect();
    let offsets: Vec<(i32, i64)> = next.iter().map(|(p, o)| (*p, *o)).collect();
    store.apply_batch(TOPIC, &records, &offsets, 0).unwrap();
    records
}

#[test]
fn a_reconnecting_reader_gets_every_change_once() {
    let mut events = generate(GenConfig {
        seed: 21,
        sessions: 1_500,
        events: 12_000,
        duplicate_rate: 0.03,
        out_of_order_rate: 0.05,
        terminal_rate: 0.2,
        ..Default::default()
    });
    events.sort_by_key(|e| e.time_ms);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    // Several write parts per batch: change-log chunks overlap.
    store.set_write_part(50);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut next = BTreeMap::new();
    let mut applied: Vec<Record> = vec![];
    let start = events[0].time_ms;
    let mut token = store.feed_head(TOPIC, start - 1).unwrap();
    let mut last_received = token.clone();
    let mut got: Vec<FeedItem> = vec![];
    let mut reconnects = 0;
    let read = |store: &Store,
                token: &mut Token,
                last: &mut Token,
                now: i64,
                got: &mut Vec<FeedItem>| loop {
        let items = store.feed_read(TOPIC, token, now, 64).unwrap();
        if items.is_empty() {
            break;
        }
        for it in items {
            if let FeedItem::Change { token, .. } = &it {
                *last = token.clone();
            }
            got.push(it);
        }
    };
    for chunk in events.chunks(300) {
        let now = chunk.last().unwrap().time_ms;
        // The reaper closes some of what is due.
        let mut batch: Vec<Event> = store
            .due(now, usize::MAX)
            .unwrap()
            .into_iter()
            .filter(|_| rng.random_bool(0.5))
            .map(|(id, at, st, _)| reap_event(&id, st, at))
            .collect();
        batch.extend(chunk.iter().cloned());
        applied.extend(apply_batch(&store, &mut next, &batch));
        read(&store, &mut token, &mut last_received, now, &mut got);
        if rng.random_bool(0.3) {
            // Reconnect: resume from the last item received, not from
            // wherever the reader got to.
            token = last_received.clone();
            reconnects += 1;
            read(&store, &mut token, &mut last_received, now, &mut got);
        }
    }
    assert!(reconnects > 5);

    // The fold's changes, by position.
    let defaults = Defaults::default();
    let mut state: BTreeMap<String, Session> = BTreeMap::new();
    let mut want: BTreeMap<(i32, i64), (Option<Session>, Session)> = BTreeMap::new();
    for r in &applied {
        let before = state.remove(&r.event.session_id);
        let (s, outcome) = apply(before.clone(), &r.event, &defaults);
        if outcome.changed_state() && s.status != Status::Pending {
            want.insert((r.partition, r.offset), (before, s.clone()));
        }
        state.insert(r.event.session_id.clone(), s);
    }
    let mut seen_pos = BTreeSet::new();
    let mut read_time = BTreeSet::new();
    let mut last_pos: BTreeMap<String, (i32, i64)> = BTreeMap::new();
    for it in &got {
        let FeedItem::Change {
            kind,
            session,
            position,
            at,
            ..
        } = it
        else {
            panic!("no reset expected: the log is not trimmed");
        };
        match position {
            Some(pos) => {
                assert!(seen_pos.insert(*pos), "change at {pos:?} announced twice");
                assert_eq!(&want[pos].1, session, "state after {pos:?}");
                if let Some(prev) = last_pos.insert(session.id.clone(), *pos) {
                    assert!(prev < *pos, "{}: {pos:?} after {prev:?}", session.id);
                }
                if *kind == ChangeKind::Created {
                    assert_ne!(want[pos].0.as_ref().map(|b| b.status), Some(Status::Active));
                }
            }
            None => {
                let ChangeKind::ReadTime(st) = kind else {
                    panic!("{kind:?}")
                };
                assert_eq!(session.status_at(*at), *st);
                assert_eq!(session.next_deadline().map(|d| d.0), Some(*at));
                assert!(
                    read_time.insert((session.id.clone(), *at)),
                    "{} expired twice",
                    session.id
                );
            }
        }
    }
    assert!(
        !read_time.is_empty(),
        "some deadlines passed before the reaper's event"
    );
    let mut suppressed = 0;
    for (pos, (before, after)) in &want {
        if seen_pos.contains(pos) {
            continue;
        }
        // Only the reaper's close of a deadline announced at read time is
        // left out.
        let b = before.as_ref().expect("a change of a known session");
        let (at, due) = b.next_deadline().expect("a deadline");
        assert_eq!(
            (after.status, after.ended_at),
            (due, Some(at)),
            "change at {pos:?} missing"
        );
        assert!(
            read_time.contains(&(after.id.clone(), at)),
            "change at {pos:?} missing"
        );
        suppressed += 1;
    }
    assert!(suppressed > 0);
    assert_eq!(seen_pos.len() + suppressed, want.len());
}

#[test]
fn a_reader_behind_the_trimmed_log_is_reset() {
    let events = generate(GenConfig {
        seed: 4,
        sessions: 500,
        events: 4_000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    let mut next = BTreeMap::new();
    let old = store.feed_head(TOPIC, 0).unwrap();
    apply_batch(&store, &mut next, &events[..2_000]);
    assert!(store.trim_changes(TOPIC, 100, usize::MAX).unwrap() > 0);
    let mut token = old;
    let items = store.feed_read(TOPIC, &mut token, 1, 50).unwrap();
    let [FeedItem::Reset { token: head }] = items.as_slice() else {
        panic!("{items:?}")
    };
    assert_eq!(head, &store.feed_head(TOPIC, 1).unwrap());
    assert_eq!(&token, head);
    // From the head on, nothing is missed.
    apply_batch(&store, &mut next, &events[2_000..]);
    let items = store.feed_read(TOPIC, &mut token, 1, 100_000).unwrap();
    assert!(items.iter().all(|i| matches!(
        i,
        FeedItem::Change {
            position: Some(_),
            ..
        }
    )));
    assert!(!items.is_empty());
}
