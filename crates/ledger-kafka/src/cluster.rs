//! Sharded mode: which partitions this instance owns, and where the others
//! answer.
//!
//! * **Ownership** comes from Kafka's consumer-group protocol: a member of
//!   the data group (`<group_id>-shards`, or `<group_id>-shards-<epoch>`
//!   past epoch 0; cooperative-sticky) subscribes to
//!   the event topic and keeps its partitions paused; its assignment is what
//!   this instance stores and answers for. Ingestion reads the assigned
//!   partitions from the offsets in its own store (exactly-once as in
//!   replica mode), and a partition turns *ready* once it reached the high
//!   watermark seen when it was gained. A revoked partition stops being
//!   ready before the rebalance completes (the revoke callback), so within
//!   one group two instances never answer for one partition.
//! * **Membership**: each instance announces itself on the compacted topic
//!   `<topic>.members` (one partition, keyed by its advertised URL) every
//!   `announce` interval and on every change: its URL and group, the partitions it
//!   owns and has ready, its standby copies and their applied offsets. Every
//!   instance reads that topic to route requests; an announcement older than
//!   `member_ttl` is ignored, and a stopping instance announces `leaving`.
//!   The topic only routes: an owner checks its own ownership on every
//!   request it is sent.
//! * **Revoked partitions are kept** (as standby copies) until a live
//!   member announces them as its own: a partition that comes back, or a
//!   whole group that is formed again, needs no replay.
//! * **Epochs**: a group coordinator can leave partitions without an owner
//!   for good (the dev broker does when its group's leader is killed: the
//!   dead member stays the leader, and no survivor is ever given its
//!   partitions). An instance that sees some partition owned by no live
//!   member for `regroup_after` (per partition, without a break; doubled
//!   after each raise it made) announces the next epoch; every instance,
//!   the raiser too, adopts the highest epoch when it reads it on the
//!   membership topic (so all switch on one record, nearly together) and
//!   moves to the group `<group_id>-shards-<epoch>` (epoch 0:
//!   `<group_id>-shards`), which forms anew.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger_store::LiveStore;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::publish::{admin_create_topic_with, RawRecord};
use crate::{KafkaError, Publisher};

/// Sharded-mode settings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub brokers: String,
    pub topic: String,
    /// The data group is `<group_id>-shards` (see [`Self::data_group`]).
    pub group_id: String,
    /// This instance's HTTP address as the others reach it
    /// (`http://host:port`); it also names the instance.
    pub url: String,
    /// Standby copies: also keep (and apply) the partitions of the next
    /// `standby` members in URL order, for a fast take-over.
    pub standby: usize,
    /// The data group's session timeout: how long a killed instance owns
    /// its partitions before the group hands them over.
    pub session_timeout: Duration,
    /// How often an instance announces itself.
    pub announce: Duration,
    /// An announcement older than this is ignored (a dead instance).
    pub member_ttl: Duration,
    /// A partition owned by no live member for this long raises the data
    /// group's epoch (every instance moves to a new group); zero: never.
    pub regroup_after: Duration,
}

impl ClusterConfig {
    /// The membership topic of `topic`.
    pub fn members_topic(topic: &str) -> String {
        format!("{topic}.members")
    }

    /// The data group of `epoch`.
    pub fn data_group(&self, epoch: u64) -> String {
        match epoch {
            0 => format!("{}-shards", self.group_id),
            e => format!("{}-shards-{e}", self.group_id),
        }
    }
}

/// What this instance owns now. Updated by the group member (assignment,
/// revocation) and by ingestion (readiness, standby progress).
#[derive(Debug, Default)]
pub struct Ownership {
    state: RwLock<Owned>,
    /// Bumped on every change of `assigned` or `standby`.
    version: AtomicU64,
}

/// A snapshot of [`Ownership`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    /// The topic's partition count (0 until known).
    pub partitions: i32,
    /// Assigned to this instance by the data group.
    pub assigned: BTreeSet<i32>,
    /// Assigned and caught up: what this instance answers for.
    pub ready: BTreeSet<i32>,
    /// Other members' partitions kept as standby copies.
    pub standby: BTreeSet<i32>,
}

impl Ownership {
    pub fn snapshot(&self) -> Owned {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Partitions this instance answers for.
    pub fn ready(&self) -> BTreeSet<i32> {
        self.state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ready
            .clone()
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn update(&self, f: impl FnOnce(&mut Owned)) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        let (a, sb) = (s.assigned.clone(), s.standby.clone());
        f(&mut s);
        s.ready = s.ready.intersection(&s.assigned).copied().collect();
        if s.assigned != a || s.standby != sb {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Marks an assigned partition caught up.
    pub fn mark_ready(&self, p: i32) {
        self.update(|s| {
            if s.assigned.contains(&p) {
                s.ready.insert(p);
            }
        });
    }

    fn set_partitions(&self, n: i32) {
        self.update(|s| s.partitions = n);
    }
}

/// One instance's announcement on the membership topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its HTTP address, which names it.
    pub url: String,
    /// Its data group: instances of other groups on the same topic (another
    /// deployment) are not routed to.
    #[serde(default)]
    pub group: String,
    pub partitions: i32,
    pub assigned: Vec<i32>,
    /// Partitions it answers for.
    pub ready: Vec<i32>,
    pub standby: Vec<i32>,
    /// Durable next offset of every partition it stores.
    pub offsets: BTreeMap<i32, i64>,
    /// When it announced, Unix ms (its clock).
    pub at: i64,
    /// It is stopping: route nothing to it.
    pub leaving: bool,
    /// The data group epoch it is in.
    #[serde(default)]
    pub epoch: u64,
}

/// The latest announcement of every instance, with when it was read here
/// (local Unix ms): liveness is judged by this instance's clock alone, so
/// another's clock running behind or ahead makes it neither dead nor
/// immortal.
#[derive(Debug, Default)]
pub struct Members {
    map: RwLock<HashMap<String, (Member, i64)>>,
    /// The highest data group epoch read on the membership topic (from any
    /// instance, alive or not, this one included).
    epoch: AtomicU64,
    /// The announcements on the topic when this instance started were read.
    synced: AtomicBool,
}

impl Members {
    /// Live members (an announcement read within `ttl` of `now`, local
    /// Unix ms; not leaving), by URL.
    pub fn alive(&self, now: i64, ttl: Duration) -> Vec<Member> {
        let mut out: Vec<Member> = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|(m, seen)| !m.leaving && now - seen <= ttl.as_millis() as i64)
            .map(|(m, _)| m.clone())
            .collect();
        out.sort_by(|a, b| a.url.cmp(&b.url));
        out
    }

    /// The data group epoch to be in.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn raise_epoch(&self, e: u64) {
        self.epoch.fetch_max(e, Ordering::AcqRel);
    }

    /// An announcement read on the membership topic at `now` (local Unix
    /// ms). One read once the topic's history as of this instance's start
    /// was read (`synced`) was just sent, so it is as fresh as its arrival;
    /// one of that history is as old as its sender's clock says, and never
    /// fresher than now.
    fn put(&self, m: Member, now: i64, synced: bool) {
        self.raise_epoch(m.epoch);
        let seen = if synced { now } else { m.at.min(now) };
        self.insert(m, seen);
    }

    /// This instance's own announcement, as sent (`at` is this clock's):
    /// its epoch counts only once read back.
    fn put_local(&self, m: Member) {
        let seen = m.at;
        self.insert(m, seen);
    }

    /// Keeps `m` unless a later announcement of its instance is held (one
    /// instance's `at`s come from one clock, so they order its own).
    fn insert(&self, m: Member, seen: i64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        match map.get(&m.url) {
            Some((old, _)) if old.at > m.at => {}
            _ => {
                map.insert(m.url.clone(), (m, seen));
            }
        }
    }
}

/// Standby partitions of the member at `url`: those ready at the next
/// `n` members in URL order (not its own).
pub fn standby_for(url: &str, members: &[Member], n: usize) -> BTreeSet<i32> {
    let mut urls: Vec<&str> = members.iter().map(|m| m.url.as_str()).collect();
    if !urls.contains(&url) {
        urls.push(url);
    }
    urls.sort();
    let Some(me) = urls.iter().position(|u| *u == url) else {
        return BTreeSet::new();
    };
    let mut out = BTreeSet::new();
    for i in 1..=n.min(urls.len().saturating_sub(1)) {
        let other = urls[(me + i) % urls.len()];
        if let Some(m) = members.iter().find(|m| m.url == other) {
            out.extend(m.assigned.iter().copied());
        }
    }
    out
}

/// This instance's standby partitions from now on: those of
/// [`standby_for`], plus the standby copies it keeps whose owner is gone
/// (no live member has them assigned), minus its own. An owner that dies
/// stops announcing a few seconds before the data group hands its
/// partitions over: its copies are kept for that hand-over, which may
/// bring them here, instead of being dropped and read again.
pub fn next_standby(
    url: &str,
    others: &[Member],
    n: usize,
    kept: &BTreeSet<i32>,
    assigned: &BTreeSet<i32>,
) -> BTreeSet<i32> {
    let owned: BTreeSet<i32> = others
        .iter()
        .flat_map(|m| m.assigned.iter().copied())
        .collect();
    let mut out = standby_for(url, others, n);
    out.extend(kept.iter().filter(|p| !owned.contains(p)));
    out.retain(|p| !assigned.contains(p));
    out
}

/// The group member's context: a revocation takes partitions out of
/// `ready` before the rebalance goes on.
struct GroupContext {
    ownership: Arc<Ownership>,
}

impl rdkafka::ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            let lost: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(partitions = ?lost, "data partitions revoked");
            // Kept as standby copies until another member announces them.
            self.ownership.update(|s| {
                for p in &lost {
                    s.assigned.remove(p);
                    s.standby.insert(*p);
                }
            });
        }
    }

    fn post_rebalance(&self, c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            // Paused: this member only holds the assignment.
            let _ = c.pause(tpl);
            if let Ok(all) = c.assignment() {
                let _ = c.pause(&all);
                let now: BTreeSet<i32> = all.elements().iter().map(|e| e.partition()).collect();
                tracing::info!(partitions = ?now, "data partitions assigned");
                self.ownership.update(|s| s.assigned = now);
            }
        }
    }
}

/// The running cluster threads: the group member and the membership
/// announcer/reader.
pub struct Cluster {
    /// This instance's advertised URL.
    pub url: String,
    pub ownership: Arc<Ownership>,
    pub members: Arc<Members>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Cluster {
    /// Joins the data group and the membership topic. `store` supplies the
    /// offsets announced.
    pub fn start(
        cfg: ClusterConfig,
        store: LiveStore,
        metrics: crate::Metrics,
    ) -> Result<Self, KafkaError> {
        let ownership = Arc::new(Ownership::default());
        let members = Arc::new(Members::default());
        let stop = Arc::new(AtomicBool::new(false));
        let group = {
            let (cfg, own, mem, stop) = (
                cfg.clone(),
                ownership.clone(),
                members.clone(),
                stop.clone(),
            );
            std::thread::Builder::new()
                .name("shard-group".into())
                .spawn(move || {
                    if let Err(e) = run_group(&cfg, &own, &mem, &stop) {
                        tracing::error!(error = %e, "the data group member stopped");
                    }
                })
                .expect("spawn group thread")
        };
        let url = cfg.url.clone();
        let announce = {
            let (own, mem, stop) = (ownership.clone(), members.clone(), stop.clone());
            std::thread::Builder::new()
                .name("shard-members".into())
                .spawn(move || {
                    if let Err(e) = run_members(&cfg, &own, &mem, &store, &metrics, &stop) {
                        tracing::error!(error = %e, "the membership announcer stopped");
                    }
                })
                .expect("spawn members thread")
        };
        Ok(Self {
            url,
            ownership,
            members,
            stop,
            threads: vec![group, announce],
        })
    }

    /// Leaves the group and announces `leaving`.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run_group(
    cfg: &ClusterConfig,
    own: &Arc<Ownership>,
    members: &Members,
    stop: &AtomicBool,
) -> Result<(), KafkaError> {
    // The epoch is known once the announcements already on the membership
    // topic were read: joining an older epoch's group would take
    // partitions other instances own in the current one.
    while !members.synced.load(Ordering::Acquire) {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut last_meta = Instant::now() - Duration::from_secs(60);
    while !stop.load(Ordering::Acquire) {
        let epoch = members.epoch();
        let consumer = match group_member(cfg, own, epoch) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, epoch, "joining the data group failed; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        tracing::info!(epoch, group = %cfg.data_group(epoch), "joined the data group");
        while !stop.load(Ordering::Acquire) && members.epoch() == epoch {
            if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                tracing::debug!(error = %e, "data group consumer error");
            }
            if last_meta.elapsed() > Duration::from_secs(10) {
                last_meta = Instant::now();
                if let Ok(md) = consumer.fetch_metadata(Some(&cfg.topic), Duration::from_secs(5)) {
                    let n = md
                        .topics()
                        .iter()
                        .find(|t| t.name() == cfg.topic)
                        .map_or(0, |t| t.partitions().len() as i32);
                    if n > 0 {
                        own.set_partitions(n);
                    }
                }
            }
        }
        if stop.load(Ordering::Acquire) {
            // Leaving hands the partitions over at once (no session timeout).
            own.update(|s| s.assigned.clear());
        } else {
            tracing::warn!(
                from = epoch,
                to = members.epoch(),
                "moving to the data group of a new epoch"
            );
            // What it owned is kept as standby copies until the new
            // group gives it back or another member announces it.
            own.update(|s| {
                let mine = std::mem::take(&mut s.assigned);
                s.standby.extend(mine);
            });
        }
        consumer.unsubscribe();
        let _ = consumer.poll(Duration::from_millis(500));
    }
    Ok(())
}

/// When to raise the data group's epoch: some partition owned by no live
/// member for `after` without a break, the wait doubled after every raise
/// this instance made (at most 16×) and reset once every partition had an
/// owner for eight waits.
#[derive(Debug)]
pub struct Regroup {
    after: Duration,
    /// Since when each partition without an owner has had none.
    since: BTreeMap<i32, Instant>,
    raises: u32,
    /// Since when every partition has had an owner.
    owned_since: Option<Instant>,
}

impl Regroup {
    /// `after` zero: never raise.
    pub fn new(after: Duration) -> Self {
        Self {
            after,
            since: BTreeMap::new(),
            raises: 0,
            owned_since: None,
        }
    }

    fn wait(&self) -> Duration {
        self.after * (1u32 << self.raises.min(4))
    }

    /// Notes the partitions without an owner at `now`; whether to raise.
    pub fn observe(&mut self, unowned: &BTreeSet<i32>, now: Instant) -> bool {
        if self.after.is_zero() {
            return false;
        }
        self.since.retain(|p, _| unowned.contains(p));
        for &p in unowned {
            self.since.entry(p).or_insert(now);
        }
        if unowned.is_empty() {
            let since = *self.owned_since.get_or_insert(now);
            if now.duration_since(since) >= self.wait() * 8 {
                self.raises = 0;
            }
            return false;
        }
        self.owned_since = None;
        let wait = self.wait();
        if self.since.values().any(|t| now.duration_since(*t) >= wait) {
            self.raises += 1;
            self.since.clear();
            return true;
        }
        false
    }

    /// A new epoch began (raised by anyone) or the view is not to be
    /// trusted yet: every partition's clock starts over.
    pub fn restart(&mut self) {
        self.since.clear();
    }
}

/// A member of the data group of `epoch`, subscribed to the event topic.
fn group_member(
    cfg: &ClusterConfig,
    own: &Arc<Ownership>,
    epoch: u64,
) -> Result<BaseConsumer<GroupContext>, KafkaError> {
    let consumer: BaseConsumer<GroupContext> = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", cfg.data_group(epoch))
        .set("client.id", &cfg.url)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .set(
            "session.timeout.ms",
            cfg.session_timeout.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "10000")
        .create_with_context(GroupContext {
            ownership: own.clone(),
        })?;
    consumer.subscribe(&[&cfg.topic])?;
    Ok(consumer)
}

/// Partitions of `0..partitions` that neither this instance (`assigned`)
/// nor any of the live `others` has been assigned.
pub fn unowned(partitions: i32, assigned: &BTreeSet<i32>, others: &[Member]) -> BTreeSet<i32> {
    (0..partitions)
        .filter(|p| !assigned.contains(p) && !others.iter().any(|m| m.assigned.contains(p)))
        .collect()
}

fn run_members(
    cfg: &ClusterConfig,
    own: &Ownership,
    members: &Members,
    store: &LiveStore,
    metrics: &crate::Metrics,
    stop: &AtomicBool,
) -> Result<(), KafkaError> {
    let topic = ClusterConfig::members_topic(&cfg.topic);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KafkaError::Delivery(e.to_string()))?;
    // Created by whichever instance comes first; compacted: only the
    // latest announcement of each instance matters.
    loop {
        let compact = [("cleanup.policy", "compact")];
        match rt.block_on(admin_create_topic_with(&cfg.brokers, &topic, 1, &compact)) {
            Ok(()) => break,
            Err(e) if stop.load(Ordering::Acquire) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "creating the membership topic failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    let publisher = Publisher::new(&cfg.brokers, &topic)?;
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cfg.brokers)
        .set("group.id", format!("{}-members", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    // The latest announcements are near the end; a member announces every
    // `announce`, so the last thousand records hold every live one.
    tpl.add_partition_offset(&topic, 0, Offset::OffsetTail(1000))?;
    reader.assign(&tpl)?;
    // Synced once the record before this high watermark was read.
    let mut sync_at: Option<i64> = None;
    let mut regroup = Regroup::new(cfg.regroup_after);
    // The epoch this instance asks for (adopted when read back) and the
    // epoch its regroup clocks were started in.
    let (mut proposed, mut clocks_epoch) = (0u64, 0u64);
    let mut last: Option<(Instant, u64, BTreeSet<i32>, u64)> = None;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if sync_at.is_none() {
            match reader.fetch_watermarks(&topic, 0, Duration::from_secs(5)) {
                Ok((low, high)) if high <= low => {
                    members.synced.store(true, Ordering::Release);
                    sync_at = Some(high);
                }
                Ok((_, high)) => sync_at = Some(high),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the membership topic's end failed; retrying")
                }
            }
        }
        while let Some(m) = reader.poll(Duration::from_millis(20)) {
            let Ok(m) = m else { break };
            // Records before the last one of the start's history were
            // sent a while ago; from that one on they arrive as sent.
            let live = sync_at.is_some_and(|h| m.offset() + 1 >= h);
            if live {
                members.synced.store(true, Ordering::Release);
            }
            if let Some(member) = m
                .payload()
                .and_then(|p| serde_json::from_slice::<Member>(p).ok())
            {
                if member.group == cfg.group_id {
                    members.put(member, chrono_ms(), live);
                }
            }
        }
        let now = chrono_ms();
        let alive = members.alive(now, cfg.member_ttl);
        let others: Vec<Member> = alive.iter().filter(|m| m.url != cfg.url).cloned().collect();
        own.update(|s| {
            s.standby = next_standby(&cfg.url, &others, cfg.standby, &s.standby, &s.assigned);
        });
        let o = own.snapshot();
        let epoch = members.epoch();
        // A partition no live member owns, for `regroup_after` in one
        // epoch: the group will not hand it over; ask for a new one.
        if clocks_epoch != epoch || !members.synced.load(Ordering::Acquire) {
            regroup.restart();
            clocks_epoch = epoch;
        }
        let lost = unowned(o.partitions, &o.assigned, &others);
        if proposed <= epoch && regroup.observe(&lost, Instant::now()) {
            tracing::warn!(
                partitions = ?lost,
                epoch = epoch + 1,
                "partitions have had no owner for too long: asking for a new data group epoch"
            );
            proposed = epoch + 1;
        }
        metrics.shard_epoch.set(epoch as i64);
        // Announced: the epoch it is in, or the one it asks for.
        let epoch = epoch.max(proposed);
        for p in 0..o.partitions {
            crate::Metrics::partition(&metrics.shard_ready, p).set(i64::from(o.ready.contains(&p)));
            crate::Metrics::partition(&metrics.shard_standby, p)
                .set(i64::from(o.standby.contains(&p)));
        }
        let due = match &last {
            None => true,
            Some((at, v, ready, e)) => {
                at.elapsed() >= cfg.announce
                    || *v != own.version()
                    || *ready != o.ready
                    || *e != epoch
            }
        };
        if due || stopping {
            let offsets = store
                .get()
                .durable_offsets(&cfg.topic)
                .unwrap_or_default()
                .into_iter()
                .filter(|(p, _)| o.assigned.contains(p) || o.standby.contains(p))
                .collect();
            let me = Member {
                url: cfg.url.clone(),
                group: cfg.group_id.clone(),
                partitions: o.partitions,
                assigned: o.assigned.iter().copied().collect(),
                ready: if stopping {
                    vec![]
                } else {
                    o.ready.iter().copied().collect()
                },
                standby: o.standby.iter().copied().collect(),
                offsets,
                at: now,
                leaving: stopping,
                epoch,
            };
            let payload = serde_json::to_vec(&me).unwrap_or_default();
            members.put_local(me);
            let rec = RawRecord {
                key: Some(cfg.url.as_bytes().to_vec()),
                payload,
                headers: None,
                partition: Some(0),
            };
            if let Err(e) = rt.block_on(publisher.send_all(vec![rec], |_| {})) {
                tracing::warn!(error = %e, "announcing this instance failed; retrying");
            }
            last = Some((Instant::now(), own.version(), o.ready, epoch));
        }
        if stopping {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(url: &str, assigned: &[i32]) -> Member {
        Member {
            url: url.into(),
            group: "g".into(),
            partitions: 6,
            assigned: assigned.to_vec(),
            ready: assigned.to_vec(),
            standby: vec![],
            offsets: BTreeMap::new(),
            at: 0,
            leaving: false,
            epoch: 0,
        }
    }

    #[test]
    fn standby_copies_the_next_members_partitions() {
        let others = [member("http://b", &[2, 3]), member("http://c", &[4, 5])];
        assert_eq!(standby_for("http://a", &others, 1), BTreeSet::from([2, 3]));
        assert_eq!(
            standby_for(
                "http://c",
                &[member("http://a", &[0, 1]), member("http://b", &[2, 3])],
                1
            ),
            BTreeSet::from([0, 1])
        );
        assert_eq!(standby_for("http://a", &others, 5).len(), 4);
        assert!(standby_for("http://a", &[], 1).is_empty());
    }

    #[test]
    fn standby_copies_of_a_dead_owner_are_kept_until_the_hand_over() {
        let kept = BTreeSet::from([2, 3]);
        let mine = BTreeSet::from([0, 1]);
        // b announced [2, 3] and died: nobody owns them, a keeps its copies.
        assert_eq!(next_standby("http://a", &[], 1, &kept, &mine), kept);
        // The hand-over gave them to a: they are its own, not standby.
        let all = BTreeSet::from([0, 1, 2, 3]);
        assert!(next_standby("http://a", &[], 1, &kept, &all).is_empty());
        // They went to c instead: a keeps c's partitions as standby, and
        // nothing else.
        let c = member("http://c", &[2, 3, 4]);
        assert_eq!(
            next_standby(
                "http://a",
                std::slice::from_ref(&c),
                1,
                &BTreeSet::from([2, 3, 5]),
                &mine
            ),
            BTreeSet::from([2, 3, 4, 5])
        );
        let d = member("http://d", &[5]);
        assert_eq!(
            next_standby("http://a", &[c, d], 1, &BTreeSet::from([5]), &mine),
            BTreeSet::from([2, 3, 4])
        );
    }

    #[test]
    fn regroup_waits_per_partition_and_backs_off() {
        let s = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut r = Regroup::new(20 * s);
        let one = BTreeSet::from([1]);
        let two = BTreeSet::from([2]);
        // Hand-over gaps of different partitions do not add up.
        assert!(!r.observe(&one, t0));
        assert!(!r.observe(&two, t0 + 15 * s));
        assert!(!r.observe(&two, t0 + 34 * s));
        assert!(r.observe(&two, t0 + 35 * s));
        // The next raise waits twice as long...
        assert!(!r.observe(&one, t0 + 40 * s));
        assert!(!r.observe(&one, t0 + 79 * s));
        assert!(r.observe(&one, t0 + 80 * s));
        // ...until every partition had an owner for eight waits (8 × 80 s).
        let none = BTreeSet::new();
        assert!(!r.observe(&none, t0 + 100 * s));
        assert!(!r.observe(&none, t0 + 739 * s));
        assert!(!r.observe(&one, t0 + 740 * s));
        assert!(!r.observe(&one, t0 + 819 * s), "not yet reset: waits 80 s");
        assert!(!r.observe(&none, t0 + 830 * s));
        assert!(!r.observe(&none, t0 + 1_470 * s));
        assert!(!r.observe(&one, t0 + 1_480 * s));
        assert!(r.observe(&one, t0 + 1_500 * s), "reset: waits 20 s");
        // A new epoch restarts the clocks; zero never raises.
        assert!(!r.observe(&one, t0 + 1_510 * s));
        r.restart();
        assert!(!r.observe(&one, t0 + 1_545 * s));
        let mut never = Regroup::new(Duration::ZERO);
        assert!(!never.observe(&one, t0));
        assert!(!never.observe(&one, t0 + 10_000 * s));
    }

    #[test]
    fn a_revocation_leaves_ready_and_bumps_the_version() {
        let o = Ownership::default();
        o.update(|s| s.assigned = BTreeSet::from([0, 1]));
        let v = o.version();
        o.mark_ready(0);
        o.mark_ready(4);
        assert_eq!(o.ready(), BTreeSet::from([0]));
        o.update(|s| {
            s.assigned.remove(&0);
        });
        assert!(o.ready().is_empty());
        assert!(o.version() > v);
    }

    #[test]
    fn stale_and_leaving_members_are_not_alive() {
        let m = Members::default();
        let mut a = member("http://a", &[0]);
        a.at = 10_000;
        let mut b = member("http://b", &[1]);
        b.at = 1_000;
        let mut c = member("http://c", &[2]);
        c.at = 10_000;
        c.leaving = true;
        // Read from the topic's history at 11,000: as old as their clocks say.
        for x in [a.clone(), b, c] {
            m.put(x, 11_000, false);
        }
        let mut older = a.clone();
        older.at = 5;
        m.put(older, 11_000, true);
        assert_eq!(m.alive(11_000, Duration::from_secs(3)), vec![a.clone()]);
        // Judged by the local clock: at 20,000 nothing was read for 9 s.
        assert!(m.alive(20_000, Duration::from_secs(3)).is_empty());
    }

    #[test]
    fn another_clock_running_behind_or_ahead_changes_no_liveness() {
        let m = Members::default();
        // Read as sent, at local 100,000: `b`'s clock is an hour behind,
        // `c`'s an hour ahead.
        let mut b = member("http://b", &[1]);
        b.at = 100_000 - 3_600_000;
        let mut c = member("http://c", &[2]);
        c.at = 100_000 + 3_600_000;
        m.put(b.clone(), 100_000, true);
        m.put(c.clone(), 100_000, true);
        let ttl = Duration::from_secs(5);
        assert_eq!(m.alive(104_000, ttl), vec![b.clone(), c.clone()]);
        // Silent for longer than the ttl, local time: both dead, however
        // far ahead `c`'s clock ran.
        assert!(m.alive(106_000, ttl).is_empty());
        // In the history read at start, a clock ahead is trusted no further
        // than now: `c` is as fresh as a record read now, then expires.
        let h = Members::default();
        h.put(c.clone(), 200_000, false);
        h.put(b, 200_000, false);
        // `b` is an hour old by its clock.
        assert_eq!(h.alive(204_000, ttl), vec![c]);
        assert!(h.alive(206_000, ttl).is_empty());
    }
}
