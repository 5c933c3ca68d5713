//! Ingest against the broker's own limit, through a real broker.
//!
//! `scripts/bench-ingest [EVENTS] [SESSIONS] [RUNS]` starts the dev broker and
//! runs this (or: `LEDGER_BENCH_BROKER=host:port cargo bench -p ledger-kafka
//! --bench consume -- EVENTS SESSIONS RUNS`; `LEDGER_BENCH_BROKER=mock` runs
//! it on librdkafka's in-process mock cluster: the consumer's own ceiling,
//! without the dev broker's. The mock cluster keeps at most 5 MiB of each
//! partition's log and trims the oldest records beyond that, so records
//! published before the consumers start are partly gone at 100,000
//! records (~10,600 kept a partition at ~460 bytes a record; the raw
//! consume then waits for records that are no longer there): run it with
//! 30,000). Defaults: 300,000 events over 30,000 sessions, 3 partitions, 3
//! runs.
//!
//! It publishes the generated stream once, then per run measures (a) the raw
//! consume rate: the same consumer settings as the ledger, every record read
//! and dropped; (b) the ledger's ingest rate: decode, fold, and one atomic
//! store write per batch into a fresh store on disk, until caught up. Prints
//! both (records/s) per run, their medians and the ratio of the medians.

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ledger_core::Defaults;
use ledger_gen::{GenConfig, Generator};
use ledger_kafka::publish::RawRecord;
use ledger_kafka::{
    admin_create_topic, consumer_config, IngestConfig, Ingestor, Metrics, Publisher,
};
use ledger_store::Store;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Reads every record of `topic` up to `total`, touching and dropping each.
fn raw_consume(brokers: &str, topic: &str, total: u64) -> Duration {
    let c: BaseConsumer = consumer_config(&IngestConfig {
        group_id: format!("bench-raw-{}", uuid()),
        ..IngestConfig::new(brokers, topic)
    })
    .create()
    .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    let t = Instant::now();
    c.assign(&tpl).expect("assign");
    let (mut n, mut bytes) = (0u64, 0usize);
    while n < total {
        match c.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload().map_or(0, <[u8]>::len);
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => assert!(
                t.elapsed() < Duration::from_secs(600),
                "raw consume stalled at {n}"
            ),
        }
    }
    std::hint::black_box(bytes);
    t.elapsed()
}

/// Runs the ledger's consumer into a fresh store until it has caught up.
fn ingest(brokers: &str, topic: &str) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Defaults::default()).expect("store");
    let t = Instant::now();
    let h = Ingestor::new(
        IngestConfig {
            group_id: format!("bench-ingest-{}", uuid()),
            // Paced as `serve` paces it by default (`[kafka] write_share`).
            pace: ledger_store::Pace::new(
                std::sync::Arc::default(),
                ledger_store::pace::DEFAULT_SHARE,
            ),
            ..IngestConfig::new(brokers, topic)
        },
        store.clone(),
        Metrics::default(),
    )
    .spawn();
    while !h.progress.ready() {
        assert!(!h.finished(), "the consumer stopped");
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = t.elapsed();
    h.stop().expect("stop");
    // Untimed: the store the run wrote is consistent.
    let problems = store.audit().expect("audit");
    assert!(problems.is_empty(), "audit: {problems:?}");
    let sessions = store.stats().sessions;
    (took, sessions)
}

fn uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn main() {
    // `mock`: librdkafka's in-process mock cluster (real client, no broker
    // limit): the consumer's own ceiling.
    let target = std::env::var("LEDGER_BENCH_BROKER")
        .expect("LEDGER_BENCH_BROKER=host:port or mock (scripts/bench-ingest sets it)");
    let mock =
        (target == "mock").then(|| rdkafka::mocking::MockCluster::new(1).expect("mock cluster"));
    let brokers = mock
        .as_ref()
        .map_or(target, rdkafka::mocking::MockCluster::bootstrap_servers);
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(300_000);
    let sessions = args.get(1).copied().unwrap_or(30_000);
    let runs = args.get(2).copied().unwrap_or(3);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let topic = format!("bench-{}", chrono::Utc::now().timestamp_millis());
    match &mock {
        Some(cluster) => cluster
            .create_topic(&topic, PARTITIONS, 1)
            .expect("create topic"),
        None => rt
            .block_on(admin_create_topic(&brokers, &topic, PARTITIONS))
            .expect("create topic"),
    }
    let records: Vec<RawRecord> = Generator::new(GenConfig {
        seed: 7,
        sessions,
        events,
        users: sessions / 5 + 1,
        duplicate_rate: 0.01,
        out_of_order_rate: 0.02,
        block: 5_000,
        ..Default::default()
    })
    .map(|e| RawRecord::event(&e))
    .collect();
    let bytes: usize = records.iter().map(|r| r.payload.len()).sum();
    let t = Instant::now();
    let publisher = Publisher::new(&brokers, &topic).expect("publisher");
    let total = rt
        .block_on(publisher.send_all(records, |_| {}))
        .expect("publish");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "published {total} records ({:.1} MiB) to {topic} ({PARTITIONS} partitions) in {secs:.1} s: {:.0} records/s",
        bytes as f64 / (1 << 20) as f64,
        total as f64 / secs
    );
    let (mut raw, mut ing) = (vec![], vec![]);
    for run in 1..=runs {
        let r = raw_consume(&brokers, &topic, total);
        let (i, sessions) = ingest(&brokers, &topic);
        let (rr, ir) = (
            total as f64 / r.as_secs_f64(),
            total as f64 / i.as_secs_f64(),
        );
        println!(
            "run {run}: raw consume {rr:>9.0} records/s ({:.2} s) | ledger ingest {ir:>9.0} records/s ({:.2} s, {sessions} sessions stored, audit clean) | ingest/raw {:.0}%",
            r.as_secs_f64(),
            i.as_secs_f64(),
            100.0 * ir / rr
        );
        raw.push(rr);
        ing.push(ir);
    }
    let (mr, mi) = (median(&mut raw), median(&mut ing));
    println!(
        "median over {runs} runs: raw consume {mr:.0} records/s, ledger ingest {mi:.0} records/s, ingest/raw {:.0}%",
        100.0 * mi / mr
    );
}
