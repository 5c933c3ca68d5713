//! Store size over simulated days with and without retention, in one run.
//!
//! `cargo bench -p ledger-store --bench retention [-- DAYS SESSIONS_PER_DAY KEEP_DAYS]`
//! (defaults: 10 days, 20,000 sessions a day of ~10 events each, retention
//! 3 days). Both runs apply the same stream in 5,000-event batches; the
//! retention run purges every simulated hour at that hour's clock, after
//! closing the sessions past their deadline as the reaper would. Prints
//! sessions kept and bytes on disk at the end of each day for both runs.

use ledger_core::{reap_event, Defaults, Event};
use ledger_gen::{generate, GenConfig};
use ledger_store::{Record, Retention, Store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_790_000_000_000;

fn main() {
    let args: Vec<i64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let days = args.first().copied().unwrap_or(10);
    let per_day = args.get(1).copied().unwrap_or(20_000) as usize;
    let keep = args.get(2).copied().unwrap_or(3) as u32;
    // Each hour's sessions start within that hour; most end within it.
    let hours: Vec<Vec<Event>> = (0..days * 24)
        .map(|h| {
            generate(GenConfig {
                seed: h as u64,
                sessions: per_day / 24,
                events: per_day / 24 * 10,
                users: 2_000,
                workspaces: 50,
                start_ms: T0 + h * HOUR,
                terminal_rate: 0.9,
                block: per_day / 24 / 6,
                ..Default::default()
            })
        })
        .collect();
    let total: usize = hours.iter().map(Vec::len).sum();
    println!(
        "{days} days, {} sessions and {total} events, retention {keep} days",
        per_day as i64 * days
    );
    let with = run(&hours, Retention::days(keep, 1));
    let without = run(&hours, Retention::days(0, 0));
    println!("day | kept (retention) | bytes (retention) | kept (none) | bytes (none)");
    for d in 0..days as usize {
        println!(
            "{:>3} | {:>16} | {:>17} | {:>11} | {:>12}",
            d + 1,
            with[d].0,
            with[d].1,
            without[d].0,
            without[d].1
        );
    }
    let last = days as usize - 1;
    let mid = (days as usize / 2).saturating_sub(1);
    println!(
        "retention: day {} / day {} = {:.3}; none: {:.3}",
        last + 1,
        mid + 1,
        with[last].1 as f64 / with[mid].1 as f64,
        without[last].1 as f64 / without[mid].1 as f64
    );
}

/// Applies every hour's events, purging at each hour's end; returns
/// (sessions kept, bytes on disk) at the end of each day.
fn run(hours: &[Vec<Event>], r: Retention) -> Vec<(u64, u64)> {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Defaults::default()).expect("open");
    let mut offset = 0i64;
    let mut out = vec![];
    for (h, events) in hours.iter().enumerate() {
        for chunk in events.chunks(5_000) {
            let records: Vec<Record> = chunk
                .iter()
                .map(|e| {
                    offset += 1;
                    Record {
                        event: e.clone(),
                        partition: 0,
                        offset: offset - 1,
                    }
                })
                .collect();
            store
                .apply_batch("bench", &records, &[(0, offset)], 0)
                .expect("apply");
        }
        let now = T0 + (h as i64 + 1) * HOUR;
        // The reaper's part: sessions past their deadline are closed.
        loop {
            let due = store.due(now, 5_000).expect("due");
            if due.is_empty() {
                break;
            }
            let records: Vec<Record> = due
                .iter()
                .map(|(id, at, status, _)| {
                    offset += 1;
                    Record {
                        event: reap_event(id, *status, *at),
                        partition: 0,
                        offset: offset - 1,
                    }
                })
                .collect();
            store
                .apply_batch("bench", &records, &[(0, offset)], 0)
                .expect("reap");
        }
        while store.purge(now, &r, 1_000).expect("purge").purged == 1_000 {}
        if (h + 1) % 24 == 0 {
            store.flush().expect("flush");
            out.push((store.stats().sessions, store.size_on_disk()));
        }
    }
    let problems = store.audit().expect("audit");
    assert!(problems.is_empty(), "audit: {problems:?}");
    out
}
