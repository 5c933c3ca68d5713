//! Webhooks end to end: two replicas of the ledger on the dev broker deliver
//! a mixed stream's changes to a local endpoint that verifies every
//! signature with the `standardwebhooks` package (pinned in `scripts/sdk`)
//! and fails the first deliveries; in the end every change the fold made
//! was delivered successfully exactly once by id — by one replica or the
//! other — in order per session, with the session's state as its data.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ledger_core::{apply, Defaults, Status};
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const FAIL_FIRST: usize = 7;

struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The changes the fold made: (webhook id, session id, Clerk data) in topic
/// order per partition — but closes at a deadline before `shown` (the
/// reader's clock): the session was delivered as expired already, the close
/// changes nothing a reader sees.
fn expected(brokers: &str, topic: &str, shown: i64) -> Vec<(String, String, Value)> {
    let mut reads = read_topic(brokers, topic);
    reads.sort_by_key(|r| (r.partition, r.offset));
    let mut state = BTreeMap::new();
    let mut out = vec![];
    for r in reads {
        let Some(e) = r.event else { continue };
        let before = state.remove(&e.session_id);
        let (after, outcome) = apply(before.clone(), &e, &Defaults::default());
        let seen_closed = before
            .filter(|b| b.status == Status::Active)
            .and_then(|b| b.next_deadline())
            .is_some_and(|(at, due)| {
                after.status == due && after.ended_at == Some(at) && at <= shown
            });
        if outcome.changed_state() && after.status != Status::Pending && !seen_closed {
            let id = ledger_hooks::message_id(&e.session_id, Some((r.partition, r.offset)), 0);
            out.push((
                id,
                e.session_id.clone(),
                ledger_api::clerk_session_json(&after, 0),
            ));
        }
        state.insert(e.session_id.clone(), after);
    }
    out
}

fn without_status(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("status");
    v
}

#[test]
fn two_replicas_deliver_each_change_once_signed_and_in_order() {
    deliver_each_change_once(false);
}

/// The same in sharded mode: each instance delivers the partitions it owns
/// in the data group, and the cursors stay in the endpoint's group.
#[test]
fn two_sharded_instances_deliver_each_change_once_signed_and_in_order() {
    deliver_each_change_once(true);
}

fn deliver_each_change_once(sharded: bool) {
    let paths = sdk_paths();
    let brokers = broker();
    let topic = topic(&brokers, "hooks", 3);
    let dir = tempfile::tempdir().unwrap();
    let (out, port_file) = (dir.path().join("received.jsonl"), dir.path().join("port"));
    let _receiver = Receiver(
        Command::new(&paths["python_live"])
            .arg(root().join("tests/live/webhook_receiver.py"))
            .arg(SECRET)
            .arg(FAIL_FIRST.to_string())
            .arg(&out)
            .arg(&port_file)
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            if !p.is_empty() {
                break p;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the receiver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\ngroup_id = \"{}\"\n[webhook_retry]\nfirst_backoff_ms = 100\nmax_backoff_ms = 1000\n\n\
             [[webhooks]]\nname = \"receiver\"\nurl = \"http://127.0.0.1:{port}/hooks\"\nsecret = \"{SECRET}\"\n",
            unique("hooks"),
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let mut args = vec!["--no-auth", "--no-reaper", "--config", config.as_str()];
    if sharded {
        args.extend(["--mode", "sharded"]);
    }
    let a = Server::start(&brokers, &topic, &dir.path().join("a"), &args);
    let b = Server::start(&brokers, &topic, &dir.path().join("b"), &args);
    // Both replicas in the endpoint's group (sharded: in the data group),
    // sharing the 3 partitions.
    let owned = |s: &Server| s.metric("ledger_webhook_owned_partitions");
    wait_until(
        Duration::from_secs(60),
        Duration::from_millis(200),
        || owned(&a) >= 1.0 && owned(&b) >= 1.0 && owned(&a) + owned(&b) == 3.0,
        || {
            format!(
                "the group did not settle: a owns {}, b {}",
                owned(&a),
                owned(&b)
            )
        },
    );

    // A mixed stream: duplicates, events before `created`, terminal events.
    let mut events = generate(GenConfig {
        seed: 33,
        sessions: 300,
        events: 2_500,
        duplicate_rate: 0.05,
        out_of_order_rate: 0.1,
        terminal_rate: 0.3,
        start_ms: chrono::Utc::now().timestamp_millis() - 3_600_000,
        ..Default::default()
    });
    let last = events.iter().map(|e| e.time_ms).max().unwrap();
    ledger_gen::shift(
        &mut events,
        chrono::Utc::now().timestamp_millis() - 5_000 - last,
    );
    let published = chrono::Utc::now().timestamp_millis();
    let n = publish(
        &brokers,
        &topic,
        events.iter().map(RawRecord::event).collect(),
    ) as i64;
    a.wait_applied(n, Duration::from_secs(60));
    b.wait_applied(n, Duration::from_secs(60));
    let want = expected(&brokers, &topic, published);
    let want_ids: BTreeSet<&str> = want.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(want_ids.len(), want.len());

    let deliveries = || -> Vec<Value> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let t0 = Instant::now();
    let got = loop {
        let got = deliveries();
        let done: BTreeSet<&str> = got
            .iter()
            .filter(|d| d["status"] == 204)
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        if done.len() >= want_ids.len() {
            break got;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let missing: Vec<&(String, String, Value)> = want
                .iter()
                .filter(|w| !done.contains(w.0.as_str()))
                .take(5)
                .collect();
            panic!(
                "{} of {} events delivered; missing e.g. {missing:?}",
                done.len(),
                want_ids.len()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    // Every attempt carried a signature the independent implementation
    // accepts.
    let bad: Vec<&Value> = got.iter().filter(|d| d["verified"] != true).collect();
    assert!(bad.is_empty(), "unverified deliveries: {bad:?}");
    // The first attempts failed and were retried.
    let failed: Vec<&str> = got
        .iter()
        .filter(|d| d["status"] == 503)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), FAIL_FIRST);
    let ok: Vec<&Value> = got.iter().filter(|d| d["status"] == 204).collect();
    let ok_ids: Vec<&str> = ok.iter().map(|d| d["id"].as_str().unwrap()).collect();
    for id in &failed {
        assert!(ok_ids.contains(id), "{id} failed and was never delivered");
    }
    // Exactly once by id between the two replicas, nothing unexpected.
    let mut seen = BTreeSet::new();
    for id in &ok_ids {
        assert!(seen.insert(*id), "{id} delivered twice");
        assert!(want_ids.contains(id), "{id}: no such change");
    }
    assert_eq!(seen.len(), want_ids.len());
    // In order per session, each with the session's state after the change.
    let position: BTreeMap<&str, usize> =
        ok_ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, session, data) in &want {
        let at = position[id.as_str()];
        if let Some(prev) = last.insert(session, at) {
            assert!(prev < at, "{session}: delivered out of order");
        }
        assert_eq!(
            without_status(ok[at]["data"].clone()),
            without_status(data.clone()),
            "{id}"
        );
    }
    let by_a = a.metric("ledger_webhook_deliveries_total");
    let by_b = b.metric("ledger_webhook_deliveries_total");
    assert_eq!(by_a + by_b, want.len() as f64);
    assert!(by_a > 0.0 && by_b > 0.0, "a delivered {by_a}, b {by_b}");
    assert_eq!(
        a.metric("ledger_webhook_failures_total") + b.metric("ledger_webhook_failures_total"),
        FAIL_FIRST as f64
    );
    eprintln!(
        "webhooks (sharded: {sharded}): {} changes delivered ({by_a} by a, {by_b} by b), {FAIL_FIRST} failed attempts retried",
        want.len()
    );

    // Delivery state moves with a partition: b stops, a takes its
    // partitions over from the cursors b committed to the group, and
    // delivers only what is new.
    let (st, _) = b.term();
    assert!(st.success());
    let t0 = Instant::now();
    while owned(&a) < 3.0 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "a did not take over: it delivers {} partitions; its log ends:\n{}",
            owned(&a),
            a.log_tail(60)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut more = generate(GenConfig {
        seed: 34,
        sessions: 50,
        events: 400,
        start_ms: chrono::Utc::now().timestamp_millis() - 600_000,
        ..Default::default()
    });
    for e in &mut more {
        e.session_id = format!("later-{}", e.session_id);
        e.id = format!("later-{}", e.id);
    }
    let published = chrono::Utc::now().timestamp_millis();
    let n2 = publish(
        &brokers,
        &topic,
        more.iter().map(RawRecord::event).collect(),
    ) as i64;
    a.wait_applied(n + n2, Duration::from_secs(60));
    let all = expected(&brokers, &topic, published);
    let new_ids: BTreeSet<String> = all
        .iter()
        .map(|w| w.0.clone())
        .filter(|id| !want_ids.contains(id.as_str()))
        .collect();
    assert!(!new_ids.is_empty());
    let t0 = Instant::now();
    loop {
        let got = deliveries();
        let ok: Vec<&str> = got
            .iter()
            .filter(|d| d["status"] == 204)
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        let fresh: BTreeSet<&str> = ok
            .iter()
            .copied()
            .filter(|id| new_ids.contains(*id))
            .collect();
        if fresh.len() == new_ids.len() {
            // Nothing delivered before the restart came again, nothing twice.
            let unique: BTreeSet<&str> = ok.iter().copied().collect();
            assert_eq!(
                unique.len(),
                ok.len(),
                "a delivery was repeated after the restart"
            );
            assert_eq!(ok.len(), want_ids.len() + new_ids.len());
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{} of {} new changes delivered after the restart",
            fresh.len(),
            new_ids.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
