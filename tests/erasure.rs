//! Erasure end to end on the dev broker: `erase --user` and
//! `POST /admin/erasures` reach two replicas through the topic, later events
//! are dropped, a fresh replay reproduces the erasure, and compaction — the
//! online rebuild a replica runs by itself after erasures, or an offline
//! `rebuild --remove-old` — leaves no byte of the erased data in the files.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use ledger_core::{Defaults, Event, EventData, EventKind};
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use serde_json::Value;

fn get(server: &Server, path: &str) -> (u16, Value) {
    let r = reqwest::blocking::get(server.url(path)).unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Every file under `dir` holding any of `needles`: (file, needle).
fn files_holding(dir: &Path, needles: &[String]) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            for n in needles {
                if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                    out.push((p.display().to_string(), n.clone()));
                }
            }
        }
    }
    out
}

fn session_ids(dir: &Path) -> BTreeSet<String> {
    let store = ledger_store::Store::open(dir, Defaults::default()).unwrap();
    assert_eq!(
        store.audit().unwrap(),
        Vec::<String>::new(),
        "audit of {}",
        dir.display()
    );
    store
        .all_sessions()
        .map(|s| s.unwrap().session.id)
        .collect()
}

#[test]
fn an_erasure_reaches_every_replica_and_replay_and_a_rebuild_leaves_no_byte_of_it() {
    let brokers = broker();
    let topic = topic(&brokers, "erasure", 3);
    let events = generate(GenConfig {
        seed: 77,
        sessions: 2_000,
        events: 20_000,
        users: 100,
        workspaces: 20,
        duplicate_rate: 0.02,
        out_of_order_rate: 0.05,
        block: 500,
        ..Default::default()
    });
    let reference = fold(&events);
    let mut by_user: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in reference.values() {
        if let Some(u) = &s.user_id {
            by_user.entry(u).or_default().push(&s.id);
        }
    }
    let (user, theirs) = by_user.iter().max_by_key(|(_, v)| v.len()).unwrap();
    let user = user.to_string();
    let theirs: Vec<String> = theirs.iter().map(|s| s.to_string()).collect();
    let workspace = reference
        .values()
        .filter(|s| s.user_id.as_deref() != Some(&user))
        .find_map(|s| s.workspace_id.clone())
        .unwrap();
    let in_workspace: Vec<String> = reference
        .values()
        .filter(|s| s.workspace_id.as_deref() == Some(&workspace))
        .map(|s| s.id.clone())
        .collect();
    assert!(theirs.len() >= 5 && in_workspace.len() >= 5);
    let erased: BTreeSet<String> = theirs.iter().chain(&in_workspace).cloned().collect();

    let sent = publish(
        &brokers,
        &topic,
        events.iter().map(RawRecord::event).collect(),
    ) as i64;
    let dir = tempfile::tempdir().unwrap();
    // Replica a leaves compaction to the operator; b compacts by itself
    // half a second after the last erasure.
    let config = |name: &str, ms: u64| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!("[retention]\ncompact_after_erasure_ms = {ms}\n"),
        )
        .unwrap();
        p.display().to_string()
    };
    let (ca, cb) = (config("a.toml", 0), config("b.toml", 500));
    let args = ["--no-auth", "--no-reaper", "--config"];
    let a = Server::start(
        &brokers,
        &topic,
        &dir.path().join("a"),
        &[&args[..], &[ca.as_str()]].concat(),
    );
    let b = Server::start(
        &brokers,
        &topic,
        &dir.path().join("b"),
        &[&args[..], &[cb.as_str()]].concat(),
    );
    a.wait_applied(sent, Duration::from_secs(300));
    b.wait_applied(sent, Duration::from_secs(300));
    let (_, before) = get(&a, &format!("/v1/sessions?user_id={user}&limit=500"));
    assert_eq!(before.as_array().unwrap().len(), theirs.len());

    // The user through the CLI, the workspace through the admin endpoint.
    let out = Command::new(BIN)
        .args([
            "erase",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
            "--user",
            &user,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("published to 3 partitions"));
    let r = reqwest::blocking::Client::new()
        .post(b.url("/admin/erasures"))
        .json(&serde_json::json!({ "workspace_id": workspace }))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let body: Value = r.json().unwrap();
    assert_eq!(body["subject"], "workspace");
    assert_eq!(body["published"].as_array().unwrap().len(), 3);
    let bad = reqwest::blocking::Client::new()
        .post(b.url("/admin/erasures"))
        .json(&serde_json::json!({ "user_id": "u", "workspace_id": "w" }))
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400, "one subject per erasure");

    // Later events for erased sessions are dropped, not dead-lettered.
    let late: Vec<Event> = erased
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut e = events.iter().find(|e| &e.session_id == id).unwrap().clone();
            e.id = format!("late-{i}");
            e.kind = EventKind::Activity;
            e.data = EventData::Activity(Default::default());
            e.created_expires_at_ms = None;
            e
        })
        .collect();
    let total = sent
        + 6
        + publish(
            &brokers,
            &topic,
            late.iter().map(RawRecord::event).collect(),
        ) as i64;
    for s in [&a, &b] {
        s.wait_applied(total, Duration::from_secs(120));
        let (_, list) = get(s, &format!("/v1/sessions?user_id={user}"));
        assert_eq!(
            list,
            Value::Array(vec![]),
            "no view lists the user's sessions"
        );
        let (_, list) = get(
            s,
            &format!("/api/messaging/sessions?workspaceId={workspace}"),
        );
        assert_eq!(list["sessions"], Value::Array(vec![]), "{list}");
        for id in &erased {
            assert_eq!(get(s, &format!("/v1/sessions/{id}")).0, 404, "{id}");
            assert_eq!(
                get(s, &format!("/api/messaging/sessions/{id}")).0,
                404,
                "{id}"
            );
        }
        assert_eq!(
            s.metric("ledger_events_total{outcome=\"dropped\"}"),
            late.len() as f64
        );
        assert_eq!(
            s.metric("ledger_erased_sessions_total"),
            erased.len() as f64
        );
    }
    // b compacts on its own: an online rebuild once the erasures stop (a copy
    // of the whole store under its write lock: minutes on a loaded machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    while b.metric("ledger_rebuilds_total") < 1.0 || b.metric("ledger_rebuild_running") > 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "b compacted after the erasures"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        a.metric("ledger_rebuilds_total"),
        0.0,
        "a does not compact by itself"
    );
    b.wait_applied(total, Duration::from_secs(60));
    assert!(a.term().0.success());
    assert!(b.term().0.success());

    // Both replicas hold exactly the sessions not erased.
    let want: BTreeSet<String> = reference
        .keys()
        .filter(|id| !erased.contains(*id))
        .cloned()
        .collect();
    assert_eq!(session_ids(&dir.path().join("a")), want);
    assert_eq!(session_ids(&dir.path().join("b")), want);

    // A fresh replica replaying from offset 0 reproduces the erasures.
    let c = Server::start(
        &brokers,
        &topic,
        &dir.path().join("c"),
        &[&args[..], &[ca.as_str()]].concat(),
    );
    c.wait_applied(total, Duration::from_secs(300));
    assert!(c.term().0.success());
    assert_eq!(session_ids(&dir.path().join("c")), want);

    // A rebuild (which carries the markers over and removes the old store)
    // leaves no byte of the erased data on disk.
    let out = Command::new(BIN)
        .args([
            "rebuild",
            "--remove-old",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("a"))
        .env("CI", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(session_ids(&dir.path().join("a")), want);
    let mut needles: Vec<String> = erased.iter().cloned().collect();
    needles.push(user.clone());
    assert_eq!(
        files_holding(&dir.path().join("a"), &needles),
        vec![],
        "no file of the rebuilt store holds an erased id"
    );
    // b compacted online: no byte either.
    assert_eq!(
        files_holding(&dir.path().join("b"), &needles),
        vec![],
        "no file of the compacted store holds an erased id"
    );
    // c replayed without compacting: sled's log still holds old pages of
    // the erased sessions, which is why compaction exists.
    assert!(!files_holding(&dir.path().join("c"), &needles).is_empty());
}
