//! The reaper: publishes the events that close active sessions past their
//! deadline, back to the event topic. It decides nothing: the store says what
//! is due and `ledger_core::reap_event` what event closes it (time = the
//! deadline, a deterministic id, so a second reaper's copy is a duplicate).
//!
//! Only partitions this instance owns in the reaper's consumer group are
//! reaped (the group's assignment is the ownership; its partitions are paused,
//! nothing is consumed).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger_core::reap_event;
use ledger_store::LiveStore;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::publish::RawRecord;
use crate::{KafkaError, Metrics, Publisher};

/// Reaper settings.
#[derive(Debug, Clone)]
pub struct ReaperConfig {
    pub brokers: String,
    pub topic: String,
    /// Consumer group whose assignment decides partition ownership.
    pub group_id: String,
    /// How often to look for due sessions.
    pub interval: Duration,
    /// Most events published per tick.
    pub max_per_tick: usize,
    /// Sharded mode: reap the partitions this instance answers for (the
    /// data group's), not those of a reaper group.
    pub ownership: Option<Arc<crate::cluster::Ownership>>,
}

pub struct Reaper {
    cfg: ReaperConfig,
    store: LiveStore,
    metrics: Metrics,
    clock: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl Reaper {
    pub fn new(
        cfg: ReaperConfig,
        store: impl Into<LiveStore>,
        metrics: Metrics,
        clock: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Self {
        Self {
            cfg,
            store: store.into(),
            metrics,
            clock,
        }
    }

    /// Runs on its own thread until `stop` is set.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> JoinHandle<Result<(), KafkaError>> {
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || self.run(&stop))
            .expect("spawn reaper thread")
    }

    fn run(self, stop: &AtomicBool) -> Result<(), KafkaError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KafkaError::Delivery(e.to_string()))?;
        let consumer: Option<BaseConsumer> = match self.cfg.ownership {
            Some(_) => None,
            None => Some(self.group_member()?),
        };
        let publisher = Publisher::new(&self.cfg.brokers, &self.cfg.topic)?;
        // session id → (deadline published, when): not republished while in flight.
        let mut sent: HashMap<String, (i64, Instant)> = HashMap::new();
        let mut last = Instant::now() - self.cfg.interval;
        while !stop.load(Ordering::Acquire) {
            let owned: BTreeSet<i32> = match (&consumer, &self.cfg.ownership) {
                (Some(consumer), _) => {
                    // Polling keeps the group membership alive; partitions stay paused.
                    if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                        self.metrics.errors.inc();
                        tracing::debug!(error = %e, "reaper consumer error");
                    }
                    if last.elapsed() < self.cfg.interval {
                        continue;
                    }
                    let Ok(assignment) = consumer.assignment() else {
                        continue;
                    };
                    let _ = consumer.pause(&assignment);
                    assignment
                        .elements()
                        .iter()
                        .map(|e| e.partition())
                        .collect()
                }
                (None, Some(own)) => {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() < self.cfg.interval {
                        continue;
                    }
                    own.ready()
                }
                (None, None) => return Ok(()),
            };
            last = Instant::now();
            self.metrics.reaper_owned.clear();
            for &p in &owned {
                Metrics::partition(&self.metrics.reaper_owned, p).set(1);
            }
            if owned.is_empty() {
                continue;
            }
            self.reap(&rt, &publisher, &owned, &mut sent)?;
        }
        Ok(())
    }

    /// The member of the reaper's group whose assignment is the ownership.
    fn group_member(&self) -> Result<BaseConsumer, KafkaError> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.cfg.brokers)
            .set("group.id", &self.cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "latest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // It polls every 100 ms: a rebalance never waits long for it.
            .set("max.poll.interval.ms", "30000")
            // A topic created after the reaper started is seen within 10 s
            // (librdkafka's default is 5 min), so its partitions get owners.
            .set("topic.metadata.refresh.interval.ms", "10000")
            .create()?;
        consumer.subscribe(&[&self.cfg.topic])?;
        Ok(consumer)
    }

    /// Publishes the closing events of due sessions of `owned` partitions.
    fn reap(
        &self,
        rt: &tokio::runtime::Runtime,
        publisher: &Publisher,
        owned: &BTreeSet<i32>,
        sent: &mut HashMap<String, (i64, Instant)>,
    ) -> Result<(), KafkaError> {
        let now = (self.clock)();
        sent.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(30));
        let due = self.store.get().due(now, self.cfg.max_per_tick * 4)?;
        let mut records = vec![];
        for (id, deadline, status, partition) in due {
            if !owned.contains(&partition) || sent.get(&id).is_some_and(|(d, _)| *d == deadline) {
                continue;
            }
            let e = reap_event(&id, status, deadline);
            let mut r = RawRecord::event(&e);
            r.partition = Some(partition);
            records.push(r);
            sent.insert(id, (deadline, Instant::now()));
            if records.len() >= self.cfg.max_per_tick {
                break;
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        let n = records.len() as u64;
        match rt.block_on(publisher.send_all(records, |_| {})) {
            Ok(_) => {
                self.metrics.reaped.inc_by(n);
                tracing::debug!(count = n, "reaped sessions past their deadline");
            }
            Err(e) => {
                self.metrics.errors.inc();
                tracing::warn!(error = %e, "reaper publish failed; will retry");
                sent.clear();
            }
        }
        Ok(())
    }
}
