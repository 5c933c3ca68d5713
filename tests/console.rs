//! The console in a real browser: Debian's chromium driven through Selenium
//! (both installed by `scripts/sdk`) loads `/ui` with a key scoped to one
//! user, sees the counters change as that user's events are published,
//! finds the user's sessions, opens one's timeline and steps back to its
//! first event with `as_of`. A screenshot of each step is kept under
//! `target/test-artifacts/console/`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ledger_core::{Event, EventData, EventKind};
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use serde_json::Value;

const ADMIN_KEY: &str = "sk_test_console_admin";
const USER_KEY: &str = "sk_test_console_user";
const USER: &str = "console-user";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `template` as event `n` of `session` for `USER` at `time`.
fn event_for(template: &Event, session: &str, n: usize, time: i64) -> Event {
    let mut e = template.clone();
    e.id = format!("{session}-e{n}");
    e.session_id = session.to_string();
    e.time_ms = time;
    e.created_expires_at_ms = None;
    if let EventData::Created(d) = &mut e.data {
        d.user_id = USER.to_string();
        d.expires_at = None;
        d.unlimited = false;
    }
    e
}

#[test]
fn the_console_follows_finds_and_steps_back_in_a_real_browser() {
    let paths = sdk_paths();
    let brokers = broker();
    let topic = topic(&brokers, "console", 3);
    let dir = tempfile::tempdir().unwrap();
    let artifacts = root().join("target/test-artifacts/console");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).unwrap();
    let user_scope = format!("user:{USER}");
    let config = config_with_keys(
        dir.path(),
        "",
        &[(ADMIN_KEY, "admin"), (USER_KEY, &user_scope)],
    );
    let mut server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-reaper", "--config", &config],
    );
    server.key = Some(ADMIN_KEY.to_string());

    // Other users' sessions, and two of this user's from before.
    let now = now_ms();
    let mut background = generate(GenConfig {
        seed: 8,
        sessions: 300,
        events: 2_000,
        start_ms: now - 20 * 60_000,
        ..Default::default()
    });
    let last = background.iter().map(|e| e.time_ms).max().unwrap();
    ledger_gen::shift(&mut background, now - 60_000 - last);
    let created = background
        .iter()
        .find(|e| matches!(&e.data, EventData::Created(d) if d.timeout.is_some()))
        .unwrap()
        .clone();
    let activity = background
        .iter()
        .find(|e| e.kind == EventKind::Activity)
        .unwrap()
        .clone();
    let mut ended = background
        .iter()
        .find(|e| e.kind == EventKind::Ended)
        .unwrap()
        .clone();
    background.push(event_for(&created, "console-old-1", 0, now - 10 * 60_000));
    background.push(event_for(&created, "console-old-2", 0, now - 9 * 60_000));
    let n0 = publish(
        &brokers,
        &topic,
        background.iter().map(RawRecord::event).collect(),
    ) as i64;
    server.wait_applied(n0, Duration::from_secs(60));

    let mut browser = Command::new(&paths["python_live"])
        .arg(root().join("tests/live/console_test.py"))
        .arg(&server.base)
        .arg(USER_KEY)
        .arg(USER)
        .arg("console-target")
        .arg(&artifacts)
        .env("CHROMIUM", &paths["chromium"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !artifacts.join("ready").exists() {
        if let Some(st) = browser.try_wait().unwrap() {
            panic!("the browser script ended early: {st}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the page did not connect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The user's new sessions: the target with three activities, four more
    // live ones, and one that ends.
    let now = now_ms();
    let mut live = vec![event_for(&created, "console-target", 0, now - 4 * 60_000)];
    for i in 1..=3 {
        live.push(event_for(
            &activity,
            "console-target",
            i,
            now - (4 - i as i64) * 60_000,
        ));
    }
    for s in 0..4 {
        live.push(event_for(
            &created,
            &format!("console-new-{s}"),
            0,
            now - 30_000,
        ));
    }
    live.push(event_for(&created, "console-ends", 0, now - 20_000));
    ended.session_id = "console-ends".into();
    ended.id = "console-ends-e1".into();
    ended.time_ms = now - 10_000;
    live.push(ended);
    let n1 = publish(
        &brokers,
        &topic,
        live.iter().map(RawRecord::event).collect(),
    ) as i64;
    server.wait_applied(n0 + n1, Duration::from_secs(60));
    std::fs::write(artifacts.join("published"), "").unwrap();

    let out = browser.wait_with_output().unwrap();
    assert!(out.status.success(), "the browser script failed");
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("console saw: {seen}");
    // Counters moved with the feed, within the key's scope only.
    let (before, after) = (
        seen["active_before"].as_i64().unwrap(),
        seen["active_after"].as_i64().unwrap(),
    );
    assert!(after > before, "{seen}");
    assert!(after <= before + 5, "counts only {USER}'s sessions: {seen}");
    assert!(seen["feed_log"].as_u64().unwrap() >= 1);
    assert!(seen["chart_points"].as_u64().unwrap() >= 2);
    let summary: Value = reqwest::blocking::Client::new()
        .get(server.url("/ledger/summary"))
        .bearer_auth(USER_KEY)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(summary["active"], 7, "{summary}");
    assert!(
        summary["ended_last_hour"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    // Found by user: this user's sessions only.
    let results: Vec<&str> = seen["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        results.contains(&"console-target") && results.contains(&"console-old-1"),
        "{results:?}"
    );
    assert_eq!(seen["result_users"], serde_json::json!([USER]));
    // The timeline: four events; as of the first, the session as created.
    let steps = seen["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "{steps:?}");
    assert!(steps[0].as_str().unwrap().contains("session.created"));
    assert!(steps[3].as_str().unwrap().contains("session.activity"));
    let (now_s, then) = (&seen["now"], &seen["as_of"]);
    assert_eq!(then["id"], "console-target");
    assert_eq!(then["last_active_at"], now - 4 * 60_000, "{then}");
    assert_eq!(now_s["last_active_at"], now - 60_000, "{now_s}");
    for shot in [
        "01-connected.png",
        "02-counters-changed.png",
        "03-found-by-user.png",
        "04-timeline.png",
        "05-as-of-first-event.png",
    ] {
        let len = std::fs::metadata(artifacts.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 10_000, "screenshot {shot}: {len} bytes");
    }
}
