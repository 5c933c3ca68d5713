//! Store-path throughput: fold + sled, no broker.
//!
//! `cargo bench -p ledger-store --bench ingest [-- EVENTS SESSIONS BATCH RUNS COMPACT PART]`
//! (defaults: 1,000,000 events over 100,000 sessions, batches of 50,000 —
//! the ingest's batch while catching up — 3 runs; COMPACT 0 skips the
//! footprint and compaction of the first run, which take minutes at 10M
//! events).
//! Each run applies the whole stream to a fresh store on disk and flushes it;
//! prints events/s and CPU time per event (the whole process's, sled's
//! threads included: steadier than wall time on a shared machine) per run
//! and their medians, and audits each run's store
//! (untimed). Batches are applied as `serve`
//! applies them while nobody reads (a [`Pace`] following a read load that
//! sees no reads: sled batches of up to `QUIET_PART` sessions, as many as
//! sled writes in about `QUIET_PART_TIME`); PART instead
//! writes in sled batches of at most PART sessions, as with reads in flight
//! (`WRITE_PART`, 100). `CACHE_MB=N` sets sled's page cache as `[store]
//! cache_mb` does (default `CACHE_BYTES`).

use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ledger_core::Defaults;
use ledger_gen::{GenConfig, Generator};
use ledger_store::{Pace, ReadLoad, Record, Store};

/// mimalloc's `purge_delay` option, set as the `session-ledger` binary sets it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // As the binary does: mimalloc's freed memory kept for reuse, and no
    // transparent huge pages (`NO_THP_OFF=1` leaves them on, to compare).
    // SAFETY: sets one of mimalloc's global options (any value is valid),
    // and calls prctl with plain integers.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        #[cfg(target_os = "linux")]
        if std::env::var_os("NO_THP_OFF").is_none() {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    };
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = args.first().copied().unwrap_or(1_000_000);
    let sessions = args.get(1).copied().unwrap_or(100_000);
    let batch = args.get(2).copied().unwrap_or(50_000);
    let runs = args.get(3).copied().unwrap_or(3);
    let compact = args.get(4).copied().unwrap_or(1) != 0;
    let part = args.get(5).copied();
    // sled's page cache, MiB (`[store] cache_mb`; the default otherwise).
    if let Some(mb) = std::env::var("CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        ledger_store::set_cache_bytes(mb << 20);
    }
    let t = Instant::now();
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
    println!(
        "generated {} events over {sessions} sessions in {:.1?}",
        records.len(),
        t.elapsed()
    );
    let mut rates = vec![];
    let mut cpus = vec![];
    for run in 1..=runs {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Defaults::default()).expect("open");
        let pace = match part {
            Some(part) => {
                store.set_write_part(part);
                Pace::none()
            }
            None => Pace::new(Arc::new(ReadLoad::default()), 1.0),
        };
        let cpu0 = cpu_secs();
        let t = Instant::now();
        for chunk in records.chunks(batch) {
            let last = chunk.last().expect("non-empty chunk");
            let offsets = [(last.partition, last.offset + 1)];
            store
                .apply_batch_paced("bench", chunk, &offsets, 0, &pace)
                .expect("apply");
        }
        store.flush().expect("flush");
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu0;
        let rate = records.len() as f64 / secs;
        let per_event = cpu * 1e6 / records.len() as f64;
        println!(
            "run {run}: {} events in {secs:.2} s = {rate:.0} events/s, {cpu:.2} CPU-s = {per_event:.2} us CPU/event (store {} MiB)",
            records.len(),
            store.size_on_disk() / (1 << 20)
        );
        // Untimed: the store the run wrote is consistent.
        let problems = store.audit().expect("audit");
        assert!(problems.is_empty(), "audit after run {run}: {problems:?}");
        println!("run {run}: audit clean");
        if run == 1 {
            let (chunks, bytes) = store.memory_index_size();
            println!(
                "  memory indexes (field, deadline): {chunks} chunks, {} B/session of keys and values",
                bytes / sessions as u64
            );
        }
        if run == 1 && !compact {
            println!(
                "  on disk {} B/session",
                store.size_on_disk() / sessions as u64
            );
        }
        if run == 1 && compact {
            let fp = store.footprint().expect("footprint");
            let total: u64 = fp.values().map(|v| v.1).sum();
            println!(
                "  on disk {} B/session; live keys+values {} B/session:",
                store.size_on_disk() / sessions as u64,
                total / sessions as u64
            );
            let compact = tempfile::tempdir().expect("tempdir");
            let before = rss();
            let t = Instant::now();
            let copy = store.copy_to(compact.path()).expect("compaction");
            println!(
                "  RSS before the compaction {} MiB (peak {}), after {} MiB (peak {})",
                before.0 >> 20,
                before.1 >> 20,
                rss().0 >> 20,
                rss().1 >> 20
            );
            println!(
                "  after a compaction (as `serve` runs every `store.compact_every_ms`, {:.1?}): {} B/session on disk",
                t.elapsed(),
                copy.size_on_disk() / sessions as u64
            );
            let cfp = copy.footprint().expect("footprint");
            let ctotal: u64 = cfp.values().map(|v| v.1).sum();
            println!(
                "  the copy's live keys+values {} B/session (session records compressed with a {}-byte dictionary); by prefix, ingested · copy:",
                ctotal / sessions as u64,
                copy.record_dictionary_bytes().unwrap_or(0)
            );
            for (prefix, (keys, bytes)) in fp {
                println!(
                    "    {prefix:<3} {keys:>9} keys {:>7} · {:>7} B/session",
                    bytes / sessions as u64,
                    cfp.get(&prefix).map_or(0, |c| c.1) / sessions as u64
                );
            }
        }
        if run == 1 {
            // What an open pays: the memory indexes rebuilt from the records.
            drop(store);
            let before = rss();
            let t = Instant::now();
            let store = Store::open_when_released(
                dir.path(),
                Defaults::default(),
                std::time::Duration::from_secs(30),
            )
            .expect("reopen");
            let (chunks, bytes) = store.memory_index_size();
            println!(
                "  reopened in {:.2?} ({chunks} memory index chunks, {} MiB, rebuilt); peak RSS {} MiB before, {} after",
                t.elapsed(),
                bytes >> 20,
                before.1 >> 20,
                rss().1 >> 20
            );
        }
        rates.push(rate);
        cpus.push(per_event);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    cpus.sort_by(|a, b| a.total_cmp(b));
    println!(
        "store path (fold + sled): median {:.0} events/s, {:.2} us CPU/event over {runs} runs",
        rates[rates.len() / 2],
        cpus[cpus.len() / 2]
    );
}

/// CPU time (user + system) this process has used, seconds: every thread,
/// sled's own included. Steadier than wall time on a shared machine.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    #[allow(unsafe_code)]
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(u.ru_utime) + secs(u.ru_stime)
}

/// This process's resident set now and at its peak, bytes (Linux; 0
/// elsewhere).
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
