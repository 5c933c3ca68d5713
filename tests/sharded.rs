//! Sharded mode against the real broker: three sharded instances and one
//! replica on a 6-partition topic answer every view byte for byte alike,
//! each sharded store holds only its share, and a SIGKILLed instance's
//! partitions move to the others with no answer in between silently
//! incomplete.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ledger_core::{Event, EventData};
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use serde_json::{json, Value};

const MIN: i64 = 60_000;

/// Phase one: the stream every comparison is made on.
const SESSIONS: usize = 50_000;
const EVENTS: usize = 140_000;
/// Phase two (published while an instance is killed): other sessions,
/// other users.
const LATE_SESSIONS: usize = 10_000;
const LATE_EVENTS: usize = 30_000;

fn stream(seed: u64, sessions: usize, events: usize) -> Vec<Event> {
    generate(GenConfig {
        seed,
        sessions,
        events,
        users: 400,
        duplicate_rate: 0.02,
        out_of_order_rate: 0.05,
        block: 2_000,
        ..Default::default()
    })
}

/// The late stream's sessions and users renamed apart from phase one's.
fn late(mut events: Vec<Event>) -> Vec<Event> {
    for e in &mut events {
        e.session_id = format!("late_{}", e.session_id);
        e.id = format!("late_{}", e.id);
        if let EventData::Created(c) = &mut e.data {
            c.user_id = format!("late_{}", c.user_id);
        }
    }
    events
}

/// An answer: (status, `x-next-cursor`, body).
type Answer = (u16, Option<String>, String);

/// GET `path` on `base`.
fn get(client: &reqwest::blocking::Client, base: &str, path: &str) -> Answer {
    let r = client.get(format!("{base}{path}")).send().unwrap();
    let status = r.status().as_u16();
    let cursor = r
        .headers()
        .get("x-next-cursor")
        .map(|v| v.to_str().unwrap().to_string());
    (status, cursor, r.text().unwrap())
}

fn post(client: &reqwest::blocking::Client, base: &str, path: &str, body: &Value) -> (u16, String) {
    let r = client
        .post(format!("{base}{path}"))
        .json(body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

/// Every read the comparison makes: list paths (cursor pages followed),
/// by-id paths, and POST queries.
struct Reads {
    lists: Vec<String>,
    by_id: Vec<String>,
    posts: Vec<(String, Value)>,
}

fn reads(events: &[Event], now: i64) -> Reads {
    let mut users = BTreeSet::new();
    let (mut clients, mut agents, mut workspaces) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut ids = vec![];
    for e in events {
        if let EventData::Created(c) = &e.data {
            users.insert(c.user_id.clone());
            clients.extend(c.client_id.clone());
            agents.extend(c.agent_id.clone());
            workspaces.extend(c.workspace_id.clone());
            ids.push(e.session_id.clone());
        }
    }
    let mut lists = vec![
        "/v1/sessions?limit=500".to_string(),
        "/v1/sessions?limit=100&offset=250&paginated=true".into(),
        "/v1/sessions?limit=100&offset=20000&paginated=true".into(),
        "/v1/sessions?status=active&limit=500&paginated=true".into(),
        "/v1/sessions?status=expired&limit=500".into(),
        "/v1/sessions?status=ended&limit=500".into(),
        "/api/messaging/sessions".into(),
        "/api/messaging/sessions?limit=50".into(),
        "/api/messaging/sessions/health".into(),
        "/ledger/summary".into(),
        "/v2/sessions/tags".into(),
    ];
    for u in users.iter().step_by(37).take(8) {
        lists.push(format!("/v1/sessions?user_id={u}&limit=20&paginated=true"));
        lists.push(format!("/v1/sessions?user_id={u}&status=active"));
        lists.push(format!("/users/session/api?userId={u}"));
        lists.push(format!("/api/messaging/sessions?userId={u}"));
    }
    for c in clients.iter().take(3) {
        lists.push(format!(
            "/v1/sessions?client_id={c}&limit=200&paginated=true"
        ));
        lists.push(format!("/api/messaging/sessions?clientId={c}"));
    }
    for a in agents.iter().take(3) {
        lists.push(format!("/api/messaging/sessions?agentId={a}&limit=100"));
    }
    for w in workspaces.iter().take(2) {
        lists.push(format!("/api/messaging/sessions?workspaceId={w}&limit=100"));
    }
    let mut by_id = vec![];
    let as_of = now - 50 * MIN;
    for id in ids.iter().step_by(ids.len() / 150 + 1) {
        for p in [
            format!("/v1/sessions/{id}"),
            format!("/v1/sessions/{id}?as_of={as_of}"),
            format!("/v2/traces/sessions/{id}"),
            format!("/v2/sessions/{id}"),
            format!("/users/session/api/{id}"),
            format!("/users/session/token/{id}"),
            format!("/api/messaging/sessions/{id}"),
            format!("/api/messaging/sessions/{id}/events"),
            format!("/ledger/sessions/{id}/timeline"),
        ] {
            by_id.push(p);
        }
    }
    by_id.push("/v1/sessions/sess_not_there".into());
    by_id.push("/api/messaging/sessions/sess_not_there".into());
    let (first, mid) = (&ids[0], &ids[ids.len() / 2]);
    let u0 = users.iter().next().unwrap();
    let mut posts = vec![];
    for body in [
        json!({}),
        json!({"pagination": {"limit": 200}, "query": {"filters": [{"path": "/status", "operator": "is", "value": "active"}]}}),
        json!({"query": {"filters": [{"path": "/user_id", "operator": "is", "value": u0}]}}),
        json!({"pagination": {"limit": 50}, "sortingProps": [{"key": "started_at", "direction": "asc"}]}),
        json!({"pagination": {"limit": 100, "page": 7}}),
        json!({"pagination": {"limit": 100, "lastId": mid}}),
        json!({"pagination": {"limit": 100, "firstId": first}}),
    ] {
        posts.push(("/v2/traces/sessions/query".to_string(), body.clone()));
        posts.push(("/v2/traces/sessions/count".to_string(), body));
    }
    for interval in ["SESSION_INTERVAL_ALL_TIME", "SESSION_INTERVAL_LAST_1_HOUR"] {
        let body = json!({"filters": {"interval": interval}, "limit": 100, "page": 2});
        posts.push(("/v2/sessions/query".into(), body.clone()));
        posts.push(("/v2/sessions/count".into(), body));
    }
    Reads {
        lists,
        by_id,
        posts,
    }
}

/// Where two answers first differ, for the failure message.
fn first_difference(a: &Answer, b: &Answer) -> String {
    if a.0 != b.0 || a.1 != b.1 {
        return format!("status/cursor {:?} vs {:?}", (a.0, &a.1), (b.0, &b.1));
    }
    let at =
        a.2.bytes()
            .zip(b.2.bytes())
            .take_while(|(x, y)| x == y)
            .count();
    let around = |s: &str| {
        let from = at.saturating_sub(300);
        s.get(from..(at + 300).min(s.len()))
            .unwrap_or("")
            .to_string()
    };
    format!(
        "at byte {at} of {}/{}:\n{}\n---\n{}",
        a.2.len(),
        b.2.len(),
        around(&a.2),
        around(&b.2)
    )
}

/// Reads everything through `bases[0]` and asserts every other base answers
/// byte for byte alike; returns how many responses were compared.
fn compare_all(bases: &[&str], r: &Reads) -> usize {
    let client = reqwest::blocking::Client::new();
    let (mut compared, mut filled) = (0, 0);
    for path in &r.lists {
        let mut next = Some(path.clone());
        let mut pages = 0;
        while let Some(p) = next.take() {
            let want = get(&client, bases[0], &p);
            assert_eq!(want.0, 200, "{p}: {}", want.2);
            filled += usize::from(want.2.contains("sess_"));
            for b in &bases[1..] {
                let have = get(&client, b, &p);
                assert!(
                    have == want,
                    "{p} through {b} differs from {}: {}",
                    bases[0],
                    first_difference(&have, &want)
                );
                compared += 1;
            }
            pages += 1;
            if let Some(c) = want.1 {
                let sep = if path.contains('?') { '&' } else { '?' };
                next = Some(format!("{path}{sep}cursor={c}"));
            }
        }
        assert!(pages < 1_000, "{path}: the cursor pages end");
    }
    // Most lists name sessions (a filter may match none).
    assert!(
        filled * 3 > r.lists.len() * 2,
        "{filled} of {} lists name sessions",
        r.lists.len()
    );
    for p in &r.by_id {
        let want = get(&client, bases[0], p);
        for b in &bases[1..] {
            let have = get(&client, b, p);
            assert!(
                have == want,
                "{p} through {b} differs from {}: {}",
                bases[0],
                first_difference(&have, &want)
            );
            compared += 1;
        }
    }
    for (p, body) in &r.posts {
        let want = post(&client, bases[0], p, body);
        assert_eq!(want.0, 200, "{p} {body}: {}", want.1);
        for b in &bases[1..] {
            let have = post(&client, b, p, body);
            assert_eq!(have, want, "{p} {body} through {b}");
            compared += 1;
        }
    }
    compared
}

/// Sessions the server's store holds (its `ledger_store_sessions` gauge).
fn stored(s: &Server) -> f64 {
    s.metric("ledger_store_sessions")
}

/// Waits until the stores of `servers` hold `total` sessions between them.
fn wait_stored(servers: &[&Server], total: f64) {
    let start = Instant::now();
    loop {
        let have: f64 = servers.iter().map(|s| stored(s)).sum();
        if have == total {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the sharded stores hold {have} sessions, not {total}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Reads the change feed at `url` until `stop`: (event type, data) of each
/// change (heartbeats aside).
fn collect_feed(
    url: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(String, String)>> {
    std::thread::spawn(move || {
        use std::io::BufRead;
        let client = reqwest::blocking::Client::builder()
            .timeout(None)
            .build()
            .unwrap();
        let resp = client.get(&url).send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        let mut out = vec![];
        let mut event = String::new();
        for line in std::io::BufReader::new(resp).lines() {
            let Ok(line) = line else { break };
            if let Some(e) = line.strip_prefix("event:") {
                event = e.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                if event != "heartbeat" {
                    out.push((event.clone(), d.trim().to_string()));
                }
            } else if line.is_empty() && stop.load(Ordering::Acquire) {
                break;
            }
        }
        out
    })
}

/// `n` sharded instances and one replica on `topic`, their clocks frozen at
/// `now`, with `config` (TOML) added to heartbeats every half second (the
/// feed readers notice their stop); the directory they store in goes last.
fn start_set(
    brokers: &str,
    topic: &str,
    now: i64,
    n: usize,
    config: &str,
) -> (tempfile::TempDir, Vec<Server>, Server) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.toml");
    // A data group of its own: another test's instances joining or dying
    // rebalance nothing here.
    let group = unique("sharded");
    std::fs::write(
        &path,
        format!("[kafka]\ngroup_id = \"{group}\"\n[feed]\nheartbeat_ms = 500\n{config}"),
    )
    .unwrap();
    let set = (0..n)
        .map(|i| start_member(brokers, topic, &dir, now, i, true))
        .collect();
    let replica = start_member(brokers, topic, &dir, now, n, false);
    (dir, set, replica)
}

/// Instance `i` of a set `start_set` made (sharded, or a replica), with the
/// set's configuration.
fn start_member(
    brokers: &str,
    topic: &str,
    dir: &tempfile::TempDir,
    now: i64,
    i: usize,
    sharded: bool,
) -> Server {
    let path = dir.path().join("ledger.toml");
    let (path, now) = (path.to_string_lossy().into_owned(), now.to_string());
    let mut flags = vec![
        "--no-auth",
        "--no-reaper",
        "--now-ms",
        &now,
        "--config",
        &path,
    ];
    let name = if sharded {
        flags.extend(["--mode", "sharded"]);
        format!("s{i}")
    } else {
        "r".to_string()
    };
    Server::start(brokers, topic, &dir.path().join(name), &flags)
}

/// What a load run saw: responses by status.
#[derive(Default, Debug)]
struct Seen {
    complete: u64,
    unavailable: u64,
}

#[test]
fn sharded_instances_answer_like_a_replica_and_survive_a_sigkill() {
    let brokers = broker();
    let topic = topic(&brokers, "sharded", 6);
    let early = stream(61, SESSIONS, EVENTS);
    let later = late(stream(62, LATE_SESSIONS, LATE_EVENTS));
    let now = early.iter().chain(&later).map(|e| e.time_ms).max().unwrap() + 5 * MIN;
    let (_dir, mut set, r) = start_set(&brokers, &topic, now, 3, "");
    let c = set.pop().unwrap();
    let b = set.pop().unwrap();
    let a = set.pop().unwrap();

    // A few undecodable records too: dead letters, on every instance alike.
    let mut records: Vec<RawRecord> = early.iter().map(RawRecord::event).collect();
    for i in 0..5 {
        records.insert(
            i * 20_000,
            RawRecord {
                key: Some(format!("sess_bad_{i}").into_bytes()),
                payload: b"{\"not\": \"an event\"".to_vec(),
                headers: None,
                partition: None,
            },
        );
    }
    let sent = publish(&brokers, &topic, records) as i64;
    for s in [&r, &a, &b, &c] {
        s.wait_applied(sent, Duration::from_secs(300));
    }

    // 2. Each sharded store holds its share only (handed-over partitions
    // are dropped), and together they hold what the replica holds.
    let all = stored(&r);
    assert!(all >= SESSIONS as f64, "the replica holds {all} sessions");
    wait_stored(&[&a, &b, &c], all);
    let bytes = |s: &Server| s.metric("ledger_store_bytes");
    for s in [&a, &b, &c] {
        let share = stored(s) / all;
        eprintln!(
            "{}: {:.0} sessions ({:.1}%), {:.1} MiB on disk (replica {:.1} MiB)",
            s.base,
            stored(s),
            share * 100.0,
            bytes(s) / 1048576.0,
            bytes(&r) / 1048576.0
        );
        assert!(
            (0.15..0.5).contains(&share),
            "{} holds {:.1}% of the sessions",
            s.base,
            share * 100.0
        );
    }

    // The consistency token names every partition through any instance,
    // and a wait for it is answered caught up.
    let client = reqwest::blocking::Client::new();
    let offsets = |base: &str| -> String {
        let resp = client
            .get(format!("{base}/v1/sessions?limit=1"))
            .send()
            .unwrap();
        resp.headers()["x-ledger-offsets"]
            .to_str()
            .unwrap()
            .to_string()
    };
    let token = offsets(&r.base);
    assert_eq!(token.split(',').count(), 6, "{token}");
    for s in [&a, &b, &c] {
        assert_eq!(
            offsets(&s.base),
            token,
            "x-ledger-offsets through {}",
            s.base
        );
        let resp = client
            .get(s.url("/v1/sessions?limit=1"))
            .header("x-ledger-wait-for", &token)
            .header("x-ledger-wait-ms", "2000")
            .send()
            .unwrap();
        assert_eq!(
            resp.headers()["x-ledger-caught-up"],
            "true",
            "through {}",
            s.base
        );
    }

    // 1. Every view through every sharded instance equals the replica.
    let plan = reads(&early, now);
    let compared = compare_all(&[&r.base, &a.base, &b.base, &c.base], &plan);
    eprintln!("compared {compared} responses across 4 instances");

    // 3. SIGKILL one sharded instance while the late stream is ingested; a
    // load run through the other two accepts a complete answer or a 503,
    // nothing in between.
    let probes: Vec<(String, Answer)> = plan
        .by_id
        .iter()
        .step_by(7)
        .take(60)
        .chain(plan.lists.iter().filter(|p| p.contains("user_id=")).take(6))
        .map(|p| (p.clone(), get(&client, &r.base, p)))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    // The change feed through a sharded instance and through the replica,
    // from their heads, across the fail-over.
    let feeds = [
        collect_feed(a.url("/v1/sessions/stream"), stop.clone()),
        collect_feed(r.url("/v1/sessions/stream"), stop.clone()),
    ];
    std::thread::sleep(Duration::from_secs(2));
    let load = {
        let (stop, bases) = (stop.clone(), [a.base.clone(), b.base.clone()]);
        let floor = SESSIONS as u64;
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut seen = Seen::default();
            let mut i = 0usize;
            while !stop.load(Ordering::Acquire) {
                let base = &bases[i % 2];
                let (path, want) = &probes[i % probes.len()];
                let have = get(&client, base, path);
                match have.0 {
                    503 => {
                        assert!(
                            have.2.contains("moving between instances"),
                            "{path}: {}",
                            have.2
                        );
                        seen.unavailable += 1;
                    }
                    _ => {
                        assert_eq!(&have, want, "{path} through {base} during the fail-over");
                        seen.complete += 1;
                    }
                }
                // The whole list's total never drops below phase one's.
                let (st, _, body) = get(&client, base, "/v1/sessions?limit=1&paginated=true");
                if st == 200 {
                    let total = serde_json::from_str::<Value>(&body).unwrap()["total_count"]
                        .as_u64()
                        .unwrap();
                    assert!(
                        total >= floor,
                        "a total of {total} through {base}: incomplete"
                    );
                    seen.complete += 1;
                } else {
                    assert_eq!(st, 503, "{body}");
                    seen.unavailable += 1;
                }
                i += 1;
            }
            seen
        })
    };
    let (half, rest) = later.split_at(later.len() / 2);
    let records = |evs: &[Event]| evs.iter().map(RawRecord::event).collect::<Vec<_>>();
    let late_sent = publish(&brokers, &topic, records(half)) as i64;
    c.kill();
    let killed = Instant::now();
    let late_sent = late_sent + publish(&brokers, &topic, records(rest)) as i64;
    let total = sent + late_sent;
    // The survivors answer for every partition again.
    loop {
        let (st, _, _) = get(&client, &a.base, "/v1/sessions?limit=1");
        let (st2, _, _) = get(&client, &b.base, "/v1/sessions?limit=1");
        if st == 200 && st2 == 200 {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "no take-over within 120 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "the survivors answered for every partition {:?} after the SIGKILL",
        killed.elapsed()
    );
    for s in [&r, &a, &b] {
        s.wait_applied(total, Duration::from_secs(300));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Release);
    let seen = load.join().unwrap();
    let [fa, fr] = feeds.map(|f| f.join().unwrap());
    let (mut fa, mut fr) = (fa, fr);
    eprintln!(
        "change feed: {} changes through a sharded instance, {} through the replica",
        fa.len(),
        fr.len()
    );
    assert!(
        fr.len() >= LATE_SESSIONS,
        "the replica's feed saw the late sessions"
    );
    fa.sort();
    fr.sort();
    assert!(fa == fr, "the sharded feed differs from the replica's");
    eprintln!("load run during the fail-over: {seen:?}");
    assert!(seen.complete > 0, "the load run was answered");

    // The final state: 0 lost, 0 doubled (every view equal to the replica's),
    // and the two survivors' stores hold everything between them.
    let mut events = early.clone();
    events.extend(later.iter().cloned());
    let plan = reads(&events, now);
    let compared = compare_all(&[&r.base, &a.base, &b.base], &plan);
    eprintln!("after the fail-over: compared {compared} responses across 3 instances");
    wait_stored(&[&a, &b], stored(&r));
    for s in [a, b, r] {
        assert!(s.term().0.success());
    }
}

/// Standby copies: with `standby = 1` each of two instances also stores the
/// other's partitions (without answering for them), answers like a replica,
/// and takes the other's partitions over without a replay when it is killed.
/// The one killed is the data group's leader (it joined first), whose death
/// leaves the dev broker's group with a leader that is gone: the survivor
/// must rejoin to be given the partitions.
#[test]
fn standby_copies_take_over_without_a_replay() {
    let brokers = broker();
    let topic = topic(&brokers, "standby", 4);
    let events = stream(63, 6_000, 24_000);
    let now = events.iter().map(|e| e.time_ms).max().unwrap() + 5 * MIN;
    let count = |s: &Server, family: &str| s.ones(family);
    let (dir, mut set, r) = start_set(&brokers, &topic, now, 1, "[cluster]\nstandby = 1\n");
    let leader = set.pop().unwrap();
    // Alone in the group, the first instance leads it and owns everything.
    let start = Instant::now();
    while count(&leader, "ledger_shard_ready_partition{") != 4 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the first instance was not given the partitions"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let b = start_member(&brokers, &topic, &dir, now, 1, true);
    let sent = publish(
        &brokers,
        &topic,
        events.iter().map(RawRecord::event).collect(),
    ) as i64;
    for s in [&r, &leader, &b] {
        s.wait_applied(sent, Duration::from_secs(300));
    }
    // Each answers for two partitions and keeps the other two as standby:
    // its store holds every session.
    let start = Instant::now();
    while [&leader, &b].iter().any(|s| {
        count(s, "ledger_shard_ready_partition{") != 2
            || count(s, "ledger_shard_standby_partition{") != 2
            || stored(s) != stored(&r)
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "standby copies did not settle"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let plan = reads(&events, now);
    let compared = compare_all(&[&r.base, &leader.base, &b.base], &plan);
    eprintln!(
        "standby: compared {compared} responses; each store holds all {} sessions",
        stored(&r)
    );

    let consumed = b.metric("ledger_records_consumed_total");
    leader.kill();
    let killed = Instant::now();
    let client = reqwest::blocking::Client::new();
    loop {
        if get(&client, &b.base, "/v1/sessions?limit=1").0 == 200
            && count(&b, "ledger_shard_ready_partition{") == 4
        {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "no take-over within 120 s: the survivor answers for {} partitions; its log ends:\n{}",
            count(&b, "ledger_shard_ready_partition{"),
            b.log_tail(60)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "standby: the survivor answered for every partition {:?} after the SIGKILL, in data group epoch {}",
        killed.elapsed(),
        b.metric("ledger_shard_group_epoch")
    );
    // Without a replay: the survivor read no record again (its copies of
    // the dead instance's partitions were kept through the hand-over).
    assert_eq!(
        b.metric("ledger_records_consumed_total"),
        consumed,
        "the survivor read records again after the SIGKILL; its log ends:\n{}",
        b.log_tail(60)
    );
    let compared = compare_all(&[&r.base, &b.base], &plan);
    eprintln!("standby: after the take-over, compared {compared} responses");
    for s in [b, r] {
        assert!(s.term().0.success());
    }
}

/// A partition handed back to an instance that read it minutes before is
/// read again from its stored offset without a record skipped: the stall
/// watch (which skips a record the broker never delivers) counts a
/// partition quiet only from when it is read again.
#[test]
fn a_partition_handed_back_is_read_again_without_a_skip() {
    let brokers = broker();
    let topic = topic(&brokers, "handback", 4);
    let events = stream(64, 3_000, 12_000);
    let (first, second) = events.split_at(events.len() / 2);
    let now = events.iter().map(|e| e.time_ms).max().unwrap() + 5 * MIN;
    let dir = tempfile::tempdir().unwrap();
    // Stall reports after 0.5 s, skips after 2 s: far less than the time a
    // handed-over partition stays away.
    std::fs::write(
        dir.path().join("ledger.toml"),
        format!(
            "[kafka]\ngroup_id = \"{}\"\nstall_after_ms = 500\nskip_unfetchable_after_ms = 2000\n",
            unique("handback")
        ),
    )
    .unwrap();
    let count = |s: &Server| s.ones("ledger_shard_ready_partition{");
    let a = start_member(&brokers, &topic, &dir, now, 0, true);
    let start = Instant::now();
    while count(&a) != 4 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "a was given no partitions"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let records = |evs: &[Event]| evs.iter().map(RawRecord::event).collect::<Vec<_>>();
    let sent = publish(&brokers, &topic, records(first)) as i64;
    a.wait_applied(sent, Duration::from_secs(300));
    // b takes half; a drops that half.
    let b = start_member(&brokers, &topic, &dir, now, 1, true);
    let expected = fold(first).len() as f64;
    wait_until(
        Duration::from_secs(120),
        Duration::from_millis(200),
        || count(&a) == 2 && count(&b) == 2 && stored(&a) + stored(&b) == expected,
        || {
            format!(
                "the partitions were not split: a holds {}, b {} of {expected}",
                stored(&a),
                stored(&b)
            )
        },
    );
    let sent = sent + publish(&brokers, &topic, records(second)) as i64;
    b.wait_applied(sent, Duration::from_secs(300));
    // b leaves: a reads b's partitions again, from offset 0.
    assert!(b.term().0.success());
    let start = Instant::now();
    while count(&a) != 4 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "a did not take b's partitions back; its log ends:\n{}",
            a.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    a.wait_applied(sent, Duration::from_secs(300));
    assert_eq!(
        a.metric("ledger_skipped_records_total"),
        0.0,
        "records were skipped; a's log ends:\n{}",
        a.log_tail(40)
    );
    let data = a.data.clone();
    assert!(a.term().0.success());
    assert_store_matches(&data, &fold(&events));
}
