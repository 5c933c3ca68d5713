//! The Kafka edges of the ledger, all through rdkafka:
//!
//! * [`ingest`] — the consumer: partitions assigned manually from the offsets
//!   stored in sled, batches applied with one atomic store write, dead letters.
//! * [`publish`] — producing events (the `publish`/`generate` commands, tests).
//! * [`reaper`] — publishing `expired`/`abandoned` for the partitions this
//!   instance owns in a consumer group.
//! * [`cluster`] — sharded mode: partition ownership from the data group,
//!   and the membership topic every instance routes by.
//! * [`metrics`] — the Prometheus metrics of all of the above.
//!
//! **Invariant:** the store's offsets are the only position that matters;
//! Kafka offset commits are made after each batch for lag tooling only.

pub mod cluster;
pub mod ingest;
pub mod metrics;
pub mod publish;
pub mod reaper;
pub mod rebuild;

pub use cluster::{Cluster, ClusterConfig, Member, Members, Owned, Ownership};
pub use ingest::{
    consumer_config, DeadLetters, IngestConfig, IngestHandle, Ingestor, PartitionProgress,
    Progress, PREFETCH_RECORDS,
};
pub use metrics::Metrics;
pub use publish::{admin_create_topic, admin_create_topic_with, event_headers, Publisher};
pub use reaper::{Reaper, ReaperConfig};
pub use rebuild::{RebuildStatus, Rebuilder, Source};

/// Errors at the Kafka edge.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("store: {0}")]
    Store(#[from] ledger_store::StoreError),
    #[error("topic `{0}` not found or has no partitions")]
    NoTopic(String),
    #[error("delivery failed: {0}")]
    Delivery(String),
}

/// The dead-letter topic of a topic.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}
