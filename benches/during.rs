//! Reads while ingesting, one run: a ledger (`serve`, on the dev broker)
//! holding SESSIONS sessions is restarted behind a backlog of BACKLOG more
//! records, and two `wrk` runs of 32 connections each — by-id GETs and
//! list pages of the Clerk view — measure latency while it catches up and
//! again once it has, and once before the backlog right after a restart
//! (sled's cache cold, nothing to ingest). Prints p50 / p99 / max of each
//! phase, the catch-up rate, the store's bytes per session on disk and the
//! ledger's peak RSS, and the CPU seconds the ledger (its readers' side
//! and ingestion) and the broker used in each phase.
//!
//!   scripts/bench-http --during-ingest [SESSIONS] [BACKLOG] [SECONDS]
//!   cargo bench --bench during -- [SESSIONS] [BACKLOG] [SECONDS]
//!
//! Defaults: 1,000,000 sessions (1.5M records), a backlog of 1,000,000
//! records (100,000 new sessions), 30 s per phase. `LEDGER_BENCH_BROKER`
//! names a running broker; otherwise one is started with
//! `scripts/dev-broker` for the run. `LEDGER_BENCH_CONFIG` names a
//! configuration file every `serve` of the run reads (to compare
//! settings, e.g. `[kafka] write_share`). `wrk` is Debian's package
//! (`scripts/bench-http` installs it when missing).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ledger_gen::{GenConfig, Generator};
use ledger_kafka::publish::RawRecord;
use ledger_kafka::Publisher;
use ledger_testkit::wrk::{self, Figures};

mod common;

use common::{applied, caught_up, metric};

/// Publishes `events` events of `sessions` sessions (seed `seed`), their
/// times ending `end_ms`; returns how many were sent and a sample of ids.
fn publish(
    rt: &tokio::runtime::Runtime,
    publisher: &Publisher,
    seed: u64,
    sessions: usize,
    events: usize,
    end_ms: i64,
) -> (u64, Vec<String>) {
    let span_ms = 4 * 3_600_000;
    let cfg = GenConfig {
        seed,
        sessions,
        events,
        users: (sessions / 20).max(1),
        clients: 5_000,
        agents: 500,
        workspaces: 200,
        start_ms: end_ms - span_ms,
        block: 20_000,
        ..Default::default()
    };
    let mut ids = vec![];
    let records = Generator::new(cfg).map(|e| {
        if e.kind == ledger_core::EventKind::Created && ids.len() < 100_000 {
            ids.push(e.session_id.clone());
        }
        RawRecord::event(&e)
    });
    let t = Instant::now();
    let sent = rt
        .block_on(publisher.send_all(records, |_| {}))
        .expect("publish");
    eprintln!(
        "published {sent} records of {sessions} sessions in {:.0?}",
        t.elapsed()
    );
    (sent, ids)
}

fn start_wrk(url: &str, script: &Path, secs: u64) -> Child {
    Command::new("wrk")
        .args(["--latency", "-t1", "-c32"])
        .arg(format!("-d{secs}s"))
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run wrk (scripts/bench-http installs it)")
}

fn finish_wrk(child: Child) -> Figures {
    let out = child.wait_with_output().expect("wrk");
    wrk::parse(&String::from_utf8_lossy(&out.stdout))
}

/// Peak resident set of a process, bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    status_bytes(pid, "VmHWM:")
}

/// A size `field` of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), bytes; 0 if
/// unreadable.
fn status_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The largest resident set of the process it is pointed at, by phase:
/// `/proc/<pid>/status` `VmRSS` sampled every 200 ms on a thread of its own.
struct RssWatch {
    state: std::sync::Arc<std::sync::Mutex<Peaks>>,
}

/// The pid watched, the phase, and each phase's largest sample, bytes.
type Peaks = (u32, &'static str, Vec<(&'static str, u64)>);

impl RssWatch {
    fn start() -> Self {
        let state: std::sync::Arc<std::sync::Mutex<Peaks>> = Default::default();
        let s = state.clone();
        std::thread::spawn(move || loop {
            let (pid, phase) = {
                let g = s.lock().unwrap();
                (g.0, g.1)
            };
            if pid != 0 && !phase.is_empty() {
                let rss = status_bytes(pid, "VmRSS:");
                let mut g = s.lock().unwrap();
                if g.1 == phase {
                    match g.2.iter_mut().find(|(p, _)| *p == phase) {
                        Some((_, max)) => *max = (*max).max(rss),
                        None => g.2.push((phase, rss)),
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        });
        Self { state }
    }

    /// From now on, samples of `pid` count for `phase`.
    fn phase(&self, pid: u32, phase: &'static str) {
        let mut g = self.state.lock().unwrap();
        g.0 = pid;
        g.1 = phase;
    }

    /// `phase max MiB, …` in the order the phases came.
    fn summary(&self) -> String {
        let g = self.state.lock().unwrap();
        g.2.iter()
            .map(|(p, b)| format!("{p} {:.0}", *b as f64 / (1 << 20) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// CPU seconds (user + sys) a `/proc/.../stat` line reports, and the nice
/// value it gives; clock ticks are 1/100 s (Linux's USER_HZ).
fn stat_cpu(stat: &str) -> Option<(f64, i64)> {
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((ticks as f64 / 100.0, f.get(16)?.parse().ok()?))
}

/// CPU seconds used so far: the ledger's threads at nice 0 (HTTP workers),
/// the ledger in all (threads that ended included; the rest is ingestion,
/// rebuilds and compactions, which run at a lower priority), and the broker.
#[derive(Clone, Copy, Default)]
struct Cpu {
    readers: f64,
    ledger: f64,
    broker: f64,
}

impl Cpu {
    fn now(ledger: u32, broker: Option<u32>) -> Self {
        let read = |p: String| std::fs::read_to_string(p).ok();
        let total = |pid: u32| read(format!("/proc/{pid}/stat")).and_then(|s| stat_cpu(&s));
        let readers = std::fs::read_dir(format!("/proc/{ledger}/task"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|t| read(t.path().join("stat").display().to_string()))
                    .filter_map(|s| stat_cpu(&s))
                    .filter(|(_, nice)| *nice == 0)
                    .map(|(cpu, _)| cpu)
                    .sum()
            })
            .unwrap_or(0.0);
        Self {
            readers,
            ledger: total(ledger).map_or(0.0, |c| c.0),
            broker: broker.and_then(total).map_or(0.0, |c| c.0),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            readers: self.readers - before.readers,
            ledger: self.ledger - before.ledger,
            broker: self.broker - before.broker,
        }
    }

    fn line(&self, phase: &str, secs: u64) {
        println!(
            "cpu s in the {phase} phase ({secs} s): ledger {:.1} (nice-0 threads {:.1}, ingestion {:.1}), broker {:.1}",
            self.ledger,
            self.readers,
            self.ledger - self.readers,
            self.broker
        );
    }
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Runs a by-id and a list wrk at once for `secs`.
fn phase(addr: &str, get: &Path, list: &Path, secs: u64) -> (Figures, Figures) {
    let g = start_wrk(&format!("http://{addr}/v1/sessions/"), get, secs);
    let l = start_wrk(&format!("http://{addr}/v1/sessions?limit=10"), list, secs);
    (finish_wrk(g), finish_wrk(l))
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sessions = args.first().copied().unwrap_or(1_000_000) as usize;
    let backlog = args.get(1).copied().unwrap_or(1_000_000) as usize;
    let secs = args.get(2).copied().unwrap_or(30);
    // `LEDGER_BENCH_CONFIG`: a configuration file every `serve` reads.
    let config = std::env::var("LEDGER_BENCH_CONFIG").ok();
    let extra: Vec<&str> = config
        .iter()
        .flat_map(|c| ["--config", c.as_str()])
        .collect();
    // `wrk` is needed only after the first ingest (minutes): checked first.
    let wrk_found = Command::new("wrk").arg("--version").output().is_ok();
    assert!(wrk_found, "wrk not found (scripts/bench-http installs it)");
    let work = tempfile::tempdir().unwrap();
    let (brokers, started) = common::broker(work.path());
    // The broker's process, for its CPU: the one started here, or
    // `LEDGER_BENCH_BROKER_PID`.
    let broker_pid: Option<u32> = std::env::var("LEDGER_BENCH_BROKER_PID")
        .ok()
        .or_else(|| std::fs::read_to_string(work.path().join("broker/broker.pid")).ok())
        .and_then(|p| p.trim().parse().ok());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topic = format!("during-bench-{}", std::process::id());
    rt.block_on(ledger_kafka::admin_create_topic(&brokers, &topic, 3))
        .unwrap();
    let publisher = Publisher::new(&brokers, &topic).unwrap();
    let now = chrono::Utc::now().timestamp_millis();

    // The store: SESSIONS sessions, ingested by `serve` and flushed.
    let (base, ids) = publish(
        &rt,
        &publisher,
        3,
        sessions,
        sessions * 3 / 2,
        now - 3_600_000,
    );
    let data = work.path().join("data");
    let t0 = Instant::now();
    let server = common::serve(&brokers, &topic, &data, &extra);
    let rss_watch = RssWatch::start();
    rss_watch.phase(server.pid(), "first ingest");
    let secs_base = caught_up(&server.addr, base, t0);
    eprintln!("the ledger ingested {base} records in {secs_base:.1} s");
    let ingested_bytes = dir_size(&data);
    // Caught up, the ledger compacts a store whose files outgrew its data
    // (`[store] compact_when_grown`): let it finish before measuring.
    rss_watch.phase(server.pid(), "its compaction");
    let compaction = compacted(&server.addr, Duration::from_secs(30));
    drop(server);
    let compacted_bytes = dir_size(&data);

    let tmp = work.path();
    let ids_file = tmp.join("ids.txt");
    std::fs::write(&ids_file, ids.join("\n")).unwrap();
    let get = tmp.join("get.lua");
    std::fs::write(
        &get,
        format!(
            r#"local ids = {{}}
for line in io.lines("{}") do ids[#ids + 1] = line end
math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16))
request = function()
  return wrk.format("GET", "/v1/sessions/" .. ids[math.random(#ids)])
end
"#,
            ids_file.display()
        ),
    )
    .unwrap();
    let list = tmp.join("list.lua");
    std::fs::write(&list, "wrk.method = \"GET\"\n").unwrap();

    // Cold and idle: a restarted ledger with nothing to ingest, so that the
    // cost of a cold cache is told apart from the cost of ingesting.
    let server = common::serve(&brokers, &topic, &data, &extra);
    rss_watch.phase(server.pid(), "cold idle");
    let c0 = Cpu::now(server.pid(), broker_pid);
    let (cold_get, cold_list) = phase(&server.addr, &get, &list, secs);
    let cold_cpu = Cpu::now(server.pid(), broker_pid).since(c0);
    drop(server);

    // The backlog, published while the ledger is down.
    let (more, _) = publish(&rt, &publisher, 4, backlog / 10, backlog, now);
    let total = base + more;

    // Catch-up: the ledger restarts behind the backlog, readers start at once.
    let t0 = Instant::now();
    let server = common::serve(&brokers, &topic, &data, &extra);
    rss_watch.phase(server.pid(), "during");
    let c0 = Cpu::now(server.pid(), broker_pid);
    let (during_get, during_list) = phase(&server.addr, &get, &list, secs);
    let during_cpu = Cpu::now(server.pid(), broker_pid).since(c0);
    let in_phase = applied(&server.addr).saturating_sub(base);
    let turn_wait = metric(&server.addr, "ledger_http_write_turn_wait_seconds_total");
    let paused = metric(&server.addr, "ledger_ingest_paused_seconds_total");
    rss_watch.phase(server.pid(), "rest of catch-up");
    let secs_catch_up = caught_up(&server.addr, total, t0);
    // Caught up, the ledger may compact (its files outgrew its data): the
    // after phase measures the steady state, once that is done.
    rss_watch.phase(server.pid(), "compaction");
    let after_compaction = compacted(&server.addr, Duration::from_secs(15));
    // After: idle ingestion, the same readers.
    rss_watch.phase(server.pid(), "after");
    let c0 = Cpu::now(server.pid(), broker_pid);
    let (after_get, after_list) = phase(&server.addr, &get, &list, secs);
    let after_cpu = Cpu::now(server.pid(), broker_pid).since(c0);
    let rss = peak_rss(server.pid());
    let rebuild = rebuild_status(&server.addr);
    let rebuilds = rebuild["completed"].as_u64().unwrap_or(0);
    let running = matches!(
        rebuild["state"].as_str(),
        Some("copying" | "switching" | "replaying")
    );
    drop(server);
    let on_disk = dir_size(&data);
    let stored = sessions + backlog / 10;

    println!(
        "reads during and after catch-up: {sessions} sessions + a backlog of {more} records ({} new sessions), dev broker, 3 partitions",
        backlog / 10
    );
    println!(
        "catch-up: {more} records in {secs_catch_up:.1} s = {:.0} records/s ({in_phase} applied during the {secs} s read phase)",
        more as f64 / secs_catch_up
    );
    println!(
        "in the read phase ingestion paused {paused:.1} s for the readers (write_share), and requests waited {turn_wait:.2} s in all for its write turns (write_floor)"
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>10} {:>8}",
        "", "p50 ms", "p99 ms", "max ms", "requests", "non-2xx"
    );
    for (name, l) in [
        ("by id, cold idle", &cold_get),
        ("by id, during", &during_get),
        ("by id, after", &after_get),
        ("list, cold idle", &cold_list),
        ("list, during", &during_list),
        ("list, after", &after_list),
    ] {
        println!(
            "{name:<22} {:>9.2} {:>9.2} {:>9.2} {:>10} {:>8}",
            l.p50_ms, l.p99_ms, l.max_ms, l.requests, l.non_2xx
        );
    }
    cold_cpu.line("cold idle", secs);
    during_cpu.line("during", secs);
    after_cpu.line("after", secs);
    for (name, d, a) in [
        ("by id", &during_get, &after_get),
        ("list", &during_list, &after_list),
    ] {
        println!(
            "{name}: p99 during / after = {:.2} (goal <= 1.5); max during - p99 after = {:.1} ms (goal <= 50)",
            d.p99_ms / a.p99_ms,
            d.max_ms - a.p99_ms
        );
    }
    if let Some(secs) = after_compaction {
        println!("caught up, the ledger compacted its store in {secs:.1} s before the after phase");
    }
    match compaction {
        Some(secs) => println!(
            "store after the first ingest: {} bytes/session; the ledger's own compaction (online copy) took {secs:.1} s and left {} bytes/session",
            ingested_bytes / sessions as u64,
            compacted_bytes / sessions as u64,
        ),
        None => println!(
            "store after the first ingest: {} bytes/session; the ledger did not compact it",
            ingested_bytes / sessions as u64
        ),
    }
    println!(
        "store: {:.1} MiB on disk for {stored} sessions = {} bytes/session (goal <= 1,000), {rebuilds} compaction(s) finished during catch-up and after{}; peak RSS {:.0} MiB (goal <= 1,024)",
        on_disk as f64 / (1 << 20) as f64,
        on_disk / stored as u64,
        if running {
            ", one still running at the end (its copy is in the size)"
        } else {
            ""
        },
        rss as f64 / (1 << 20) as f64
    );
    println!("largest RSS sampled by phase, MiB: {}", rss_watch.summary());
    // What the store holds, by key prefix (live keys and values; sled's
    // files hold more: page versions, half-live segments).
    let store = ledger_store::Store::open(&data, ledger_core::Defaults::default())
        .expect("open the ledger's store");
    // The store `serve` left (killed, as the phases' ends are): consistent.
    let problems = store.audit().expect("audit the ledger's store");
    println!(
        "audit of the store after the run: {}",
        if problems.is_empty() {
            "clean".to_string()
        } else {
            format!("{} problem(s): {}", problems.len(), problems.join("; "))
        }
    );
    match store.footprint() {
        Ok(fp) => {
            let total: u64 = fp.values().map(|v| v.1).sum();
            let parts: Vec<String> = fp
                .iter()
                .filter(|(_, (_, bytes))| bytes / stored as u64 > 0)
                .map(|(p, (_, bytes))| format!("{p} {}", bytes / stored as u64))
                .collect();
            println!(
                "store's live keys and values: {} bytes/session ({})",
                total / stored as u64,
                parts.join(", ")
            );
        }
        Err(e) => println!("store's live keys and values: not read ({e})"),
    }
    drop(store);
    if started {
        common::stop_broker(work.path());
    }
    assert!(problems.is_empty(), "the store's audit found problems");
}

/// `GET /admin/rebuild` of the `serve` at `addr` (null if unanswered).
fn rebuild_status(addr: &str) -> serde_json::Value {
    reqwest::blocking::get(format!("http://{addr}/admin/rebuild"))
        .and_then(|r| r.json())
        .unwrap_or_default()
}

/// Waits up to `start` for the `serve` at `addr` to begin a compaction,
/// then for it to end; the seconds it took, or `None` if none began.
fn compacted(addr: &str, start: Duration) -> Option<f64> {
    let t0 = Instant::now();
    while matches!(rebuild_status(addr)["state"].as_str(), None | Some("idle")) {
        if t0.elapsed() > start {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let began = Instant::now();
    loop {
        let s = rebuild_status(addr);
        match s["state"].as_str() {
            Some("done") => return Some(began.elapsed().as_secs_f64()),
            Some("failed") => panic!("the ledger's compaction failed: {s}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
