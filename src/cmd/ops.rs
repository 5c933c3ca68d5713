//! `rebuild` (replay the topic into a fresh store, then swap), `inspect`
//! and `audit`.

use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use ledger_kafka::{IngestConfig, Ingestor, Metrics};
use ledger_store::{index_keys, Store};
use serde_json::json;

use crate::config::Config;

/// Replays the topic into a fresh store beside the live one, then swaps it
/// in; the previous store is kept aside, or removed with `remove_old` (what
/// makes an erasure's bytes leave the disk).
pub fn rebuild(cfg: Config, remove_old: bool) -> anyhow::Result<()> {
    let target = cfg.store.path.clone();
    let fresh = target.with_extension("rebuild");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)?;
    }
    let store = Store::open(&fresh, cfg.defaults)?;
    // What the live store removed stays removed: its markers go first, so
    // the replay never writes a purged or erased session (compaction).
    match Store::open(&target, cfg.defaults) {
        Ok(old) => {
            let n = store.seed_removals(&old)?;
            println!("carried {n} markers of purged or erased sessions over");
        }
        Err(e) if target.exists() => println!(
            "the previous store cannot be read ({e}); replaying without its markers: \
             sessions it purged come back until retention purges them again, and \
             erasures are applied again where the topic holds them"
        ),
        Err(_) => {}
    }
    let ingest = Ingestor::new(
        IngestConfig {
            group_id: format!("{}-rebuild", cfg.kafka.group_id),
            dead_letter: ledger_kafka::DeadLetters::None,
            ..cfg.kafka.ingest_config()
        },
        store.clone(),
        Metrics::default(),
    )
    .spawn();
    let pb = ProgressBar::new(0);
    pb.set_style(
        ProgressStyle::with_template("replaying {bar:40} {pos}/{len} records {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if std::env::var_os("CI").is_some() {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let started = std::time::Instant::now();
    loop {
        let parts = ingest.progress.partitions();
        pb.set_length(parts.values().map(|p| p.start_high_watermark as u64).sum());
        pb.set_position(parts.values().map(|p| p.next_offset as u64).sum());
        if ingest.progress.ready() {
            break;
        }
        anyhow::ensure!(
            !ingest.finished(),
            "the consumer stopped before catching up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let records = pb.position();
    pb.finish_and_clear();
    ingest.stop().context("stopping the replay")?;
    store.flush()?;
    let stats = store.stats();
    drop(store);
    if target.exists() && remove_old {
        std::fs::remove_dir_all(&target)?;
        println!("previous store removed");
    } else if target.exists() {
        let old = target.with_extension(format!(
            "old-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        ));
        std::fs::rename(&target, &old)?;
        println!("previous store kept at {}", old.display());
    }
    std::fs::rename(&fresh, &target)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {} sessions from {records} records in {secs:.1} s ({:.0} records/s) into {}",
        stats.sessions,
        records as f64 / secs.max(1e-9),
        target.display()
    );
    Ok(())
}

/// Starts an online rebuild of the server at `url` and follows it to the end.
pub fn rebuild_online(url: &str, key: Option<&str>, from_store: bool) -> anyhow::Result<()> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let call = |req: reqwest::blocking::RequestBuilder| -> anyhow::Result<serde_json::Value> {
        let req = match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let r = req.send().with_context(|| format!("reaching {url}"))?;
        let status = r.status();
        let body: serde_json::Value = r.json().unwrap_or_default();
        anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
        Ok(body)
    };
    let from = if from_store { "store" } else { "topic" };
    call(client.post(format!("{url}/admin/rebuild?from={from}")))?;
    println!("online rebuild from the {from} started on {url}; it keeps serving meanwhile");
    let started = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let s = call(client.get(format!("{url}/admin/rebuild")))?;
        match s["state"].as_str().unwrap_or_default() {
            "done" => {
                let mib = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0) / 1_048_576.0;
                println!(
                    "switched after {:.1} s ({} records replayed; ingestion paused {} ms): store {:.1} MiB → {:.1} MiB",
                    started.elapsed().as_secs_f64(),
                    s["replayed"].as_u64().unwrap_or(0),
                    s["pause_ms"],
                    mib(&s["bytes_before"]),
                    mib(&s["bytes_after"])
                );
                return Ok(());
            }
            "failed" => anyhow::bail!("the rebuild failed: {}", s["error"]),
            state => {
                tracing::debug!(state, replayed = %s["replayed"], target = %s["target"], "rebuilding")
            }
        }
    }
}

pub fn inspect(cfg: Config, id: &str) -> anyhow::Result<()> {
    let store = Store::open(&cfg.store.path, cfg.defaults)
        .context("opening the store (is `serve` running on it?)")?;
    let Some(stored) = store.stored(id)? else {
        anyhow::bail!("no session {id}");
    };
    let keys: Vec<String> = index_keys(&stored.session, stored.partition)
        .iter()
        .map(|k| k.escape_ascii().to_string())
        .collect();
    let history: Vec<serde_json::Value> = store
        .history(id)?
        .into_iter()
        .map(|e| {
            json!({
                "seq": e.seq, "id": e.id(), "type": e.kind(), "time": e.time(),
                "outcome": e.outcome, "partition": e.partition, "offset": e.offset,
                "event": e.event,
            })
        })
        .collect();
    let out = json!({
        "session": stored.session,
        "partition": stored.partition,
        "history_len": stored.history_len,
        "index_entries": keys,
        "history": history,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Audits the store (`Store::audit`): prints what it checked, then each
/// problem; an error when there is any.
pub fn audit(cfg: Config) -> anyhow::Result<()> {
    let store = Store::open(&cfg.store.path, cfg.defaults)
        .context("opening the store (is `serve` running on it?)")?;
    let problems = store.audit()?;
    let stats = store.stats();
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("audit clean: {} sessions", stats.sessions);
        Ok(())
    } else {
        anyhow::bail!(
            "audit found {} problem(s) in {} sessions",
            problems.len(),
            stats.sessions
        )
    }
}
