//! End-to-end ingestion through a real broker over TCP: correctness of a
//! large mixed stream, SIGKILL at random moments, poison records, a broker
//! restart. Each test uses its own topic and store.

mod common;

use std::time::Duration;

use common::*;
use ledger_core::Event;
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use ledger_kafka::event_headers;
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
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1_500)));
        seen.push(server.applied());
        server.kill();
    }
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(sent, Duration::from_secs(300));
    assert!(server.term().0.success());
    eprintln!("applied offsets seen before each SIGKILL: {seen:?}");
    assert!(seen.iter().any(|&n| n > 0 && n < sent), "some kill landed mid-stream: {seen:?}");
    assert_store_matches(&data, &fold(&events));
}

#[test]
fn poison_records_go_to_the_dlq_and_nothing_else_is_lost() {
    let brokers = broker();
    let topic = topic(&brokers, "poison", 3);
    let events = stream(13, 1_000, 8_000);
    let mut recs = vec![];
    let mut bad = 0;
    let good = records(&events);
    let junk_mib = vec![b'x'; 1 << 20];
    let mut rng = rand::rng();
    for (i, r) in good.into_iter().enumerate() {
        recs.push(r);
        if i % 7 == 0 {
            let e = &events[i];
            let mut j = e.to_json();
            let kind = bad % 9;
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
                3 => serde_json::json!({"specversion":"1.0","id":format!("bad{bad}"),"source":"/x","type":"session.created","subject":e.session_id,"time":"2026-11-22T10:00:00Z","data":{"client_id":"c"}}).to_string().into_bytes(),
                4 => serde_json::json!({"specversion":"1.0","id":format!("bad{bad}"),"source":"/x","type":"session.activity","subject":e.session_id,"time":"2026-11-22T10:00:00Z","data":{"usage":{"prompt_tokens":"lots"}}}).to_string().into_bytes(),
                5 => if bad % 90 == 5 { junk_mib.clone() } else { (0..rng.random_range(1..200)).map(|_| rng.random::<u8>()).collect() },
                6 => {
                    j.as_object_mut().unwrap().remove("id");
                    j.to_string().into_bytes()
                }
                7 => b"[1,2,3]".to_vec(),
                _ => e.to_json().to_string().into_bytes(),
            };
            let key = if kind == 8 { vec![0xff, 0xfe, 0x00] } else { e.session_id.clone().into_bytes() };
            recs.push(RawRecord { key: Some(key), payload, headers: None, partition: None });
            bad += 1;
        }
    }
    assert!(bad >= 1_000, "{bad} bad records");
    let mut cfg = ledger_kafka::publish::producer_config(&brokers);
    cfg.set("message.max.bytes", "2000000");
    let p = ledger_kafka::Publisher::from_config(cfg, &topic).unwrap();
    let sent = rt().block_on(p.send_all(recs, |_| {})).unwrap() as i64;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(sent, Duration::from_secs(300));
    let metrics = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
    assert!(metrics.contains(&format!("ledger_events_total{{outcome=\"dead_lettered\"}} {bad}")), "{metrics}");
    assert!(server.term().0.success());
    assert_store_matches(&data, &fold(&events));
    let store = ledger_store::Store::open(&data, Default::default()).unwrap();
    assert_eq!(store.stats().events.dead_lettered, bad as u64);
    drop(store);
    // Every bad record is in the DLQ with its reason and origin.
    let dlq = read_all(&brokers, &ledger_kafka::dlq_topic(&topic), bad);
    assert_eq!(dlq.len(), bad);
    let reasons: std::collections::BTreeSet<String> = dlq.iter().map(|(r, _, _)| r.split(':').next().unwrap().to_string()).collect();
    assert!(reasons.len() >= 6, "many kinds of reasons: {reasons:?}");
    assert!(dlq.iter().all(|(_, p, o)| *p >= 0 && *o >= 0));
}

/// Reads `n` records of a topic's partition 0: (dlq.reason, dlq.partition, dlq.offset).
fn read_all(brokers: &str, topic: &str, n: usize) -> Vec<(String, i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    use rdkafka::Message;
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let mut out = vec![];
    let start = std::time::Instant::now();
    while out.len() < n && start.elapsed() < Duration::from_secs(120) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
            let h = m.headers().expect("dlq headers");
            let get = |k: &str| h.iter().find(|x| x.key == k).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned());
            out.push((
                get("dlq.reason").expect("reason"),
                get("dlq.partition").and_then(|v| v.parse().ok()).unwrap_or(-1),
                get("dlq.offset").and_then(|v| v.parse().ok()).unwrap_or(-1),
            ));
        }
    }
    out
}

#[test]
fn the_consumer_survives_a_broker_restart() {
    let bdir = tempfile::tempdir().unwrap();
    let brokers = start_broker(bdir.path());
    let topic = topic(&brokers, "restart", 3);
    let events = stream(14, 3_000, 40_000);
    let (first, second) = events.split_at(events.len() / 2);
    let mut sent = publish(&brokers, &topic, records(first)) as i64;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    std::thread::sleep(Duration::from_millis(400));
    stop_broker(bdir.path());
    let during = server.applied();
    std::thread::sleep(Duration::from_secs(3));
    let again = start_broker(bdir.path());
    assert_eq!(again, brokers, "restarted on the same address");
    sent += publish(&brokers, &topic, records(second)) as i64;
    server.wait_applied(sent, Duration::from_secs(300));
    assert!(server.term().0.success());
    eprintln!("applied when the broker stopped: {during} of {sent}");
    assert_store_matches(&data, &fold(&events));
    stop_broker(bdir.path());
}
