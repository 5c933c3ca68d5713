//! Decoding Kafka records into events: the CPU the consumer spends on each
//! record before the fold (`cargo bench -p ledger-gen --bench decode --
//! [EVENTS] [RUNS]`; defaults 300,000 events, 5 runs). The generated stream
//! is encoded as structured-mode CloudEvents (as `generate` publishes it) and
//! decoded with [`ledger_core::event::decode_record`], keys checked. Prints
//! ns/record and records/s per run and their medians.

use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ledger_core::event::decode_record;
use ledger_gen::{GenConfig, Generator};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(300_000);
    let runs = args.get(1).copied().unwrap_or(5).max(1);
    let records: Vec<(Vec<u8>, Vec<u8>)> = Generator::new(GenConfig {
        seed: 7,
        sessions: events / 10 + 1,
        events,
        users: events / 50 + 1,
        ..Default::default()
    })
    .map(|e| {
        (
            e.session_id.clone().into_bytes(),
            e.to_json().to_string().into_bytes(),
        )
    })
    .collect();
    let bytes: usize = records.iter().map(|(_, p)| p.len()).sum();
    println!(
        "decode: {} records, {:.0} bytes/record on average",
        records.len(),
        bytes as f64 / records.len() as f64
    );
    let mut ns = Vec::with_capacity(runs);
    for run in 1..=runs {
        let started = Instant::now();
        let mut ok = 0usize;
        for (key, payload) in &records {
            if decode_record(Some(key), Some(payload), |_| None).is_ok() {
                ok += 1;
            }
        }
        let per = started.elapsed().as_nanos() as f64 / records.len() as f64;
        assert_eq!(ok, records.len(), "every generated record decodes");
        println!("run {run}: {per:.0} ns/record, {:.0} records/s", 1e9 / per);
        ns.push(per);
    }
    ns.sort_by(f64::total_cmp);
    let median = ns[ns.len() / 2];
    println!(
        "median: {median:.0} ns/record, {:.0} records/s",
        1e9 / median
    );
}
