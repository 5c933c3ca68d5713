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

/// One malformed record of kind `kind` standing in for `e`'s slot.
fn poison(kind: usize, n: usize, e: &Event, rng: &mut impl Rng) -> RawRecord {
    let mut j = e.to_json();
    let sid = e.session_id.clone();
    let base = |ty: &str, data: serde_json::Value| {
        serde_json::json!({"specversion": "1.0", "id": format!("bad-{n}"), "source": "/x",
            "type": ty, "subject": sid, "time": "2026-11-22T10:00:00Z", "data": data})
        .to_string()
        .into_bytes()
    };
    let payload: Vec<u8> = match kind {
        0 => b"{not json".to_vec(),
        1 => {
            j["time"] = "yesterday".into();
            j.to_string().into_bytes()
        }
        2 => {
            j["type"] = "session.paused".into();
            j.to_string().into_bytes()
        }
        3 => base("session.created", serde_json::json!({"client_id": "c"})),
        4 => base(
            "session.activity",
            serde_json::json!({"usage": {"prompt_tokens": "lots"}}),
        ),
        5 => (0..rng.random_range(1..200))
            .map(|_| rng.random())
            .collect(),
        6 => {
            j.as_object_mut().unwrap().remove("id");
            j.to_string().into_bytes()
        }
        7 => b"[1,2,3]".to_vec(),
        8 => {
            j["subject"] = "someone_else".into();
            j.to_string().into_bytes()
        }
        // Valid JSON event, invalid UTF-8 key.
        9 => j.to_string().into_bytes(),
        _ => vec![b'x'; 1 << 20],
    };
    let key = if kind == 9 {
        vec![0xff, 0xfe, 0x00]
    } else {
        e.session_id.clone().into_bytes()
    };
    RawRecord {
        key: Some(key),
        payload,
        headers: None,
        partition: None,
    }
}

#[test]
fn poison_records_go_to_the_dlq_and_nothing_else_is_lost() {
    let brokers = broker();
    let topic = topic(&brokers, "poison", 3);
    let events = stream(13, 1_000, 8_000);
    let mut rng = rand::rng();
    let mut recs = vec![];
    let mut bad = 0;
    for (i, r) in records(&events).into_iter().enumerate() {
        recs.push(r);
        if i % 7 == 0 {
            // Kinds 0–9 in turn; every 100th bad record is 1 MiB of junk.
            let kind = if bad % 100 == 50 { 10 } else { bad % 10 };
            recs.push(poison(kind, bad, &events[i], &mut rng));
            bad += 1;
        }
    }
    assert!(bad >= 1_000, "{bad} bad records");
    eprintln!(
        "{bad} malformed records among {} valid events",
        events.len()
    );
    let mut cfg = ledger_kafka::publish::producer_config(&brokers);
    cfg.set("message.max.bytes", "2000000");
    let p = ledger_kafka::Publisher::from_config(cfg, &topic).unwrap();
    let sent = rt().block_on(p.send_all(recs, |_| {})).unwrap() as i64;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(sent, Duration::from_secs(300));
    let metrics = reqwest::blocking::get(server.url("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let line = format!("ledger_events_total{{outcome=\"dead_lettered\"}} {bad}");
    assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    let log = std::fs::read_to_string(&server.stderr_log).unwrap();
    assert!(server.term().0.success());
    assert!(!log.contains("panicked"), "{log}");
    assert_store_matches(&data, &fold(&events));
    let store = ledger_store::Store::open(&data, Default::default()).unwrap();
    assert_eq!(store.stats().events.dead_lettered, bad as u64);
    drop(store);

    // Every bad record is in the DLQ, once, with its reason and origin.
    let dlq = read_topic(&brokers, &ledger_kafka::dlq_topic(&topic));
    assert_eq!(dlq.len(), bad);
    let mut origins = std::collections::BTreeSet::new();
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for r in &dlq {
        let reason = r.headers.get("dlq.reason").expect("dlq.reason");
        assert_eq!(r.headers.get("dlq.topic"), Some(&topic));
        let p: i32 = r.headers["dlq.partition"].parse().unwrap();
        let o: i64 = r.headers["dlq.offset"].parse().unwrap();
        assert!(origins.insert((p, o)), "dead-lettered twice: {p}/{o}");
        *reasons
            .entry(
                reason
                    .split([':', '(', '`'])
                    .next()
                    .unwrap()
                    .trim()
                    .to_string(),
            )
            .or_default() += 1;
        if let Some(full) = r.headers.get("dlq.truncated_from") {
            assert_eq!(full, &(1usize << 20).to_string());
            assert!(r.payload_len <= 64 * 1024);
        }
    }
    eprintln!("dead-letter reasons: {reasons:#?}");
    assert!(reasons.len() >= 8, "many kinds of reasons: {reasons:?}");
    assert!(
        dlq.iter()
            .any(|r| r.headers.contains_key("dlq.truncated_from")),
        "the 1 MiB records were dead-lettered, truncated"
    );
}

#[test]
fn the_consumer_resumes_on_its_own_after_a_broker_restart() {
    // Its own broker: stopping the shared one would disturb the other tests.
    let bdir = tempfile::tempdir().unwrap();
    let brokers = start_broker(bdir.path());
    let topic = topic(&brokers, "restart", 3);
    let events = stream(14, 3_000, 40_000);
    let (first, second) = events.split_at(events.len() * 4 / 5);
    let mut sent = publish(&brokers, &topic, records(first)) as i64;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    // Batches far smaller than the backlog: the consumer is still storing
    // when the broker stops.
    let config = dir.path().join("ledger.toml");
    std::fs::write(&config, "[kafka]\nbatch_max = 2000\n").unwrap();
    let config = config.display().to_string();
    let server = Server::start(
        &brokers,
        &topic,
        &data,
        &["--no-auth", "--no-reaper", "--config", &config],
    );
    // Stop the broker as soon as the consumer has applied its first batch.
    let t = std::time::Instant::now();
    while server.applied() <= 0 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_broker(bdir.path());
    let during = server.applied();
    std::thread::sleep(Duration::from_secs(3));
    let again = start_broker(bdir.path());
    assert_eq!(again, brokers, "restarted on the same address");
    sent += publish(&brokers, &topic, records(second)) as i64;
    server.wait_applied(sent, Duration::from_secs(300));
    assert!(server.term().0.success());
    eprintln!("applied when the broker stopped: {during} of {sent}");
    // librdkafka may have fetched all of `first` before the broker went
    // down; `second` exists only on the restarted broker, so applying it
    // (above) is what shows the consumer resumed by itself.
    assert!(
        during <= first.len() as i64,
        "nothing applied that was not published"
    );
    assert_store_matches(&data, &fold(&events));
    stop_broker(bdir.path());
}
