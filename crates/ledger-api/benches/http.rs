//! HTTP benchmark of the four views over a store of 1M sessions, driven by
//! `wrk` (Debian's package; `scripts/bench-http` installs it when missing).
//!
//! `scripts/bench-http [SESSIONS] [VIEW…]` (default 1,000,000, every view). The store is built
//! once (fold + store, from a seeded stream, then the reaper's events for
//! every session past its deadline, as a running ledger has them) into the
//! user cache outside the clone and reused. The server runs in this process (2 worker threads, API
//! key auth on, a fixed clock so every run reads the same sessions); wrk runs
//! beside it on the same 2 cores, so figures include the load generator's
//! share of the CPU.
//!
//! Prints, per view: get-by-id requests/s (random ids, 2 threads, 32
//! connections, 10 s) and the first list page's p50/p99 latency (1 thread,
//! 4 connections, 10 s), each from wrk's `--latency` report.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

#[path = "../tests/support/mod.rs"]
mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ledger_api::{hash_key, ApiKey, AppState, Auth, Scope};
use ledger_core::Defaults;
use ledger_gen::{GenConfig, Generator};
use ledger_store::{Record, Store};
use ledger_testkit::wrk::Figures;

const START: i64 = 1_795_000_000_000;
const KEY: &str = "sk_bench_http";

fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    base.join("session-ledger")
}

/// Builds (or reuses) the store; returns it with its `now` and sampled ids.
fn store(sessions: usize) -> (Store, i64, Vec<String>) {
    // Named by the store's format: a store of another format is rebuilt.
    let dir = cache_dir().join(format!(
        "bench-http-{sessions}-format{}",
        ledger_store::FORMAT
    ));
    let done = dir.join("complete");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(dir.join("store"), Defaults::default()).expect("open");
        let t = Instant::now();
        let mut batch = Vec::with_capacity(5_000);
        let (mut n, mut last_ms) = (0i64, START);
        let mut ids = std::fs::File::create(dir.join("ids.txt")).expect("ids");
        for event in Generator::new(GenConfig {
            seed: 3,
            sessions,
            events: sessions * 3 / 2,
            users: sessions / 20,
            clients: 5_000,
            agents: 500,
            workspaces: 200,
            start_ms: START,
            block: 20_000,
            ..Default::default()
        }) {
            last_ms = last_ms.max(event.time_ms);
            if event.kind == ledger_core::EventKind::Created && n % 10 == 0 {
                writeln!(ids, "{}", event.session_id).expect("ids");
            }
            batch.push(Record {
                partition: 0,
                offset: n,
                event,
            });
            n += 1;
            if batch.len() == 5_000 {
                store
                    .apply_batch("bench", &batch, &[(0, n)], 0)
                    .expect("apply");
                batch.clear();
            }
        }
        store
            .apply_batch("bench", &batch, &[(0, n)], 0)
            .expect("apply");
        store.flush().expect("flush");
        std::fs::write(&done, (last_ms + 60_000).to_string()).expect("marker");
        eprintln!(
            "built a store of {} sessions from {n} events in {:.0?}",
            store.stats().sessions,
            t.elapsed()
        );
    }
    let now: i64 = std::fs::read_to_string(&done)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // A running ledger's reaper closes sessions at their deadlines; apply its
    // events (as it would publish them) so the store is in that steady state.
    let reaped = dir.join("reaped");
    if !reaped.exists() {
        let store = Store::open(dir.join("store"), Defaults::default()).expect("open");
        let mut offset = store.offsets("bench").expect("offsets")[&0];
        let due = store.due(now, usize::MAX).expect("due");
        for chunk in due.chunks(5_000) {
            let batch: Vec<Record> = chunk
                .iter()
                .map(|(id, at, status, _)| {
                    offset += 1;
                    Record {
                        partition: 0,
                        offset: offset - 1,
                        event: ledger_core::reap_event(id, *status, *at),
                    }
                })
                .collect();
            store
                .apply_batch("bench", &batch, &[(0, offset)], 0)
                .expect("apply");
        }
        store.flush().expect("flush");
        std::fs::write(&reaped, due.len().to_string()).expect("marker");
        eprintln!("reaped {} sessions past their deadline", due.len());
    }
    let ids = std::fs::read_to_string(dir.join("ids.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    (
        Store::open(dir.join("store"), Defaults::default()).expect("open"),
        now,
        ids,
    )
}

fn wrk(url: &str, script: &Path, threads: u32, conns: u32) -> Figures {
    let out = Command::new("wrk")
        .args(["--latency", "-d", "10s"])
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .expect("run wrk (scripts/bench-http installs it)");
    ledger_testkit::wrk::parse(&String::from_utf8_lossy(&out.stdout))
}

fn lua(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn main() {
    let sessions: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let (store, now, ids) = store(sessions);
    let stats = store.stats();
    println!(
        "store: {} sessions, {:.0} MiB on disk; {} sampled ids",
        stats.sessions,
        store.size_on_disk() as f64 / (1 << 20) as f64,
        ids.len()
    );
    let auth = Auth::new(vec![ApiKey {
        name: "bench".into(),
        sha256: hash_key(KEY),
        scope: Scope::Admin,
    }]);
    let state = AppState::new(
        store,
        "bench",
        auth,
        Arc::new(move || now),
        Default::default(),
    );

    // elizaOS answers one session only while it is live (410 once expired):
    // its gets draw from live sessions.
    let store = state.store();
    let live: Vec<String> = store
        .matching(
            &ledger_store::Filter {
                status: Some(ledger_core::Status::Active),
                ..Default::default()
            },
            ledger_store::Order::NewestFirst,
            None,
            now,
        )
        .unwrap()
        .take(50_000)
        .map(|s| s.unwrap().id)
        .collect();
    println!("{} live sessions sampled for elizaOS", live.len());
    let server = support::serve(state);
    let base = &server.base;
    let tmp = tempfile::tempdir().unwrap();
    let ids_file = tmp.path().join("ids.txt");
    std::fs::write(&ids_file, ids.join("\n")).unwrap();
    let live_file = tmp.path().join("live.txt");
    std::fs::write(&live_file, live.join("\n")).unwrap();
    let get_script = |prefix: &str, file: &Path| {
        lua(
            tmp.path(),
            &format!("get{}.lua", prefix.replace('/', "_")),
            &format!(
                r#"local ids = {{}}
for line in io.lines("{}") do ids[#ids + 1] = line end
math.randomseed(os.time() + tonumber(tostring({{}}):sub(8), 16))
wrk.headers["Authorization"] = "Bearer {KEY}"
request = function()
  return wrk.format("GET", "{prefix}" .. ids[math.random(#ids)])
end
"#,
                file.display()
            ),
        )
    };
    let list_script = |name: &str, method: &str, body: &str| {
        lua(
            tmp.path(),
            name,
            &format!(
                r#"wrk.method = "{method}"
wrk.headers["Authorization"] = "Bearer {KEY}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{body}'
"#
            ),
        )
    };
    let user = "user_42";
    let views: [(&str, PathBuf, String, PathBuf, String); 4] = [
        (
            "Clerk",
            get_script("/v1/sessions/", &ids_file),
            format!("{base}/v1/sessions/"),
            list_script("clerk_list.lua", "GET", ""),
            format!("{base}/v1/sessions?limit=10"),
        ),
        (
            "orq.ai",
            get_script("/v2/traces/sessions/", &ids_file),
            format!("{base}/v2/traces/sessions/"),
            list_script(
                "orq_list.lua",
                "POST",
                r#"{"pagination":{"limit":50},"query":{"filters":[{"path":"/status","operator":"is","value":"active"}]}}"#,
            ),
            format!("{base}/v2/traces/sessions/query"),
        ),
        (
            "Wingspan",
            get_script("/users/session/token/", &ids_file),
            format!("{base}/users/session/token/"),
            list_script("wingspan_list.lua", "GET", ""),
            format!("{base}/users/session/api?userId={user}"),
        ),
        (
            "elizaOS",
            get_script("/api/messaging/sessions/", &live_file),
            format!("{base}/api/messaging/sessions/"),
            list_script("eliza_list.lua", "GET", ""),
            format!("{base}/api/messaging/sessions?limit=100"),
        ),
    ];
    println!(
        "{:<9} {:>14} {:>10} {:>10} {:>10} {:>12}",
        "view", "get req/s", "list p50", "list p99", "list req/s", "non-2xx"
    );
    // Optional view names after the session count run only those views.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a.parse::<usize>().is_err() && !a.starts_with('-'))
        .map(|a| a.to_lowercase())
        .collect();
    for (name, get_lua, get_url, list_lua, list_url) in &views {
        if !only.is_empty()
            && !only
                .iter()
                .any(|o| name.to_lowercase().starts_with(o.as_str()))
        {
            continue;
        }
        let g = wrk(get_url, get_lua, 1, 32);
        let l = wrk(list_url, list_lua, 1, 4);
        println!(
            "{name:<9} {:>14.0} {:>8.2}ms {:>8.2}ms {:>10.0} {:>12}",
            g.rps,
            l.p50_ms,
            l.p99_ms,
            l.rps,
            g.non_2xx + l.non_2xx
        );
    }
}
