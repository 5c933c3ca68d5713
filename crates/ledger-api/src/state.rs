//! Shared state of the HTTP handlers.

use std::sync::Arc;

use ledger_store::{LiveStore, Store};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::auth::Auth;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

/// The API's metrics: latency by route, and the store's size (read from
/// disk when `/metrics` is scraped, not kept up to date in between).
#[derive(Clone)]
pub struct HttpMetrics {
    pub latency: Family<RouteLabels, Histogram>,
    /// Bytes the store occupies on disk.
    pub store_bytes: Gauge,
    /// Bytes (keys and values) of the index chunks the store keeps in memory.
    pub index_memory_bytes: Gauge,
    /// Seconds requests waited for ingestion's write turns (the write floor,
    /// `ledger_store::pace`), summed over requests.
    pub write_turn_wait: Counter<f64, std::sync::atomic::AtomicU64>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
        });
        let store_bytes = Gauge::default();
        let r = registry.sub_registry_with_prefix("ledger");
        r.register(
            "http_request_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        r.register("store_bytes", "Store size on disk", store_bytes.clone());
        let index_memory_bytes = Gauge::default();
        r.register(
            "store_index_memory_bytes",
            "Bytes of the index chunks kept in memory (field and deadline indexes)",
            index_memory_bytes.clone(),
        );
        let write_turn_wait = Counter::default();
        r.register(
            "http_write_turn_wait_seconds",
            "Seconds requests waited for a starved ingestion's write turns (kafka.write_floor), summed over requests",
            write_turn_wait.clone(),
        );
        Self {
            latency,
            store_bytes,
            index_memory_bytes,
            write_turn_wait,
        }
    }
}

/// The change feed's metrics.
#[derive(Clone, Default)]
pub struct FeedMetrics {
    /// Readers connected now.
    pub subscribers: Gauge,
    /// Events sent to readers (after their filters).
    pub events: prometheus_client::metrics::counter::Counter,
    /// `reset` events sent (readers behind the change log).
    pub resets: prometheus_client::metrics::counter::Counter,
}

impl FeedMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ledger");
        r.register(
            "feed_subscribers",
            "Change-feed readers connected",
            m.subscribers.clone(),
        );
        r.register(
            "feed_events",
            "Change-feed events sent to readers",
            m.events.clone(),
        );
        r.register(
            "feed_resets",
            "Change-feed resets sent (readers behind the change log)",
            m.resets.clone(),
        );
        m
    }
}

/// What ingestion says about itself, for `/healthz` and `/readyz`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestHealth {
    /// Why the consumer stopped, if it did: what is served no longer updates.
    pub failure: Option<String>,
    /// Conditions holding ingestion back (a stalled partition, failing dead
    /// letters); empty when healthy.
    pub problems: Vec<String>,
}

/// Publishes an erasure to every partition of the event topic, returning
/// `(partition, offset)` of each copy, or why it could not.
pub type Eraser = Arc<
    dyn Fn(
            ledger_core::Erasure,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Vec<(i32, i64)>, String>> + Send>,
        > + Send
        + Sync,
>;

/// How `POST`/`GET /admin/rebuild` start and report an online rebuild.
#[derive(Clone)]
pub struct RebuildHooks {
    /// Starts one from the topic (`false`) or the live store (`true`);
    /// `Err` says why not (one is running).
    pub start: Arc<dyn Fn(bool) -> Result<(), String> + Send + Sync>,
    /// What it is doing, as JSON.
    pub status: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
}

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The live store; a request reads one store throughout ([`AppState::store`]
    /// once, pinned by the consistency middleware).
    pub live: LiveStore,
    /// The event topic whose offsets are the consistency token.
    pub topic: String,
    pub auth: Arc<Auth>,
    /// Wall clock, Unix ms (fixed in tests).
    pub clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    /// Whether ingestion has caught up to the high watermarks seen at start.
    pub ready: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Ingestion's own health (a stopped consumer, stalled partitions).
    pub health: Arc<dyn Fn() -> IngestHealth + Send + Sync>,
    /// Bumped after every applied batch (wakes consistency waits).
    pub applied: watch::Receiver<u64>,
    /// Process start, Unix ms.
    pub started_ms: i64,
    pub registry: Arc<Registry>,
    pub http: HttpMetrics,
    /// How `POST /admin/erasures` publishes (`None`: not offered here).
    pub eraser: Option<Eraser>,
    /// Online rebuilds (`None`: not offered here).
    pub rebuild: Option<RebuildHooks>,
    pub feed: FeedMetrics,
    /// How often an idle change-feed reader gets a heartbeat.
    pub heartbeat: std::time::Duration,
    /// Sharded mode: where each partition is answered (`None`: this store
    /// holds every partition).
    pub shards: Option<Arc<crate::shard::Shards>>,
    /// Every request is counted in here while it is answered, so that
    /// ingestion can give way to reads (`ledger_store::pace`); `None` while
    /// ingestion is unpaced, so requests then pay nothing for it.
    pub reads: Option<Arc<ledger_store::ReadLoad>>,
}

impl AppState {
    /// State with a fixed or real clock and no ingestion attached (tests,
    /// read-only serving): always ready. HTTP metrics are added to `registry`,
    /// which `/metrics` serves.
    pub fn new(
        store: impl Into<LiveStore>,
        topic: &str,
        auth: Auth,
        clock: Arc<dyn Fn() -> i64 + Send + Sync>,
        mut registry: Registry,
    ) -> Self {
        let http = HttpMetrics::register(&mut registry);
        let feed = FeedMetrics::register(&mut registry);
        let (_tx, rx) = watch::channel(0);
        let started_ms = clock();
        Self {
            live: store.into(),
            topic: topic.to_string(),
            auth: Arc::new(auth),
            clock,
            ready: Arc::new(|| true),
            health: Arc::new(IngestHealth::default),
            applied: rx,
            started_ms,
            registry: Arc::new(registry),
            http,
            eraser: None,
            rebuild: None,
            feed,
            heartbeat: std::time::Duration::from_secs(15),
            shards: None,
            reads: None,
        }
    }

    /// The store live now.
    pub fn store(&self) -> Store {
        self.live.get()
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}
