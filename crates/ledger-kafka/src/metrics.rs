//! Prometheus metrics of ingestion and reaping (registered by the caller).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub partition: String,
}

/// Ingest and reaper metrics. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Metrics {
    /// Records read from the topic.
    pub consumed: Counter,
    /// Records by outcome: applied, duplicate, ignored, rejected, limited,
    /// dead_lettered, dropped (for a purged or erased session).
    pub events: Family<OutcomeLabel, Counter>,
    /// Seconds to decode, dead-letter, fold and store one batch.
    pub batch_seconds: Histogram,
    /// Records in the partition not yet applied (high watermark − next offset).
    pub lag: Family<PartitionLabel, Gauge>,
    /// Consumer or producer errors seen (reconnects, failed deliveries).
    pub errors: Counter,
    /// Events the reaper published.
    pub reaped: Counter,
    /// 1 while the consumer thread runs, 0 once it has stopped.
    pub consumer_up: Gauge,
    /// Failed dead-letter deliveries (each holds its batch back).
    pub dlq_failures: Counter,
    /// Partitions behind their high watermark that yield no record.
    pub stalled: Gauge,
    /// Offsets skipped because the broker never delivered their record.
    pub skipped: Counter,
    /// Next offset to apply, per partition (= the stored offset).
    pub applied_offset: Family<PartitionLabel, Gauge>,
    /// Latest high watermark seen, per partition.
    pub high_watermark: Family<PartitionLabel, Gauge>,
    /// Sessions in the store (pending shells included), after the last batch.
    pub sessions: Gauge,
    /// 1 for each partition this instance's reaper owns (may reap), else 0.
    pub reaper_owned: Family<PartitionLabel, Gauge>,
    /// Erasure records applied (one per partition per request).
    pub erasures: Counter,
    /// Sessions removed by erasures.
    pub erased_sessions: Counter,
    /// Sessions removed by retention.
    pub purged_sessions: Counter,
    /// Sharded mode: 1 for each partition this instance answers for.
    pub shard_ready: Family<PartitionLabel, Gauge>,
    /// Sharded mode: 1 for each partition kept here as a standby copy.
    pub shard_standby: Family<PartitionLabel, Gauge>,
    /// Sharded mode: the data group's epoch (see `cluster`).
    pub shard_epoch: Gauge,
    /// 1 while an online rebuild runs.
    pub rebuild_running: Gauge,
    /// Online rebuilds switched in.
    pub rebuilds: Counter,
    /// Seconds ingestion paused to give way to reads (`[kafka] write_share`).
    pub paused_seconds: Counter<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            consumed: Counter::default(),
            events: Family::default(),
            batch_seconds: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            lag: Family::default(),
            errors: Counter::default(),
            reaped: Counter::default(),
            consumer_up: Gauge::default(),
            dlq_failures: Counter::default(),
            stalled: Gauge::default(),
            skipped: Counter::default(),
            applied_offset: Family::default(),
            high_watermark: Family::default(),
            sessions: Gauge::default(),
            reaper_owned: Family::default(),
            erasures: Counter::default(),
            erased_sessions: Counter::default(),
            purged_sessions: Counter::default(),
            shard_ready: Family::default(),
            shard_standby: Family::default(),
            shard_epoch: Gauge::default(),
            rebuild_running: Gauge::default(),
            rebuilds: Counter::default(),
            paused_seconds: Counter::default(),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them under `ledger_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ledger");
        // (name, help, metric): one row a metric.
        macro_rules! register {
            ($($field:ident $name:literal, $help:literal;)*) => {
                $(r.register($name, $help, m.$field.clone());)*
            };
        }
        register! {
            consumed       "records_consumed", "Records read from the event topic";
            events         "events", "Consumed records by outcome";
            batch_seconds  "batch_seconds", "Time to apply one batch";
            lag            "consumer_lag", "Records not yet applied, per partition";
            errors         "kafka_errors", "Kafka client errors";
            reaped         "reaped_events", "Expired/abandoned events published by the reaper";
            consumer_up    "consumer_up", "1 while the consumer runs, 0 once it has stopped";
            dlq_failures   "dlq_failures", "Failed dead-letter deliveries (each holds its batch back)";
            stalled        "stalled_partitions", "Partitions behind their high watermark that yield no record";
            skipped        "skipped_records", "Offsets skipped because the broker never delivered their record";
            applied_offset "applied_offset", "Next offset to apply, per partition (the stored offset)";
            high_watermark "high_watermark", "Latest high watermark seen, per partition";
            sessions       "store_sessions", "Sessions in the store, pending shells included";
            reaper_owned   "reaper_owned_partition", "1 for each partition this instance's reaper owns";
            erasures       "erasures", "Erasure records applied (one per partition per request)";
            erased_sessions "erased_sessions", "Sessions removed by erasures";
            purged_sessions "purged_sessions", "Sessions removed by retention";
            shard_ready    "shard_ready_partition", "Sharded mode: 1 for each partition this instance answers for";
            shard_standby  "shard_standby_partition", "Sharded mode: 1 for each partition kept here as a standby copy";
            shard_epoch    "shard_group_epoch", "Sharded mode: the data group's epoch (raised when a group left partitions without an owner)";
            rebuild_running "rebuild_running", "1 while an online rebuild runs";
            rebuilds       "rebuilds", "Online rebuilds switched in";
            paused_seconds "ingest_paused_seconds", "Seconds ingestion paused to give way to reads (kafka.write_share)";
        }
        m
    }

    /// The gauge of one partition in a family.
    pub fn partition(family: &Family<PartitionLabel, Gauge>, p: i32) -> Gauge {
        family
            .get_or_create(&PartitionLabel {
                partition: p.to_string(),
            })
            .clone()
    }

    pub fn count(&self, outcome: &str, n: u64) {
        if n > 0 {
            self.events
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.to_string(),
                })
                .inc_by(n);
        }
    }
}
