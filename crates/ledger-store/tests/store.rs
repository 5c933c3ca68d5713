//! The store against a real sled directory: batches, reopen, indexes vs full
//! scans, paging, counters, history and offsets.

use std::collections::{BTreeMap, HashSet};

use ledger_core::{Defaults, Event, Session, Status};
use ledger_gen::{generate, GenConfig};
use ledger_store::{Filter, Order, Record, Start, Store, HISTORY_LEN};

const TOPIC: &str = "session-events";

fn fold(events: &[Event]) -> BTreeMap<String, Session> {
    ledger_testkit::fold(events)
}

/// Applies `events` as 3 partitions (by session hash) in batches of `size`.
fn ingest(store: &Store, events: &[Event], size: usize) {
    ledger_testkit::load(store, TOPIC, events, size, 3);
}

fn big_stream() -> Vec<Event> {
    generate(GenConfig {
        seed: 7,
        sessions: 12_000,
        events: 60_000,
        users: 300,
        clients: 40,
        agents: 15,
        workspaces: 8,
        duplicate_rate: 0.02,
        out_of_order_rate: 0.05,
        block: 3_000,
        ..Default::default()
    })
}

/// Map equality that reports only the first differing session.
fn assert_same(got: &BTreeMap<String, Session>, want: &BTreeMap<String, Session>) {
    assert_eq!(got.len(), want.len());
    for (id, w) in want {
        assert_eq!(got.get(id), Some(w), "session {id}");
    }
}

#[test]
fn batches_survive_reopen_and_indexes_answer_like_scans() {
    let dir = tempfile::tempdir().unwrap();
    let events = big_stream();
    let expected = fold(&events);
    {
        let store = Store::open(dir.path(), Defaults::default()).unwrap();
        ingest(&store, &events, 997);
        store.flush().unwrap();
    }
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    assert_eq!(store.audit().unwrap(), Vec::<String>::new());

    // Sessions equal the fold; counters equal a recount.
    let stored: BTreeMap<String, Session> = store
        .all_sessions()
        .map(|s| s.unwrap().session)
        .map(|s| (s.id.clone(), s))
        .collect();
    assert_eq!(stored.len(), 12_000);
    assert_same(&stored, &expected);
    let stats = store.stats();
    assert_eq!(stats.sessions, 12_000);
    for st in Status::ALL {
        let n = expected.values().filter(|s| s.status == st).count() as u64;
        assert_eq!(stats.status(st), n, "{st:?}");
    }
    let ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        stats.events.applied
            + stats.events.duplicate
            + stats.events.ignored
            + stats.events.rejected,
        events.len() as u64
    );
    assert_eq!(stats.events.duplicate, (events.len() - ids.len()) as u64);

    // Offsets: the next offset of each partition = records it received.
    let offsets = store.offsets(TOPIC).unwrap();
    assert_eq!(offsets.values().sum::<i64>(), events.len() as i64);

    // Every filter, at a `now` in the middle of the stream so read-time status matters.
    let now = events[events.len() / 2].time_ms;
    let mut filters = vec![Filter::default()];
    for st in Status::ALL {
        filters.push(Filter {
            status: Some(st),
            ..Default::default()
        });
    }
    let pick = |f: fn(&Session) -> Option<String>| expected.values().find_map(f).unwrap();
    let user = pick(|s| s.user_id.clone());
    filters.push(Filter {
        user_id: Some(user.clone()),
        ..Default::default()
    });
    filters.push(Filter {
        user_id: Some(user),
        status: Some(Status::Active),
        ..Default::default()
    });
    filters.push(Filter {
        client_id: Some(pick(|s| s.client_id.clone())),
        ..Default::default()
    });
    filters.push(Filter {
        agent_id: Some(pick(|s| s.agent_id.clone())),
        status: Some(Status::Ended),
        ..Default::default()
    });
    filters.push(Filter {
        workspace_id: Some(pick(|s| s.workspace_id.clone())),
        ..Default::default()
    });
    filters.push(Filter {
        user_id: Some("nobody".into()),
        ..Default::default()
    });
    for f in &filters {
        let mut want: Vec<&Session> = expected.values().filter(|s| f.matches(s, now)).collect();
        want.sort_by(|a, b| (b.sort_at(), &b.id).cmp(&(a.sort_at(), &a.id)));
        let want_ids: Vec<&str> = want.iter().map(|s| s.id.as_str()).collect();
        let all: Vec<String> = store
            .matching(f, Order::NewestFirst, None, now)
            .unwrap()
            .map(|s| s.unwrap().id)
            .collect();
        assert_eq!(all, want_ids, "{f:?}");
        assert_eq!(
            store.count(f, now).unwrap(),
            want_ids.len() as u64,
            "count {f:?}"
        );
        // Cursor paging oldest-first and offset paging newest-first.
        let mut via_cursor = vec![];
        let mut start = Start::Offset(0);
        loop {
            let page = store.list(f, Order::OldestFirst, &start, 137, now).unwrap();
            via_cursor.extend(page.items.iter().map(|s| s.id.clone()));
            match page.next_cursor {
                Some(c) => start = Start::After(c),
                None => break,
            }
        }
        via_cursor.reverse();
        assert_eq!(via_cursor, want_ids, "cursor {f:?}");
        let mut via_offset = vec![];
        for off in (0..).step_by(500) {
            let page = store
                .list(f, Order::NewestFirst, &Start::Offset(off), 500, now)
                .unwrap();
            via_offset.extend(page.items.iter().map(|s| s.id.clone()));
            if !page.has_more {
                break;
            }
        }
        assert_eq!(via_offset, want_ids, "offset {f:?}");
    }
}

#[test]
fn history_is_bounded_and_ordered() {
    let events: Vec<Event> = generate(GenConfig {
        sessions: 1,
        events: 400,
        ..Default::default()
    });
    let id = &events[0].session_id;
    let n = events.len() as u64;
    // Batch sizes below, at and above the record's tail (TAIL_MAX), so the
    // history is read from chunks and a part-filled tail alike.
    for batch in [1, 3, 7, 8, 50, 400] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Defaults::default()).unwrap();
        ingest(&store, &events, batch);
        let h = store.history(id).unwrap();
        assert_eq!(h.len() as u64, HISTORY_LEN.min(n), "batch {batch}");
        let want: Vec<&str> = events[events.len() - h.len()..]
            .iter()
            .map(|e| e.id.as_str())
            .collect();
        let got: Vec<&str> = h.iter().map(|e| e.id()).collect();
        assert_eq!(got, want, "batch {batch}");
        assert!(h.iter().all(|e| &e.event.session_id == id));
        assert!(h.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        let stored = store.stored(id).unwrap().unwrap();
        assert_eq!(stored.history_len, n);
        assert!(stored.tail_len < ledger_store::TAIL_MAX, "batch {batch}");
        // Chunks plus tail stay within the window plus one chunk's worth.
        let kept: u64 = stored
            .history_chunks
            .iter()
            .map(|c| u64::from(c.1))
            .sum::<u64>()
            + u64::from(stored.tail_len);
        assert!(
            kept >= HISTORY_LEN && kept < HISTORY_LEN + batch as u64 + 8,
            "batch {batch}: {kept}"
        );
    }
}

#[test]
fn reaper_candidates_and_derived_counts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    let events = generate(GenConfig {
        sessions: 300,
        events: 900,
        terminal_rate: 0.0,
        ..Default::default()
    });
    ingest(&store, &events, 100);
    let expected = fold(&events);
    let now = events.last().unwrap().time_ms + 60 * 60_000;
    let due = store.due(now, usize::MAX).unwrap();
    let want: Vec<_> = expected
        .values()
        .filter_map(|s| {
            s.next_deadline()
                .filter(|(at, _)| *at <= now)
                .map(|d| (s.id.clone(), d))
        })
        .collect();
    assert_eq!(due.len(), want.len());
    assert!(!due.is_empty());
    assert!(due.windows(2).all(|w| w[0].1 <= w[1].1), "earliest first");
    let active = store
        .count(
            &Filter {
                status: Some(Status::Active),
                ..Default::default()
            },
            now,
        )
        .unwrap();
    let recount = expected
        .values()
        .filter(|s| s.status_at(now) == Status::Active)
        .count() as u64;
    assert_eq!(active, recount);
}

#[test]
fn a_store_of_another_format_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A store written before the format key existed: data, no key.
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("ledger").unwrap();
        tree.insert(b"iuold-layout-entry", &[][..]).unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path(), Defaults::default())
        .err()
        .expect("an old store must not open");
    let msg = err.to_string();
    assert!(
        msg.contains("format 1") && msg.contains("session-ledger rebuild"),
        "{msg}"
    );
    // A fresh store gets the current format and opens again.
    let fresh = tempfile::tempdir().unwrap();
    drop(Store::open(fresh.path(), Defaults::default()).unwrap());
    // sled lets go of its file lock shortly after the last handle drops.
    Store::open_when_released(
        fresh.path(),
        Defaults::default(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
}

/// Defect 7 at the store: offsets become durable (announced) only when a
/// flush has put them on disk.
#[test]
fn offsets_are_durable_only_after_a_flush() {
    let events = generate(GenConfig {
        seed: 4,
        sessions: 1_000,
        events: 8_000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    assert!(store.durable_offsets(TOPIC).unwrap().is_empty());
    let (head, tail) = events.split_at(4_000);
    ingest(&store, head, 1_000); // flushes at the end
    let durable = store.durable_offsets(TOPIC).unwrap();
    assert_eq!(durable, store.offsets(TOPIC).unwrap());
    let records: Vec<Record> = tail
        .iter()
        .enumerate()
        .map(|(i, e)| Record {
            event: e.clone(),
            partition: 7,
            offset: i as i64,
        })
        .collect();
    let end = records.len() as i64;
    store.apply_batch(TOPIC, &records, &[(7, end)], 0).unwrap();
    assert_eq!(store.offsets(TOPIC).unwrap()[&7], end);
    assert_eq!(
        store.durable_offsets(TOPIC).unwrap(),
        durable,
        "applied but not flushed: not durable, not announced"
    );
    store.flush().unwrap();
    assert_eq!(store.durable_offsets(TOPIC).unwrap()[&7], end);
}

/// A process that dies while creating a store (before its format key is
/// on disk) leaves sled's files but no store: the next open creates it,
/// instead of refusing it as damaged. A store once created keeps being
/// refused when emptied (below).
#[test]
fn a_store_whose_creation_was_cut_short_is_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    // What a kill during creation leaves: the marker, sled's files, no data.
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("CREATING"), b"").unwrap();
    std::fs::write(root.join("conf"), b"segment_size: 524288\n").unwrap();
    std::fs::File::create(root.join("db")).unwrap();
    let store = Store::open(&root, Defaults::default()).unwrap();
    assert!(!root.join("CREATING").exists());
    assert_eq!(store.stats().sessions, 0);
    let events = generate(GenConfig {
        seed: 4,
        sessions: 50,
        events: 500,
        ..Default::default()
    });
    ingest(&store, &events, 100);
    store.flush().unwrap();
    let want = store.stats();
    drop(store);
    let reopened = Store::open_when_released(
        &root,
        Defaults::default(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(reopened.stats(), want);
    assert!(!root.join("CREATING").exists());
}

/// Defect 3: a damaged store is refused with the way out (a rebuild) —
/// never a panic inside sled, never a silent re-ingest from offset 0. (A
/// truncation sled can recover from, to an earlier batch boundary, is no
/// damage: the store is consistent and ingestion resumes from its offsets.)
#[test]
fn a_damaged_store_is_refused_with_the_way_out() {
    let events = generate(GenConfig {
        seed: 3,
        sessions: 2_000,
        events: 20_000,
        ..Default::default()
    });
    type Damage = fn(&std::path::Path);
    let damages: [(&str, Damage); 3] = [
        ("truncated to half", |db| {
            let f = std::fs::OpenOptions::new().write(true).open(db).unwrap();
            let len = f.metadata().unwrap().len();
            f.set_len(len / 2).unwrap();
        }),
        ("emptied", |db| {
            std::fs::File::create(db).unwrap();
        }),
        ("data file deleted", |db| std::fs::remove_file(db).unwrap()),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let flushed = {
            let store = Store::open(dir.path(), Defaults::default()).unwrap();
            ingest(&store, &events, 5_000);
            store.offsets(TOPIC).unwrap()
        };
        damage(&dir.path().join("db"));
        match Store::open(dir.path(), Defaults::default()) {
            Err(e @ ledger_store::StoreError::Damaged { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("session-ledger rebuild"), "{what}: {msg}");
            }
            Err(e) => panic!("{what}: not reported as damaged: {e}"),
            Ok(s) if what == "truncated to half" => {
                assert!(
                    s.audit().unwrap().is_empty(),
                    "{what}: recovered inconsistent"
                );
                let have = s.offsets(TOPIC).unwrap();
                assert!(
                    have.iter().all(|(p, o)| *o <= flushed[p]),
                    "{what}: {have:?} beyond {flushed:?}"
                );
            }
            Ok(s) => panic!(
                "{what}: opened with {} sessions and offsets {:?}",
                s.stats().sessions,
                s.offsets(TOPIC).unwrap()
            ),
        }
    }
}

#[test]
fn a_switched_generation_is_what_opens_and_only_a_locking_open_cleans_up() {
    use ledger_store::live;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let events = generate(GenConfig {
        seed: 9,
        sessions: 300,
        events: 3_000,
        ..Default::default()
    });
    let store = Store::open(&root, Defaults::default()).unwrap();
    ingest(&store, &events, 500);
    store.flush().unwrap();
    // A compaction copy, made the live generation on disk.
    let gen = live::next_generation_dir(&root).unwrap();
    assert!(gen.ends_with("gen-1"));
    let copy = store.copy_to(&gen).unwrap();
    assert_eq!(copy.stats(), store.stats());
    // The copy records its bytes per session; the ingested store has no mark.
    assert_eq!(store.compacted_size().unwrap(), None);
    let mark = copy.compacted_size().unwrap().unwrap();
    let sessions = copy.stats().sessions;
    assert_eq!(sessions, 300);
    assert!(mark > 0 && mark * sessions <= copy.size_on_disk(), "{mark}");
    assert!(
        mark * sessions < store.size_on_disk(),
        "the copy ({mark} bytes/session) is smaller than the ingested store ({})",
        store.size_on_disk() / sessions
    );
    assert!(store.outgrown(2.0, 0).unwrap(), "never compacted");
    assert!(!copy.outgrown(2.0, 0).unwrap(), "just compacted");
    assert!(!store.outgrown(2.0, u64::MAX).unwrap(), "below the floor");
    assert_eq!(
        copy.index_entries().unwrap(),
        store.index_entries().unwrap()
    );
    assert_eq!(copy.offsets("t").unwrap(), store.offsets("t").unwrap());
    live::commit_generation(&root, &gen).unwrap();
    // An unfinished rebuild's directory beside it.
    let unfinished = root.join("gen-2");
    std::fs::create_dir_all(&unfinished).unwrap();
    std::fs::write(unfinished.join("db"), b"half").unwrap();
    // The copy is open (locked): another open fails and deletes nothing.
    assert!(matches!(
        Store::open(&root, Defaults::default()),
        Err(ledger_store::StoreError::Locked { .. })
    ));
    assert!(unfinished.exists() && root.join("db").exists());
    let want = fold(&events);
    drop(store);
    drop(copy);
    let reopened = Store::open_when_released(
        &root,
        Defaults::default(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert!(reopened.dir().ends_with("gen-1"));
    let got: BTreeMap<String, Session> = reopened
        .all_sessions()
        .map(|s| {
            let s = s.unwrap();
            (s.session.id.clone(), s.session)
        })
        .collect();
    assert_same(&got, &want);
    assert_eq!(reopened.audit().unwrap(), Vec::<String>::new());
    assert!(!unfinished.exists(), "the unfinished generation is gone");
    assert!(
        !root.join("db").exists(),
        "the replaced store's files are gone"
    );
    drop(reopened);
    // CURRENT naming no store is refused, never replaced by an empty one.
    std::fs::write(root.join(live::CURRENT), "gen-9").unwrap();
    let err = Store::open(&root, Defaults::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("damaged"), "{err}");
    assert!(
        root.join("gen-1").join("db").exists(),
        "nothing was deleted"
    );
}

/// Writes paced against reads that come and go: small parts and pauses
/// while a read is in flight, `QUIET_PART`-sized parts once none was for a
/// while. Whatever the mix, the store equals the fold and passes its audit.
#[test]
fn paced_writes_under_intermittent_reads_store_the_same() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use ledger_store::{Pace, ReadLoad};

    let events = big_stream();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Defaults::default()).unwrap();
    store.set_write_part(10);
    let load = Arc::new(ReadLoad::default());
    let pace = Pace::new(load.clone(), 0.5);
    let stop = Arc::new(AtomicBool::new(false));
    // A reader that is in flight for 30 ms, then away for 300 ms, and again.
    let reader = {
        let (load, stop) = (load.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut cycles = 0;
            while !stop.load(Ordering::Acquire) {
                let read = load.enter();
                std::thread::sleep(Duration::from_millis(30));
                drop(read);
                std::thread::sleep(Duration::from_millis(300));
                cycles += 1;
            }
            cycles
        })
    };
    ledger_testkit::load_paced(&store, TOPIC, &events, 2_000, 3, &pace);
    stop.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert!(
        pace.paused() > Duration::ZERO,
        "writes paused for the reads"
    );
    let got: BTreeMap<String, Session> = store
        .all_sessions()
        .map(|s| {
            let s = s.unwrap().session;
            (s.id.clone(), s)
        })
        .collect();
    assert_same(&got, &fold(&events));
    assert_eq!(store.audit().unwrap(), Vec::<String>::new());
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for e in &events {
        *next
            .entry(ledger_testkit::partition_of(&e.session_id, 3))
            .or_default() += 1;
    }
    assert_eq!(store.offsets(TOPIC).unwrap(), next);
}

#[test]
fn history_chunks_are_written_plain_and_a_compaction_packs_them() {
    let dir = tempfile::tempdir().unwrap();
    let events = ledger_gen::generate(ledger_gen::GenConfig {
        sessions: 40,
        events: 4_000,
        ..Default::default()
    });
    let store = Store::open(dir.path().join("a"), Defaults::default()).unwrap();
    ingest(&store, &events, 500);
    let plain = store.footprint().unwrap()["h"];
    assert!(plain.0 >= 40, "{} history chunks", plain.0);
    let copy = store.copy_to(&dir.path().join("b")).unwrap();
    let packed = copy.footprint().unwrap()["h"];
    assert_eq!(packed.0, plain.0);
    assert!(
        packed.1 * 10 < plain.1 * 7,
        "history: {} bytes packed, {} plain",
        packed.1,
        plain.1
    );
    for s in store.all_sessions().map(Result::unwrap) {
        let id = &s.session.id;
        assert_eq!(copy.history(id).unwrap(), store.history(id).unwrap());
    }
    // A copy of the copy copies its packed chunks as they are.
    let again = copy.copy_to(&dir.path().join("c")).unwrap();
    assert_eq!(again.footprint().unwrap()["h"], packed);
}

#[test]
fn a_compaction_compresses_session_records_with_a_dictionary_of_the_stores_own() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(GenConfig {
        seed: 21,
        sessions: 3_000,
        events: 12_000,
        ..Default::default()
    });
    let (first, rest) = events.split_at(9_000);
    let store = Store::open(dir.path().join("a"), Defaults::default()).unwrap();
    ingest(&store, first, 700);
    assert_eq!(
        store.record_dictionary_bytes(),
        None,
        "ingestion writes plain"
    );
    let copy = store.copy_to(&dir.path().join("b")).unwrap();
    let dict = copy.record_dictionary_bytes().expect("a dictionary");
    assert!(dict > 1_000 && dict <= 32 * 1024, "{dict} bytes");
    // Session records take well under their plain size.
    let (plain, packed) = (store.footprint().unwrap(), copy.footprint().unwrap());
    assert!(
        packed["s"].1 * 10 < plain["s"].1 * 7,
        "records: {} bytes compressed, {} plain",
        packed["s"].1,
        plain["s"].1
    );
    // Index chunks in sled are compressed one by one: the same chunks,
    // fewer bytes. The field and deadline indexes are in memory, not sled.
    for index in ["io", "is"] {
        assert_eq!(packed[index].0, plain[index].0, "{index}");
        assert!(packed[index].1 < plain[index].1, "{index}");
    }
    for index in ["iu", "ic", "ia", "iw", "ix"] {
        assert!(
            !plain.contains_key(index) && !packed.contains_key(index),
            "{index}"
        );
    }
    assert_eq!(copy.memory_index_size(), store.memory_index_size());
    assert!(store.memory_index_size().0 > 0);
    // Every record, index entry, history and counter reads as before.
    let all = |s: &Store| s.all_sessions().map(Result::unwrap).collect::<Vec<_>>();
    assert_eq!(all(&copy), all(&store));
    assert_eq!(copy.stats(), store.stats());
    assert_eq!(
        copy.index_entries().unwrap(),
        store.index_entries().unwrap()
    );
    for s in all(&store).iter().step_by(97) {
        let id = &s.session.id;
        assert_eq!(copy.stored(id).unwrap().as_ref(), Some(s));
        assert_eq!(copy.history(id).unwrap(), store.history(id).unwrap());
    }
    assert_eq!(copy.audit().unwrap(), Vec::<String>::new());
    // Ingestion goes on on the copy (records it rewrites are plain again),
    // and the result is the fold of every event.
    ingest(&copy, rest, 700);
    ingest(&store, rest, 700);
    assert_eq!(all(&copy), all(&store));
    let stored: BTreeMap<String, Session> = copy
        .all_sessions()
        .map(|s| s.map(|s| (s.session.id.clone(), s.session)).unwrap())
        .collect();
    assert_same(&stored, &fold(&events));
    assert_eq!(copy.audit().unwrap(), Vec::<String>::new());
    // A compaction of the copy trains a dictionary of its own from records
    // compressed with the old one, and reads the same after a reopen.
    let again = copy.copy_to(&dir.path().join("c")).unwrap();
    assert!(again.record_dictionary_bytes().is_some());
    drop(again);
    let again = Store::open_when_released(
        dir.path().join("c"),
        Defaults::default(),
        std::time::Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(all(&again), all(&store));
    assert_eq!(again.audit().unwrap(), Vec::<String>::new());
}

#[test]
fn a_compaction_of_a_few_sessions_writes_plain_records() {
    let dir = tempfile::tempdir().unwrap();
    let events = generate(GenConfig {
        seed: 22,
        sessions: 200,
        events: 800,
        ..Default::default()
    });
    let store = Store::open(dir.path().join("a"), Defaults::default()).unwrap();
    ingest(&store, &events, 300);
    let copy = store.copy_to(&dir.path().join("b")).unwrap();
    assert_eq!(copy.record_dictionary_bytes(), None);
    assert_eq!(
        copy.footprint().unwrap()["s"],
        store.footprint().unwrap()["s"]
    );
    let all = |s: &Store| s.all_sessions().map(Result::unwrap).collect::<Vec<_>>();
    assert_eq!(all(&copy), all(&store));
}
