//! Command-line arguments (clap). Flags override the environment, which
//! overrides the configuration file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "session-ledger",
    version,
    about = "Event-sourced ledger of user and agent sessions: Kafka in, four session APIs out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by the commands that talk to Kafka and the store.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// TOML configuration file.
    #[arg(long, short, env = "LEDGER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Kafka bootstrap servers.
    #[arg(long, env = "LEDGER_BROKERS")]
    pub brokers: Option<String>,
    /// The event topic.
    #[arg(long, env = "LEDGER_TOPIC")]
    pub topic: Option<String>,
    /// Store directory.
    #[arg(long, env = "LEDGER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Zero-setup first run: in-process broker, generated sessions, all four views.
    Demo {
        /// HTTP port (0 = any free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Sessions to generate.
        #[arg(long, default_value_t = 2_000)]
        sessions: usize,
        /// Events to generate.
        #[arg(long, default_value_t = 20_000)]
        events: usize,
    },
    /// Consume the topic, serve the API, run the reaper.
    Serve {
        #[command(flatten)]
        common: Common,
        /// HTTP listen address.
        #[arg(long, env = "LEDGER_LISTEN")]
        listen: Option<String>,
        /// Accept requests without an API key (local use only).
        #[arg(long)]
        no_auth: bool,
        /// Do not run the reaper.
        #[arg(long)]
        no_reaper: bool,
        /// `replica` (every partition here) or `sharded` (the data group's
        /// share; any instance answers any request).
        #[arg(long, env = "LEDGER_CLUSTER_MODE")]
        mode: Option<crate::config::ClusterMode>,
        /// Sharded mode: this instance's HTTP address as the others reach it.
        #[arg(long, env = "LEDGER_ADVERTISE")]
        advertise: Option<String>,
        /// Freeze the clock of the API and reaper at this Unix ms (reproducible
        /// responses in tests and comparisons); the wall clock otherwise.
        #[arg(long, hide = true)]
        now_ms: Option<i64>,
    },
    /// Publish NDJSON events (file or `-` for stdin) to the topic, keyed by session id.
    Publish {
        #[command(flatten)]
        common: Common,
        /// NDJSON file, or `-` for stdin.
        #[arg(default_value = "-")]
        input: String,
        /// Send CloudEvents binary mode (`ce_*` headers) instead of structured.
        #[arg(long)]
        binary: bool,
    },
    /// Generate a realistic, seeded synthetic event stream.
    Generate {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        opts: GenerateOpts,
    },
    /// Replay the topic from the beginning into a fresh store, then swap it in.
    Rebuild {
        #[command(flatten)]
        common: Common,
        /// Delete the previous store instead of keeping it aside (after an
        /// erasure: no copy of the erased data stays on disk).
        #[arg(long)]
        remove_old: bool,
        /// Rebuild a running server's store online instead (it keeps
        /// serving and switches when done): its base URL.
        #[arg(long)]
        url: Option<String>,
        /// Admin API key for `--url`.
        #[arg(long, env = "LEDGER_API_KEY", hide_env_values = true)]
        key: Option<String>,
        /// With `--url`: copy the live store instead of replaying the topic
        /// (compaction only; its ingestion pauses for the copy).
        #[arg(long, requires = "url")]
        from_store: bool,
    },
    /// Erase a user's or a workspace's sessions (GDPR Art. 17): publishes an
    /// erasure to every partition of the topic, which every replica and every
    /// replay applies. The raw events stay in Kafka until the topic's retention.
    Erase {
        #[command(flatten)]
        common: Common,
        #[arg(
            long,
            conflicts_with = "workspace",
            required_unless_present = "workspace"
        )]
        user: Option<String>,
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Show one session: state, index entries, event history.
    Inspect {
        #[command(flatten)]
        common: Common,
        session_id: String,
    },
    /// Check a store's consistency: recompute every index entry and counter
    /// from the session records and compare them with what is stored. Exits
    /// non-zero when anything differs (the store must not be in use).
    Audit {
        #[command(flatten)]
        common: Common,
    },
    /// Print the SHA-256 of an API key, for the `[[auth.keys]]` configuration.
    HashKey { key: String },
    /// One screen on a running ledger: partitions, lag, rates, dead letters,
    /// store size, reaper ownership, health (read from /metrics and /readyz).
    Status {
        /// The server's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Refresh every this many seconds (with rates) until interrupted.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<u64>,
    },
}

/// What `generate` (and the demo) generate.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateOpts {
    #[arg(long, default_value_t = 1_000)]
    pub sessions: usize,
    #[arg(long, default_value_t = 10_000)]
    pub events: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 500)]
    pub users: usize,
    /// Probability that an event is followed by a producer-retry duplicate.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Probability that a session's `created` arrives after its first events.
    #[arg(long, default_value_t = 0.0)]
    pub out_of_order: f64,
    /// First event time (RFC 3339); default: now minus one hour.
    #[arg(long)]
    pub start: Option<String>,
    /// Write NDJSON here (`-` = stdout) instead of publishing to the topic.
    #[arg(long)]
    pub out: Option<String>,
}
