//! `as_of` end to end on the dev broker: for 1,200 sessions and random
//! times, `GET /v1/sessions/{id}?as_of=` answers exactly Clerk's shape of the
//! fold of the session's events up to that time, shown at that time; a time
//! older than the history kept answers a 4xx in each view's envelope; lists
//! refuse the parameter.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use ledger_core::{replay, Defaults, Event, EventData, EventKind, Status};
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn get(server: &Server, path: &str) -> (u16, Value) {
    let r = reqwest::blocking::get(server.url(path)).unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn as_of_answers_the_fold_up_to_that_time() {
    let brokers = broker();
    let topic = topic(&brokers, "asof", 3);
    let now = chrono::Utc::now().timestamp_millis();
    let mut events = generate(GenConfig {
        seed: 17,
        sessions: 1_200,
        events: 12_000,
        duplicate_rate: 0.03,
        out_of_order_rate: 0.05,
        start_ms: now - 6 * 3_600_000,
        ..Default::default()
    });
    let last = events.iter().map(|e| e.time_ms).max().unwrap();
    ledger_gen::shift(&mut events, now - 1_000 - last);
    // One session with more events than its history keeps.
    let created = events
        .iter()
        .find(|e| e.kind == EventKind::Created)
        .unwrap()
        .clone();
    let long_id = "long-session";
    let t0 = now - 3_600_000;
    let mut long = created.clone();
    long.id = "long-0".into();
    long.session_id = long_id.into();
    long.time_ms = t0;
    let mut long_events = vec![long.clone()];
    for i in 1..=150 {
        let mut e = long.clone();
        e.id = format!("long-{i}");
        e.kind = EventKind::Activity;
        e.time_ms = t0 + i * 10_000;
        e.data = EventData::Activity(Box::default());
        long_events.push(e);
    }
    let mut n = publish(
        &brokers,
        &topic,
        events.iter().map(RawRecord::event).collect(),
    ) as i64;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-auth", "--no-reaper"],
    );
    server.wait_applied(n, Duration::from_secs(120));
    // Applied in several batches, so whole history chunks fall out of the
    // kept window.
    for part in long_events.chunks(30) {
        n += publish(
            &brokers,
            &topic,
            part.iter().map(RawRecord::event).collect(),
        ) as i64;
        server.wait_applied(n, Duration::from_secs(60));
    }
    events.extend(long_events);

    let mut by_session: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_session.entry(&e.session_id).or_default().push(e);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut compared = 0;
    for (id, evs) in by_session.iter().filter(|(id, _)| **id != long_id) {
        let lo = evs.iter().map(|e| e.time_ms).min().unwrap() - 30_000;
        let hi = evs.iter().map(|e| e.time_ms).max().unwrap().min(now - 1);
        let at = rng.random_range(lo..=hi);
        let want = replay(
            evs.iter().copied().filter(|e| e.time_ms <= at),
            &Defaults::default(),
        )
        .into_values()
        .next()
        .filter(|s| s.status != Status::Pending);
        // Unix ms and RFC 3339 name the same time.
        let param = if compared % 2 == 0 {
            at.to_string()
        } else {
            ledger_core::time::format_iso_ms(at).replace('+', "%2B")
        };
        let (status, body) = get(&server, &format!("/v1/sessions/{id}?as_of={param}"));
        match want {
            Some(s) => {
                assert_eq!(status, 200, "{id} as of {at}: {body}");
                assert_eq!(
                    body,
                    ledger_api::clerk_session_json(&s, at),
                    "{id} as of {at}"
                );
            }
            None => assert_eq!(status, 404, "{id} as of {at}: not created yet: {body}"),
        }
        compared += 1;
    }
    assert!(compared >= 1_000);

    // The long session: its kept history answers from its base on.
    let (status, body) = get(
        &server,
        &format!("/v1/sessions/{long_id}?as_of={}", t0 + 1_490_000),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["last_active_at"], t0 + 1_490_000);
    let (status, body) = get(
        &server,
        &format!("/v1/sessions/{long_id}?as_of={}", t0 + 5_000),
    );
    assert_eq!(status, 422, "Clerk's status for a bad parameter: {body}");
    assert_eq!(
        body["errors"][0]["code"], "form_param_value_invalid",
        "{body}"
    );
    assert!(
        body["errors"][0]["long_message"]
            .as_str()
            .unwrap()
            .contains("older than the history kept"),
        "{body}"
    );
    for (path, code) in [
        ("/api/messaging/sessions/long-session?as_of=", 400),
        ("/v2/traces/sessions/long-session?as_of=", 400),
    ] {
        let (status, body) = get(&server, &format!("{path}{}", t0 + 5_000));
        assert!(
            (400..500).contains(&status) && status >= code,
            "{path}: {status} {body}"
        );
        assert!(
            body.to_string().contains("older than the history kept"),
            "{path}: {body}"
        );
    }
    // Not a time, a future time, and a list: refused in the view's envelope.
    assert_eq!(
        get(&server, "/v1/sessions/long-session?as_of=yesterday").0,
        422
    );
    assert_eq!(
        get(
            &server,
            &format!("/v1/sessions/long-session?as_of={}", now + 3_600_000)
        )
        .0,
        422
    );
    let (status, body) = get(&server, &format!("/v1/sessions?as_of={t0}"));
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("by-id routes only"));
}
