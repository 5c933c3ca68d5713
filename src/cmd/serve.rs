//! `serve`: consumer + store + API + reaper in one process.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ledger_api::{ApiKey, AppState, Auth, Scope};
use ledger_kafka::{IngestConfig, Ingestor, Metrics, Reaper, ReaperConfig};
use ledger_store::Store;
use prometheus_client::registry::Registry;

use crate::config::Config;

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

/// Runs until `shutdown` resolves, then stops in order: HTTP, reaper,
/// consumer (after its batch in flight), store flush.
pub async fn run(
    cfg: Config,
    clock: super::Clock,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    println!("effective configuration:\n{}", cfg.masked());
    let auth = auth(&cfg)?;
    let store = Store::open(&cfg.store.path, cfg.defaults)
        .with_context(|| format!("opening store {}", cfg.store.path.display()))?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    let dlq = ledger_kafka::dlq_topic(&cfg.kafka.topic);
    let ensure = ledger_kafka::admin_create_topic(&cfg.kafka.brokers, &dlq, 1);
    match tokio::time::timeout(Duration::from_secs(5), ensure).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, topic = %dlq, "could not ensure the dead-letter topic exists")
        }
        Err(_) => tracing::warn!(topic = %dlq, "timed out ensuring the dead-letter topic exists"),
    }
    let ingest = Ingestor::new(
        IngestConfig {
            brokers: cfg.kafka.brokers.clone(),
            topic: cfg.kafka.topic.clone(),
            group_id: cfg.kafka.group_id.clone(),
            batch_max: cfg.kafka.batch_max,
            batch_wait: Duration::from_millis(cfg.kafka.batch_wait_ms),
            batch_wait_behind: Duration::from_millis(cfg.kafka.batch_wait_behind_ms),
            dead_letter: true,
        },
        store.clone(),
        metrics.clone(),
    )
    .spawn();
    let reaper_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reaper = cfg.reaper.enabled.then(|| {
        Reaper::new(
            ReaperConfig {
                brokers: cfg.kafka.brokers.clone(),
                topic: cfg.kafka.topic.clone(),
                group_id: format!("{}-reaper", cfg.kafka.group_id),
                interval: Duration::from_millis(cfg.reaper.interval_ms),
                max_per_tick: 10_000,
            },
            store.clone(),
            metrics.clone(),
            clock.clone(),
        )
        .spawn(reaper_stop.clone())
    });
    let mut state = AppState::new(store.clone(), &cfg.kafka.topic, auth, clock, registry);
    let progress = ingest.progress.clone();
    state.ready = Arc::new(move || progress.ready());
    state.applied = ingest.applied.clone();
    let listener = tokio::net::TcpListener::bind(&cfg.http.listen)
        .await
        .with_context(|| format!("binding {}", cfg.http.listen))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, topic = %cfg.kafka.topic, "serving");
    ledger_api::serve(listener, state, shutdown).await?;
    reaper_stop.store(true, Ordering::Release);
    let stopped = tokio::task::spawn_blocking(move || {
        if let Some(r) = reaper {
            let _ = r.join();
        }
        ingest.stop()
    })
    .await?;
    if let Err(e) = stopped {
        tracing::error!(error = %e, "consumer ended with an error");
    }
    store.flush()?;
    tracing::info!("stopped cleanly");
    Ok(())
}
