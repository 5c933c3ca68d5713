//! What the root benches share: `serve` processes and the dev broker.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_session-ledger");

/// A running `serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// `host:port` it listens on.
    pub addr: String,
}

impl Server {
    /// The process id of the `serve` process.
    #[allow(dead_code)] // Not every bench including this module reads it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` on `topic` (no auth, no reaper, any free port) with
/// `extra` arguments, storing in `dir`; returns once it listens.
pub fn serve(brokers: &str, topic: &str, dir: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--brokers", brokers, "--topic", topic])
        .args(["--listen", "127.0.0.1:0", "--no-auth", "--no-reaper"])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .env("LEDGER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

/// The broker `LEDGER_BENCH_BROKER` names, or one started with
/// `scripts/dev-broker` in `work` for the run (`true`: stop it after).
pub fn broker(work: &Path) -> (String, bool) {
    if let Ok(b) = std::env::var("LEDGER_BENCH_BROKER") {
        return (b, false);
    }
    let out = Command::new(root().join("scripts/dev-broker"))
        .arg("start")
        .arg(work.join("broker"))
        .output()
        .expect("scripts/dev-broker");
    assert!(out.status.success(), "the dev broker did not start");
    let addr = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .to_string();
    (addr, true)
}

/// Stops the broker [`broker`] started in `work`.
pub fn stop_broker(work: &Path) {
    let _ = Command::new(root().join("scripts/dev-broker"))
        .arg("stop")
        .arg(work.join("broker"))
        .status();
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Records a `serve` at `addr` has applied (the sum of its applied offsets,
/// from `/metrics`).
#[allow(dead_code)] // Not every bench including this module reads it.
pub fn applied(addr: &str) -> u64 {
    metric(addr, "ledger_applied_offset") as u64
}

/// The sum of a metric's series (every label set) on the `serve` at
/// `addr`'s `/metrics`; 0 when it has none.
#[allow(dead_code)] // Not every bench including this module reads it.
pub fn metric(addr: &str, name: &str) -> f64 {
    let text = reqwest::blocking::get(format!("http://{addr}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default();
    ledger_testkit::metrics::sum(&text, name)
}

/// Waits until the `serve` at `addr` has applied `total` records; the
/// seconds since `t0`.
#[allow(dead_code)] // Not every bench including this module reads it.
pub fn caught_up(addr: &str, total: u64, t0: Instant) -> f64 {
    while applied(addr) < total {
        std::thread::sleep(Duration::from_millis(20));
    }
    t0.elapsed().as_secs_f64()
}
