//! Store size over simulated days with and without retention, in one run.
//!
//! `cargo bench -p ledger-store --bench retention [-- DAYS SESSIONS_PER_DAY KEEP_DAYS GC_MS]`
//! (defaults: 10 days, 20,000 sessions a day of ~10 events each, retention
//! 3 days, 250 ms). sled reclaims space on its flusher thread, in wall-clock
//! time (at most half of every 500 ms flush interval); a simulated hour
//! takes milliseconds here, so each is followed by `GC_MS` of idle time —
//! far less than the hour a real deployment gives it. Both runs apply the same stream in 5,000-event batches; the
//! retention run purges every simulated hour at that hour's clock, after
//! closing the sessions past their deadline as the reaper would. At the end
//! of each simulated day both compact the store (`Store::copy_to`, what
//! `[store] compact_every_ms` does; `NO_COMPACT=1` to skip it). Prints, per
//! day, sessions kept and bytes on disk before and after the compaction.

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
    let gc = std::time::Duration::from_millis(args.get(3).copied().unwrap_or(250) as u64);
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
        "{days} days, {} sessions and {total} events, retention {keep} days, {gc:?} idle per simulated hour",
        per_day as i64 * days
    );
    let compact = std::env::var_os("NO_COMPACT").is_none();
    table(
        &format!("retention {keep} days, daily compaction {compact}"),
        &run(&hours, Retention::days(keep, 1), gc, compact),
    );
    table(
        &format!("no retention, daily compaction {compact}"),
        &run(&hours, Retention::days(0, 0), gc, compact),
    );
}

/// Applies every hour's events, purging at each hour's end; returns
/// (sessions kept, bytes on disk) at the end of each day.
/// One simulated day's end: sessions kept, bytes on disk before and after
/// the day's compaction, and how long the compaction took.
struct Day {
    kept: u64,
    before: u64,
    after: u64,
    took: std::time::Duration,
}

fn run(hours: &[Vec<Event>], r: Retention, gc: std::time::Duration, compact: bool) -> Vec<Day> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(dir.path(), Defaults::default()).expect("open");
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
        std::thread::sleep(gc);
        if (h + 1) % 24 == 0 {
            store.flush().expect("flush");
            let before = store.size_on_disk();
            let mut took = std::time::Duration::ZERO;
            if compact {
                // What `[store] compact_every_ms` does once a day.
                let t = std::time::Instant::now();
                let next = dir.path().join(format!("gen-{h}"));
                let fresh = store.copy_to(&next).expect("compact");
                took = t.elapsed();
                let old = std::mem::replace(&mut store, fresh);
                let old_dir = old.dir().to_path_buf();
                drop(old);
                if old_dir != dir.path() {
                    std::fs::remove_dir_all(old_dir).expect("remove");
                }
            }
            out.push(Day {
                kept: store.stats().sessions,
                before,
                after: store.size_on_disk(),
                took,
            });
        }
    }
    let problems = store.audit().expect("audit");
    assert!(problems.is_empty(), "audit: {problems:?}");
    out
}

fn table(name: &str, days: &[Day]) {
    println!("{name}");
    println!("day | sessions kept | bytes before compaction | bytes after | compaction took");
    for (d, x) in days.iter().enumerate() {
        println!(
            "{:>3} | {:>13} | {:>23} | {:>11} | {:>9.2?}",
            d + 1,
            x.kept,
            x.before,
            x.after,
            x.took
        );
    }
    let (last, mid) = (days.len() - 1, (days.len() / 2).saturating_sub(1));
    println!(
        "day {} / day {}: {:.3} before compaction, {:.3} after",
        last + 1,
        mid + 1,
        days[last].before as f64 / days[mid].before as f64,
        days[last].after as f64 / days[mid].after as f64
    );
}
