//! `serve`: consumer + store + API + reaper in one process.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ledger_api::{ApiKey, AppState, Auth, IngestHealth, Scope};
use ledger_kafka::{Ingestor, Metrics, Reaper, ReaperConfig};
use ledger_store::{LiveStore, Store};
use prometheus_client::registry::Registry;

use crate::config::{ClusterMode, Config};

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested; finishing the batch in flight");
}

fn auth(cfg: &Config) -> anyhow::Result<Auth> {
    if cfg.auth.disabled {
        tracing::warn!("authentication is DISABLED: every request is admin (local demo use only)");
        return Ok(Auth::disabled());
    }
    if cfg.auth.keys.is_empty() {
        tracing::warn!("no API keys configured: every API request will be answered 401");
    }
    let keys = cfg
        .auth
        .keys
        .iter()
        .map(|k| {
            let scope = Scope::parse(&k.scope)
                .with_context(|| format!("key `{}`: bad scope `{}`", k.name, k.scope))?;
            anyhow::ensure!(
                k.sha256.len() == 64,
                "key `{}`: sha256 must be 64 hex characters",
                k.name
            );
            Ok(ApiKey {
                name: k.name.clone(),
                sha256: k.sha256.clone(),
                scope,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Auth::new(keys))
}

/// How long `serve` waits for the store's file lock to be let go before it
/// refuses to start on a store in use.
const STORE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs until `shutdown` resolves, then stops in order: HTTP, reaper,
/// consumer (after its batch in flight), store flush.
pub async fn run(
    cfg: Config,
    clock: super::Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    println!("effective configuration:\n{}", cfg.masked());
    let auth = auth(&cfg)?;
    // A process that held the store a moment ago (the one this one
    // replaces, still exiting) may not have let go of its file lock yet.
    let store = LiveStore::from(
        Store::open_when_released(&cfg.store.path, cfg.defaults, STORE_LOCK_WAIT)
            .with_context(|| format!("opening store {}", cfg.store.path.display()))?,
    );
    crate::keep_freed_memory();
    // Bound first: sharded mode announces the address.
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("binding {}", cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let cluster = match cfg.cluster.mode {
        ClusterMode::Replica => None,
        ClusterMode::Sharded => {
            let url = cfg
                .cluster
                .advertise
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"));
            tracing::info!(%url, standby = cfg.cluster.standby, "sharded mode: joining the data group");
            Some(ledger_kafka::Cluster::start(
                ledger_kafka::ClusterConfig {
                    brokers: cfg.kafka.brokers.clone(),
                    topic: cfg.kafka.topic.clone(),
                    group_id: cfg.kafka.group_id.clone(),
                    url,
                    standby: cfg.cluster.standby,
                    session_timeout: Duration::from_millis(cfg.cluster.session_timeout_ms),
                    announce: Duration::from_millis(cfg.cluster.announce_ms.max(10)),
                    member_ttl: Duration::from_millis(cfg.cluster.member_ttl_ms),
                    regroup_after: Duration::from_millis(cfg.cluster.regroup_after_ms),
                },
                store.clone(),
                metrics.clone(),
            )?)
        }
    };
    let ownership = cluster.as_ref().map(|c| c.ownership.clone());
    let hook_metrics = ledger_hooks::HookMetrics::register(&mut registry);
    let endpoints = cfg
        .webhooks
        .iter()
        .map(|w| w.endpoint())
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The dead-letter topic is created when the first dead letter needs it
    // (the broker may not be up yet).
    // Ingestion (and an online rebuild's replay) gives way to the reads
    // this process answers.
    let reads = Arc::new(ledger_store::ReadLoad::with_floor(cfg.kafka.write_floor));
    let pace = ledger_store::Pace::new(reads.clone(), cfg.kafka.write_share);
    let mut ingest_cfg = cfg.kafka.ingest_config();
    ingest_cfg.ownership = ownership.clone();
    ingest_cfg.pace = pace.clone();
    let ingest = Ingestor::new(ingest_cfg, store.clone(), metrics.clone()).spawn();
    let reaper_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reaper = cfg.reaper.enabled.then(|| {
        Reaper::new(
            ReaperConfig {
                brokers: cfg.kafka.brokers.clone(),
                topic: cfg.kafka.topic.clone(),
                group_id: format!("{}-reaper", cfg.kafka.group_id),
                interval: Duration::from_millis(cfg.reaper.interval_ms),
                max_per_tick: 10_000,
                ownership: ownership.clone(),
            },
            store.clone(),
            metrics.clone(),
            clock.clone(),
        )
        .spawn(reaper_stop.clone())
    });
    let rebuilder = ledger_kafka::Rebuilder::new(
        ledger_kafka::IngestConfig {
            pace,
            ..cfg.kafka.ingest_config()
        },
        store.clone(),
        cfg.store.path.clone(),
        cfg.defaults,
        cfg.store.keep_old,
        metrics.clone(),
    );
    let retention = spawn_maintenance(
        store.clone(),
        &cfg,
        clock.clone(),
        metrics.clone(),
        rebuilder.clone(),
        ingest.progress.clone(),
        reaper_stop.clone(),
    );
    let hooks = ledger_hooks::spawn(
        ledger_hooks::HooksConfig {
            brokers: cfg.kafka.brokers.clone(),
            topic: cfg.kafka.topic.clone(),
            group_id: cfg.kafka.group_id.clone(),
            endpoints,
            timeout: Duration::from_millis(cfg.webhook_retry.timeout_ms),
            first_backoff: Duration::from_millis(cfg.webhook_retry.first_backoff_ms.max(1)),
            max_backoff: Duration::from_millis(cfg.webhook_retry.max_backoff_ms.max(1)),
            owned: ownership.clone().map(|o| {
                ledger_hooks::Owned(Arc::new(move || o.ready()) as Arc<dyn Fn() -> _ + Send + Sync>)
            }),
        },
        store.clone(),
        hook_metrics,
        clock.clone(),
        reaper_stop.clone(),
    );
    let mut state = AppState::new(store.clone(), &cfg.kafka.topic, auth, clock, registry);
    state.heartbeat = Duration::from_millis(cfg.feed.heartbeat_ms.max(10));
    state.reads = (cfg.kafka.write_share < 1.0 || cfg.kafka.write_floor > 0.0).then_some(reads);
    if let Some(c) = &cluster {
        let (own, parts, members) = (c.ownership.clone(), c.ownership.clone(), c.members.clone());
        let ttl = Duration::from_millis(cfg.cluster.member_ttl_ms);
        state.shards = Some(Arc::new(ledger_api::shard::Shards {
            me: c.url.clone(),
            topic: cfg.kafka.topic.clone(),
            partitioner: cfg.cluster.partitioner,
            ready: Arc::new(move || own.ready()),
            partitions: Arc::new(move || parts.snapshot().partitions),
            peers: Arc::new(move || {
                members
                    .alive(chrono::Utc::now().timestamp_millis(), ttl)
                    .into_iter()
                    .map(|m| ledger_api::shard::Peer {
                        url: m.url,
                        ready: m.ready,
                        offsets: m.offsets,
                    })
                    .collect()
            }),
            wait: Duration::from_millis(cfg.cluster.hand_over_wait_ms),
            client: reqwest::Client::new(),
        }));
    }
    // Created at the first erasure (`Publisher::lazy`).
    let publisher = ledger_kafka::Publisher::lazy(
        ledger_kafka::publish::producer_config(&cfg.kafka.brokers),
        &cfg.kafka.topic,
    );
    state.eraser = Some(Arc::new(move |e| {
        let publisher = publisher.clone();
        Box::pin(async move { publisher.erase(&e).await.map_err(|e| e.to_string()) })
    }));
    let (start, status) = (rebuilder.clone(), rebuilder);
    state.rebuild = Some(ledger_api::RebuildHooks {
        start: Arc::new(move |from_store| {
            start.start(if from_store {
                ledger_kafka::Source::Store
            } else {
                ledger_kafka::Source::Topic
            })
        }),
        status: Arc::new(move || serde_json::to_value(status.status()).unwrap_or_default()),
    });
    let progress = ingest.progress.clone();
    state.ready = Arc::new(move || progress.ready());
    let progress = ingest.progress.clone();
    state.health = Arc::new(move || IngestHealth {
        failure: progress.failure(),
        problems: progress.problems(),
    });
    state.applied = ingest.applied.clone();
    println!("listening on http://{addr}");
    tracing::info!(%addr, topic = %cfg.kafka.topic, "serving");
    // A consumer that stops (a store write failed: disk full, I/O error)
    // stops the process with an error, so a supervisor restarts it; the
    // restart resumes from the stored offsets with nothing lost.
    // The consumer thread drops its end of `applied` when it ends.
    let (progress, mut applied) = (ingest.progress.clone(), ingest.applied.clone());
    let consumer_died = async move {
        while applied.changed().await.is_ok() {}
        progress
            .failure()
            .unwrap_or_else(|| "the consumer thread ended".into())
    };
    let (died_tx, died_rx) = tokio::sync::oneshot::channel();
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            why = consumer_died => {
                tracing::error!(error = %why, "stopping: the consumer has stopped and the data served would go stale");
                let _ = died_tx.send(why);
            }
        }
    };
    ledger_api::serve(listener, state, stop).await?;
    // Leaving the data group first hands this instance's partitions over.
    if let Some(c) = cluster {
        tokio::task::spawn_blocking(move || c.stop()).await?;
    }
    reaper_stop.store(true, Ordering::Release);
    let stopped = tokio::task::spawn_blocking(move || {
        if let Some(r) = reaper {
            let _ = r.join();
        }
        let _ = retention.join();
        for h in hooks {
            let _ = h.join();
        }
        ingest.stop()
    })
    .await?;
    if let Ok(why) = died_rx.await {
        anyhow::bail!("the consumer stopped: {why}");
    }
    if let Err(e) = stopped {
        tracing::error!(error = %e, "consumer ended with an error");
    }
    store.get().flush()?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// Store maintenance on its own thread until `stop`: purges sessions past
/// retention every `interval_ms`, in batches of at most [`PURGE_BATCH`]
/// sessions (each one store write), until none is due; once erasures were
/// applied and none followed for `compact_after_erasure_ms`, compacts the
/// store (an online copy, the replaced store deleted even when `keep_old`)
/// so that no old copy of the erased data stays in sled's files; every
/// `compact_every_ms` compacts it too, and so does a store whose files
/// outgrew the data (`compact_when_grown`, checked every
/// [`GROWTH_CHECK`] while ingestion is caught up).
/// Every replica does all of it to its own store by the same rules.
#[allow(clippy::too_many_arguments)]
fn spawn_maintenance(
    store: LiveStore,
    config: &crate::config::Config,
    clock: super::Clock,
    metrics: Metrics,
    rebuilder: ledger_kafka::Rebuilder,
    progress: Arc<ledger_kafka::Progress>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let (cfg, compact_every_ms) = (&config.retention, config.store.compact_every_ms);
    let grown = (
        config.store.compact_when_grown,
        config.store.compact_floor_mb.saturating_mul(1 << 20),
    );
    let (topic, feed) = (config.kafka.topic.clone(), config.feed.clone());
    let trim_every = Duration::from_millis(feed.trim_every_ms.max(10));
    let (policy, every) = (cfg.policy(), Duration::from_millis(cfg.interval_ms.max(10)));
    let compact_after = (cfg.compact_after_erasure_ms > 0)
        .then(|| Duration::from_millis(cfg.compact_after_erasure_ms));
    let compact_every = (compact_every_ms > 0).then(|| Duration::from_millis(compact_every_ms));
    std::thread::spawn(move || {
        let tick = Duration::from_millis(50);
        let mut last_purge: Option<std::time::Instant> = None;
        // Erasures counted at the last compaction, and when the count last moved.
        let (mut compacted, mut seen, mut moved) = (0u64, 0u64, std::time::Instant::now());
        let mut last_compaction = std::time::Instant::now();
        let mut last_growth_check = std::time::Instant::now();
        let mut grown_started: Option<std::time::Instant> = None;
        let mut last_trim = std::time::Instant::now();
        // Sharded mode: the partitions being dropped, since when, and where
        // the drop scans on. A drop starts `DROP_GRACE` after its mark, so
        // reads that began while the partition was still answered here end
        // first; a new set of marks starts the scan over.
        let mut drop_from: Option<String> = None;
        let mut drop_seen: (std::collections::BTreeSet<i32>, std::time::Instant) =
            (Default::default(), std::time::Instant::now());
        while !stop.load(Ordering::Acquire) {
            std::thread::sleep(tick);
            let dropping = store.get().dropping().unwrap_or_default();
            if dropping != drop_seen.0 {
                drop_seen = (dropping.clone(), std::time::Instant::now());
                drop_from = None;
            }
            if !dropping.is_empty() && drop_seen.1.elapsed() >= DROP_GRACE {
                let gate = store.gate();
                let step = store.get().drop_step(drop_from.as_deref(), DROP_BATCH);
                drop(gate);
                match step {
                    Ok((n, next)) => {
                        if n > 0 {
                            tracing::debug!(
                                sessions = n,
                                "dropped sessions of handed-over partitions"
                            );
                        }
                        if next.is_none() {
                            tracing::info!("handed-over partitions dropped");
                        }
                        drop_from = next;
                        metrics.sessions.set(store.get().stats().sessions as i64);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "dropping a handed-over partition failed; retrying");
                        drop_from = None;
                    }
                }
            }
            if last_trim.elapsed() >= trim_every {
                last_trim = std::time::Instant::now();
                loop {
                    let gate = store.gate();
                    let trimmed =
                        store
                            .get()
                            .trim_changes(&topic, feed.keep_offsets.max(1), TRIM_BATCH);
                    drop(gate);
                    match trimmed {
                        Ok(n) if n < TRIM_BATCH || stop.load(Ordering::Acquire) => break,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "trimming the change log failed; retrying next interval");
                            break;
                        }
                    }
                }
            }
            if compact_every.is_some_and(|every| last_compaction.elapsed() >= every) {
                last_compaction = std::time::Instant::now();
                match rebuilder.start(ledger_kafka::Source::Store) {
                    Ok(()) => tracing::info!("scheduled compaction: copying the store (online)"),
                    Err(why) => tracing::info!(%why, "scheduled compaction skipped"),
                }
            }
            if grown.0 > 0.0
                && last_growth_check.elapsed() >= GROWTH_CHECK
                && grown_started.is_none_or(|t| t.elapsed() >= GROWTH_RETRY)
            {
                last_growth_check = std::time::Instant::now();
                let current = store.get();
                // A compaction pauses ingestion: never during a catch-up.
                if progress.ready() && current.outgrown(grown.0, grown.1).unwrap_or(false) {
                    let (files, sessions) = (current.size_on_disk(), current.stats().sessions);
                    match rebuilder.start(ledger_kafka::Source::Store) {
                        Ok(()) => {
                            last_compaction = std::time::Instant::now();
                            grown_started = Some(last_compaction);
                            tracing::info!(
                                files_mib = files >> 20,
                                bytes_per_session = files / sessions.max(1),
                                compacted_bytes_per_session = ?current.compacted_size().ok().flatten(),
                                "the store's files outgrew its data: compacting (online copy)"
                            );
                        }
                        Err(why) => {
                            tracing::debug!(%why, "compaction waits for the running rebuild")
                        }
                    }
                }
            }
            if let Some(after) = compact_after {
                let now = metrics.erasures.get();
                if now != seen {
                    (seen, moved) = (now, std::time::Instant::now());
                }
                if seen > compacted && moved.elapsed() >= after {
                    // A copy, not a replay: it needs nothing of the topic
                    // (whose retention may be shorter than the store's).
                    match rebuilder.start_erasing() {
                        Ok(()) => {
                            tracing::info!("erasures applied: compacting the store (online copy)");
                            compacted = seen;
                        }
                        Err(why) => {
                            tracing::debug!(%why, "compaction waits for the running rebuild")
                        }
                    }
                }
            }
            if !policy.enabled() || last_purge.is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            last_purge = Some(std::time::Instant::now());
            loop {
                // Under the gate, like every store write: a purge never
                // lands in a store a rebuild is replacing.
                let gate = store.gate();
                let current = store.get();
                let purged = current.purge(clock(), &policy, PURGE_BATCH);
                drop(gate);
                match purged {
                    Ok(r) => {
                        metrics.purged_sessions.inc_by(r.purged as u64);
                        metrics.sessions.set(current.stats().sessions as i64);
                        if r.purged > 0 {
                            tracing::debug!(sessions = r.purged, "purged ended sessions");
                        }
                        if (r.purged < PURGE_BATCH && r.markers_dropped < PURGE_BATCH)
                            || stop.load(Ordering::Acquire)
                        {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "purging ended sessions failed; retrying next interval");
                        break;
                    }
                }
            }
        }
    })
}

/// How often maintenance compares the store's files with its data
/// (`[store] compact_when_grown`).
const GROWTH_CHECK: Duration = Duration::from_secs(10);

/// Least time between two compactions started for growth: one that failed
/// (a full disk) is not retried at every check.
const GROWTH_RETRY: Duration = Duration::from_secs(600);

/// Most sessions one write of a partition drop removes.
const DROP_BATCH: usize = 1_000;

/// How long a handed-over partition's sessions stay before its drop starts:
/// longer than any read this instance began while it still answered for
/// the partition.
const DROP_GRACE: Duration = Duration::from_secs(10);

/// Most change-log entries one trim write removes.
const TRIM_BATCH: usize = 10_000;

/// Most sessions one purge write removes: short enough that readers never
/// wait for it longer than for an event batch.
const PURGE_BATCH: usize = 1_000;
