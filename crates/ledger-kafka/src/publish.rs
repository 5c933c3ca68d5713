//! Producing to Kafka: events keyed by session id, raw records (tests,
//! dead letters), topic creation.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ledger_core::{erasure, time::format_iso_ms, Erasure, Event};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaError;

/// How many deliveries may be awaited at once while streaming.
const IN_FLIGHT: usize = 20_000;

/// A producer bound to one topic. Clones share one client.
#[derive(Clone)]
pub struct Publisher {
    /// Created with the publisher, or at its first record when
    /// [`Publisher::lazy`].
    producer: Arc<OnceLock<FutureProducer>>,
    config: ClientConfig,
    topic: String,
}

/// A record to produce: key, payload, optional headers and partition.
pub struct RawRecord {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Option<OwnedHeaders>,
    pub partition: Option<i32>,
}

impl RawRecord {
    /// A structured-mode CloudEvent keyed by its session id.
    pub fn event(e: &Event) -> Self {
        Self {
            key: Some(e.session_id.as_bytes().to_vec()),
            payload: e.to_json().to_string().into_bytes(),
            headers: None,
            partition: None,
        }
    }
}

/// Client settings shared by every producer of the ledger.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .set("message.timeout.ms", "60000")
        .set("compression.type", "none");
    c
}

impl Publisher {
    pub fn new(brokers: &str, topic: &str) -> Result<Self, KafkaError> {
        Self::from_config(producer_config(brokers), topic)
    }

    /// A publisher with explicit client settings.
    pub fn from_config(config: ClientConfig, topic: &str) -> Result<Self, KafkaError> {
        let p = Self::lazy(config, topic);
        p.producer()?;
        Ok(p)
    }

    /// A publisher whose client is created at its first record: a producer
    /// is a librdkafka client of its own, whose threads wake while idle, so
    /// one that is seldom used (dead letters, erasures) costs nothing until
    /// then. A client that cannot be created is the first send's error.
    pub fn lazy(config: ClientConfig, topic: &str) -> Self {
        Self {
            producer: Arc::default(),
            config,
            topic: topic.to_string(),
        }
    }

    fn producer(&self) -> Result<&FutureProducer, KafkaError> {
        if let Some(p) = self.producer.get() {
            return Ok(p);
        }
        let created: FutureProducer = self.config.create()?;
        // A racing first use may have set one first; either serves.
        Ok(self.producer.get_or_init(|| created))
    }

    fn enqueue(&self, r: &RawRecord) -> Result<DeliveryFuture, KafkaError> {
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).payload(r.payload.as_slice());
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(h) = &r.headers {
            rec = rec.headers(h.clone());
        }
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        let mut rec = rec;
        let producer = self.producer()?;
        loop {
            match producer.send_result(rec) {
                Ok(f) => return Ok(f),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    rec = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Produces one record and waits for its delivery: `(partition, offset)`.
    pub async fn send(&self, r: &RawRecord) -> Result<(i32, i64), KafkaError> {
        let f = self.enqueue(r)?;
        match f.await {
            Ok(Ok(d)) => Ok((d.partition, d.offset)),
            Ok(Err((e, _))) => Err(KafkaError::Delivery(e.to_string())),
            Err(_) => Err(KafkaError::Delivery("producer dropped".into())),
        }
    }

    /// Produces every record (owned or borrowed) in order, pipelined, calling
    /// `progress` with the number delivered so far; returns the count. Stops
    /// at the first failure.
    pub async fn send_all<I>(
        &self,
        records: I,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, KafkaError>
    where
        I: IntoIterator,
        I::Item: std::borrow::Borrow<RawRecord>,
    {
        let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
        let mut done = 0u64;
        for r in records {
            pending.push_back(self.enqueue(std::borrow::Borrow::borrow(&r))?);
            while pending.len() >= IN_FLIGHT {
                self.await_one(&mut pending).await?;
                done += 1;
                if done % 1000 == 0 {
                    progress(done);
                }
            }
        }
        while !pending.is_empty() {
            self.await_one(&mut pending).await?;
            done += 1;
            if done % 1000 == 0 {
                progress(done);
            }
        }
        progress(done);
        Ok(done)
    }

    async fn await_one(&self, pending: &mut VecDeque<DeliveryFuture>) -> Result<(), KafkaError> {
        let f = pending.pop_front().expect("non-empty");
        match f.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(KafkaError::Delivery(e.to_string())),
            Err(_) => Err(KafkaError::Delivery("producer dropped".into())),
        }
    }

    /// Publishes an erasure to every partition of the topic (each applies it
    /// at a definite position in its own order) and waits for every
    /// delivery: `(partition, offset)` of each copy.
    pub async fn erase(&self, e: &Erasure) -> Result<Vec<(i32, i64)>, KafkaError> {
        let producer = self.producer()?.clone();
        let topic = self.topic.clone();
        let partitions = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(10))
                .map(|md| {
                    md.topics()
                        .first()
                        .map_or(0, |t| t.partitions().len() as i32)
                })
        })
        .await
        .map_err(|_| KafkaError::Delivery("metadata task failed".into()))??;
        if partitions == 0 {
            return Err(KafkaError::NoTopic(self.topic.clone()));
        }
        let payload = erasure::encode(e);
        let mut out = vec![];
        for p in 0..partitions {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: erasure::CONTROL_HEADER,
                    value: Some(erasure::CONTROL_ERASURE),
                })
                .insert(Header {
                    key: "content-type",
                    value: Some("application/cloudevents+json; charset=utf-8"),
                });
            let r = RawRecord {
                key: None,
                payload: payload.clone(),
                headers: Some(headers),
                partition: Some(p),
            };
            out.push(self.send(&r).await?);
        }
        Ok(out)
    }

    /// Waits until everything queued is delivered (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        if let Some(p) = self.producer.get() {
            p.flush(timeout)?;
        }
        Ok(())
    }
}

/// The `ce_*` headers of a binary-mode CloudEvent (the payload is `data`).
pub fn event_headers(e: &Event) -> OwnedHeaders {
    let time = format_iso_ms(e.time_ms);
    [
        ("ce_specversion", "1.0"),
        ("ce_id", e.id.as_str()),
        ("ce_source", e.source.as_str()),
        ("ce_type", e.kind.type_name()),
        ("ce_subject", e.session_id.as_str()),
        ("ce_time", time.as_str()),
        ("content-type", "application/json"),
    ]
    .into_iter()
    .fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(Header {
            key: k,
            value: Some(v),
        })
    })
}

/// Creates a topic with `partitions` partitions (replication 1); an existing
/// topic is fine.
pub async fn admin_create_topic(
    brokers: &str,
    name: &str,
    partitions: i32,
) -> Result<(), KafkaError> {
    admin_create_topic_with(brokers, name, partitions, &[]).await
}

/// [`admin_create_topic`] with topic settings (`cleanup.policy`, …).
pub async fn admin_create_topic_with(
    brokers: &str,
    name: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in settings {
        topic = topic.set(k, v);
    }
    let res = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in res {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(KafkaError::Delivery(format!("create topic {t}: {code}")));
            }
        }
    }
    Ok(())
}
