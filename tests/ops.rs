//! Operating the ledger against the real broker: the reaper with two
//! instances in one group, `rebuild`, `/metrics` and `/readyz`, SIGTERM during
//! ingest, and two read replicas answering identically.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use ledger_core::{apply, decode_structured, Defaults, Event, EventKind, Status};
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use rand::Rng;
use serde_json::{json, Value};

const MIN: i64 = 60_000;

/// A `session.created` at `time_ms` with the given timeout overrides.
fn created(id: &str, user: &str, time_ms: i64, timeout: Value) -> Event {
    let time = chrono::DateTime::from_timestamp_millis(time_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let doc = json!({
        "specversion": "1.0", "id": format!("{id}-created"), "source": "/tests/ops",
        "type": "session.created", "subject": id, "time": time,
        "data": {"user_id": user, "workspace_id": "ws_ops", "timeout": timeout},
    });
    decode_structured(doc.to_string().as_bytes()).unwrap()
}

fn write_config(dir: &Path, body: &str) -> String {
    let path = dir.join(format!("{}.toml", unique("ledger")));
    std::fs::write(&path, body).unwrap();
    path.to_string_lossy().into_owned()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[test]
fn reaper_expires_each_session_once_at_its_deadline_with_two_instances() {
    reaper_expires_each_session_once(false);
}

/// The same in sharded mode: each instance reaps the partitions it owns in
/// the data group, and stores only those.
#[test]
fn reaper_expires_each_session_once_at_its_deadline_with_two_sharded_instances() {
    reaper_expires_each_session_once(true);
}

fn reaper_expires_each_session_once(sharded: bool) {
    let brokers = broker();
    let topic = topic(&brokers, "reap", 3);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[kafka]\ngroup_id = \"{}\"\n[reaper]\ninterval_ms = 250\n",
            unique("group")
        ),
    );
    // Both instances join the reaper's group (sharded: the data group)
    // before any deadline is near.
    let mut args = vec!["--no-auth", "--config", &config];
    if sharded {
        args.extend(["--mode", "sharded"]);
    }
    let a = Server::start(&brokers, &topic, &dir.path().join("a"), &args);
    let b = Server::start(&brokers, &topic, &dir.path().join("b"), &args);

    // Deadlines 10–37 s from now, so the group has settled and both members
    // own partitions with sessions still to reap: 30-minute timeouts created
    // almost 30 minutes ago (expiry), 1-minute abandonment almost a minute ago.
    let now = now_ms();
    let mut events = vec![];
    let mut deadline: BTreeMap<String, (i64, Status)> = BTreeMap::new();
    for i in 0..40 {
        let id = format!("sess_reap_{i:02}");
        let due = now + 10_000 + i * 700;
        let e = if i % 4 == 3 {
            let t = json!({"timeout_minutes": 30, "abandon_after_minutes": 1});
            deadline.insert(id.clone(), (due, Status::Abandoned));
            created(&id, &format!("user_{}", i % 5), due - MIN, t)
        } else {
            deadline.insert(id.clone(), (due, Status::Expired));
            created(
                &id,
                &format!("user_{}", i % 5),
                due - 30 * MIN,
                json!({"timeout_minutes": 30}),
            )
        };
        events.push(e);
    }
    // A session that stays alive: its deadline is far away.
    events.push(created(
        "sess_reap_alive",
        "user_0",
        now,
        json!({"timeout_minutes": 30}),
    ));
    publish(
        &brokers,
        &topic,
        events.iter().map(RawRecord::event).collect(),
    );

    let partition_of: BTreeMap<String, i32> = read_topic(&brokers, &topic)
        .into_iter()
        .filter_map(|r| Some((r.event?.session_id, r.partition)))
        .collect();
    // Wait for the reaper events to reach the topic.
    let start = Instant::now();
    let reaped = loop {
        let all = read_topic(&brokers, &topic);
        let reaped: Vec<Read> = all
            .into_iter()
            .filter(|r| r.event.as_ref().is_some_and(|e| e.kind.is_terminal()))
            .collect();
        let sessions: std::collections::BTreeSet<&str> = reaped
            .iter()
            .map(|r| r.event.as_ref().unwrap().session_id.as_str())
            .collect();
        if sessions.len() >= deadline.len() {
            break reaped;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "reaped {} of {} sessions",
            sessions.len(),
            deadline.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    for r in &reaped {
        let e = r.event.as_ref().unwrap();
        let (due, status) = deadline[&e.session_id];
        let kind = if status == Status::Abandoned {
            EventKind::Abandoned
        } else {
            EventKind::Expired
        };
        assert_eq!(e.kind, kind, "{}", e.session_id);
        assert_eq!(
            e.time_ms, due,
            "event time is the deadline: {}",
            e.session_id
        );
        assert_eq!(e.source, "/session-ledger/reaper");
        assert!(
            r.timestamp >= due,
            "{} published {} ms before its deadline",
            e.session_id,
            due - r.timestamp
        );
        assert_eq!(
            r.partition, partition_of[&e.session_id],
            "reaped on the session's own partition"
        );
    }
    let duplicates = reaped.len() - deadline.len();
    eprintln!(
        "reaper events on the topic: {} (duplicates: {duplicates})",
        reaped.len()
    );

    // Both stores apply everything and agree with the fold of the topic.
    let all = read_topic(&brokers, &topic);
    let total = all.len() as i64;
    let topic_events: Vec<Event> = all.into_iter().filter_map(|r| r.event).collect();
    a.wait_applied(total, Duration::from_secs(60));
    b.wait_applied(total, Duration::from_secs(60));
    // Sharded: a partition handed over after its first owner applied it is
    // dropped from that store some seconds later; wait for the drops.
    let expected_sessions = fold(&topic_events).len() as f64;
    let stored = |s: &Server| value(&metrics(s).1, "ledger_store_sessions", None);
    wait_until(
        Duration::from_secs(120),
        Duration::from_millis(300),
        || !sharded || stored(&a) + stored(&b) == expected_sessions,
        || {
            format!(
                "the sharded stores hold {} + {} sessions, not {expected_sessions}",
                stored(&a),
                stored(&b)
            )
        },
    );
    // The group split the partitions: each instance reaped its own share.
    let reaped_by = |s: &Server| value(&metrics(s).1, "ledger_reaped_events_total", None);
    let (ra, rb) = (reaped_by(&a), reaped_by(&b));
    eprintln!("reaped by instance a: {ra}, b: {rb}");
    assert!(
        ra > 0.0 && rb > 0.0,
        "both instances own partitions: {ra} / {rb}"
    );
    assert_eq!(ra + rb, reaped.len() as f64);
    // Stopped together: one stopping alone would hand its partitions to the
    // other, which would store them too before its own stop.
    let logs = [a.stderr_log.clone(), b.stderr_log.clone()];
    let (sa, sb) = std::thread::scope(|s| {
        let (ha, hb) = (s.spawn(|| a.term().0), s.spawn(|| b.term().0));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert!(sa.success() && sb.success());
    let expected = fold(&topic_events);
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    for data in [dir.path().join("a"), dir.path().join("b")] {
        // Sharded: each store holds its own partitions' sessions, as the
        // fold has them.
        let mine: BTreeMap<String, ledger_core::Session> = if sharded {
            let store = ledger_store::Store::open(&data, Defaults::default()).unwrap();
            let ids: Vec<String> = store
                .all_sessions()
                .map(|s| s.unwrap().session.id)
                .collect();
            ids.into_iter()
                .map(|id| (id.clone(), expected[&id].clone()))
                .collect()
        } else {
            expected.clone()
        };
        for id in mine.keys() {
            *held.entry(id.clone()).or_default() += 1;
        }
        assert_store_matches(&data, &mine);
        let store = ledger_store::Store::open(&data, Defaults::default()).unwrap();
        for (id, (due, status)) in &deadline {
            let Some(s) = store.get(id).unwrap() else {
                assert!(sharded, "{id} is missing");
                continue;
            };
            assert_eq!(s.status, *status, "{id} stored status");
            assert_eq!(s.ended_at, Some(*due), "{id} ended at its deadline");
            let applied: Vec<_> = store
                .history(id)
                .unwrap()
                .into_iter()
                .filter(|h| h.kind() != "session.created")
                .filter(|h| h.outcome == "applied" || h.outcome == "closed_at_deadline")
                .collect();
            assert_eq!(
                applied.len(),
                1,
                "{id}: one terminal event applied: {applied:?}"
            );
        }
        if let Some(alive) = store.get("sess_reap_alive").unwrap() {
            assert_eq!(alive.status, Status::Active);
        }
    }
    // Every session in exactly one store (sharded) or in both (replicas).
    let copies = if sharded { 1 } else { 2 };
    assert_eq!(held.len(), expected.len(), "sessions held");
    let odd: Vec<_> = held.iter().filter(|(_, n)| **n != copies).take(5).collect();
    assert!(
        odd.is_empty(),
        "each session held {copies} times, not {odd:?}; the logs end:\n{}",
        logs.iter()
            .map(|l| {
                let text = std::fs::read_to_string(l).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(25)..].join("\n")
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
}

/// Ingestion paced against reads (`[kafka] write_share`, 0.25 by default): while a reader
/// keeps requests in flight, ingestion pauses (counted in
/// `ledger_ingest_paused_seconds_total`) and still applies every record
/// once; a store written that way equals the fold of the stream.
#[test]
fn ingestion_gives_way_to_reads_by_default_and_still_applies_everything() {
    let brokers = broker();
    let topic = topic(&brokers, "paced", 3);
    let (records, events, _) = mixed(33, 3_000, 30_000, 0);
    let dir = tempfile::tempdir().unwrap();
    // No `[kafka] write_share`: paced at the default 0.25.
    let server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-auth", "--no-reaper"],
    );
    let readers = Readers::start(&server, 2);
    let sent = publish(&brokers, &topic, records) as i64;
    server.wait_applied(sent, Duration::from_secs(300));
    let answered = readers.stop();
    assert!(answered > 0);
    let (_, m) = metrics(&server);
    let paused = value(&m, "ledger_ingest_paused_seconds_total", None);
    assert!(
        paused > 0.0,
        "ingestion paused {paused} s for {answered} reads"
    );
    eprintln!("ingestion paused {paused:.2} s while {answered} reads were answered");
    assert!(server.term().0.success());
    assert_store_matches(&dir.path().join("store"), &fold(&events));
}

/// The write floor (`[kafka] write_floor`, 0.1 here) under a real read
/// load: ingestion under `SCHED_IDLE` gets a core only when no reader
/// wants one; requests make room for its write turns once it has gone
/// 45 ms without progress, and it applies everything, exactly, while the
/// load goes on. (The turns' mechanism itself: `ledger-api`'s edges test
/// `a_request_waits_for_a_starved_writers_turn_only`.)
#[test]
fn a_saturating_read_load_still_leaves_ingestion_its_floor() {
    let brokers = broker();
    let topic = topic(&brokers, "floor", 3);
    let (records, events, _) = mixed(35, 2_000, 20_000, 0);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[kafka]\nsched_idle = true\nwrite_floor = 0.1\n",
    );
    let server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-auth", "--no-reaper", "--config", &config],
    );
    // Three readers a core: every core busy with reads.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let readers = Readers::start(&server, 3 * cores);
    let sent = publish(&brokers, &topic, records) as i64;
    server.wait_applied(sent, Duration::from_secs(300));
    let (_, m) = metrics(&server);
    let answered = readers.stop();
    let waited = value(&m, "ledger_http_write_turn_wait_seconds_total", None);
    eprintln!("{answered} reads answered; they waited {waited:.3} s in all for write turns");
    assert!(answered > 0);
    assert!(
        waited > 0.0,
        "no request made room for the starved ingestion ({answered} reads)"
    );
    assert!(server.term().0.success());
    assert_store_matches(&dir.path().join("store"), &fold(&events));
}

/// Threads that list sessions from a server as fast as it answers, each
/// asserting every answer is a 200, until stopped.
struct Readers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Readers {
    fn start(server: &Server, n: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let (url, stop) = (server.url("/v1/sessions?limit=100"), stop.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let mut answered = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Acquire) {
                        let status = client.get(&url).send().unwrap().status();
                        assert_eq!(status.as_u16(), 200);
                        answered += 1;
                    }
                    answered
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops them; the requests answered in all.
    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.threads.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

/// A generated stream plus malformed records; returns (records, valid events, bad count).
fn mixed(
    seed: u64,
    sessions: usize,
    events: usize,
    bad: usize,
) -> (Vec<RawRecord>, Vec<Event>, usize) {
    let evs = generate(GenConfig {
        seed,
        sessions,
        events,
        users: 300,
        duplicate_rate: 0.02,
        out_of_order_rate: 0.05,
        block: 1_000,
        ..Default::default()
    });
    let mut records: Vec<RawRecord> = evs.iter().map(RawRecord::event).collect();
    let mut rng = rand::rng();
    for i in 0..bad {
        let at = rng.random_range(0..records.len());
        records.insert(
            at,
            RawRecord {
                key: Some(format!("sess_bad_{i}").into_bytes()),
                payload: format!("{{\"not\": \"an event\", \"n\": {i}").into_bytes(),
                headers: None,
                partition: None,
            },
        );
    }
    (records, evs, bad)
}

/// Per-outcome counts of folding `events`, named as the metrics name them.
fn outcomes(events: &[Event]) -> BTreeMap<&'static str, u64> {
    let d = Defaults::default();
    let mut m: BTreeMap<String, ledger_core::Session> = BTreeMap::new();
    let mut c = BTreeMap::new();
    for e in events {
        let (s, o) = apply(m.remove(&e.session_id), e, &d);
        m.insert(e.session_id.clone(), s);
        *c.entry(o.bucket().as_str()).or_default() += 1;
    }
    c
}

/// `/metrics`, as text and parsed.
fn metrics(server: &Server) -> (String, prometheus_parse::Scrape) {
    let text = reqwest::blocking::get(server.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text ({e}):\n{text}"));
    (text, scrape)
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    let v = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum::<f64>();
    v
}

#[test]
fn metrics_count_what_was_published_and_readyz_follows_catch_up() {
    let brokers = broker();
    let topic = topic(&brokers, "metrics", 3);
    let (records, events, bad) = mixed(21, 4_000, 40_000, 25);
    let sent = publish(&brokers, &topic, records) as i64;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-auth", "--no-reaper"],
    );
    let early = reqwest::blocking::get(server.url("/readyz")).unwrap();
    let early_applied = server.applied();
    assert_eq!(
        early.status().as_u16(),
        503,
        "not ready before catching up (applied {early_applied} of {sent})"
    );
    assert!(early_applied < sent);
    assert_eq!(
        reqwest::blocking::get(server.url("/healthz"))
            .unwrap()
            .status()
            .as_u16(),
        200
    );

    server.wait_applied(sent, Duration::from_secs(300));
    let start = Instant::now();
    while reqwest::blocking::get(server.url("/readyz"))
        .unwrap()
        .status()
        .as_u16()
        != 200
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "ready after catching up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for path in [
        "/v1/sessions?limit=5",
        "/api/messaging/sessions",
        "/v1/sessions/sess_nope",
    ] {
        reqwest::blocking::get(server.url(path)).unwrap();
    }
    let (text, m) = metrics(&server);
    assert_eq!(
        value(&m, "ledger_records_consumed_total", None),
        sent as f64
    );
    assert_eq!(
        value(
            &m,
            "ledger_events_total",
            Some(("outcome", "dead_lettered"))
        ),
        bad as f64
    );
    let want = outcomes(&events);
    for (outcome, n) in &want {
        assert_eq!(
            value(&m, "ledger_events_total", Some(("outcome", outcome))),
            *n as f64,
            "outcome {outcome}"
        );
    }
    assert_eq!(
        value(&m, "ledger_events_total", None),
        sent as f64,
        "every record has one outcome"
    );
    for p in 0..3 {
        let lag = value(
            &m,
            "ledger_consumer_lag",
            Some(("partition", &p.to_string())),
        );
        assert_eq!(lag, 0.0, "lag of partition {p}");
    }
    assert!(value(&m, "ledger_batch_seconds_count", None) >= 1.0);
    assert!(value(&m, "ledger_store_bytes", None) > 0.0);
    // Sessions with users and deadlines: their index chunks are in memory.
    assert!(value(&m, "ledger_store_index_memory_bytes", None) > 0.0);
    let names: std::collections::BTreeSet<&str> =
        m.samples.iter().map(|s| s.metric.as_str()).collect();
    let http: Vec<&&str> = names
        .iter()
        .filter(|n| n.starts_with("ledger_http"))
        .collect();
    assert!(!http.is_empty(), "HTTP latency metrics: {names:?}");
    let routes: std::collections::BTreeSet<&str> = m
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("ledger_http"))
        .filter_map(|s| s.labels.get("route"))
        .collect();
    assert!(routes.contains("/v1/sessions"), "routes: {routes:?}");
    assert!(
        routes.contains("/api/messaging/sessions"),
        "routes: {routes:?}"
    );
    // (The parser drops label values with braces; read that series directly.)
    let by_id = r#"ledger_http_request_seconds_count{method="GET",route="/v1/sessions/{id}",status="404"} 1"#;
    assert!(text.lines().any(|l| l == by_id), "{by_id} in:\n{text}");
    assert!(server.term().0.success());
}

#[test]
fn sigterm_during_ingest_exits_cleanly_and_loses_or_repeats_nothing() {
    let brokers = broker();
    let topic = topic(&brokers, "term", 3);
    let (records, events, _) = mixed(31, 4_000, 60_000, 0);
    let sent = publish(&brokers, &topic, records) as i64;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let mut rng = rand::rng();
    let mut stopped_at = vec![];
    for _ in 0..4 {
        let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
        let before = stopped_at.last().copied().unwrap_or(0);
        let t = Instant::now();
        while server.applied() <= before && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..200)));
        stopped_at.push(server.applied());
        let (status, took) = server.term();
        assert!(status.success(), "exit status {status:?}");
        assert!(took < Duration::from_secs(10), "exit took {took:?}");
    }
    eprintln!("applied offsets at each SIGTERM: {stopped_at:?} of {sent}");
    assert!(
        stopped_at.iter().any(|&n| n > 0 && n < sent),
        "a SIGTERM landed mid-stream"
    );
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(sent, Duration::from_secs(300));
    assert!(server.term().0.success());
    assert_store_matches(&data, &fold(&events));
}

#[test]
fn rebuild_reproduces_the_live_store_exactly() {
    let brokers = broker();
    let topic = topic(&brokers, "rebuild", 3);
    let (records, events, _) = mixed(41, 3_000, 30_000, 10);
    let sent = publish(&brokers, &topic, records) as i64;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(sent, Duration::from_secs(300));
    assert!(server.term().0.success());
    assert_store_matches(&data, &fold(&events));
    let dlq_before = read_topic(&brokers, &ledger_kafka::dlq_topic(&topic)).len();

    let out = Command::new(BIN)
        .args(["rebuild", "--brokers", &brokers, "--topic", &topic])
        .arg("--data-dir")
        .arg(&data)
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rebuild failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("store.old-")
        })
        .expect("the live store is kept aside");
    let live = ledger_store::Store::open(&old, Defaults::default()).unwrap();
    let rebuilt = ledger_store::Store::open(&data, Defaults::default()).unwrap();
    assert_eq!(rebuilt.stats(), live.stats(), "stats");
    assert_eq!(
        rebuilt.offsets(&topic).unwrap(),
        live.offsets(&topic).unwrap(),
        "offsets"
    );
    assert_eq!(
        rebuilt.index_entries().unwrap(),
        live.index_entries().unwrap(),
        "indexes"
    );
    let live_sessions: Vec<_> = live.all_sessions().map(|s| s.unwrap()).collect();
    let rebuilt_sessions: Vec<_> = rebuilt.all_sessions().map(|s| s.unwrap()).collect();
    assert_eq!(rebuilt_sessions.len(), live_sessions.len());
    for (r, l) in rebuilt_sessions.iter().zip(&live_sessions) {
        assert_eq!(r.session, l.session, "session {}", l.session.id);
        assert_eq!(r.partition, l.partition, "partition of {}", l.session.id);
        assert_eq!(r.history_len, l.history_len, "history of {}", l.session.id);
        let rh = rebuilt.history(&l.session.id).unwrap();
        let lh = live.history(&l.session.id).unwrap();
        assert_eq!(rh, lh, "history of {}", l.session.id);
    }
    assert_eq!(rebuilt.audit().unwrap(), Vec::<String>::new());
    let sessions = rebuilt.stats().sessions;
    let some = rebuilt_sessions[0].clone();
    drop((live, rebuilt));
    // The `audit` command says the same, and fails on a damaged store: each
    // index entry of one session stored again as a stray sled key.
    let audit = || {
        Command::new(BIN)
            .arg("audit")
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = audit();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("audit clean: {sessions} sessions")
    );
    {
        let db = sled::open(&data).unwrap();
        let tree = db.open_tree("ledger").unwrap();
        for k in ledger_store::index_keys(&some.session, some.partition) {
            tree.insert(k, &[1u8, b'x'][..]).unwrap();
        }
        db.flush().unwrap();
    }
    let out = audit();
    assert!(!out.status.success(), "a damaged store audits clean");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dlq_after = read_topic(&brokers, &ledger_kafka::dlq_topic(&topic)).len();
    assert_eq!(
        dlq_after, dlq_before,
        "a rebuild dead-letters nothing again"
    );
}

#[test]
fn two_replicas_answer_every_list_identically() {
    let brokers = broker();
    let topic = topic(&brokers, "replicas", 3);
    let (records, events, _) = mixed(51, 3_000, 25_000, 5);
    let sent = publish(&brokers, &topic, records) as i64;
    // One fixed `now` for both: responses carry read-time status and countdowns.
    let now = events.iter().map(|e| e.time_ms).max().unwrap() + 5 * MIN;
    let now_arg = now.to_string();
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--no-auth", "--no-reaper", "--now-ms", &now_arg];
    let a = Server::start(&brokers, &topic, &dir.path().join("a"), &flags);
    let b = Server::start(&brokers, &topic, &dir.path().join("b"), &flags);
    a.wait_applied(sent, Duration::from_secs(300));
    b.wait_applied(sent, Duration::from_secs(300));

    let users: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.data {
            ledger_core::EventData::Created(c) => Some(c.user_id.clone()),
            _ => None,
        })
        .take(5)
        .collect();
    let mut gets = vec![
        "/v1/sessions?limit=500".to_string(),
        "/v1/sessions?limit=100&offset=250&paginated=true".into(),
        "/v1/sessions?status=active&limit=200".into(),
        "/v1/sessions?status=expired&limit=200".into(),
        "/v1/sessions?status=ended&limit=200".into(),
        "/api/messaging/sessions".into(),
        "/api/messaging/sessions/health".into(),
    ];
    for u in &users {
        gets.push(format!("/v1/sessions?user_id={u}&limit=500"));
        gets.push(format!("/users/session/api?userId={u}"));
    }
    let client = reqwest::blocking::Client::new();
    let mut compared = 0;
    for path in &gets {
        // Follow cursor pages so whole lists are compared, not first pages.
        let mut next = Some(path.clone());
        while let Some(p) = next.take() {
            let ra = client.get(a.url(&p)).send().unwrap();
            let rb = client.get(b.url(&p)).send().unwrap();
            assert_eq!(ra.status(), rb.status(), "{p}");
            assert_eq!(ra.status().as_u16(), 200, "{p}");
            let ca = ra.headers().get("x-next-cursor").cloned();
            let cb = rb.headers().get("x-next-cursor").cloned();
            assert_eq!(ca, cb, "next cursor of {p}");
            let (ta, tb) = (ra.text().unwrap(), rb.text().unwrap());
            assert_eq!(ta, tb, "body of {p}");
            assert!(ta.len() > 2, "{p} is not empty");
            compared += 1;
            if let Some(c) = ca {
                let sep = if path.contains('?') { '&' } else { '?' };
                next = Some(format!("{path}{sep}cursor={}", c.to_str().unwrap()));
            }
        }
    }
    for filter in [
        json!({}),
        json!({"pagination": {"limit": 200}, "query": {"filters": [{"path": "/status", "operator": "is", "value": "active"}]}}),
        json!({"query": {"filters": [{"path": "/user_id", "operator": "is", "value": users[0]}]}}),
        json!({"pagination": {"limit": 50}, "sortingProps": [{"key": "started_at", "direction": "asc"}]}),
    ] {
        let ra = client
            .post(a.url("/v2/traces/sessions/query"))
            .json(&filter)
            .send()
            .unwrap();
        let rb = client
            .post(b.url("/v2/traces/sessions/query"))
            .json(&filter)
            .send()
            .unwrap();
        assert_eq!(ra.status().as_u16(), 200, "{filter}");
        assert_eq!(rb.status().as_u16(), 200, "{filter}");
        assert_eq!(ra.text().unwrap(), rb.text().unwrap(), "orq query {filter}");
        compared += 1;
    }
    eprintln!("compared {compared} responses");
    assert!(a.term().0.success());
    assert!(b.term().0.success());
}
