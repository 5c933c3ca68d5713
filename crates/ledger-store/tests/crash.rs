//! Crash test: a child process applies batches in a loop, each written in
//! many small parts, and is killed with SIGKILL at random moments (25
//! times). After each kill the store is reopened:
//! - every session equals the fold of exactly its own events up to the
//!   offset it says it has applied (which may be past the stored offset:
//!   a part written before the kill);
//! - `audit()` passes (index entries and counters agree with the records);
//! - a copy of it, resumed from its stored offset (as a consumer resumes)
//!   for 4,000 more events, equals the fold of every event up to there,
//!   with every event counted once.
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
    // Tiny parts: most kills land between two parts of a batch.
    store.set_write_part(7);
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
    let mut by_session: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for (i, e) in events.iter().enumerate() {
        by_session.entry(e.session_id.clone()).or_default().push(i);
    }
    let mut ahead_total = 0;
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
        // Each session: the fold of its own events up to what it applied.
        let mut ahead = 0;
        for s in store.all_sessions() {
            let s = s.unwrap();
            let upto = s.applied.get(&0).copied().unwrap_or(-1);
            assert!(
                upto >= 0,
                "round {round}: {} records what it applied",
                s.session.id
            );
            let mut want: Option<Session> = None;
            for &i in &by_session[&s.session.id] {
                if i as i64 <= upto {
                    want = Some(apply(want, &events[i], &defaults).0);
                }
            }
            assert_eq!(
                Some(&s.session),
                want.as_ref(),
                "round {round}: session {}",
                s.session.id
            );
            if upto as usize >= n {
                ahead += 1;
            }
        }
        assert_eq!(
            store.audit().unwrap(),
            Vec::<String>::new(),
            "round {round}"
        );
        // Resumed from the stored offset on a copy: converges on the fold.
        let copy = tempfile::tempdir().unwrap();
        drop(store);
        copy_dir(dir.path(), copy.path());
        let resumed = Store::open(copy.path(), defaults).unwrap();
        let m = (n + 4_000).min(events.len());
        for chunk in (n..m)
            .collect::<Vec<_>>()
            .chunks(rng.random_range(50..3_000))
        {
            let records: Vec<Record> = chunk
                .iter()
                .map(|&i| Record {
                    event: events[i].clone(),
                    partition: 0,
                    offset: i as i64,
                })
                .collect();
            let end = chunk[chunk.len() - 1] as i64 + 1;
            resumed
                .apply_batch(TOPIC, &records, &[(0, end)], 0)
                .unwrap();
        }
        let got: BTreeMap<String, Session> = resumed
            .all_sessions()
            .map(|s| {
                let s = s.unwrap().session;
                (s.id.clone(), s)
            })
            .collect();
        assert!(
            got == ledger_testkit::fold(&events[..m]),
            "round {round}: resumed from {n} to {m}, the store equals the fold"
        );
        let st = resumed.stats().events;
        assert_eq!(
            st.applied + st.duplicate + st.ignored + st.rejected,
            m as u64,
            "round {round}: every event counted once"
        );
        assert_eq!(
            resumed.audit().unwrap(),
            Vec::<String>::new(),
            "round {round}"
        );
        ahead_total += ahead;
        progress.push(n);
    }
    assert!(
        progress.iter().any(|&n| n > 0),
        "the child made progress: {progress:?}"
    );
    assert!(
        ahead_total > 0,
        "some kills landed between the parts of a batch"
    );
    println!(
        "crash: killed {KILLS} times at offsets {progress:?}; {ahead_total} sessions found written ahead of the stored offset ({:?})",
        started.elapsed()
    );
    println!("crash: 1 passed, 0 failed");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
