//! Reads while a batch is written: how long a by-id read and a list page
//! wait behind `apply_batch`, for several write-part sizes, in one run.
//!
//! `cargo bench -p ledger-store --bench reads [-- EVENTS SESSIONS BATCH]`
//! (defaults: 1,000,000 events over 100,000 sessions in batches of 50,000 —
//! the ingest's batch while catching up). For each part size the stream is
//! applied to a fresh store while two threads read (one by id, one list
//! pages); prints the store path's events/s and each reader's p50/p99/max.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger_core::Defaults;
use ledger_gen::{GenConfig, Generator};
use ledger_store::{Filter, Order, Record, Start, Store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(1_000_000);
    let sessions = args.get(1).copied().unwrap_or(100_000);
    let batch = args.get(2).copied().unwrap_or(50_000);
    let records: Vec<Record> = Generator::new(GenConfig {
        seed: 1,
        sessions,
        events,
        users: 20_000,
        clients: 2_000,
        agents: 200,
        workspaces: 100,
        duplicate_rate: 0.01,
        out_of_order_rate: 0.02,
        block: 5_000,
        ..Default::default()
    })
    .enumerate()
    .map(|(i, event)| Record {
        partition: (i % 3) as i32,
        offset: (i / 3) as i64,
        event,
    })
    .collect();
    let ids: Arc<Vec<String>> = Arc::new(
        records
            .iter()
            .step_by(97)
            .map(|r| r.event.session_id.clone())
            .collect(),
    );
    println!(
        "{} events over {sessions} sessions in batches of {batch}; readers: by id, list pages of 20",
        records.len()
    );
    println!("write part (sessions) | events/s | by-id p50 / p99 / max | list p50 / p99 / max");
    for part in [usize::MAX, 2_000, 1_000, 500, 250, 100] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Defaults::default()).expect("open");
        store.set_write_part(part);
        let stop = Arc::new(AtomicBool::new(false));
        let reader = |list: bool| {
            let (store, stop, ids) = (store.clone(), stop.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut lat = vec![];
                let mut i = 0;
                while !stop.load(Ordering::Acquire) {
                    i += 1;
                    let t = Instant::now();
                    if list {
                        let f = Filter::default();
                        let _ = store.list(&f, Order::NewestFirst, &Start::Offset(0), 20, 0);
                    } else {
                        let _ = store.get(&ids[i % ids.len()]);
                    }
                    lat.push(t.elapsed());
                    std::thread::sleep(Duration::from_micros(200));
                }
                lat
            })
        };
        let (by_id, list) = (reader(false), reader(true));
        let t = Instant::now();
        for chunk in records.chunks(batch) {
            let last = chunk.last().expect("non-empty chunk");
            store
                .apply_batch("bench", chunk, &[(last.partition, last.offset + 1)], 0)
                .expect("apply");
        }
        store.flush().expect("flush");
        let rate = records.len() as f64 / t.elapsed().as_secs_f64();
        stop.store(true, Ordering::Release);
        let (a, b) = (by_id.join().expect("reader"), list.join().expect("reader"));
        assert!(store.audit().expect("audit").is_empty());
        let name = if part == usize::MAX {
            "one batch".to_string()
        } else {
            part.to_string()
        };
        println!("{name:>21} | {rate:>8.0} | {} | {}", summary(a), summary(b));
    }
}

fn summary(mut lat: Vec<Duration>) -> String {
    lat.sort();
    let q = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    format!(
        "{:.2} / {:.2} / {:.1} ms",
        q(0.5).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        q(1.0).as_secs_f64() * 1e3
    )
}
