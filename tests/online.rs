//! Online rebuild on the dev broker: a server keeps answering two readers
//! while it replays the topic into a fresh store and switches to it, with
//! more events arriving meanwhile; no error, no response announcing offsets
//! lower than one completed before it was asked, and the final state equal
//! to a replica that never rebuilt; a rebuild while quiet leaves less disk
//! (the purged sessions' old pages are gone); then a compaction (a rebuild
//! from the store) switches the same way.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ledger_core::Defaults;
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use serde_json::Value;

type Offsets = BTreeMap<i32, i64>;

fn offsets_of(r: &reqwest::blocking::Response) -> Offsets {
    r.headers()
        .get("x-ledger-offsets")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| {
            let (a, b) = p.split_once('=')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// Runs `rebuild --url` on `server` to the end; returns what
/// `GET /admin/rebuild` says then.
fn rebuild(server: &Server, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(["rebuild", "--url", &server.base])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reqwest::blocking::get(server.url("/admin/rebuild"))
        .unwrap()
        .json()
        .unwrap()
}

/// One response as a reader saw it: when it asked, when it got the answer,
/// and the offsets announced.
struct Seen {
    asked: Instant,
    answered: Instant,
    offsets: Offsets,
}

#[test]
fn an_online_rebuild_switches_stores_under_read_load_without_errors_or_going_back() {
    let brokers = broker();
    let topic = topic(&brokers, "online", 3);
    let gen = |seed, start_ms| {
        generate(GenConfig {
            seed,
            sessions: 3_000,
            events: 30_000,
            users: 300,
            duplicate_rate: 0.02,
            out_of_order_rate: 0.05,
            terminal_rate: 0.5,
            block: 500,
            start_ms,
            ..Default::default()
        })
    };
    let first = gen(5, 1_795_000_000_000);
    let second = gen(6, 1_795_000_000_000 + 40 * 86_400_000);
    let sent = publish(
        &brokers,
        &topic,
        first.iter().map(RawRecord::event).collect(),
    ) as i64;
    // The clock stands 35 days after the first stream: its ended sessions
    // are past the 30 days of retention, the second stream's are not.
    let now = (1_795_000_000_000i64 + 35 * 86_400_000).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        "[store]\nkeep_old = true\n[retention]\nended_days = 30\ninterval_ms = 200\n",
    )
    .unwrap();
    let args = [
        "--no-auth",
        "--no-reaper",
        "--now-ms",
        now.as_str(),
        "--config",
        config.to_str().unwrap(),
    ];
    let a = Server::start(&brokers, &topic, &dir.path().join("a"), &args);
    let replica = Server::start(&brokers, &topic, &dir.path().join("r"), &args);
    a.wait_applied(sent, Duration::from_secs(300));
    replica.wait_applied(sent, Duration::from_secs(300));
    // Sessions ended more than 30 days before the clock are gone from the
    // views: by id in two dialects, and from the unfiltered list.
    let clock: i64 = now.parse().unwrap();
    let gone: Vec<String> = fold(&first)
        .into_values()
        .filter(|s| {
            s.status.terminal_kind().is_some()
                && s.ended_at.is_some_and(|e| e < clock - 30 * 86_400_000)
        })
        .map(|s| s.id)
        .collect();
    assert!(gone.len() >= 500, "{} sessions past retention", gone.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.metric("ledger_purged_sessions_total") < gone.len() as f64 {
        assert!(
            Instant::now() < deadline,
            "retention purged every session past it"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for id in gone.iter().take(50) {
        for path in [
            format!("/v1/sessions/{id}"),
            format!("/v2/traces/sessions/{id}"),
        ] {
            let status = reqwest::blocking::get(a.url(&path))
                .unwrap()
                .status()
                .as_u16();
            assert_eq!(status, 404, "{path}");
        }
    }
    let listed: Value = reqwest::blocking::get(a.url("/v1/sessions?limit=500&status=ended"))
        .unwrap()
        .json()
        .unwrap();
    for s in listed.as_array().unwrap() {
        assert!(
            !gone.iter().any(|g| s["id"] == g.as_str()),
            "purged {} listed",
            s["id"]
        );
    }
    let ids: Vec<String> = {
        let v: Value = reqwest::blocking::get(a.url("/v1/sessions?limit=200"))
            .unwrap()
            .json()
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(ids.len() >= 100);

    // Two readers, lists and by-id reads, throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let readers: Vec<_> = (0..2)
        .map(|n| {
            let (stop, seen, errors) = (stop.clone(), seen.clone(), errors.clone());
            let (base, ids) = (a.base.clone(), ids.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut i = n;
                while !stop.load(Ordering::Acquire) {
                    i += 1;
                    let path = if i % 2 == 0 {
                        "/v1/sessions?limit=20".to_string()
                    } else {
                        format!("/v1/sessions/{}", ids[i % ids.len()])
                    };
                    let asked = Instant::now();
                    match client.get(format!("{base}{path}")).send() {
                        Ok(r) if r.status().is_success() => {
                            let offsets = offsets_of(&r);
                            seen.lock().unwrap().push(Seen {
                                asked,
                                answered: Instant::now(),
                                offsets,
                            });
                        }
                        Ok(r) => errors
                            .lock()
                            .unwrap()
                            .push(format!("{path}: {}", r.status())),
                        Err(e) => errors.lock().unwrap().push(format!("{path}: {e}")),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let size_before = a.metric("ledger_store_bytes");

    // A rebuild while quiet: same data, less disk (the live store's files
    // still hold the purged sessions' pages and old page versions).
    let status = rebuild(&a, &[]);
    let (before, after) = (
        status["bytes_before"].as_f64().unwrap(),
        status["bytes_after"].as_f64().unwrap(),
    );
    eprintln!("rebuild while quiet: {before} bytes before, {after} after");
    assert!(
        after < before,
        "disk after the switch {after} < before {before}"
    );

    // A rebuild with more events arriving while it runs.
    let cli = {
        let base = a.base.clone();
        std::thread::spawn(move || {
            Command::new(BIN)
                .args(["rebuild", "--url", &base])
                .output()
                .unwrap()
        })
    };
    let more = publish(
        &brokers,
        &topic,
        second.iter().map(RawRecord::event).collect(),
    ) as i64;
    let out = cli.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("switched after"), "{printed}");
    a.wait_applied(sent + more, Duration::from_secs(300));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(
        *errors.lock().unwrap(),
        Vec::<String>::new(),
        "no failed read"
    );
    let seen = seen.lock().unwrap();
    assert!(seen.len() > 200, "reads during the rebuild: {}", seen.len());
    // Linearizable offsets: no answer below one completed before it was asked.
    let mut by_answer: Vec<&Seen> = seen.iter().collect();
    by_answer.sort_by_key(|s| s.answered);
    let mut floor: Offsets = BTreeMap::new();
    let mut j = 0;
    let mut by_ask: Vec<&Seen> = seen.iter().collect();
    by_ask.sort_by_key(|s| s.asked);
    for s in by_ask {
        while j < by_answer.len() && by_answer[j].answered < s.asked {
            for (p, o) in &by_answer[j].offsets {
                let f = floor.entry(*p).or_insert(*o);
                *f = (*f).max(*o);
            }
            j += 1;
        }
        for (p, o) in &floor {
            let have = s.offsets.get(p).copied().unwrap_or(-1);
            assert!(
                have >= *o,
                "partition {p}: answered {have} after {o} was served"
            );
        }
    }

    let status: Value = reqwest::blocking::get(a.url("/admin/rebuild"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["source"], "topic", "{status}");
    assert!(size_before > 0.0);
    eprintln!(
        "{} reads during the rebuild, 0 failed; ingestion paused {} ms",
        seen.len(),
        status["pause_ms"]
    );

    // A compaction (a copy of the live store, no topic), readers gone.
    let status = rebuild(&a, &["--from-store"]);
    assert_eq!(status["source"], "store", "{status}");
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(a.metric("ledger_rebuilds_total"), 3.0);

    // The final state equals the replica's, which never rebuilt.
    replica.wait_applied(sent + more, Duration::from_secs(300));
    std::thread::sleep(Duration::from_millis(1_000));
    assert!(a.term().0.success());
    assert!(replica.term().0.success());
    let rebuilt = ledger_store::Store::open(dir.path().join("a"), Defaults::default()).unwrap();
    let plain = ledger_store::Store::open(dir.path().join("r"), Defaults::default()).unwrap();
    assert!(
        rebuilt.dir().ends_with("gen-3"),
        "{}",
        rebuilt.dir().display()
    );
    for kept in ["old-0", "old-1", "old-2"] {
        let db = dir.path().join("a").join(kept).join("db");
        assert!(db.exists(), "replaced stores are kept aside ({kept})");
    }
    assert_eq!(rebuilt.audit().unwrap(), Vec::<String>::new());
    let sessions = |s: &ledger_store::Store| -> Vec<_> {
        s.all_sessions().map(|x| x.unwrap().session).collect()
    };
    assert!(
        sessions(&rebuilt) == sessions(&plain),
        "same sessions as the replica"
    );
    assert_eq!(
        rebuilt.index_entries().unwrap(),
        plain.index_entries().unwrap()
    );
    assert_eq!(
        rebuilt.offsets(&topic).unwrap(),
        plain.offsets(&topic).unwrap()
    );
    let (r, p) = (rebuilt.stats(), plain.stats());
    assert_eq!(
        (r.sessions, &r.by_status, r.purged),
        (p.sessions, &p.by_status, p.purged)
    );
    assert_eq!(rebuilt.markers().unwrap(), plain.markers().unwrap());
}

/// A store whose files outgrew its data is compacted by `serve` itself once
/// ingestion is caught up (`[store] compact_when_grown`): a store never
/// compacted at once (here the floor is 0), and not again while its files
/// stay within the factor of what that compaction left.
#[test]
fn a_store_whose_files_outgrew_its_data_is_compacted_once_caught_up() {
    let brokers = broker();
    let topic = topic(&brokers, "grown", 3);
    let events = generate(GenConfig {
        seed: 21,
        sessions: 2_000,
        events: 20_000,
        users: 200,
        block: 500,
        ..Default::default()
    });
    let sent = publish(
        &brokers,
        &topic,
        events.iter().map(RawRecord::event).collect(),
    ) as i64;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        "[store]\ncompact_when_grown = 1.5\ncompact_floor_mb = 0\n",
    )
    .unwrap();
    let data = dir.path().join("store");
    let server = Server::start(
        &brokers,
        &topic,
        &data,
        &[
            "--no-auth",
            "--no-reaper",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    server.wait_applied(sent, Duration::from_secs(300));
    let status = || -> Value {
        reqwest::blocking::get(server.url("/admin/rebuild"))
            .unwrap()
            .json()
            .unwrap()
    };
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || status()["completed"] == 1 && status()["state"] == "done",
        || format!("no compaction: {}", status()),
    );
    let s = status();
    assert_eq!(s["source"], "store", "{s}");
    let (before, after) = (
        s["bytes_before"].as_u64().unwrap(),
        s["bytes_after"].as_u64().unwrap(),
    );
    assert!(after > 0 && after < before, "{s}");
    // Another check passes (every 10 s) with the files as that compaction
    // left them: no second one.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(status()["completed"], 1, "{}", status());
    assert!(server.term().0.success());
    let store = ledger_store::Store::open(&data, Defaults::default()).unwrap();
    let mark = store.compacted_size().unwrap().expect("the copy's mark");
    let sessions = store.stats().sessions;
    assert!(
        mark * sessions <= after,
        "{mark} bytes/session, {after} bytes"
    );
    drop(store);
    assert_store_matches(&data, &fold(&events));
}
