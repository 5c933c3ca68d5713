//! Crash test: a child process applies batches in a loop and is killed with
//! SIGKILL at random moments (25 times). After each kill the store is
//! reopened: its stored offset and its state must agree exactly — the state
//! equals the fold of exactly the events before the stored offset.
//!
//! One binary plays both roles (`harness = false`): with
//! `LEDGER_CRASH_CHILD=<dir>` set it is the child.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ledger_core::{apply, Defaults, Event, Session};
use ledger_gen::{generate, GenConfig};
use ledger_store::{Record, Store};
use rand::Rng;

const TOPIC: &str = "crash";
const KILLS: usize = 25;

fn events() -> Vec<Event> {
    generate(GenConfig {
        seed: 99,
        sessions: 5_000,
        events: 150_000,
        duplicate_rate: 0.03,
        out_of_order_rate: 0.1,
        block: 1_000,
        ..Default::default()
    })
}

fn child(dir: &str) {
    let events = events();
    let store = Store::open(dir, Defaults::default()).expect("open");
    let mut n = store
        .offsets(TOPIC)
        .expect("offsets")
        .get(&0)
        .copied()
        .unwrap_or(0) as usize;
    let mut rng = rand::rng();
    while n < events.len() {
        let end = (n + rng.random_range(1..400)).min(events.len());
        let records: Vec<Record> = (n..end)
            .map(|i| Record {
                event: events[i].clone(),
                partition: 0,
                offset: i as i64,
            })
            .collect();
        store
            .apply_batch(TOPIC, &records, &[(0, end as i64)], 0)
            .expect("apply");
        n = end;
    }
}

fn main() {
    if let Ok(dir) = std::env::var("LEDGER_CRASH_CHILD") {
        child(&dir);
        return;
    }
    let started = Instant::now();
    let events = events();
    let defaults = Defaults::default();
    let dir = tempfile::tempdir().unwrap();
    let mut expected: BTreeMap<String, Session> = BTreeMap::new();
    let mut folded = 0usize;
    let mut rng = rand::rng();
    let mut progress = vec![];
    for round in 0..KILLS {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .env("LEDGER_CRASH_CHILD", dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(150..900)));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();

        let store = Store::open(dir.path(), defaults).unwrap();
        let n = store.offsets(TOPIC).unwrap().get(&0).copied().unwrap_or(0) as usize;
        if n < folded {
            expected.clear();
            folded = 0;
        }
        for e in &events[folded..n] {
            let prior = expected.remove(&e.session_id);
            expected.insert(e.session_id.clone(), apply(prior, e, &defaults).0);
        }
        folded = n;
        let mut seen = 0;
        for s in store.all_sessions() {
            let s = s.unwrap().session;
            assert_eq!(
                Some(&s),
                expected.get(&s.id),
                "round {round}: session {} vs fold of {n} events",
                s.id
            );
            seen += 1;
        }
        assert_eq!(
            seen,
            expected.len(),
            "round {round}: session count at offset {n}"
        );
        assert_eq!(
            store.audit().unwrap(),
            Vec::<String>::new(),
            "round {round}"
        );
        let st = store.stats().events;
        assert_eq!(
            st.applied + st.duplicate + st.ignored + st.rejected,
            n as u64,
            "round {round}: counters"
        );
        progress.push(n);
    }
    assert!(
        progress.iter().any(|&n| n > 0),
        "the child made progress: {progress:?}"
    );
    println!(
        "crash: killed {KILLS} times at offsets {progress:?} ({:?})",
        started.elapsed()
    );
    println!("crash: 1 passed, 0 failed");
}
