//! Sharded mode, one run: 1, 2 and 3 sharded instances, each set on its own
//! 6-partition topic.
//! * live: once the data group has given every instance its partitions, the
//!   stream is published; events / (time until every partition's owner
//!   applied it) — bounded by how fast the dev broker takes the records;
//! * backlog: a second set of n instances (its own group) started together
//!   on the full topic; events / catch-up time, rebalances included;
//! * by-id and list latency through one instance of the first set (one
//!   request at a time), and for 3 instances the forwarding overhead of a
//!   by-id request its instance does not own.
//!
//!   cargo bench --bench sharded -- [EVENTS] [REQUESTS]   (default 300000 3000)
//!
//! `LEDGER_BENCH_BROKER` names a running broker; otherwise one is started
//! with `scripts/dev-broker` for the run. Every instance shares the
//! machine's cores with the others and with the broker.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use ledger_core::partition::Partitioner;
use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use ledger_kafka::Publisher;

mod common;

use common::{serve, Server};

const PARTITIONS: i32 = 6;

/// A sharded instance with the configuration file `config`.
fn sharded(brokers: &str, topic: &str, dir: &Path, config: &Path) -> Server {
    let config = config.to_string_lossy();
    serve(
        brokers,
        topic,
        dir,
        &["--mode", "sharded", "--config", &config],
    )
}

/// Records applied over every partition, as `addr` announces them (each
/// partition's owner's offset); 0 until every partition has an owner.
fn applied(client: &reqwest::blocking::Client, addr: &str) -> u64 {
    let Ok(r) = client
        .get(format!("http://{addr}/v1/sessions?limit=1"))
        .send()
    else {
        return 0;
    };
    let Some(v) = r
        .headers()
        .get("x-ledger-offsets")
        .and_then(|v| v.to_str().ok())
    else {
        return 0;
    };
    let parts: Vec<u64> = v
        .split(',')
        .filter_map(|p| p.split_once('=')?.1.parse().ok())
        .collect();
    if parts.len() < PARTITIONS as usize {
        return 0;
    }
    parts.iter().sum()
}

/// Partitions `addr` answers for.
fn ready(client: &reqwest::blocking::Client, addr: &str) -> BTreeSet<i32> {
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("ledger_shard_ready_partition{") && l.ends_with(" 1"))
        .filter_map(|l| l.split('"').nth(1)?.parse().ok())
        .collect()
}

/// Milliseconds of each GET of `paths` in turn.
fn latencies(client: &reqwest::blocking::Client, addr: &str, paths: &[String]) -> Vec<f64> {
    paths
        .iter()
        .map(|p| {
            let t = Instant::now();
            let r = client.get(format!("http://{addr}{p}")).send().unwrap();
            assert!(r.status().is_success(), "{p}: {}", r.status());
            let _ = r.bytes().unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let requests: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(3_000);
    let work = tempfile::tempdir().unwrap();
    let (brokers, started) = common::broker(work.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sessions = total / 10;
    let events = generate(GenConfig {
        seed: 5,
        sessions,
        events: total,
        block: 5_000,
        ..Default::default()
    });
    let mut ids: Vec<String> = events.iter().map(|e| e.session_id.clone()).collect();
    ids.sort();
    ids.dedup();
    println!("sharded: {} records of {sessions} sessions on {PARTITIONS} partitions, {requests} requests per figure", events.len());
    let client = reqwest::blocking::Client::new();
    let step = (ids.len() / requests).max(1);
    let by_id: Vec<String> = ids
        .iter()
        .step_by(step)
        .take(requests)
        .map(|id| format!("/v1/sessions/{id}"))
        .collect();
    let lists: Vec<String> = (0..requests / 10)
        .map(|i| match i % 3 {
            0 => "/v1/sessions?limit=20".to_string(),
            1 => format!("/v1/sessions?user_id=user_{}&limit=20", i % 200),
            _ => "/api/messaging/sessions?limit=20".to_string(),
        })
        .collect();
    println!(
        "{:>9} {:>12} {:>13} {:>10} {:>10} {:>10} {:>10}",
        "instances", "live ev/s", "backlog ev/s", "id p50 ms", "id p99 ms", "list p50", "list p99"
    );
    let mut overhead = None;
    for n in 1..=3 {
        let topic = format!("sharded-bench-{}-{n}", std::process::id());
        rt.block_on(ledger_kafka::admin_create_topic(
            &brokers, &topic, PARTITIONS,
        ))
        .unwrap();
        let config = work.path().join(format!("ledger-{n}.toml"));
        std::fs::write(
            &config,
            format!("[kafka]\ngroup_id = \"bench-{n}-{}\"\n", std::process::id()),
        )
        .unwrap();
        let servers: Vec<Server> = (0..n)
            .map(|i| {
                sharded(
                    &brokers,
                    &topic,
                    &work.path().join(format!("s{n}-{i}")),
                    &config,
                )
            })
            .collect();
        let first = servers[0].addr.clone();
        // Every instance has its share before the stream arrives.
        let joined = Instant::now();
        loop {
            let shares: Vec<BTreeSet<i32>> =
                servers.iter().map(|s| ready(&client, &s.addr)).collect();
            let all: BTreeSet<i32> = shares.iter().flatten().copied().collect();
            if shares.iter().all(|s| !s.is_empty()) && all.len() == PARTITIONS as usize {
                break;
            }
            assert!(
                joined.elapsed() < Duration::from_secs(120),
                "the group did not settle"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let publisher = Publisher::new(&brokers, &topic).unwrap();
        let t0 = Instant::now();
        let sent = rt
            .block_on(publisher.send_all(events.iter().map(RawRecord::event), |_| {}))
            .unwrap();
        let published = t0.elapsed().as_secs_f64();
        while applied(&client, &first) < sent {
            assert!(
                t0.elapsed() < Duration::from_secs(900),
                "ingest did not finish"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("  ({n} instances: published in {published:.1} s, applied by every owner {secs:.1} s after the first record was sent)");
        let _ = latencies(&client, &first, &by_id[..by_id.len().min(200)]);
        let mut ids_ms = latencies(&client, &first, &by_id);
        let mut list_ms = latencies(&client, &first, &lists);
        // The same stream as a backlog: a second set of n instances (its
        // own data group) started together on the full topic, rebalances
        // and drops included.
        let backlog = {
            let config = work.path().join(format!("ledger-{n}-backlog.toml"));
            std::fs::write(
                &config,
                format!(
                    "[kafka]\ngroup_id = \"bench-{n}-backlog-{}\"\n",
                    std::process::id()
                ),
            )
            .unwrap();
            let t0 = Instant::now();
            let set: Vec<Server> = (0..n)
                .map(|i| {
                    sharded(
                        &brokers,
                        &topic,
                        &work.path().join(format!("b{n}-{i}")),
                        &config,
                    )
                })
                .collect();
            while applied(&client, &set[0].addr) < sent {
                assert!(
                    t0.elapsed() < Duration::from_secs(900),
                    "catch-up did not finish"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            sent as f64 / t0.elapsed().as_secs_f64()
        };
        println!(
            "{n:>9} {:>12.0} {backlog:>13.0} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            sent as f64 / secs,
            pct(&mut ids_ms, 0.5),
            pct(&mut ids_ms, 0.99),
            pct(&mut list_ms, 0.5),
            pct(&mut list_ms, 0.99)
        );
        if n == 3 {
            // The same requests split by whether the queried instance owns
            // the id's partition.
            let mine = ready(&client, &first);
            let (local, remote): (Vec<String>, Vec<String>) =
                by_id.iter().cloned().partition(|p| {
                    let id = p.rsplit('/').next().unwrap();
                    mine.contains(
                        &Partitioner::ConsistentRandom.partition(id.as_bytes(), PARTITIONS),
                    )
                });
            let mut l = latencies(&client, &first, &local);
            let mut r = latencies(&client, &first, &remote);
            overhead = Some((
                pct(&mut l, 0.5),
                pct(&mut r, 0.5),
                pct(&mut l, 0.99),
                pct(&mut r, 0.99),
                local.len(),
                remote.len(),
            ));
        }
        drop(servers);
    }
    if let Some((l50, r50, l99, r99, nl, nr)) = overhead {
        println!(
            "forwarding (3 instances): by-id owned here p50 {l50:.2} ms / p99 {l99:.2} ms ({nl} requests); forwarded to the owner p50 {r50:.2} ms / p99 {r99:.2} ms ({nr}); overhead p50 +{:.2} ms",
            r50 - l50
        );
    }
    if started {
        common::stop_broker(work.path());
    }
}
