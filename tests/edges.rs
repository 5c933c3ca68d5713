//! Defects an outside acceptance run found at the Kafka and disk edges, each
//! reproduced with the real binary, the dev broker over TCP and a sled store:
//! a dead-letter topic missing when it is needed, a store write failure
//! (a file-size limit standing in for a full disk), a record the broker will
//! not deliver (over its fetch limit), and announced offsets after SIGKILL.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ledger_core::Defaults;
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use ledger_store::Store;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

fn events(seed: u64, sessions: usize, events: usize) -> Vec<ledger_core::Event> {
    generate(GenConfig {
        seed,
        sessions,
        events,
        block: 500,
        ..Default::default()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(server: &Server, path: &str) -> (u16, String) {
    match reqwest::blocking::get(server.url(path)) {
        Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}

/// Defect 1: `serve` started before the broker is up, then a bad record: the
/// dead-letter topic (never created at start) is created when the first dead
/// letter needs it, and healthy records on every partition are applied.
#[test]
fn the_dead_letter_topic_is_created_when_first_needed() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("broker");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let port = free_port();
    std::fs::write(broker_dir.join("broker.port"), port.to_string()).unwrap();
    let brokers = format!("127.0.0.1:{port}");
    let topic = unique("late-broker");
    let server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &["--no-auth", "--no-reaper"],
    );
    std::thread::sleep(Duration::from_secs(2));
    let started = start_broker(&broker_dir);
    assert!(started.ends_with(&port.to_string()), "{started}");
    rt().block_on(ledger_kafka::admin_create_topic(&brokers, &topic, 3))
        .unwrap();
    let evs = events(11, 300, 2_000);
    let mut records: Vec<RawRecord> = evs.iter().map(RawRecord::event).collect();
    records.insert(
        1_000,
        RawRecord {
            key: Some(b"poison".to_vec()),
            payload: b"{not json".to_vec(),
            headers: None,
            partition: None,
        },
    );
    let sent = publish(&brokers, &topic, records) as i64;
    server.wait_applied(sent, Duration::from_secs(120));
    let dlq = read_topic(&brokers, &ledger_kafka::dlq_topic(&topic));
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].headers["dlq.reason"].contains("bad JSON"));
    let (status, body) = get(&server, "/readyz");
    assert_eq!(status, 200, "{body}");
    let (st, _) = server.term();
    assert!(st.success());
    assert_store_matches(&dir.path().join("store"), &fold(&evs));
    stop_broker(&broker_dir);
}

/// Defect 2: a store write that fails (here: the file-size limit a full disk
/// would impose) stops the consumer; `serve` says so in its log and exits
/// non-zero rather than serving stale data as healthy. A restart with room
/// resumes from the stored offsets with nothing lost or doubled.
#[test]
fn a_failing_store_write_stops_serve_loudly_and_a_restart_loses_nothing() {
    let brokers = broker();
    let topic = topic(&brokers, "disk-full", 3);
    let evs = events(12, 20_000, 120_000);
    let sent = publish(&brokers, &topic, evs.iter().map(RawRecord::event).collect()) as i64;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let log = dir.path().join("serve.log");
    // `ulimit -f` in 1 KiB blocks; SIGXFSZ ignored so writes fail with EFBIG.
    let script = format!(
        "trap '' XFSZ; ulimit -f 8192; exec \"$0\" serve --brokers {brokers} --topic {topic} \
         --listen 127.0.0.1:0 --data-dir {} --no-auth --no-reaper",
        data.display()
    );
    let mut child = Command::new("bash")
        .args(["-c", &script, BIN])
        .env("LEDGER_LOG", "info,rdkafka=error")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "serve kept running after its store could not be written"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "exit status {status:?}\n{text}");
    assert!(
        text.contains("ERROR") && text.contains("the consumer stopped"),
        "the failure is logged:\n{text}"
    );
    assert!(!text.contains('\x1b'), "a log file carries no colour codes");
    assert!(!text.contains("panicked"), "{text}");

    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(sent, Duration::from_secs(300));
    let (st, _) = server.term();
    assert!(st.success());
    assert_store_matches(&data, &fold(&evs));
}

/// Defect 6: a record larger than the broker's fetch limit (10 MB on the dev
/// broker) never arrives. The partition is reported stalled (`/readyz`,
/// metric, log), then the offset is skipped with a dead letter that says why,
/// and the records after it are applied.
#[test]
fn a_record_the_broker_never_delivers_is_reported_then_skipped_with_a_reason() {
    let brokers = broker();
    let topic = topic(&brokers, "oversize", 1);
    let evs = events(13, 50, 400);
    let (before, after) = evs.split_at(200);
    publish(
        &brokers,
        &topic,
        before.iter().map(RawRecord::event).collect(),
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("message.max.bytes", "30000000")
        .create()
        .unwrap();
    let huge = vec![b'x'; 11_000_000];
    rt().block_on(producer.send(
        FutureRecord::to(&topic).key("huge").payload(&huge),
        Duration::from_secs(30),
    ))
    .map_err(|(e, _)| e)
    .unwrap();
    publish(
        &brokers,
        &topic,
        after.iter().map(RawRecord::event).collect(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        "[kafka]\nstall_after_ms = 2000\nskip_unfetchable_after_ms = 8000\n",
    )
    .unwrap();
    let server = Server::start(
        &brokers,
        &topic,
        &dir.path().join("store"),
        &[
            "--no-auth",
            "--no-reaper",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let mut saw_degraded = false;
    let start = Instant::now();
    while server.applied() < 401 {
        let (status, body) = get(&server, "/readyz");
        if status == 503 && body.contains("degraded") && body.contains("partition 0") {
            saw_degraded = true;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never got past the record"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(saw_degraded, "the stall showed in /readyz before the skip");
    let (_, metrics) = get(&server, "/metrics");
    assert!(
        metrics.contains("ledger_skipped_records_total 1"),
        "{metrics}"
    );
    let dlq = read_topic(&brokers, &ledger_kafka::dlq_topic(&topic));
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].headers["dlq.offset"], "200");
    assert!(dlq[0].headers["dlq.reason"].starts_with("unfetchable"));
    let (status, body) = get(&server, "/readyz");
    assert_eq!(status, 200, "{body}");
    let log = std::fs::read_to_string(&server.stderr_log).unwrap();
    assert!(log.contains("partition stalled"), "{log}");
    let (st, _) = server.term();
    assert!(st.success());
    assert_store_matches(&dir.path().join("store"), &fold(&evs));
}

fn offsets_of(header: &str) -> BTreeMap<i32, i64> {
    header
        .split(',')
        .filter_map(|p| {
            let (p, o) = p.split_once('=')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

/// Defect 7: the offsets a response announces are on disk: after SIGKILL at
/// any moment, the store holds at least every offset announced before.
#[test]
fn announced_offsets_survive_sigkill() {
    let brokers = broker();
    let topic = topic(&brokers, "durable", 3);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let evs = events(14, 30_000, 150_000);
    let mut offset = 0;
    for round in 0..4 {
        let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
        let chunk: Vec<RawRecord> = evs[offset..offset + 30_000]
            .iter()
            .map(RawRecord::event)
            .collect();
        offset += 30_000;
        let t = std::thread::spawn({
            let (b, t) = (brokers.clone(), topic.clone());
            move || publish(&b, &t, chunk)
        });
        let mut announced: BTreeMap<i32, i64> = BTreeMap::new();
        let until = Instant::now() + Duration::from_millis(1_500 + 700 * round);
        let client = reqwest::blocking::Client::new();
        while Instant::now() < until {
            if let Ok(r) = client.get(server.url("/v1/sessions?limit=1")).send() {
                if let Some(h) = r.headers().get("x-ledger-offsets") {
                    for (p, o) in offsets_of(h.to_str().unwrap()) {
                        let e = announced.entry(p).or_default();
                        *e = (*e).max(o);
                    }
                }
            }
        }
        server.kill();
        t.join().unwrap();
        let store = Store::open(&data, Defaults::default()).unwrap();
        let stored = store.offsets(&topic).unwrap();
        for (p, o) in &announced {
            let have = stored.get(p).copied().unwrap_or(0);
            assert!(
                have >= *o,
                "round {round}: partition {p} announced {o}, only {have} on disk after SIGKILL"
            );
        }
        assert!(store.audit().unwrap().is_empty());
    }
    // And the last restart applies everything exactly once.
    let server = Server::start(&brokers, &topic, &data, &["--no-auth", "--no-reaper"]);
    server.wait_applied(offset as i64, Duration::from_secs(300));
    server.term();
    assert_store_matches(&data, &fold(&evs[..offset]));
}
