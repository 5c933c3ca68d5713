//! Change-feed fan-out, one run: the same backlog ingested at full speed by
//! a ledger with no reader and by one with N readers of
//! `/v1/sessions/stream` (from the first change on), on the dev broker.
//! Prints ingest records/s both ways and the events/s the readers received.
//!
//!   cargo bench --bench feed -- [EVENTS] [READERS]     (default 200000 100)
//!
//! `LEDGER_BENCH_BROKER` names a running broker; otherwise one is started
//! with `scripts/dev-broker` for the run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_gen::{generate, GenConfig};
use ledger_kafka::publish::RawRecord;
use ledger_kafka::Publisher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

use common::{caught_up, serve};

/// One reader: counts the session events it receives, and when the last came.
async fn read_feed(
    addr: String,
    since: String,
    events: Arc<AtomicU64>,
    last: Arc<AtomicU64>,
    t0: Instant,
) {
    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
        return;
    };
    let req = format!(
        "GET /v1/sessions/stream?since={since} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return;
    }
    let needle = b"event: session.";
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        carry.extend_from_slice(&buf[..n]);
        let found = carry.windows(needle.len()).filter(|w| *w == needle).count() as u64;
        if found > 0 {
            events.fetch_add(found, Ordering::Relaxed);
            last.store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        let keep = carry.len().min(needle.len() - 1);
        carry.drain(..carry.len() - keep);
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let readers: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let work = tempfile::tempdir().unwrap();
    let (brokers, started) = common::broker(work.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = format!("feed-bench-{}", std::process::id());
    rt.block_on(ledger_kafka::admin_create_topic(&brokers, &topic, 3))
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut events = generate(GenConfig {
        seed: 3,
        sessions: total / 10,
        events: total,
        start_ms: now - 2 * 3_600_000,
        block: 5_000,
        ..Default::default()
    });
    let last = events.iter().map(|e| e.time_ms).max().unwrap();
    ledger_gen::shift(&mut events, now - 1_000 - last);
    let publisher = Publisher::new(&brokers, &topic).unwrap();
    let sent = rt
        .block_on(publisher.send_all(events.iter().map(RawRecord::event), |_| {}))
        .unwrap();
    drop(events);
    println!(
        "feed fan-out: {sent} records of {} sessions on 3 partitions, {readers} readers",
        total / 10
    );

    // Without readers.
    let t0 = Instant::now();
    let alone = serve(&brokers, &topic, &work.path().join("alone"), &[]);
    let secs_alone = caught_up(&alone.addr, sent, t0);
    drop(alone);

    // With readers from the first change on (a token before every offset).
    let t0 = Instant::now();
    let with = serve(&brokers, &topic, &work.path().join("with"), &[]);
    let since = format!("1..{now}.-");
    let counts: Vec<(Arc<AtomicU64>, Arc<AtomicU64>)> = (0..readers)
        .map(|_| (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))))
        .collect();
    let client = std::thread::spawn({
        let (addr, counts) = (with.addr.clone(), counts.clone());
        move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tasks: Vec<_> = counts
                    .into_iter()
                    .map(|(e, l)| tokio::spawn(read_feed(addr.clone(), since.clone(), e, l, t0)))
                    .collect();
                for t in tasks {
                    let _ = t.await;
                }
            });
        }
    });
    let secs_with = caught_up(&with.addr, sent, t0);
    // Until the readers stop receiving (caught up), then their totals.
    let received = || {
        counts
            .iter()
            .map(|(e, _)| e.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let mut before = received();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = received();
        if now == before {
            break;
        }
        before = now;
    }
    let per: Vec<u64> = counts
        .iter()
        .map(|(e, _)| e.load(Ordering::Relaxed))
        .collect();
    let last_ms = counts
        .iter()
        .map(|(_, l)| l.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    let delivered: u64 = per.iter().sum();
    let span = (last_ms as f64 / 1000.0).max(0.001);
    println!(
        "ingest alone:                {:>9.0} records/s ({secs_alone:.1} s)",
        sent as f64 / secs_alone
    );
    println!(
        "ingest with {readers:>3} readers:     {:>9.0} records/s ({secs_with:.1} s), {:.2}x of alone",
        sent as f64 / secs_with,
        secs_alone / secs_with
    );
    println!(
        "delivered to the readers:    {:>9.0} events/s in all ({delivered} events in {span:.1} s), {:.0} per reader per s; each got {}–{} events",
        delivered as f64 / span,
        delivered as f64 / span / readers as f64,
        per.iter().min().unwrap_or(&0),
        per.iter().max().unwrap_or(&0),
    );
    drop(with);
    let _ = client.join();
    if started {
        common::stop_broker(work.path());
    }
}
