//! The CloudEvents producer SDKs, unchanged, writing to the topic the ledger
//! consumes (the Kafka protocol binding, both content modes): Python's
//! `cloudevents` 2.2.0 (`cloudevents.core.bindings.kafka` and the 1.x API
//! `cloudevents.v1.kafka`) sent with confluent-kafka, and JavaScript's
//! `cloudevents` 10.0.0 (`Kafka.binary`/`Kafka.structured`) sent with kafkajs,
//! all installed by `scripts/sdk` and driven by `sdk/ce_producer.{py,mjs}`.
//! The ledger runs for real (the dev broker over TCP, the binary, a sled
//! store); every event is read back through the four HTTP views.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::*;
use ledger_core::time::format_iso_ms;
use ledger_testkit::metrics::series as metric;
use serde_json::{json, Value};

const M: i64 = 60_000;

/// One producer SDK in one content mode: its own three sessions and user.
struct Suite {
    sdk: &'static str,
    mode: &'static str,
    /// `content-type` the SDK writes, per event: with / without a
    /// `datacontenttype` (`None` = no header).
    content_type: (Option<&'static str>, Option<&'static str>),
    /// Whether the terminal events leave `datacontenttype` unset.
    bare_terminals: bool,
    binary: bool,
}

const SUITES: [Suite; 6] = [
    Suite {
        sdk: "py",
        mode: "binary",
        content_type: (Some("application/json"), None),
        bare_terminals: false,
        binary: true,
    },
    Suite {
        sdk: "py",
        mode: "structured",
        content_type: (Some("application/cloudevents+json"), None),
        bare_terminals: false,
        binary: false,
    },
    Suite {
        sdk: "py",
        mode: "v1-binary",
        content_type: (Some("application/json"), None),
        bare_terminals: false,
        binary: true,
    },
    // The 1.x API moves `datacontenttype` into the content-type header.
    Suite {
        sdk: "py",
        mode: "v1-structured",
        content_type: (Some("application/json"), None),
        bare_terminals: false,
        binary: false,
    },
    Suite {
        sdk: "js",
        mode: "binary",
        content_type: (Some("application/json"), None),
        bare_terminals: true,
        binary: true,
    },
    Suite {
        sdk: "js",
        mode: "structured",
        content_type: (
            Some("application/cloudevents+json; charset=utf-8"),
            Some("application/cloudevents+json; charset=utf-8"),
        ),
        bare_terminals: true,
        binary: false,
    },
];

impl Suite {
    fn name(&self, run: &str) -> String {
        format!("{run}-{}-{}", self.sdk, self.mode)
    }
    fn user(&self, run: &str) -> String {
        format!("user-{}", self.name(run))
    }
    fn client(&self, run: &str) -> String {
        format!("client-{}", self.name(run))
    }
    fn live(&self, run: &str) -> String {
        format!("{}-live", self.name(run))
    }
    fn ended(&self, run: &str) -> String {
        format!("{}-ended", self.name(run))
    }
    fn revoked(&self, run: &str) -> String {
        format!("{}-revoked", self.name(run))
    }

    /// The suite's events (structured-mode envelopes), in publishing order.
    fn events(&self, run: &str, t0: i64) -> Vec<Value> {
        let (user, client) = (self.user(run), self.client(run));
        let (live, ended, revoked) = (self.live(run), self.ended(run), self.revoked(run));
        let source = format!("/sdk/{}/{}", self.sdk, self.mode);
        let ev = |session: &str, n: u32, kind: &str, at: i64, data: Value, bare: bool| {
            let mut e = json!({
                "specversion": "1.0",
                "id": format!("{session}-e{n}"),
                "source": source,
                "type": format!("session.{kind}"),
                "subject": session,
                "time": format_iso_ms(at),
                "data": data,
            });
            if !bare {
                e["datacontenttype"] = "application/json".into();
            }
            e
        };
        let bare = self.bare_terminals;
        vec![
            ev(
                &live,
                1,
                "created",
                t0,
                json!({
                    "user_id": user, "client_id": client,
                    "agent_id": format!("agent-{}", self.name(run)), "channel_id": "chan-1",
                    "workspace_id": format!("ws-{}", self.name(run)), "project_id": "proj-1",
                    "external_id": format!("ext-{live}"), "session_type": "API",
                    "labels": {"plan": "pro", "region": "eu-west"},
                    "metadata": {"origin": "sdk", "sdk": self.sdk, "mode": self.mode, "nested": {"n": 1, "ok": true}},
                    "tags": ["created"], "contact_ids": ["contact-1"], "actor": {"sub": "admin-1"},
                    "organization_id": "org-1",
                    "timeout": {"timeout_minutes": 60, "auto_renew": true, "max_duration_minutes": 720,
                                "warning_threshold_minutes": 5, "abandon_after_minutes": 10080},
                }),
                false,
            ),
            ev(
                &revoked,
                1,
                "created",
                t0 + M,
                json!({
                    "user_id": user, "client_id": client, "session_type": "Guest",
                }),
                false,
            ),
            ev(
                &live,
                2,
                "activity",
                t0 + M + 123,
                json!({
                    "organization_id": "org-2",
                    "device": {"device_type": "desktop", "is_mobile": false, "browser_name": "Firefox",
                               "browser_version": "132.0", "ip_address": "203.0.113.7",
                               "city": "Lisbon", "country": "PT"},
                    "trace_id": "trace-1", "usage": {"prompt_tokens": 100, "completion_tokens": 20},
                    "billing": {"input_cost": 0.25, "output_cost": 0.5},
                    "tags": ["search", "gpt-4o"], "contact_ids": ["contact-2"],
                }),
                false,
            ),
            ev(
                &ended,
                1,
                "created",
                t0 + M / 2,
                json!({
                    "user_id": user, "client_id": format!("{client}-b"), "session_type": "User",
                    "labels": {"team": "checkout"}, "timeout": {"timeout_minutes": 15},
                }),
                false,
            ),
            ev(
                &live,
                3,
                "activity",
                t0 + 2 * M + 456,
                json!({
                    "device": {"device_type": "mobile", "is_mobile": true, "browser_name": "Safari",
                               "browser_version": "18.1", "ip_address": "198.51.100.9",
                               "city": "Porto", "country": "PT"},
                    "trace_id": "trace-2", "usage": {"prompt_tokens": 50, "completion_tokens": 30},
                    "billing": {"input_cost": 0.125, "output_cost": 0.25},
                    "tags": ["search", "support"],
                }),
                false,
            ),
            ev(
                &revoked,
                2,
                "revoked",
                t0 + 2 * M,
                json!({"reason": "admin"}),
                bare,
            ),
            ev(
                &live,
                4,
                "renewed",
                t0 + 3 * M,
                json!({"timeout": {"timeout_minutes": 90}}),
                false,
            ),
            ev(
                &live,
                5,
                "activity",
                t0 + 4 * M + 789,
                json!({
                    "trace_id": "trace-3", "usage": {"prompt_tokens": 10, "completion_tokens": 5},
                    "billing": {"input_cost": 0.0625, "output_cost": 0.125},
                }),
                false,
            ),
            ev(
                &ended,
                2,
                "activity",
                t0 + 5 * M,
                json!({
                    "trace_id": "trace-e", "usage": {"prompt_tokens": 7, "completion_tokens": 3},
                    "billing": {"input_cost": 0.5, "output_cost": 0.25}, "tags": ["checkout"],
                }),
                false,
            ),
            ev(
                &ended,
                3,
                "ended",
                t0 + 6 * M + 1,
                json!({"reason": "logout"}),
                bare,
            ),
        ]
    }
}

fn get(server: &Server, path: &str) -> Value {
    let r = reqwest::blocking::get(server.url(path)).unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().unwrap()
}

fn ids(list: &Value, field: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|s| s[field].as_str().unwrap().to_string())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `scripts/sdk install`: the venv python and the npm prefix.
fn sdk_paths() -> (String, String) {
    let out = Command::new(root().join("scripts/sdk"))
        .arg("install")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/sdk install failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let find = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("scripts/sdk printed no {name}=: {text}"))
            .to_string()
    };
    (find("python"), find("node_prefix"))
}

fn run(name: &str, cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{name}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} failed");
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

#[test]
fn cloudevents_sdks_publish_in_both_modes() {
    let brokers = broker();
    let topic = topic(&brokers, "producers", 3);
    let run_id = unique("ce");
    // Half an hour ago, to the millisecond: the live sessions stay live.
    let t0 = chrono::Utc::now().timestamp_millis() - 30 * M;
    let dir = tempfile::tempdir().unwrap();

    // Each SDK publishes its suites' events, one NDJSON line per event.
    let mut files = BTreeMap::<&str, (std::path::PathBuf, BTreeMap<String, u64>)>::new();
    let mut all = vec![];
    for s in &SUITES {
        let (path, counts) = files.entry(s.sdk).or_insert_with(|| {
            (
                dir.path().join(format!("{}.ndjson", s.sdk)),
                BTreeMap::new(),
            )
        });
        let mut text = std::fs::read_to_string(&*path).unwrap_or_default();
        for e in s.events(&run_id, t0) {
            text.push_str(&json!({"mode": s.mode, "event": e}).to_string());
            text.push('\n');
            *counts.entry(s.mode.to_string()).or_default() += 1;
            all.push(e);
        }
        std::fs::write(&*path, text).unwrap();
    }
    let (python, node_prefix) = sdk_paths();
    let py = &files["py"];
    let sent = run(
        "sdk/ce_producer.py",
        Command::new(&python)
            .arg(root().join("sdk/ce_producer.py"))
            .args([&brokers, &topic])
            .arg(&py.0),
    );
    assert_eq!(sent["sent"], json!(py.1), "python: delivered per mode");
    let js = &files["js"];
    let sent = run(
        "sdk/ce_producer.mjs",
        Command::new("node")
            .arg(root().join("sdk/ce_producer.mjs"))
            .args([&brokers, &topic])
            .arg(&js.0)
            .arg(&node_prefix),
    );
    assert_eq!(sent["sent"], json!(js.1), "javascript: delivered per mode");
    let total = all.len() as i64;
    assert_eq!(total, 60, "10 events per SDK API and mode");

    // The records are in the modes they claim, with the SDKs' own headers.
    let records = read_topic(&brokers, &topic);
    assert_eq!(records.len() as i64, total);
    let suite_of = |session: &str| {
        SUITES
            .iter()
            .find(|s| session.starts_with(&format!("{}-", s.name(&run_id))))
            .unwrap_or_else(|| panic!("no suite for {session}"))
    };
    let mut per_suite = BTreeMap::<String, usize>::new();
    for r in &records {
        let h = &r.headers;
        let session = match h.get("ce_subject") {
            Some(s) if h.contains_key("ce_specversion") => s.clone(),
            _ => r
                .event
                .as_ref()
                .expect("structured value")
                .session_id
                .clone(),
        };
        let s = suite_of(&session);
        let label = s.name(&run_id);
        *per_suite.entry(label.clone()).or_default() += 1;
        assert_eq!(h.contains_key("ce_specversion"), s.binary, "{label}: {h:?}");
        if s.binary {
            for a in ["ce_id", "ce_source", "ce_type", "ce_subject", "ce_time"] {
                assert!(h.contains_key(a), "{label}: {a} in {h:?}");
            }
            assert!(r.event.is_none(), "{label}: binary value is only data");
        } else {
            assert!(
                !h.keys().any(|k| k.starts_with("ce_")),
                "{label}: structured has no ce_ headers: {h:?}"
            );
        }
        let terminal = match &r.event {
            Some(e) => e.kind.is_terminal(),
            None => h
                .get("ce_type")
                .is_some_and(|t| t == "session.ended" || t == "session.revoked"),
        };
        let bare = s.bare_terminals && terminal;
        let want = if bare {
            s.content_type.1
        } else {
            s.content_type.0
        };
        assert_eq!(
            h.get("content-type").map(String::as_str),
            want,
            "{label}: content-type"
        );
    }
    for s in &SUITES {
        assert_eq!(per_suite.get(&s.name(&run_id)), Some(&10), "{}", s.mode);
    }

    let data = dir.path().join("store");
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(total, Duration::from_secs(120));

    // Nothing was dead-lettered; every event applied.
    let metrics = reqwest::blocking::get(server.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(
        metric(&metrics, "ledger_events_total{outcome=\"dead_lettered\"}").unwrap_or(0.0),
        0.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ledger_events_total{outcome=\"applied\"}"),
        Some(total as f64),
        "{metrics}"
    );
    assert!(read_topic(&brokers, &ledger_kafka::dlq_topic(&topic)).is_empty());

    for s in &SUITES {
        check_suite(&server, s, &run_id, t0);
    }

    let log = std::fs::read_to_string(&server.stderr_log).unwrap();
    assert!(server.term().0.success());
    assert!(!log.contains("panicked"), "{log}");
    // Whatever the SDK and mode, the store is the fold of the plain JSON events.
    let events: Vec<_> = all
        .iter()
        .map(|e| ledger_core::decode_structured(e.to_string().as_bytes()).unwrap())
        .collect();
    assert_store_matches(&data, &fold(&events));
}

/// Every field of the suite's three sessions, through every view.
fn check_suite(server: &Server, s: &Suite, run: &str, t0: i64) {
    let label = s.name(run);
    let (user, client) = (s.user(run), s.client(run));
    let (live, ended, revoked) = (s.live(run), s.ended(run), s.revoked(run));
    let last = t0 + 4 * M + 789;
    let expire = last + 90 * M;

    // Clerk.
    let c = get(server, &format!("/v1/sessions/{live}"));
    let want = json!({
        "object": "session", "id": live, "user_id": user, "client_id": client,
        "status": "active", "created_at": t0, "last_active_at": last, "updated_at": last,
        "expire_at": expire, "abandon_at": last + 10080 * M,
        "actor": {"sub": "admin-1"}, "last_active_organization_id": "org-2",
        "latest_activity": {
            "object": "session_activity", "id": format!("{live}-e3"), "device_type": "mobile",
            "is_mobile": true, "browser_name": "Safari", "browser_version": "18.1",
            "ip_address": "198.51.100.9", "city": "Porto", "country": "PT",
        },
        "tasks": null,
    });
    assert_eq!(c, want, "{label}: clerk live");
    let c = get(server, &format!("/v1/sessions/{ended}"));
    for (k, v) in [
        ("status", json!("ended")),
        ("user_id", json!(user)),
        ("client_id", json!(format!("{client}-b"))),
        ("created_at", json!(t0 + M / 2)),
        ("last_active_at", json!(t0 + 5 * M)),
        ("updated_at", json!(t0 + 6 * M + 1)),
        ("expire_at", json!(t0 + 20 * M)),
        ("latest_activity", Value::Null),
    ] {
        assert_eq!(c[k], v, "{label}: clerk ended {k}");
    }
    let c = get(server, &format!("/v1/sessions/{revoked}"));
    for (k, v) in [
        ("status", json!("revoked")),
        ("client_id", json!(client)),
        ("created_at", json!(t0 + M)),
        ("last_active_at", json!(t0 + M)),
        ("updated_at", json!(t0 + 2 * M)),
        ("expire_at", json!(t0 + 31 * M)),
    ] {
        assert_eq!(c[k], v, "{label}: clerk revoked {k}");
    }
    let all = get(server, &format!("/v1/sessions?user_id={user}"));
    assert_eq!(ids(&all, "id"), set(&[&live, &ended, &revoked]), "{label}");
    let active = get(
        server,
        &format!("/v1/sessions?user_id={user}&status=active"),
    );
    assert_eq!(ids(&active, "id"), set(&[&live]), "{label}");
    let by_client = get(server, &format!("/v1/sessions?client_id={client}"));
    assert_eq!(ids(&by_client, "id"), set(&[&live, &revoked]), "{label}");

    // orq.ai: the aggregates.
    let o = get(server, &format!("/v2/traces/sessions/{live}"));
    let want = json!({
        "_id": live, "external_id": format!("ext-{live}"), "duration": 4 * M + 789,
        "contact_ids": ["contact-1", "contact-2"],
        "billing": {"input_cost": 0.4375, "output_cost": 0.875, "total_cost": 1.3125},
        "usage": {"prompt_tokens": 160, "completion_tokens": 55, "total_tokens": 215},
        "traces_count": 3, "tags": ["created", "gpt-4o", "search", "support"],
        "workspace_id": format!("ws-{label}"), "project_id": "proj-1",
        "started_at": format_iso_ms(t0), "updated_at": format_iso_ms(last),
    });
    assert_eq!(o, want, "{label}: orq live");
    let o = get(server, &format!("/v2/traces/sessions/{ended}"));
    assert_eq!(o["duration"], json!(6 * M + 1 - M / 2), "{label}");
    assert_eq!(
        o["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10})
    );
    assert_eq!(
        o["billing"],
        json!({"input_cost": 0.5, "output_cost": 0.25, "total_cost": 0.75})
    );
    assert_eq!(o["tags"], json!(["checkout"]), "{label}");
    assert_eq!(o["traces_count"], json!(1), "{label}");
    assert_eq!(o["updated_at"], json!(format_iso_ms(t0 + 6 * M + 1)));

    // Wingspan: types, labels, expiration.
    let w = get(server, &format!("/users/session/api/{live}"));
    let want = json!({
        "expiration": format_iso_ms(expire), "isUnlimitedExpiration": false,
        "sessionId": live, "sessionType": "API",
        "labels": {"plan": "pro", "region": "eu-west"}, "userId": user,
    });
    assert_eq!(w, want, "{label}: wingspan live");
    let w = get(server, &format!("/users/session/api?userId={user}"));
    assert_eq!(ids(&w, "sessionId"), set(&[&live]), "{label}: API sessions");
    let w = get(server, &format!("/users/session/token/{ended}"));
    assert_eq!(
        w,
        json!({"expiration": format_iso_ms(t0 + 20 * M), "labels": {"team": "checkout"},
               "sessionType": "User", "userId": user}),
        "{label}: wingspan ended"
    );
    let w = get(server, &format!("/users/session/token/{revoked}"));
    assert_eq!(w["sessionType"], json!("Guest"), "{label}");
    assert_eq!(w["labels"], json!({}), "{label}");

    // elizaOS: renewals, timeout configuration, metadata, the event history.
    let e = get(server, &format!("/api/messaging/sessions/{live}"));
    for (k, v) in [
        ("sessionId", json!(live)),
        ("userId", json!(user)),
        ("agentId", json!(format!("agent-{label}"))),
        ("channelId", json!("chan-1")),
        ("createdAt", json!(format_iso_ms(t0))),
        ("lastActivity", json!(format_iso_ms(last))),
        ("expiresAt", json!(format_iso_ms(expire))),
        ("renewalCount", json!(4)),
        (
            "metadata",
            json!({"origin": "sdk", "sdk": s.sdk, "mode": s.mode, "nested": {"n": 1, "ok": true}}),
        ),
        (
            "timeoutConfig",
            json!({"autoRenew": true, "maxDurationMinutes": 720, "timeoutMinutes": 90,
                   "warningThresholdMinutes": 5}),
        ),
    ] {
        assert_eq!(e[k], v, "{label}: eliza {k}");
    }
    let e = get(server, &format!("/api/messaging/sessions?userId={user}"));
    assert_eq!(ids(&e["sessions"], "sessionId"), set(&[&live]), "{label}");
    let events = s.events(run, t0);
    for session in [&live, &ended, &revoked] {
        let h = get(server, &format!("/api/messaging/sessions/{session}/events"));
        let got: Vec<(String, String, String, String)> = h["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                let f = |k: &str| x[k].as_str().unwrap().to_string();
                (f("id"), f("type"), f("time"), f("outcome"))
            })
            .collect();
        let want: Vec<(String, String, String, String)> = events
            .iter()
            .filter(|x| x["subject"] == json!(session))
            .map(|x| {
                let f = |k: &str| x[k].as_str().unwrap().to_string();
                (f("id"), f("type"), f("time"), "applied".to_string())
            })
            .collect();
        assert_eq!(got, want, "{label}: history of {session}");
    }
}
