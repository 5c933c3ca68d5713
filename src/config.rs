//! Effective configuration: TOML file, then environment, then flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ledger_core::Defaults;
use serde::{Deserialize, Serialize};

/// The whole configuration file. Every section is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaSection,
    pub store: StoreSection,
    pub http: HttpSection,
    /// Ledger-wide timeout defaults (minutes); `created` events override them.
    pub defaults: Defaults,
    pub reaper: ReaperSection,
    pub retention: RetentionSection,
    pub feed: FeedSection,
    /// Endpoints the change feed is delivered to (`[[webhooks]]`).
    pub webhooks: Vec<WebhookSection>,
    pub webhook_retry: WebhookRetrySection,
    pub auth: AuthSection,
    pub cluster: ClusterSection,
}

/// How instances share the topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClusterMode {
    /// Each instance stores every partition.
    #[default]
    Replica,
    /// Instances share the data group's partitions; any answers any request.
    Sharded,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    pub mode: ClusterMode,
    /// This instance's HTTP address as the others reach it
    /// (`http://host:port`); default: `http://` + the bound listen address.
    pub advertise: Option<String>,
    /// Standby copies: also store the partitions of the next `standby`
    /// instances (in address order), so a take-over needs no replay.
    pub standby: usize,
    /// The producers' partitioner, which routes a by-id request to its
    /// partition's owner (`consistent_random`: librdkafka's default;
    /// `murmur2_random`: the Java client's and kafkajs's).
    pub partitioner: ledger_core::partition::Partitioner,
    /// The data group's session timeout: how long a killed instance keeps
    /// its partitions before the group hands them over, ms.
    pub session_timeout_ms: u64,
    /// How often an instance announces itself on `<topic>.members`, ms.
    pub announce_ms: u64,
    /// An instance not heard from for this long is not routed to, ms.
    pub member_ttl_ms: u64,
    /// Longest a request waits for a partition without an owner before
    /// answering 503, ms.
    pub hand_over_wait_ms: u64,
    /// A partition no live instance owns for this long makes the instances
    /// form a new data group (its coordinator is not handing it over), ms;
    /// doubled after each regroup this instance started (up to 16×). `0` =
    /// never; otherwise above `session_timeout_ms + member_ttl_ms`.
    pub regroup_after_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            mode: ClusterMode::Replica,
            advertise: None,
            standby: 0,
            partitioner: Default::default(),
            session_timeout_ms: 6_000,
            announce_ms: 1_000,
            member_ttl_ms: 5_000,
            hand_over_wait_ms: 3_000,
            regroup_after_ms: 20_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    pub brokers: String,
    pub topic: String,
    pub group_id: String,
    /// Most records per batch (sessions coalesce across a batch: big batches
    /// make catching up fast).
    pub batch_max: usize,
    /// Longest time filling one batch while caught up, ms.
    pub batch_wait_ms: u64,
    /// Longest time filling one batch while `batch_max` or more records
    /// behind, ms.
    pub batch_wait_behind_ms: u64,
    /// A partition behind its high watermark that yields no record for this
    /// long is reported stalled (log, `ledger_stalled_partitions`, `/readyz`), ms.
    pub stall_after_ms: u64,
    /// A stalled partition whose next record the broker, while answering,
    /// does not deliver for this long (a record over the broker's fetch
    /// limit) has that offset skipped with a dead letter saying why, ms.
    /// `0` = never skip, only report.
    pub skip_unfetchable_after_ms: u64,
    /// Nice value of ingestion (the consumer, the fold, the store writes):
    /// above 0, HTTP readers run first when both want the CPU. `0` = the
    /// process's own priority.
    pub nice: i32,
    /// Linux: ingestion runs under `SCHED_IDLE` besides its nice value: it
    /// gets a core only when no reader wants it, and a reader waking up
    /// takes the core from it at once.
    pub sched_idle: bool,
    /// While HTTP requests are being answered, ingestion's store writes
    /// take at most this share of wall time (0 < share ≤ 1; 1 = no pacing):
    /// reads first, and a backlog still advances at this share of its speed.
    pub write_share: f64,
    /// While ingestion has work, the least share of wall time it gets
    /// however busy the readers keep the cores (0 ≤ floor < 1; 0 = none):
    /// once it has made no progress for `5 ms × (1 − floor) / floor`, new
    /// requests wait for a write turn of at most 5 ms.
    pub write_floor: f64,
    /// Most records fetched from the broker ahead of ingestion, all
    /// partitions together (librdkafka's `queued.min.messages`; at least 1).
    pub prefetch_records: u32,
}

impl KafkaSection {
    /// The consumer's settings: the one conversion from this section.
    pub fn ingest_config(&self) -> ledger_kafka::IngestConfig {
        ledger_kafka::IngestConfig {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            group_id: self.group_id.clone(),
            batch_max: self.batch_max,
            batch_wait: Duration::from_millis(self.batch_wait_ms),
            batch_wait_behind: Duration::from_millis(self.batch_wait_behind_ms),
            dead_letter: ledger_kafka::DeadLetters::All,
            stall_after: Duration::from_millis(self.stall_after_ms),
            skip_unfetchable_after: (self.skip_unfetchable_after_ms > 0)
                .then(|| Duration::from_millis(self.skip_unfetchable_after_ms)),
            ownership: None,
            nice: self.nice,
            sched_idle: self.sched_idle,
            // Paced once `serve` has its readers' load to pace against.
            pace: ledger_store::Pace::none(),
            prefetch_records: self.prefetch_records,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    pub path: PathBuf,
    /// Keep a store replaced by an online rebuild (moved to `old-<n>` in
    /// `path`) instead of deleting it.
    pub keep_old: bool,
    /// Compact the store this often, ms (an online copy into a fresh store,
    /// switched in: sled's files never shrink by themselves; live ingestion
    /// pauses for the copy, reads go on); `0` = never.
    pub compact_every_ms: u64,
    /// Compact once sled's files hold more than this many times the bytes
    /// per session they held right after the last compaction (a store never
    /// compacted: once it reaches `compact_floor_mb`), checked while
    /// ingestion is caught up; `0` = never. At least 1.5.
    pub compact_when_grown: f64,
    /// No size-triggered compaction below this many MiB on disk.
    pub compact_floor_mb: u64,
    /// sled's page cache, MiB (counted in serialized bytes: the process
    /// holds more). At least 16.
    pub cache_mb: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSection {
    pub listen: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaperSection {
    pub enabled: bool,
    /// How often to look for sessions past their deadline, ms.
    pub interval_ms: u64,
}

/// One webhook endpoint: sessions' changes POSTed as Clerk-style events,
/// signed per Standard Webhooks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// Names the endpoint (metrics, logs, its consumer group): keep it
    /// stable, the delivery cursors are kept under it.
    pub name: String,
    pub url: String,
    /// Event types to deliver (`session.created`, `session.updated`,
    /// `session.ended`, …); empty: every type.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    /// The signing secret, `whsec_` + base64 (or name it in `secret_env`).
    #[serde(default)]
    pub secret: Option<String>,
    /// An environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
}

impl WebhookSection {
    /// The endpoint as the deliverer takes it (the secret read and checked).
    pub fn endpoint(&self) -> anyhow::Result<ledger_hooks::Endpoint> {
        let secret = match (&self.secret, &self.secret_env) {
            (Some(s), _) => s.clone(),
            (None, Some(var)) => std::env::var(var).with_context(|| {
                format!("webhook {}: reading its secret from ${var}", self.name)
            })?,
            (None, None) => anyhow::bail!("webhook {}: needs `secret` or `secret_env`", self.name),
        };
        Ok(ledger_hooks::Endpoint {
            name: self.name.clone(),
            url: self.url.clone(),
            events: self.events.clone(),
            filter: ledger_store::Filter {
                user_id: self.user_id.clone(),
                workspace_id: self.workspace_id.clone(),
                client_id: self.client_id.clone(),
                agent_id: self.agent_id.clone(),
                ..Default::default()
            },
            key: ledger_hooks::parse_secret(&secret)
                .map_err(|e| anyhow::anyhow!("webhook {}: {e}", self.name))?,
        })
    }
}

/// How webhook deliveries are timed and retried (forever: at least once).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookRetrySection {
    /// Timeout of one attempt, ms.
    pub timeout_ms: u64,
    /// Wait after the first failure, ms; doubles after each.
    pub first_backoff_ms: u64,
    /// Longest wait between attempts, ms.
    pub max_backoff_ms: u64,
}

impl Default for WebhookRetrySection {
    fn default() -> Self {
        Self {
            timeout_ms: 10_000,
            first_backoff_ms: 500,
            max_backoff_ms: 300_000,
        }
    }
}

/// The change feed (`…/stream`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedSection {
    /// Offsets of each partition the change log keeps behind its head: a
    /// reader further behind gets a `reset`.
    pub keep_offsets: i64,
    /// How often an idle reader gets a heartbeat (with its token), ms.
    pub heartbeat_ms: u64,
    /// How often the change log is trimmed, ms.
    pub trim_every_ms: u64,
}

impl Default for FeedSection {
    fn default() -> Self {
        Self {
            keep_offsets: 1_000_000,
            heartbeat_ms: 15_000,
            trim_every_ms: 10_000,
        }
    }
}

/// How long ended sessions are kept (`docs`: retention and erasure).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSection {
    /// Terminal sessions whose `ended_at` is more than this many days in the
    /// past are purged; `0` keeps every session forever.
    pub ended_days: u32,
    /// Days a purged session's marker is kept past its purge time (late
    /// events for it are dropped meanwhile): at least the topic's retention.
    pub marker_days: u32,
    /// How often to look for sessions to purge, ms.
    pub interval_ms: u64,
    /// After an erasure is applied, and no other for this long, rebuild the
    /// store online so that sled's files keep no old copy of the erased
    /// data, ms; `0` = never (run `rebuild` yourself).
    pub compact_after_erasure_ms: u64,
}

impl RetentionSection {
    pub fn policy(&self) -> ledger_store::Retention {
        ledger_store::Retention::days(self.ended_days, self.marker_days)
    }
}

impl Default for RetentionSection {
    fn default() -> Self {
        Self {
            ended_days: 30,
            marker_days: 7,
            interval_ms: 60_000,
            compact_after_erasure_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// Accept requests without a key (local demo only; logs a warning).
    pub disabled: bool,
    pub keys: Vec<KeyEntry>,
}

/// An API key, stored as the hex SHA-256 of the key (never the key itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub name: String,
    pub sha256: String,
    /// `admin`, `user:<id>` or `workspace:<id>`.
    #[serde(default = "admin")]
    pub scope: String,
}

fn admin() -> String {
    "admin".into()
}

/// The defaults are the consumer's own (`IngestConfig::new`): one place.
impl Default for KafkaSection {
    fn default() -> Self {
        let d = ledger_kafka::IngestConfig::new("127.0.0.1:9092", "session-events");
        let ms = |d: Duration| d.as_millis() as u64;
        Self {
            brokers: d.brokers,
            topic: d.topic,
            group_id: d.group_id,
            batch_max: d.batch_max,
            batch_wait_ms: ms(d.batch_wait),
            batch_wait_behind_ms: ms(d.batch_wait_behind),
            stall_after_ms: ms(d.stall_after),
            skip_unfetchable_after_ms: d.skip_unfetchable_after.map_or(0, ms),
            nice: d.nice,
            sched_idle: d.sched_idle,
            write_share: ledger_store::pace::DEFAULT_SHARE,
            write_floor: ledger_store::pace::DEFAULT_FLOOR,
            prefetch_records: d.prefetch_records,
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("ledger-data"),
            keep_old: false,
            compact_every_ms: 86_400_000,
            compact_when_grown: 2.0,
            compact_floor_mb: 256,
            cache_mb: ledger_store::CACHE_BYTES >> 20,
        }
    }
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
        }
    }
}

impl Default for ReaperSection {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 1_000,
        }
    }
}

impl Config {
    /// Reads a TOML file (or the defaults when `path` is `None`).
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        match path {
            None => Ok(Self::default()),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let cfg: Self =
                    toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?;
                cfg.check()
                    .with_context(|| format!("checking {}", p.display()))?;
                Ok(cfg)
            }
        }
    }

    /// Values out of their range, refused with the key that holds them.
    fn check(&self) -> anyhow::Result<()> {
        let share = self.kafka.write_share;
        if !(share > 0.0 && share <= 1.0) {
            anyhow::bail!("kafka.write_share is {share}: it must be above 0 and at most 1");
        }
        let floor = self.kafka.write_floor;
        if !(0.0..=0.5).contains(&floor) {
            anyhow::bail!("kafka.write_floor is {floor}: it must be from 0 (none) to 0.5");
        }
        if self.kafka.prefetch_records == 0 {
            anyhow::bail!("kafka.prefetch_records is 0: it must be at least 1");
        }
        let grown = self.store.compact_when_grown;
        if !(grown == 0.0 || (1.5..=1e6).contains(&grown)) {
            anyhow::bail!(
                "store.compact_when_grown is {grown}: it must be 0 (never) or at least 1.5"
            );
        }
        if self.store.cache_mb < 16 {
            anyhow::bail!(
                "store.cache_mb is {}: it must be at least 16",
                self.store.cache_mb
            );
        }
        let c = &self.cluster;
        let floor = c.session_timeout_ms + c.member_ttl_ms;
        if c.regroup_after_ms != 0 && c.regroup_after_ms <= floor {
            anyhow::bail!(
                "cluster.regroup_after_ms is {}: it must be 0 (never) or above \
                 session_timeout_ms + member_ttl_ms ({floor}), or every hand-over regroups",
                c.regroup_after_ms
            );
        }
        Ok(())
    }

    /// The configuration as TOML with key hashes masked, for the start banner.
    pub fn masked(&self) -> String {
        let mut c = self.clone();
        for k in &mut c.auth.keys {
            k.sha256 = format!("{}…", &k.sha256.chars().take(8).collect::<String>());
        }
        for w in &mut c.webhooks {
            if w.secret.is_some() {
                w.secret = Some("whsec_…".into());
            }
        }
        toml::to_string(&c).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ledger.toml");
        std::fs::write(&path, text)?;
        Config::load(Some(&path))
    }

    #[test]
    fn regroup_after_is_refused_below_a_hand_over() {
        assert!(load("[cluster]\nregroup_after_ms = 0\n").is_ok());
        assert!(load("[cluster]\nregroup_after_ms = 12000\n").is_ok());
        for bad in [1, 11_000] {
            let err = load(&format!("[cluster]\nregroup_after_ms = {bad}\n")).unwrap_err();
            assert!(
                format!("{err:#}").contains("cluster.regroup_after_ms"),
                "{err:#}"
            );
        }
    }

    #[test]
    fn prefetch_records_is_read_and_refused_at_zero() {
        assert_eq!(
            Config::default().kafka.prefetch_records,
            ledger_kafka::PREFETCH_RECORDS
        );
        let cfg = load("[kafka]\nprefetch_records = 5000\n").unwrap();
        assert_eq!(cfg.kafka.prefetch_records, 5000);
        assert_eq!(cfg.kafka.ingest_config().prefetch_records, 5000);
        let err = load("[kafka]\nprefetch_records = 0\n").unwrap_err();
        assert!(
            format!("{err:#}").contains("kafka.prefetch_records"),
            "{err:#}"
        );
    }

    #[test]
    fn write_floor_is_read_and_refused_out_of_range() {
        assert_eq!(
            Config::default().kafka.write_floor,
            ledger_store::pace::DEFAULT_FLOOR
        );
        let cfg = load("[kafka]\nwrite_floor = 0\n").unwrap();
        assert_eq!(cfg.kafka.write_floor, 0.0);
        for bad in ["-0.1", "0.6", "nan"] {
            let err = load(&format!("[kafka]\nwrite_floor = {bad}\n")).unwrap_err();
            assert!(
                format!("{err:#}").contains("kafka.write_floor"),
                "{bad}: {err:#}"
            );
        }
    }

    #[test]
    fn write_share_is_read_and_refused_out_of_range() {
        let cfg = load("[kafka]\nwrite_share = 0.25\n").unwrap();
        assert_eq!(cfg.kafka.write_share, 0.25);
        assert_eq!(
            Config::default().kafka.write_share,
            KafkaSection::default().write_share
        );
        for bad in ["0", "-0.5", "1.5", "nan"] {
            let err = load(&format!("[kafka]\nwrite_share = {bad}\n")).unwrap_err();
            assert!(
                format!("{err:#}").contains("kafka.write_share"),
                "{bad}: {err:#}"
            );
        }
    }

    #[test]
    fn compact_when_grown_is_read_and_refused_out_of_range() {
        let cfg = load("[store]\ncompact_when_grown = 3\ncompact_floor_mb = 64\n").unwrap();
        assert_eq!(cfg.store.compact_when_grown, 3.0);
        assert_eq!(cfg.store.compact_floor_mb, 64);
        assert_eq!(load("").unwrap().store.compact_when_grown, 2.0);
        assert!(load("[store]\ncompact_when_grown = 0\n").is_ok());
        for bad in ["1", "1.2", "-2", "nan"] {
            let err = load(&format!("[store]\ncompact_when_grown = {bad}\n")).unwrap_err();
            assert!(
                format!("{err:#}").contains("store.compact_when_grown"),
                "{bad}: {err:#}"
            );
        }
    }

    #[test]
    fn the_store_cache_is_read_and_refused_below_16_mib() {
        assert_eq!(load("").unwrap().store.cache_mb, 128);
        assert_eq!(
            load("[store]\ncache_mb = 1024\n").unwrap().store.cache_mb,
            1024
        );
        let err = load("[store]\ncache_mb = 8\n").unwrap_err();
        assert!(format!("{err:#}").contains("store.cache_mb"), "{err:#}");
    }
}
