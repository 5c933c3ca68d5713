//! Prometheus metrics of ingestion and reaping (registered by the caller).

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
    /// dead_lettered.
    pub events: Family<OutcomeLabel, Counter>,
    /// Seconds to decode, dead-letter, fold and store one batch.
    pub batch_seconds: Histogram,
    /// Records in the partition not yet applied (high watermark − next offset).
    pub lag: Family<PartitionLabel, Gauge>,
    /// Consumer or producer errors seen (reconnects, failed deliveries).
    pub errors: Counter,
    /// Events the reaper published.
    pub reaped: Counter,
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
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them under `ledger_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ledger");
        r.register(
            "records_consumed",
            "Records read from the event topic",
            m.consumed.clone(),
        );
        r.register("events", "Consumed records by outcome", m.events.clone());
        r.register(
            "batch_seconds",
            "Time to apply one batch",
            m.batch_seconds.clone(),
        );
        r.register(
            "consumer_lag",
            "Records not yet applied, per partition",
            m.lag.clone(),
        );
        r.register("kafka_errors", "Kafka client errors", m.errors.clone());
        r.register(
            "reaped_events",
            "Expired/abandoned events published by the reaper",
            m.reaped.clone(),
        );
        m
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
