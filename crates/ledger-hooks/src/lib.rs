//! Webhooks: the change feed (`ledger_store::feed`) delivered to configured
//! endpoints as Clerk-style events (`{"data", "object": "event", "type",
//! "timestamp"}`, `data` a Clerk `Session`), signed per the Standard Webhooks
//! specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
//! `v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the endpoint's
//! `whsec_` secret).
//!
//! - **At least once, in order per session.** Each endpoint reads the feed
//!   partition by partition and delivers one event at a time, retrying with
//!   exponential backoff until the endpoint answers 2xx; only then does its
//!   cursor move past the event.
//! - **One replica delivers.** Each endpoint has a consumer group
//!   (`<group_id>-webhook-<name>`) on the event topic: the group's
//!   assignment says which partitions this replica delivers (its partitions
//!   stay paused: nothing is consumed), and the group's committed offsets
//!   are the cursors — the change-log offset, with the read-time watermark
//!   in the commit's metadata — so delivery state survives restarts and
//!   moves with a partition to another replica.
//! - **Idempotent by id.** `webhook-id` is derived from the change (its
//!   partition and offset, or the session and deadline of a read-time
//!   transition): a redelivery carries the same id.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use ledger_core::Session;
use ledger_store::{FeedItem, LiveStore, Token};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use sha2::{Digest, Sha256};

/// One configured endpoint.
#[derive(Clone)]
pub struct Endpoint {
    /// Names the endpoint in metrics, logs and its consumer group.
    pub name: String,
    pub url: String,
    /// Event types delivered (`session.created`, …); empty: all.
    pub events: Vec<String>,
    /// Only sessions this filter matches (user, workspace, client, agent).
    pub filter: ledger_store::Filter,
    /// The signing key (the bytes of a `whsec_` secret).
    pub key: Vec<u8>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    fn wants(&self, event_type: &str, s: &Session, at: i64) -> bool {
        (self.events.is_empty() || self.events.iter().any(|e| e == event_type))
            && self.filter.matches(s, at)
    }
}

/// Where and how webhooks are delivered.
#[derive(Debug, Clone)]
pub struct HooksConfig {
    pub brokers: String,
    pub topic: String,
    /// Prefix of each endpoint's consumer group.
    pub group_id: String,
    pub endpoints: Vec<Endpoint>,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
    /// Backoff after the first failure; doubles up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// Sharded mode: the partitions this instance answers for (the data
    /// group's), which it delivers; the endpoint's group then only keeps
    /// the cursors, committed by each partition's one owner. `None`: the
    /// endpoint's group assigns the partitions.
    pub owned: Option<Owned>,
}

/// The partitions an instance owns now.
#[derive(Clone)]
pub struct Owned(pub std::sync::Arc<dyn Fn() -> std::collections::BTreeSet<i32> + Send + Sync>);

impl std::fmt::Debug for Owned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Owned")
    }
}

/// The bytes of a Standard Webhooks secret (`whsec_` + base64).
pub fn parse_secret(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("a webhook secret is `whsec_` + base64: {e}"))?;
    if key.len() < 16 {
        return Err("a webhook secret needs at least 16 bytes of key".into());
    }
    Ok(key)
}

/// `webhook-signature` of a message: `v1,` + base64(HMAC-SHA256(key,
/// "{id}.{timestamp}.{body}")), `timestamp` in Unix seconds.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

/// The webhook id of a change: the same for every delivery of it, from any
/// replica.
pub fn message_id(session_id: &str, position: Option<(i32, i64)>, at: i64) -> String {
    let name = match position {
        Some((p, off)) => format!("applied|{p}|{off}"),
        None => format!("deadline|{session_id}|{at}"),
    };
    format!(
        "msg_{}",
        &hex::encode(Sha256::digest(name.as_bytes()))[..26]
    )
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

/// Webhook metrics, by endpoint.
#[derive(Clone, Default)]
pub struct HookMetrics {
    /// Events delivered (a 2xx answer).
    pub delivered: Family<EndpointLabel, Counter>,
    /// Failed attempts (an error or a non-2xx answer; each is retried).
    pub failures: Family<EndpointLabel, Counter>,
    /// 1 while the endpoint's next event is failing.
    pub failing: Family<EndpointLabel, Gauge>,
    /// Partitions this replica delivers for the endpoint.
    pub owned: Family<EndpointLabel, Gauge>,
    /// Resets: the cursor was behind the trimmed change log (events lost).
    pub resets: Family<EndpointLabel, Counter>,
    /// Delivery rounds that failed on the broker or the store (retried).
    pub errors: Family<EndpointLabel, Counter>,
}

impl HookMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("ledger_webhook");
        r.register(
            "deliveries",
            "Webhook events delivered",
            m.delivered.clone(),
        );
        r.register(
            "failures",
            "Failed webhook delivery attempts (retried)",
            m.failures.clone(),
        );
        r.register(
            "failing",
            "1 while an endpoint's next event is failing",
            m.failing.clone(),
        );
        r.register(
            "owned_partitions",
            "Partitions this replica delivers for an endpoint",
            m.owned.clone(),
        );
        r.register(
            "resets",
            "Webhook cursors behind the trimmed change log (events lost)",
            m.resets.clone(),
        );
        r.register(
            "errors",
            "Webhook delivery rounds that failed on the broker or the store (retried)",
            m.errors.clone(),
        );
        m
    }

    fn label(name: &str) -> EndpointLabel {
        EndpointLabel {
            endpoint: name.to_string(),
        }
    }
}

/// Starts one delivery thread per endpoint; each runs until `stop`.
pub fn spawn(
    cfg: HooksConfig,
    store: LiveStore,
    metrics: HookMetrics,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    cfg.endpoints
        .iter()
        .map(|ep| {
            let d = Deliverer {
                cfg: cfg.clone(),
                ep: ep.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                clock: clock.clone(),
                stop: stop.clone(),
            };
            std::thread::Builder::new()
                .name(format!("webhook-{}", ep.name))
                .spawn(move || {
                    if let Err(e) = d.run() {
                        tracing::error!(endpoint = %d.ep.name, error = %e, "webhook delivery stopped");
                    }
                })
                .expect("spawn webhook thread")
        })
        .collect()
}

struct Deliverer {
    cfg: HooksConfig,
    ep: Endpoint,
    store: LiveStore,
    metrics: HookMetrics,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    stop: Arc<AtomicBool>,
}

/// Why a delivery gave up before succeeding.
enum Abandoned {
    /// The partition moved to another replica (or is moving).
    Revoked,
    Stopping,
}

impl Deliverer {
    fn run(&self) -> Result<(), String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.cfg.brokers)
            .set(
                "group.id",
                format!("{}-webhook-{}", self.cfg.group_id, self.ep.name),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("topic.metadata.refresh.interval.ms", "10000")
            .create()
            .map_err(|e| e.to_string())?;
        if self.cfg.owned.is_none() {
            consumer
                .subscribe(&[&self.cfg.topic])
                .map_err(|e| e.to_string())?;
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(self.cfg.timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let label = HookMetrics::label(&self.ep.name);
        // Cursor of each owned partition.
        let mut cursors: BTreeMap<i32, Token> = BTreeMap::new();
        while !self.stop.load(Ordering::Acquire) {
            match self.round(&consumer, &http, &mut cursors) {
                Ok(true) => {
                    let _ = consumer.poll(Duration::from_millis(200));
                }
                Ok(false) => {}
                // A broker or store error (a cursor read timed out, …) is
                // retried after a pause from the committed cursors: the
                // thread never stops while the process runs.
                Err(e) => {
                    self.metrics.errors.get_or_create(&label).inc();
                    tracing::warn!(endpoint = %self.ep.name, error = %e, "webhook delivery round failed; retrying in 1 s");
                    cursors.clear();
                    let until = Instant::now() + Duration::from_secs(1);
                    while Instant::now() < until && !self.stop.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        Ok(())
    }

    /// One pass over the owned partitions: delivers up to a page of each
    /// from its cursor. Returns whether there was nothing to deliver.
    fn round(
        &self,
        consumer: &BaseConsumer,
        http: &reqwest::blocking::Client,
        cursors: &mut BTreeMap<i32, Token>,
    ) -> Result<bool, String> {
        let label = HookMetrics::label(&self.ep.name);
        let owned = self.owned(consumer);
        self.metrics
            .owned
            .get_or_create(&label)
            .set(owned.len() as i64);
        cursors.retain(|p, _| owned.contains(p));
        let mut idle = true;
        for &p in &owned {
            let cursor = match cursors.get(&p) {
                Some(c) => c.clone(),
                None => self.committed(consumer, p)?,
            };
            let mut next = cursor.clone();
            let store = self.store.get();
            let items = store
                .feed_read_in(&self.cfg.topic, &mut next, (self.clock)(), 64, Some(p))
                .map_err(|e| e.to_string())?;
            idle &= items.is_empty();
            let mut abandoned = false;
            for item in items {
                let done = match item {
                    FeedItem::Reset { token } => {
                        self.metrics.resets.get_or_create(&label).inc();
                        tracing::warn!(endpoint = %self.ep.name, partition = p,
                            "webhook cursor behind the trimmed change log: events were missed");
                        token
                    }
                    FeedItem::Change {
                        token,
                        event_type,
                        session,
                        at,
                        position,
                        ..
                    } => {
                        if self.ep.wants(event_type, &session, at) {
                            let id = message_id(&session.id, position, at);
                            let body = json!({
                                "data": ledger_api::clerk_session_json(&session, at),
                                "object": "event",
                                "type": event_type,
                                "timestamp": at,
                            })
                            .to_string();
                            if self.deliver(consumer, http, p, &id, &body).is_err() {
                                abandoned = true;
                                break;
                            }
                        }
                        token
                    }
                };
                self.commit(consumer, p, &done)?;
            }
            if abandoned {
                // Re-read the committed cursor if it comes back.
                cursors.remove(&p);
            } else {
                // Past what the page covered (filtered items included).
                if next != cursor {
                    self.commit(consumer, p, &next)?;
                }
                cursors.insert(p, next);
            }
        }
        Ok(idle)
    }

    /// Partitions this replica delivers now (paused: never consumed).
    fn owned(&self, consumer: &BaseConsumer) -> Vec<i32> {
        if let Some(owned) = &self.cfg.owned {
            return (owned.0)().into_iter().collect();
        }
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(20)) {
            tracing::debug!(endpoint = %self.ep.name, error = %e, "webhook consumer");
        }
        let Ok(assignment) = consumer.assignment() else {
            return vec![];
        };
        let _ = consumer.pause(&assignment);
        assignment
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect()
    }

    /// The committed cursor of partition `p`, or the head (committed now)
    /// when the group has none: an endpoint gets what changes from its
    /// first start on.
    fn committed(&self, consumer: &BaseConsumer, p: i32) -> Result<Token, String> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.cfg.topic, p);
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        if let Some(e) = got.find_partition(&self.cfg.topic, p) {
            if let Offset::Offset(o) = e.offset() {
                if let Some(t) = decode_cursor(p, o, e.metadata()) {
                    return Ok(t);
                }
            }
        }
        let mut head = self
            .store
            .get()
            .feed_head(&self.cfg.topic, (self.clock)())
            .map_err(|e| e.to_string())?;
        head.next.retain(|&q, _| q == p);
        self.commit(consumer, p, &head)?;
        Ok(head)
    }

    fn commit(&self, consumer: &BaseConsumer, p: i32, t: &Token) -> Result<(), String> {
        let mut tpl = TopicPartitionList::new();
        let off = t.next.get(&p).copied().unwrap_or(0);
        tpl.add_partition_offset(&self.cfg.topic, p, Offset::Offset(off))
            .map_err(|e| e.to_string())?;
        if let Some(mut e) = tpl.find_partition(&self.cfg.topic, p) {
            e.set_metadata(encode_watermark(t));
        }
        // A failed commit is retried with the next one; a crash before it
        // delivers again (at least once).
        if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            tracing::warn!(endpoint = %self.ep.name, partition = p, error = %e, "webhook cursor commit failed");
        }
        Ok(())
    }

    /// Delivers one event, retrying with backoff until a 2xx, the partition
    /// moves away, or the process stops.
    fn deliver(
        &self,
        consumer: &BaseConsumer,
        http: &reqwest::blocking::Client,
        p: i32,
        id: &str,
        body: &str,
    ) -> Result<(), Abandoned> {
        let label = HookMetrics::label(&self.ep.name);
        let mut backoff = self.cfg.first_backoff;
        loop {
            let ts = (self.clock)().div_euclid(1000);
            let answer = http
                .post(&self.ep.url)
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sign(&self.ep.key, id, ts, body))
                .body(body.to_string())
                .send();
            let why = match answer {
                Ok(r) if r.status().is_success() => {
                    self.metrics.delivered.get_or_create(&label).inc();
                    self.metrics.failing.get_or_create(&label).set(0);
                    return Ok(());
                }
                Ok(r) => format!("answered {}", r.status()),
                Err(e) => e.to_string(),
            };
            self.metrics.failures.get_or_create(&label).inc();
            self.metrics.failing.get_or_create(&label).set(1);
            tracing::info!(endpoint = %self.ep.name, id, %why, retry_in_ms = backoff.as_millis() as u64, "webhook delivery failed");
            let until = Instant::now() + backoff;
            while Instant::now() < until {
                if self.stop.load(Ordering::Acquire) {
                    return Err(Abandoned::Stopping);
                }
                if !self.owned(consumer).contains(&p) {
                    return Err(Abandoned::Revoked);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            backoff = (backoff * 2).min(self.cfg.max_backoff);
        }
    }
}

/// The read-time watermark of a cursor, as commit metadata.
fn encode_watermark(t: &Token) -> String {
    let id = t
        .through_id
        .as_ref()
        .map_or_else(|| "-".to_string(), hex::encode);
    format!("{}.{id}", t.through)
}

/// A partition's cursor from its committed offset and metadata.
fn decode_cursor(p: i32, offset: i64, metadata: &str) -> Option<Token> {
    let (through, id) = metadata.split_once('.')?;
    let through_id = match id {
        "-" => None,
        h => Some(String::from_utf8(hex::decode(h).ok()?).ok()?),
    };
    Some(Token {
        next: [(p, offset)].into(),
        through: through.parse().ok()?,
        through_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The specification's example: secret, id, timestamp, payload and
        // the signature it gives.
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert!(parse_secret("whsec_c2hvcnQ=").is_err());
    }

    #[test]
    fn cursors_round_trip_through_commit_metadata() {
        let t = Token {
            next: [(2, 41)].into(),
            through: 1_795_000_000_000,
            through_id: Some("s-1".into()),
        };
        assert_eq!(decode_cursor(2, 41, &encode_watermark(&t)), Some(t));
        let t = Token {
            next: [(0, 0)].into(),
            through: 5,
            through_id: None,
        };
        assert_eq!(decode_cursor(0, 0, &encode_watermark(&t)), Some(t));
        assert_eq!(decode_cursor(0, 0, ""), None);
    }

    #[test]
    fn message_ids_name_the_change() {
        let a = message_id("s", Some((1, 5)), 9);
        assert_eq!(a, message_id("other", Some((1, 5)), 10));
        assert_ne!(a, message_id("s", Some((1, 6)), 9));
        assert_ne!(message_id("s", None, 9), message_id("s", None, 10));
        assert!(a.starts_with("msg_") && a.len() == 30);
    }
}
