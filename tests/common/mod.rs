//! Shared harness of the end-to-end tests: a real Kafka-protocol broker over
//! TCP (tansu, from `scripts/dev-broker`), the real binary, a real sled store.
//!
//! The broker comes from `LEDGER_TEST_BROKER` (set by `scripts/test`); when
//! unset, one is started with `scripts/dev-broker` for this test process.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ledger_core::{decode_structured, Defaults, Event, Session};
use ledger_kafka::publish::RawRecord;
use ledger_kafka::Publisher;
use rand::Rng;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub const BIN: &str = env!("CARGO_BIN_EXE_session-ledger");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Bootstrap address of the test broker.
pub fn broker() -> String {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| {
        if let Ok(a) = std::env::var("LEDGER_TEST_BROKER") {
            return a;
        }
        let dir = std::env::temp_dir().join(format!("ledger-test-broker-{}", std::process::id()));
        start_broker(&dir)
    })
    .clone()
}

/// Starts a tansu broker with its data in `dir` (same port on a restart).
pub fn start_broker(dir: &Path) -> String {
    let out = Command::new(root().join("scripts/dev-broker"))
        .arg("start")
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/dev-broker");
    assert!(out.status.success(), "dev broker failed to start");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string()
}

pub fn stop_broker(dir: &Path) {
    let st = Command::new(root().join("scripts/dev-broker"))
        .arg("stop")
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::rng().random::<u32>())
}

/// A fresh topic with `partitions` partitions.
pub fn topic(brokers: &str, prefix: &str, partitions: i32) -> String {
    let name = unique(prefix);
    rt().block_on(ledger_kafka::admin_create_topic(brokers, &name, partitions))
        .unwrap();
    rt().block_on(ledger_kafka::admin_create_topic(
        brokers,
        &ledger_kafka::dlq_topic(&name),
        1,
    ))
    .unwrap();
    name
}

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Produces records in order; returns how many were delivered.
pub fn publish(brokers: &str, topic: &str, records: Vec<RawRecord>) -> u64 {
    let p = Publisher::new(brokers, topic).unwrap();
    match rt().block_on(p.send_all(records, |_| {})) {
        Ok(n) => n,
        Err(e) => panic!("publishing to {topic} at {brokers}: {e}"),
    }
}

/// The reference fold of `events` (the testkit's).
pub fn fold(events: &[Event]) -> BTreeMap<String, Session> {
    ledger_testkit::fold(events)
}

/// Asserts the store holds exactly the expected sessions (reports the first difference).
pub fn assert_store_matches(dir: &Path, expected: &BTreeMap<String, Session>) {
    let store = ledger_store::Store::open(dir, Defaults::default()).unwrap();
    let mut n = 0;
    for s in store.all_sessions() {
        let s = s.unwrap().session;
        assert_eq!(
            Some(&s),
            expected.get(&s.id),
            "session {} differs from the fold",
            s.id
        );
        n += 1;
    }
    assert_eq!(n, expected.len(), "session count");
    assert_eq!(
        store.audit().unwrap(),
        Vec::<String>::new(),
        "indexes and counters"
    );
    let stats = store.stats();
    assert_eq!(stats.sessions, expected.len() as u64);
    for st in ledger_core::Status::ALL {
        let recount = expected.values().filter(|s| s.status == st).count() as u64;
        assert_eq!(stats.status(st), recount, "status counter {st:?}");
    }
}

/// A running `session-ledger serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub data: PathBuf,
    pub stderr_log: PathBuf,
    /// The API key `applied` reads with (servers without `--no-auth`): the
    /// consistency token goes to authenticated callers only.
    pub key: Option<String>,
}

impl Server {
    /// Starts `serve` on a free port with `extra` arguments; waits for it to listen.
    pub fn start(brokers: &str, topic: &str, data: &Path, extra: &[&str]) -> Server {
        let log = data.with_extension(format!("{}.log", unique("serve")));
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--brokers",
                brokers,
                "--topic",
                topic,
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env("LEDGER_LOG", "info,rdkafka=error")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let Some(line) = lines.next() else {
                let _ = child.wait();
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = said.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                panic!("serve exited before listening; its log ends:\n{tail}");
            };
            let line = line.unwrap();
            if let Some(addr) = line.strip_prefix("listening on ") {
                break addr.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            base,
            data: data.to_path_buf(),
            stderr_log: log,
            key: None,
        }
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many `/metrics` lines of `family` (e.g.
    /// `ledger_shard_ready_partition{`) are set to 1.
    pub fn ones(&self, family: &str) -> usize {
        let text = reqwest::blocking::get(self.url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(family) && l.ends_with(" 1"))
            .count()
    }

    /// A `/metrics` figure: the sample of `series` when it names labels
    /// (`name{label="v"}`), else the sum of the metric `name`'s samples
    /// (0 when there is none).
    pub fn metric(&self, series: &str) -> f64 {
        let text = reqwest::blocking::get(self.url("/metrics"))
            .unwrap()
            .text()
            .unwrap();
        if series.contains('{') {
            ledger_testkit::metrics::series(&text, series).unwrap_or(0.0)
        } else {
            ledger_testkit::metrics::sum(&text, series)
        }
    }

    /// Sum of the applied offsets the server reports.
    pub fn applied(&self) -> i64 {
        let mut req = reqwest::blocking::Client::new().get(self.url("/v1/sessions?limit=1"));
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        let Ok(r) = req.send() else { return -1 };
        r.headers()
            .get("x-ledger-offsets")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .filter_map(|p| p.split_once('=')?.1.parse::<i64>().ok())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Waits until the server has applied `total` records.
    pub fn wait_applied(&self, total: i64, timeout: Duration) {
        let start = Instant::now();
        loop {
            let n = self.applied();
            if n >= total {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "applied {n} of {total} records within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; returns the exit status and how long the exit took.
    pub fn term(mut self) -> (std::process::ExitStatus, Duration) {
        let t = Instant::now();
        sigterm(self.child.id());
        let st = self.child.wait().unwrap();
        let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        assert!(!log.contains("panicked"), "server panicked:\n{log}");
        (st, t.elapsed())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One record read back from the topic.
pub struct Read {
    pub partition: i32,
    pub offset: i64,
    /// Producer timestamp, Unix ms.
    pub timestamp: i64,
    /// The payload decoded as a structured-mode event, if it is one.
    pub event: Option<Event>,
    pub headers: BTreeMap<String, String>,
    pub payload_len: usize,
}

/// Every record of `topic` up to its current high watermarks (structured mode).
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Read> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0i64;
    for &p in &parts {
        let (_, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        remaining += high;
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut out = vec![];
    let start = Instant::now();
    while remaining > 0 {
        assert!(start.elapsed() < Duration::from_secs(60), "reading {topic}");
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                remaining -= 1;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                let v = x.value.map(String::from_utf8_lossy).unwrap_or_default();
                                (x.key.to_string(), v.into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp: m.timestamp().to_millis().unwrap_or(0),
                    event: m.payload().and_then(|p| decode_structured(p).ok()),
                    headers,
                    payload_len: m.payload().map_or(0, |p| p.len()),
                });
            }
            // librdkafka reports a dropped connection as an error event and
            // reconnects by itself: only the deadline above fails the read.
            Some(Err(e))
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        rdkafka::types::RDKafkaErrorCode::AllBrokersDown
                            | rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure
                    )
                ) =>
            {
                eprintln!("reading {topic}: {e} (transient; retrying)");
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Sends SIGTERM to a process (through `kill`: no unsafe code in the tests).
pub fn sigterm(pid: u32) {
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -TERM {pid}");
}

/// `scripts/sdk install`'s `name=path` lines.
pub fn sdk_paths() -> HashMap<String, String> {
    let out = Command::new(root().join("scripts/sdk"))
        .arg("install")
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "installing the SDKs failed");
    let paths: HashMap<String, String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    for name in [
        "python",
        "python_orq3",
        "node_prefix",
        "python_live",
        "chromium",
    ] {
        assert!(paths.contains_key(name), "scripts/sdk printed no {name}=");
    }
    paths
}

pub fn hash_key(key: &str) -> String {
    let out = Command::new(BIN).args(["hash-key", key]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Writes a configuration file in `dir`: `body`, then one `[[auth.keys]]`
/// per `(key, scope)` (stored hashed, as an operator would); returns its path.
pub fn config_with_keys(dir: &Path, body: &str, keys: &[(&str, &str)]) -> String {
    let mut text = body.to_string();
    for (i, (key, scope)) in keys.iter().enumerate() {
        text.push_str(&format!(
            "\n[[auth.keys]]\nname = \"key-{i}\"\nsha256 = \"{}\"\nscope = \"{scope}\"\n",
            hash_key(key)
        ));
    }
    let path = dir.join(format!("{}.toml", unique("ledger")));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Polls `done` every `every` until it holds; past `limit`, fails with the
/// message `why` gives then.
pub fn wait_until(
    limit: Duration,
    every: Duration,
    mut done: impl FnMut() -> bool,
    why: impl Fn() -> String,
) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{}", why());
        std::thread::sleep(every);
    }
}
