//! The consumer: exactly-once effect by storing offsets with the data.
//!
//! Partitions are assigned manually (every replica reads every partition into
//! its own store) starting at the offsets stored in sled. Each batch — up to
//! `batch_max` records or `batch_wait` of polling — is decoded; bad records
//! are produced to `<topic>.dlq` (and their delivery awaited); then ONE atomic
//! store write applies the events and records every partition's next offset.
//! Kafka offset commits follow, for lag tooling only. If dead-lettering fails
//! (broker gone), nothing is written and the consumer rewinds to the stored
//! offsets and retries: a crash or outage at any instant loses nothing and
//! applies nothing twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger_core::{decode_record, erasure, Bucket, Erasure};
use ledger_store::{LiveStore, Record, Store};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::publish::{producer_config, RawRecord};
use crate::{dlq_topic, KafkaError, Publisher};

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub brokers: String,
    pub topic: String,
    /// Group id used for informational offset commits (lag tooling).
    pub group_id: String,
    /// Most records in one batch. Sessions coalesce across a batch, so big
    /// batches are what make catching up fast.
    pub batch_max: usize,
    /// Longest time spent filling one batch while caught up: the added
    /// latency of a live event.
    pub batch_wait: Duration,
    /// Longest time spent filling one batch while at least `batch_max`
    /// records behind (catching up, rebuilding).
    pub batch_wait_behind: Duration,
    /// Which undecodable (or skipped) records are produced to `<topic>.dlq`.
    pub dead_letter: DeadLetters,
    /// A partition behind its high watermark that yields no record for this
    /// long is reported stalled (log, metric, `/readyz`).
    pub stall_after: Duration,
    /// A stalled partition whose next record the broker does not deliver
    /// for this long while it answers (a record over the broker's fetch
    /// limit) has that offset skipped with a dead letter saying why.
    /// `None`: never skip, only report.
    pub skip_unfetchable_after: Option<Duration>,
    /// Sharded mode: read only the partitions this instance owns (and its
    /// standby and kept copies), mark each ready once caught up, drop
    /// those no longer kept. `None`: every partition (replica mode).
    pub ownership: Option<Arc<crate::cluster::Ownership>>,
    /// Nice value of the ingest thread and of the threads it starts (the
    /// fold's workers, the consumer's): above 0, readers on the same cores
    /// run first while a backlog is caught up. Linux only; 0 leaves it.
    pub nice: i32,
    /// Run the ingest thread and the threads it starts under Linux's
    /// `SCHED_IDLE`: they get a core only when no other thread wants it, and
    /// a reader waking up takes the core from them at once (a nice value
    /// only weighs their share; a reader may wait out their time slice).
    pub sched_idle: bool,
    /// How decoding and the store writes give way to reads being served
    /// (`ledger_store::pace`); unpaced by default.
    pub pace: ledger_store::Pace,
    /// Most records librdkafka fetches ahead of what ingestion has taken
    /// (its `queued.min.messages`, for all partitions together): the
    /// broker's work for records not yet needed. While readers slow
    /// ingestion down, each record fetched ahead is work the broker does
    /// beside them for nothing yet (librdkafka's default is 100,000).
    pub prefetch_records: u32,
}

/// Records fetched ahead by default ([`IngestConfig::prefetch_records`]):
/// more than one batch of `batch_max`, far below librdkafka's 100,000.
pub const PREFETCH_RECORDS: u32 = 20_000;

/// Records decoded between two pacing checks while a batch fills.
const PACE_EVERY: usize = 1_000;

/// Sets the calling thread's scheduling: `SCHED_IDLE` if `idle`, and its
/// nice value (on Linux both are a thread's own; threads it starts inherit
/// them). A failure is logged: priority is an optimisation.
pub(crate) fn lower_priority(nice: i32, idle: bool) {
    #[cfg(target_os = "linux")]
    if idle {
        use thread_priority::{
            set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
            ThreadPriority, ThreadSchedulePolicy,
        };
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(e) =
            set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy)
        {
            tracing::warn!(error = ?e, "could not run the ingest thread under SCHED_IDLE");
        }
    }
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        tracing::warn!(nice, error = %e, "could not lower the ingest thread's priority");
    }
}

/// Which undecodable or skipped records a consumer produces to
/// `<topic>.dlq` (every one is counted in `events.dead_lettered` anyway).
#[derive(Clone)]
pub enum DeadLetters {
    /// Every one: live ingestion.
    All,
    /// None: an offline rebuild replays records dead-lettered already.
    None,
    /// Those at or past the offset this gives for their partition: an online
    /// rebuild, past where the live store had read when the rebuild switched.
    From(Arc<dyn Fn(i32) -> i64 + Send + Sync>),
}

impl DeadLetters {
    fn wants(&self, partition: i32, offset: i64) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::From(floor) => offset >= floor(partition),
        }
    }
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::All => "All",
            Self::None => "None",
            Self::From(_) => "From(live offsets)",
        })
    }
}

impl IngestConfig {
    pub fn new(brokers: &str, topic: &str) -> Self {
        Self {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            group_id: "session-ledger".to_string(),
            batch_max: 50_000,
            batch_wait: Duration::from_millis(50),
            batch_wait_behind: Duration::from_secs(1),
            dead_letter: DeadLetters::All,
            stall_after: Duration::from_secs(30),
            skip_unfetchable_after: Some(Duration::from_secs(120)),
            ownership: None,
            nice: 10,
            sched_idle: false,
            pace: ledger_store::Pace::none(),
            prefetch_records: PREFETCH_RECORDS,
        }
    }
}

/// Where one partition stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionProgress {
    /// Next offset to apply (= stored offset).
    pub next_offset: i64,
    /// Latest high watermark seen.
    pub high_watermark: i64,
    /// High watermark when the consumer started: caught up once passed.
    pub start_high_watermark: i64,
}

/// Shared view of the consumer's progress.
#[derive(Debug, Default)]
pub struct Progress {
    partitions: RwLock<BTreeMap<i32, PartitionProgress>>,
    ready: AtomicBool,
    /// Why the consumer thread ended, if it ended with an error.
    failure: std::sync::Mutex<Option<String>>,
    /// Conditions that keep ingestion from progressing, by kind
    /// (`dlq`, `partition <p>`).
    problems: std::sync::Mutex<BTreeMap<String, String>>,
}

impl Progress {
    /// Why the consumer ended, if it failed: ingestion has stopped.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What currently keeps ingestion from progressing (empty when healthy).
    pub fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Sets or clears the problem of a kind.
    fn set_problem(&self, kind: &str, problem: Option<String>) {
        let mut map = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        match problem {
            Some(p) => map.insert(kind.to_string(), p),
            None => map.remove(kind),
        };
    }

    /// Whether every partition reached the high watermark seen at start.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn partitions(&self) -> BTreeMap<i32, PartitionProgress> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A running consumer: stop it and wait for the batch in flight to finish.
pub struct IngestHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), KafkaError>>>,
    pub progress: Arc<Progress>,
    /// Incremented after every applied batch.
    pub applied: watch::Receiver<u64>,
}

impl IngestHandle {
    /// Asks the consumer to stop after the batch in flight, and waits.
    pub fn stop(mut self) -> Result<(), KafkaError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(KafkaError::Delivery("ingest thread panicked".into())),
            None => Ok(()),
        }
    }

    /// Whether the consumer thread has ended.
    pub fn finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for IngestHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Client context that keeps the high watermarks librdkafka reports in its
/// statistics (every second), so lag needs no extra broker round trips.
#[derive(Default)]
pub struct WatermarkContext {
    high: std::sync::Mutex<BTreeMap<i32, i64>>,
}

impl WatermarkContext {
    fn high(&self, p: i32) -> Option<i64> {
        self.high
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p)
            .copied()
    }
}

impl rdkafka::ClientContext for WatermarkContext {
    fn stats(&self, s: rdkafka::Statistics) {
        let mut high = self.high.lock().unwrap_or_else(|e| e.into_inner());
        for t in s.topics.values() {
            for (p, part) in &t.partitions {
                if *p >= 0 && part.hi_offset >= 0 {
                    high.insert(*p, part.hi_offset);
                }
            }
        }
    }
}

impl rdkafka::consumer::ConsumerContext for WatermarkContext {}

type LedgerConsumer = BaseConsumer<WatermarkContext>;

/// Largest payload copied into a dead letter, bytes.
pub const DLQ_MAX_PAYLOAD: usize = 64 * 1024;

/// The ingest consumer's librdkafka settings: manual offsets, fetch sizes
/// that hold any record a default broker accepts, statistics every second
/// (the high watermarks), and what it fetches ahead
/// ([`IngestConfig::prefetch_records`], at least 1). Public so benchmarks
/// read the topic the same way.
pub fn consumer_config(cfg: &IngestConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100")
        // A partition fetch holds any record a default broker accepts
        // (1 MiB message.max.bytes), so an oversize poison record is
        // fetched and dead-lettered instead of stalling its partition.
        .set("max.partition.fetch.bytes", "2097152")
        .set("fetch.max.bytes", "8388608")
        .set("statistics.interval.ms", "1000")
        .set(
            "queued.min.messages",
            cfg.prefetch_records.max(1).to_string(),
        );
    c
}

/// A running consumer's connections and positions.
struct Connected {
    rt: tokio::runtime::Runtime,
    consumer: LedgerConsumer,
    /// Created at the first dead letter ([`Publisher::lazy`]).
    dlq: Publisher,
    partitions: Vec<i32>,
    /// Next offset to apply, by partition (= the stored offsets).
    next: BTreeMap<i32, i64>,
    start_high: BTreeMap<i32, i64>,
    quiet: Quiet,
    /// The live store's generation the offsets in `next` are of.
    generation: u64,
    /// The ownership version `partitions` follows and the partitions
    /// assigned then (sharded mode).
    own_seen: (u64, std::collections::BTreeSet<i32>),
}

/// One polled batch: decoded records, dead letters, and each partition's
/// offset after its last record.
struct Batch {
    started: Instant,
    records: Vec<Record>,
    dead: Vec<RawRecord>,
    /// Undecodable records not produced to the dead-letter topic again.
    undelivered: u64,
    next: BTreeMap<i32, i64>,
    /// An erasure read after `records` (it ends the batch): applied on its
    /// own once they are stored, at its partition and offset.
    erasure: Option<(Erasure, i32, i64)>,
}

/// How long partitions have been quiet: when each last yielded a record (or
/// was caught up), and the last consumer error (a skip needs a broker that
/// answered without error for the whole skip window).
struct Quiet {
    /// When each partition last yielded a record or was caught up; only
    /// meaningful while it is read without a break.
    last_record: BTreeMap<i32, Instant>,
    last_error: Instant,
    /// Partitions reported stalled (progress is touched on changes only).
    stalled: std::collections::BTreeSet<i32>,
}

impl Quiet {
    /// Reading starts over at the stored offsets of another store: every
    /// partition has been quiet only since now.
    fn restart(&mut self) {
        self.last_record.clear();
    }

    /// Partitions read from now on after a break (handed over and back)
    /// have been quiet only since now, or their first record would be
    /// skipped as unfetchable; partitions no longer read are no longer
    /// stalled.
    fn reread(
        &mut self,
        gained: impl IntoIterator<Item = i32>,
        dropped: impl IntoIterator<Item = i32>,
        progress: &Progress,
    ) {
        for p in gained {
            self.last_record.remove(&p);
        }
        for p in dropped {
            self.last_record.remove(&p);
            if self.stalled.remove(&p) {
                progress.set_problem(&format!("partition {p}"), None);
            }
        }
    }
}

/// The consumer loop.
pub struct Ingestor {
    cfg: IngestConfig,
    live: LiveStore,
    metrics: Metrics,
    /// The pace's paused time already counted in the metrics, ns.
    paused_counted: std::sync::atomic::AtomicU64,
}

impl Ingestor {
    /// An ingestor of `store`: a [`Store`], or a [`LiveStore`] that an
    /// online rebuild may switch (ingestion then resumes at the new store's
    /// offsets).
    pub fn new(cfg: IngestConfig, store: impl Into<LiveStore>, metrics: Metrics) -> Self {
        Self {
            cfg,
            live: store.into(),
            metrics,
            paused_counted: Default::default(),
        }
    }

    /// The store live now.
    fn store(&self) -> Store {
        self.live.get()
    }

    /// Starts the consumer on its own thread.
    pub fn spawn(self) -> IngestHandle {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let (tx, rx) = watch::channel(0u64);
        let (s, p) = (stop.clone(), progress.clone());
        let up = self.metrics.consumer_up.clone();
        up.set(1);
        let thread = std::thread::Builder::new()
            .name("ingest".into())
            .spawn(move || {
                lower_priority(self.cfg.nice, self.cfg.sched_idle);
                let pace = self.cfg.pace.clone();
                let r = self.run(&s, &p, &tx);
                // Stopped or failed: no write turn is ever due again.
                pace.idle();
                up.set(0);
                if let Err(e) = &r {
                    tracing::error!(error = %e, "the consumer stopped: ingestion has halted");
                    *p.failure.lock().unwrap_or_else(|x| x.into_inner()) = Some(e.to_string());
                }
                r
            })
            .expect("spawn ingest thread");
        IngestHandle {
            stop,
            thread: Some(thread),
            progress,
            applied: rx,
        }
    }

    fn consumer(&self) -> Result<LedgerConsumer, KafkaError> {
        Ok(consumer_config(&self.cfg).create_with_context(WatermarkContext::default())?)
    }

    /// The topic's partitions; waits (until stopped) for the topic to exist.
    fn partitions(&self, c: &LedgerConsumer, stop: &AtomicBool) -> Result<Vec<i32>, KafkaError> {
        loop {
            match c.fetch_metadata(Some(&self.cfg.topic), Duration::from_secs(5)) {
                Ok(md) => {
                    let ps: Vec<i32> = md
                        .topics()
                        .iter()
                        .filter(|t| t.name() == self.cfg.topic && t.error().is_none())
                        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                        .collect();
                    if !ps.is_empty() {
                        return Ok(ps);
                    }
                }
                Err(e) => {
                    self.metrics.errors.inc();
                    tracing::warn!(error = %e, "metadata request failed; retrying");
                }
            }
            if stop.load(Ordering::Acquire) {
                return Err(KafkaError::NoTopic(self.cfg.topic.clone()));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Assigns `partitions` at the stored offsets (beginning when none).
    fn assign(
        &self,
        c: &LedgerConsumer,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, KafkaError> {
        let stored = self.store().offsets(&self.cfg.topic)?;
        let mut tpl = TopicPartitionList::new();
        let mut next = BTreeMap::new();
        for &p in partitions {
            let off = stored.get(&p).copied().unwrap_or(0);
            tpl.add_partition_offset(&self.cfg.topic, p, Offset::Offset(off))?;
            next.insert(p, off);
        }
        c.assign(&tpl)?;
        tracing::info!(topic = %self.cfg.topic, offsets = ?next, "assigned partitions at stored offsets");
        Ok(next)
    }

    /// The loop: fill a batch, watch for stalls, dead-letter, store, announce.
    fn run(
        self,
        stop: &AtomicBool,
        progress: &Progress,
        applied: &watch::Sender<u64>,
    ) -> Result<(), KafkaError> {
        let Some(mut k) = self.connect(stop)? else {
            return Ok(());
        };
        self.metrics
            .sessions
            .set(self.store().stats().sessions as i64);
        let c = &k.consumer;
        self.publish_progress(progress, &k.next, &k.start_high, c);
        let (mut last_meta, mut batches) = (Instant::now(), 0u64);
        while !stop.load(Ordering::Acquire) {
            let batch = self.fill_batch(c, &k.next, &mut k.quiet);
            // Stores happen under the live store's gate; a store switched
            // by an online rebuild since the last batch has its own offsets:
            // the batch is dropped and reading resumes at them.
            let _gate = self.live.gate();
            if self.live.generation() != k.generation {
                k.generation = self.live.generation();
                k.next = self.assign(c, &k.partitions)?;
                k.quiet.restart();
                tracing::info!("the store was switched; reading on from its offsets");
                continue;
            }
            // Sharded: partitions gained or handed over since the last
            // batch; the batch is dropped and reading resumes at the
            // stored offsets of what is owned now.
            let before: std::collections::BTreeSet<i32> = k.partitions.iter().copied().collect();
            if self.follow_ownership(
                c,
                &mut k.own_seen,
                &mut k.partitions,
                &mut k.next,
                &mut k.start_high,
            )? {
                let after: std::collections::BTreeSet<i32> = k.partitions.iter().copied().collect();
                k.quiet.reread(
                    after.difference(&before).copied(),
                    before.difference(&after).copied(),
                    progress,
                );
                continue;
            }
            if self.watch_stalls(c, &k.rt, &k.dlq, progress, &k.next, &mut k.quiet)? {
                k.next = self.assign(c, &k.partitions)?;
                continue;
            }
            if batch.next.is_empty() {
                self.publish_progress(progress, &k.next, &k.start_high, c);
                if last_meta.elapsed() > Duration::from_secs(30) && self.cfg.ownership.is_none() {
                    last_meta = Instant::now();
                    self.refresh_partitions(c, stop, &mut k.partitions, &mut k.next)?;
                }
                continue;
            }
            // Dead letters first: their delivery must be certain before the
            // offsets that skip them are stored.
            let dead = batch.dead.len() as u64 + batch.undelivered;
            if !batch.dead.is_empty()
                && self
                    .dead_letter_all(&k.rt, &k.dlq, progress, batch.dead)
                    .is_err()
            {
                k.next = self.assign(c, &k.partitions)?;
                continue;
            }
            self.store_batch(c, &batch.records, &batch.next, dead, batch.started)?;
            k.next.extend(batch.next);
            if let Some((e, p, offset)) = batch.erasure {
                self.store_erasure(&e, p, offset)?;
                k.next.insert(p, offset + 1);
            }
            batches += 1;
            self.publish_progress(progress, &k.next, &k.start_high, c);
            let _ = applied.send(batches);
        }
        tracing::info!("consumer stopped after the batch in flight");
        Ok(())
    }

    /// The consumer assigned at the stored offsets, the dead-letter producer,
    /// the start watermarks; `None` when stopped before the broker answered.
    fn connect(&self, stop: &AtomicBool) -> Result<Option<Connected>, KafkaError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KafkaError::Delivery(e.to_string()))?;
        let consumer = self.consumer()?;
        let dlq = Publisher::lazy(
            producer_config(&self.cfg.brokers),
            &dlq_topic(&self.cfg.topic),
        );
        let (partitions, own_seen) = match &self.cfg.ownership {
            // Sharded: what the data group gave this instance so far (the
            // loop follows every change).
            Some(own) => {
                let (v, o) = (own.version(), own.snapshot());
                (
                    o.assigned.union(&o.standby).copied().collect(),
                    (v, o.assigned),
                )
            }
            None => match self.partitions(&consumer, stop) {
                Ok(p) => (p, (0, Default::default())),
                Err(_) if stop.load(Ordering::Acquire) => return Ok(None),
                Err(e) => return Err(e),
            },
        };
        let generation = self.live.generation();
        let next = self.assign(&consumer, &partitions)?;
        let Some(start_high) = self.start_watermarks(&consumer, &partitions, stop) else {
            return Ok(None);
        };
        Ok(Some(Connected {
            rt,
            consumer,
            dlq,
            partitions,
            next,
            start_high,
            quiet: Quiet {
                last_record: BTreeMap::new(),
                last_error: Instant::now(),
                stalled: Default::default(),
            },
            generation,
            own_seen,
        }))
    }

    /// High watermarks at start (`/readyz` turns ready once they are
    /// reached); `None` when stopped while the broker does not answer.
    fn start_watermarks(
        &self,
        c: &LedgerConsumer,
        partitions: &[i32],
        stop: &AtomicBool,
    ) -> Option<BTreeMap<i32, i64>> {
        let mut start_high = BTreeMap::new();
        for &p in partitions {
            let high = loop {
                match c.fetch_watermarks(&self.cfg.topic, p, Duration::from_secs(5)) {
                    Ok((_, h)) => break h,
                    Err(e) => {
                        self.metrics.errors.inc();
                        tracing::warn!(partition = p, error = %e, "watermark request failed; retrying");
                        if stop.load(Ordering::Acquire) {
                            return None;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            };
            start_high.insert(p, high);
        }
        Some(start_high)
    }

    /// Polls one batch: up to `batch_max` records, for up to `batch_wait`
    /// (`batch_wait_behind` while that many records behind). Records already
    /// applied (a rewind's prefetch) are passed over; undecodable ones become
    /// dead letters.
    fn fill_batch(
        &self,
        c: &LedgerConsumer,
        next: &BTreeMap<i32, i64>,
        quiet: &mut Quiet,
    ) -> Batch {
        let started = Instant::now();
        let mut b = Batch {
            started,
            records: Vec::new(),
            dead: Vec::new(),
            undelivered: 0,
            next: BTreeMap::new(),
            erasure: None,
        };
        let behind: i64 = next
            .iter()
            .map(|(&p, &n)| c.context().high(p).map_or(0, |h| (h - n).max(0)))
            .sum();
        let wait = if behind >= self.cfg.batch_max as i64 {
            self.cfg.batch_wait_behind
        } else {
            self.cfg.batch_wait
        };
        let deadline = started + wait;
        // Decoding is paced like the store writes (`IngestConfig::pace`),
        // every `PACE_EVERY` records.
        let mut mark = self.cfg.pace.mark();
        let mut polled = 0usize;
        while b.records.len() + b.dead.len() < self.cfg.batch_max {
            polled += 1;
            if polled % PACE_EVERY == 0 {
                self.cfg.pace.after(mark, Duration::ZERO);
                mark = self.cfg.pace.mark();
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // Waiting for the broker is no work (no write turn is due); a
            // record is.
            self.cfg.pace.idle();
            let polled_one = c.poll(deadline - now);
            if polled_one.is_some() {
                self.cfg.pace.working();
            }
            match polled_one {
                None => break,
                Some(Err(e)) => {
                    self.metrics.errors.inc();
                    quiet.last_error = Instant::now();
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
                Some(Ok(m)) => {
                    let p = m.partition();
                    let expected = b.next.get(&p).or(next.get(&p)).copied().unwrap_or(0);
                    if m.offset() < expected {
                        continue;
                    }
                    b.next.insert(p, m.offset() + 1);
                    match decode_message(&m) {
                        Ok(Decoded::Event(event)) => b.records.push(Record {
                            event,
                            partition: p,
                            offset: m.offset(),
                        }),
                        Ok(Decoded::Erasure(e)) => {
                            // The records before it are stored first.
                            b.next.insert(p, m.offset());
                            b.erasure = Some((e, p, m.offset()));
                            break;
                        }
                        Err(reason) if self.cfg.dead_letter.wants(p, m.offset()) => {
                            b.dead.push(dead_letter(&m, &self.cfg.topic, &reason))
                        }
                        Err(_) => b.undelivered += 1,
                    }
                }
            }
        }
        for &p in b.next.keys() {
            quiet.last_record.insert(p, Instant::now());
        }
        b
    }

    /// Sharded mode: when the data group changed what this instance owns,
    /// reads what it owns now (and its standby copies) from the stored
    /// offsets, starts dropping what it no longer keeps, and notes each
    /// gained partition's high watermark (ready once reached). Returns
    /// whether the assignment changed. Called under the live store's gate.
    fn follow_ownership(
        &self,
        c: &LedgerConsumer,
        own_seen: &mut (u64, std::collections::BTreeSet<i32>),
        partitions: &mut Vec<i32>,
        next: &mut BTreeMap<i32, i64>,
        start_high: &mut BTreeMap<i32, i64>,
    ) -> Result<bool, KafkaError> {
        let Some(own) = &self.cfg.ownership else {
            return Ok(false);
        };
        let version = own.version();
        if version == own_seen.0 {
            return Ok(false);
        }
        let o = own.snapshot();
        let want: std::collections::BTreeSet<i32> = o.assigned.union(&o.standby).copied().collect();
        let have: std::collections::BTreeSet<i32> = partitions.iter().copied().collect();
        // Read anew, or newly assigned (a standby copy it read already is
        // ready only once it reaches today's high watermark too).
        let gained: Vec<i32> = want
            .difference(&have)
            .chain(o.assigned.difference(&own_seen.1))
            .copied()
            .collect::<std::collections::BTreeSet<i32>>()
            .into_iter()
            .collect();
        // Every gained partition's high watermark first: without them
        // nothing changes, and the next batch tries again.
        let mut highs = BTreeMap::new();
        for &p in &gained {
            match c.fetch_watermarks(&self.cfg.topic, p, Duration::from_secs(5)) {
                Ok((_, h)) => {
                    highs.insert(p, h);
                }
                Err(e) => {
                    self.metrics.errors.inc();
                    tracing::warn!(partition = p, error = %e, "watermark request failed; retrying");
                    return Ok(false);
                }
            }
        }
        *own_seen = (version, o.assigned.clone());
        if want == have {
            start_high.extend(highs);
            return Ok(false);
        }
        let store = self.store();
        for &p in have.difference(&want) {
            store.begin_drop(&self.cfg.topic, p)?;
            start_high.remove(&p);
            Metrics::partition(&self.metrics.lag, p).set(0);
            tracing::info!(
                partition = p,
                "partition handed over: dropping its sessions"
            );
        }
        let dropping = store.dropping()?;
        for (p, high) in highs {
            if dropping.contains(&p) {
                store.cancel_drop(p)?;
            }
            start_high.insert(p, high);
            tracing::info!(
                partition = p,
                high_watermark = high,
                "partition gained: catching up"
            );
        }
        *partitions = want.into_iter().collect();
        *next = self.assign(c, partitions)?;
        Ok(true)
    }

    /// Reassigns when the topic's partition count changed.
    fn refresh_partitions(
        &self,
        c: &LedgerConsumer,
        stop: &AtomicBool,
        partitions: &mut Vec<i32>,
        next: &mut BTreeMap<i32, i64>,
    ) -> Result<(), KafkaError> {
        if let Ok(ps) = self.partitions(c, stop) {
            if ps.len() != partitions.len() {
                *partitions = ps;
                *next = self.assign(c, partitions)?;
            }
        }
        Ok(())
    }

    /// Applies a batch with its next offsets in one store write, flushes it
    /// (announced offsets are durable ones), counts it, and commits the
    /// offsets to Kafka for lag tooling (informational; the store is the truth).
    fn store_batch(
        &self,
        c: &LedgerConsumer,
        records: &[Record],
        batch_next: &BTreeMap<i32, i64>,
        dead: u64,
        started: Instant,
    ) -> Result<(), KafkaError> {
        let offsets: Vec<(i32, i64)> = batch_next.iter().map(|(p, o)| (*p, *o)).collect();
        let store = self.store();
        let report =
            store.apply_batch_paced(&self.cfg.topic, records, &offsets, dead, &self.cfg.pace);
        // The flush waits for the disk, not the CPU.
        self.cfg.pace.idle();
        let report = report?;
        let m = &self.metrics;
        // Pauses of this batch's decoding and writes.
        let paused = self.cfg.pace.paused().as_nanos() as u64;
        let counted = self.paused_counted.swap(paused, Ordering::Relaxed);
        m.paused_seconds
            .inc_by(paused.saturating_sub(counted) as f64 / 1e9);
        store.flush()?;
        m.sessions.set(store.stats().sessions as i64);
        m.consumed.inc_by(records.len() as u64 + dead);
        for b in Bucket::ALL {
            m.count(b.as_str(), report.events.get(b));
        }
        if report.events.limited > 0 {
            tracing::warn!(
                events = report.events.limited,
                "events rejected for exceeding a per-session limit (kept in each session's history)"
            );
        }
        m.count("dead_lettered", report.events.dead_lettered);
        m.count("dropped", report.events.dropped);
        m.batch_seconds.observe(started.elapsed().as_secs_f64());
        let mut tpl = TopicPartitionList::new();
        for (p, o) in batch_next {
            let _ = tpl.add_partition_offset(&self.cfg.topic, *p, Offset::Offset(*o));
        }
        if let Err(e) = c.commit(&tpl, CommitMode::Async) {
            tracing::debug!(error = %e, "offset commit failed (informational only)");
        }
        Ok(())
    }

    /// Applies an erasure read at `offset` of partition `p` (its own store
    /// write with the partition's next offset, flushed by the store) and
    /// counts it.
    fn store_erasure(&self, e: &Erasure, p: i32, offset: i64) -> Result<(), KafkaError> {
        let store = self.store();
        let report = store.erase(&self.cfg.topic, &e.subject, p, offset)?;
        self.metrics.erasures.inc();
        self.metrics.erased_sessions.inc_by(report.sessions as u64);
        self.metrics
            .sessions
            .set(self.store().stats().sessions as i64);
        tracing::info!(
            id = %e.id,
            subject = %e.subject,
            partition = p,
            offset,
            sessions = report.sessions,
            "erasure applied"
        );
        Ok(())
    }

    /// Produces dead letters and awaits their delivery. The dead-letter topic
    /// is created on demand: when a delivery fails, the topic is ensured (it
    /// may not have existed — the broker was not up at start, or it was
    /// deleted) and the delivery retried once. A failure after that is
    /// reported (log, `ledger_dlq_failures`, `/readyz`) and returned: the
    /// batch waits, healthy records included, until dead-lettering works.
    fn dead_letter_all(
        &self,
        rt: &tokio::runtime::Runtime,
        dlq: &Publisher,
        progress: &Progress,
        letters: Vec<RawRecord>,
    ) -> Result<(), KafkaError> {
        // Delivery waits for the broker: no work (no write turn is due).
        self.cfg.pace.idle();
        let topic = dlq_topic(&self.cfg.topic);
        let first = rt.block_on(dlq.send_all(&letters, |_| {}));
        let Err(e) = first else {
            progress.set_problem("dlq", None);
            return Ok(());
        };
        tracing::info!(error = %e, %topic, "dead-letter delivery failed; ensuring the topic exists");
        let ensure = crate::admin_create_topic(&self.cfg.brokers, &topic, 1);
        match rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), ensure).await }) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, %topic, "could not create the dead-letter topic")
            }
            Err(_) => tracing::warn!(%topic, "timed out creating the dead-letter topic"),
        }
        match rt.block_on(dlq.send_all(&letters, |_| {})) {
            Ok(_) => {
                progress.set_problem("dlq", None);
                Ok(())
            }
            Err(e) => {
                self.metrics.errors.inc();
                self.metrics.dlq_failures.inc();
                tracing::error!(error = %e, %topic, "dead-letter delivery failed; ingestion waits, rewinding to stored offsets");
                progress.set_problem(
                    "dlq",
                    Some(format!(
                        "dead-lettering to `{topic}` fails ({e}); ingestion waits"
                    )),
                );
                std::thread::sleep(Duration::from_secs(1));
                Err(e)
            }
        }
    }

    /// Finds partitions behind their high watermark that yield no record:
    /// reports them after `stall_after` (log, metric, `/readyz`); after
    /// `skip_unfetchable_after`, while the broker answers, moves past the
    /// offset the broker does not deliver — a dead letter records the skip
    /// and its reason, stored with the new offset. Returns whether offsets
    /// were stored (the caller reassigns).
    fn watch_stalls(
        &self,
        c: &LedgerConsumer,
        rt: &tokio::runtime::Runtime,
        dlq: &Publisher,
        progress: &Progress,
        next: &BTreeMap<i32, i64>,
        q: &mut Quiet,
    ) -> Result<bool, KafkaError> {
        let mut moved = false;
        for (&p, &n) in next {
            let kind = || format!("partition {p}");
            let behind = c.context().high(p).is_some_and(|h| h > n);
            let since = *q.last_record.entry(p).or_insert_with(Instant::now);
            if !behind {
                q.last_record.insert(p, Instant::now());
                if q.stalled.remove(&p) {
                    progress.set_problem(&kind(), None);
                }
                continue;
            }
            let quiet = since.elapsed();
            if quiet < self.cfg.stall_after {
                continue;
            }
            if q.stalled.insert(p) {
                tracing::error!(
                    partition = p,
                    offset = n,
                    seconds = quiet.as_secs(),
                    "partition stalled"
                );
                progress.set_problem(
                    &kind(),
                    Some(format!(
                        "partition {p} yields no record at offset {n} while behind its high watermark"
                    )),
                );
            }
            let Some(skip) = self.cfg.skip_unfetchable_after else {
                continue;
            };
            if quiet.min(q.last_error.elapsed()) < skip {
                continue;
            }
            // Only a broker that answers, with a record at `n`, is told to skip
            // it: an outage never costs a record.
            let Ok((low, high)) = c.fetch_watermarks(&self.cfg.topic, p, Duration::from_secs(5))
            else {
                continue;
            };
            let position = c
                .position()
                .ok()
                .and_then(|tpl| tpl.find_partition(&self.cfg.topic, p).map(|e| e.offset()));
            let (to, dead) = match position {
                // The client moved past records it did not deliver (control
                // markers, compaction gaps): nothing is lost.
                Some(Offset::Offset(o)) if o > n => (o.min(high), 0),
                _ if n >= low && n < high => {
                    if self.cfg.dead_letter.wants(p, n) {
                        let reason = format!(
                            "unfetchable: the broker delivered no record at this offset for {} s while answering (larger than its fetch limit?); skipped",
                            quiet.as_secs()
                        );
                        let marker = skipped_letter(&self.cfg.topic, p, n, &reason);
                        if self
                            .dead_letter_all(rt, dlq, progress, vec![marker])
                            .is_err()
                        {
                            continue;
                        }
                    }
                    tracing::error!(partition = p, offset = n, "skipped an unfetchable record");
                    self.metrics.skipped.inc();
                    (n + 1, 1)
                }
                _ => continue,
            };
            self.store()
                .apply_batch(&self.cfg.topic, &[], &[(p, to)], dead)?;
            self.store().flush()?;
            self.metrics.count("dead_lettered", dead);
            q.last_record.insert(p, Instant::now());
            q.stalled.remove(&p);
            progress.set_problem(&kind(), None);
            moved = true;
        }
        self.metrics.stalled.set(q.stalled.len() as i64);
        Ok(moved)
    }

    fn publish_progress(
        &self,
        progress: &Progress,
        next: &BTreeMap<i32, i64>,
        start_high: &BTreeMap<i32, i64>,
        c: &LedgerConsumer,
    ) {
        let mut map = BTreeMap::new();
        for (&p, &n) in next {
            let start = start_high.get(&p).copied().unwrap_or(0);
            let high = c.context().high(p).unwrap_or(start).max(start).max(n);
            let m = &self.metrics;
            Metrics::partition(&m.lag, p).set(high - n);
            Metrics::partition(&m.applied_offset, p).set(n);
            Metrics::partition(&m.high_watermark, p).set(high);
            map.insert(
                p,
                PartitionProgress {
                    next_offset: n,
                    high_watermark: high,
                    start_high_watermark: start,
                },
            );
        }
        let caught_up = |p: &PartitionProgress| p.next_offset >= p.start_high_watermark;
        let ready = match &self.cfg.ownership {
            Some(own) => {
                for (&p, pp) in &map {
                    if caught_up(pp) {
                        own.mark_ready(p);
                    }
                }
                map.values().all(caught_up)
            }
            None => !map.is_empty() && map.values().all(caught_up),
        };
        *progress
            .partitions
            .write()
            .unwrap_or_else(|p| p.into_inner()) = map;
        progress.ready.store(ready, Ordering::Release);
    }
}

/// What a record holds: a session event or a ledger control record.
enum Decoded {
    Event(ledger_core::Event),
    Erasure(Erasure),
}

fn decode_message(m: &BorrowedMessage<'_>) -> Result<Decoded, String> {
    let headers = m.headers();
    let header = |name: &str| -> Option<&[u8]> {
        headers?
            .iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
    };
    if header(erasure::CONTROL_HEADER) == Some(erasure::CONTROL_ERASURE) {
        return erasure::decode(m.payload().unwrap_or_default())
            .map(Decoded::Erasure)
            .map_err(|e| e.to_string());
    }
    decode_record(m.key(), m.payload(), header)
        .map(Decoded::Event)
        .map_err(|e| e.to_string())
}

/// The dead letter of an offset skipped because the broker never delivered
/// its record: no key or payload (none could be read), where and why.
fn skipped_letter(topic: &str, partition: i32, offset: i64, reason: &str) -> RawRecord {
    let (p, o) = (partition.to_string(), offset.to_string());
    let mut headers = OwnedHeaders::new();
    for (k, v) in [
        ("dlq.reason", reason),
        ("dlq.topic", topic),
        ("dlq.partition", p.as_str()),
        ("dlq.offset", o.as_str()),
    ] {
        headers = headers.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    RawRecord {
        key: None,
        payload: vec![],
        headers: Some(headers),
        partition: None,
    }
}

/// The dead letter of a record that failed to decode: same key, payload
/// (cut to [`DLQ_MAX_PAYLOAD`] bytes, the full length then in
/// `dlq.truncated_from`) and headers, plus where it came from and why.
fn dead_letter(m: &BorrowedMessage<'_>, topic: &str, reason: &str) -> RawRecord {
    let mut headers = OwnedHeaders::new();
    if let Some(h) = m.headers() {
        for x in h.iter() {
            headers = headers.insert(Header {
                key: x.key,
                value: x.value,
            });
        }
    }
    let p = m.partition().to_string();
    let o = m.offset().to_string();
    let payload = m.payload().unwrap_or_default();
    let full = payload.len().to_string();
    let mut extra = vec![
        ("dlq.reason", reason),
        ("dlq.topic", topic),
        ("dlq.partition", p.as_str()),
        ("dlq.offset", o.as_str()),
    ];
    if payload.len() > DLQ_MAX_PAYLOAD {
        extra.push(("dlq.truncated_from", full.as_str()));
    }
    for (k, v) in extra {
        headers = headers.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    RawRecord {
        key: m.key().map(<[u8]>::to_vec),
        payload: payload[..payload.len().min(DLQ_MAX_PAYLOAD)].to_vec(),
        headers: Some(headers),
        partition: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_consumer_fetches_ahead_what_the_config_says() {
        let mut cfg = super::IngestConfig::new("127.0.0.1:9092", "t");
        let prefetch = |cfg: &super::IngestConfig| {
            super::consumer_config(cfg)
                .get("queued.min.messages")
                .map(str::to_string)
        };
        assert_eq!(
            prefetch(&cfg),
            Some(super::PREFETCH_RECORDS.to_string()),
            "the default"
        );
        cfg.prefetch_records = 5_000;
        assert_eq!(prefetch(&cfg).as_deref(), Some("5000"));
        cfg.prefetch_records = 0;
        assert_eq!(prefetch(&cfg).as_deref(), Some("1"), "at least one");
        // librdkafka takes it: the consumer is created (no broker needed).
        cfg.prefetch_records = 5_000;
        let c: Result<rdkafka::consumer::BaseConsumer, _> = super::consumer_config(&cfg).create();
        assert!(c.is_ok(), "{:?}", c.err());
    }

    /// Field `n` (1-based, as `proc(5)` numbers them; at least 3) of the
    /// calling thread's `/proc/thread-self/stat`.
    #[cfg(target_os = "linux")]
    fn own_stat<T: std::str::FromStr>(n: usize) -> T
    where
        T::Err: std::fmt::Debug,
    {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the command name (field 2), which is in parentheses.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(n - 3).unwrap().parse().unwrap()
    }

    /// The nice value of the calling thread.
    #[cfg(target_os = "linux")]
    fn own_nice() -> i32 {
        own_stat(19)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ingestion_runs_at_the_configured_nice_value_and_its_threads_inherit_it() {
        let before = own_nice();
        // 19, the lowest priority: allowed whatever the test runs at.
        let (mine, inner) = std::thread::spawn(|| {
            super::lower_priority(19, false);
            let inner = std::thread::spawn(own_nice).join().unwrap();
            (own_nice(), inner)
        })
        .join()
        .unwrap();
        assert_eq!((mine, inner), (19, 19));
        // Only the thread that asked (and what it starts) runs lower.
        assert_eq!(own_nice(), before);
    }

    /// The calling thread's scheduling policy.
    #[cfg(target_os = "linux")]
    fn own_policy() -> u32 {
        own_stat(41)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ingestion_can_run_under_sched_idle_and_its_threads_inherit_it() {
        const SCHED_OTHER: u32 = 0;
        const SCHED_IDLE: u32 = 5;
        let before = own_policy();
        assert_eq!(before, SCHED_OTHER);
        let (mine, inner, nice) = std::thread::spawn(|| {
            super::lower_priority(19, true);
            let inner = std::thread::spawn(own_policy).join().unwrap();
            (own_policy(), inner, own_nice())
        })
        .join()
        .unwrap();
        assert_eq!((mine, inner, nice), (SCHED_IDLE, SCHED_IDLE, 19));
        assert_eq!(own_policy(), before);
    }
}
