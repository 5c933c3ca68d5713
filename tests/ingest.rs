//! End-to-end ingestion through a real broker over TCP: correctness of a
//! large mixed stream (structured and binary mode), and SIGKILL at random
//! moments. Each test uses its own topic and store.

mod common;

use std::time::Duration;

use common::*;
use ledger_core::Event;
use ledger_gen::{generate, GenConfig};
use ledger_kafka::event_headers;
use ledger_kafka::publish::RawRecord;
use rand::Rng;

fn stream(seed: u64, sessions: usize, events: usize) -> Vec<Event> {
    generate(GenConfig {
        seed,
        sessions,
        events,
        users: 800,
        duplicate_rate: 0.03,
        out_of_order_rate: 0.1,
        block: 1_500,
        ..Default::default()
    })
}

/// Odd events in binary mode (`ce_*` headers), even ones structured.
fn records(events: &[Event]) -> Vec<RawRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i % 2 == 1 {
                let data = e.to_json()["data"].to_string();
                RawRecord {
                    key: Some(e.session_id.clone().into_bytes()),
                    payload: data.into_bytes(),
                    headers: Some(event_headers(e)),
                    partition: None,
                }
            } else {
                RawRecord::event(e)
            }
        })
        .collect()
}

#[test]
fn a_large_mixed_stream_folds_exactly() {
    let brokers = broker();
    let topic = topic(&brokers, "e2e", 3);
    let events = stream(11, 6_000, 52_000);
    assert!(events.len() >= 50_000);
    let sent = publish(&brokers, &topic, records(&events));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(sent as i64, Duration::from_secs(300));
    let (status, _) = server.term();
    assert!(status.success());
    let expected = fold(&events);
    assert!(expected.len() >= 5_000);
    assert_store_matches(&data, &expected);
}

#[test]
fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let brokers = broker();
    let topic = topic(&brokers, "kill", 3);
    let events = stream(12, 4_000, 60_000);
    let sent = publish(&brokers, &topic, records(&events)) as i64;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let mut rng = rand::rng();
    let mut seen = vec![];
    for _ in 0..12 {
        let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
        // Let this run make progress past where the last one stopped, then
        // kill it at a random moment of its work.
        let before = seen.last().copied().unwrap_or(0);
        let t = std::time::Instant::now();
        while server.applied() <= before && t.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
        seen.push(server.applied());
        server.kill();
    }
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(sent, Duration::from_secs(300));
    assert!(server.term().0.success());
    eprintln!("applied offsets seen before each SIGKILL: {seen:?}");
    assert!(
        seen.iter().any(|&n| n > 0 && n < sent),
        "some kill landed mid-stream: {seen:?}"
    );
    assert_store_matches(&data, &fold(&events));
}
